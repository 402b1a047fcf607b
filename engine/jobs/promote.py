"""promote: move the short-term memories worth keeping into long-term memory (every 30 s).

Rule (jido_code's promotion timer and ImportanceScorer; recency as in
Generative Agents): score = w_r·recency + w_f·frequency + w_c·confidence +
w_i·importance, each term in [0, 1], with recency = 0.995^(hours since last
access), frequency = min(accesses / 10, 1) and importance = importance / 10.
Memories at or above the threshold promote highest score first, up to a per-run
cap; a memory marked "remember" always promotes, first, and arrives pinned
(it was explicitly asked to be kept, so decay must not drop it). A qualifying
memory the cap leaves behind is deferred to the next run, never expired; only
pending memories older than the TTL that do not qualify (score below the
threshold at this run's now, not marked "remember") expire.

The scoring is one set-based query in SQLite; the moves then go in batches of
bounded size, each batch one transaction that inserts the long-term rows and
deletes the pending rows together — so a crash at any point leaves every memory
in exactly one table (``source_pending_id`` is UNIQUE besides), and an agent
writing to the same database waits at most one batch. The expiry goes in batches
too, and each DELETE tests the expiry condition again, so a memory used (or
marked "remember") after the stale ones were listed is left alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from memtui.engine.config import setting
from memtui.engine.jobs.base import JobContext, JobKind, in_batches


@dataclass(frozen=True)
class PromoteConfig:
    w_recency: float = setting(0.20, min=0.0, max=1.0)
    w_frequency: float = setting(0.30, min=0.0, max=1.0)
    w_confidence: float = setting(0.25, min=0.0, max=1.0)
    w_importance: float = setting(0.25, min=0.0, max=1.0)
    threshold: float = setting(0.6, min=0.0, max=1.0, doc="promote at or above this score")
    cap: int = setting(500, min=0, doc="most promotions per run; 0 = no cap")
    ttl_days: float = setting(7.0, min=0.0, doc="unpromoted pending memories older than this expire")
    recency_decay: float = setting(0.995, min=0.5, max=1.0, doc="recency = this ^ hours since last access")
    batch_size: int = setting(1000, min=1, max=50_000, doc="memories moved per transaction")


# Positional parameters, in the order of score_params(): the expiry DELETE runs through
# in_batches, which appends the chunk's ids as positional parameters.
SCORE_SQL = (
    "? * pow(?, max(0.0, (? - coalesce(last_access_at, created_at)) / 3600.0))"
    " + ? * min(access_count / 10.0, 1.0)"
    " + ? * min(max(confidence, 0.0), 1.0)"
    " + ? * min(max(importance, 0.0), 10.0) / 10.0"
)
# Rounding keeps a score meant to be exactly the threshold (0.6) from missing it by float noise
# in the weighted sum. Parameters: score_params(), then the threshold.
QUALIFIES_SQL = f"(remember != 0 OR round({SCORE_SQL}, 9) >= ?)"
# Rows older than the TTL that do not qualify (a row whose score is NULL matches neither, so it
# is never expired on doubt). Parameters: the cutoff, score_params(), the threshold.
EXPIRES_SQL = f"created_at < ? AND remember = 0 AND round({SCORE_SQL}, 9) < ?"

# A memory derived from a demo memory is a demo memory too (migration 0002).
MOVE_SQL = (
    "INSERT INTO long_term_memory (content, kind, sender, importance, confidence, created_at, promoted_at,"
    " last_reinforced_at, recall_count, pinned, source_pending_id, demo)"
    " SELECT content, kind, sender, importance, confidence, created_at, ?, ?, 0, remember, id, demo"
    " FROM pending_memory WHERE id IN ({ids})"
)


def score_params(cfg: PromoteConfig, now_ts: float) -> tuple:
    return (cfg.w_recency, cfg.recency_decay, now_ts, cfg.w_frequency, cfg.w_confidence, cfg.w_importance)


def select_candidates(ctx: JobContext, cfg: PromoteConfig, now_ts: float) -> list[tuple[int, float]]:
    """(id, score) of the memories to promote, in promotion order."""
    sql = (f"SELECT id, round({SCORE_SQL}, 9) AS score FROM pending_memory"
           " WHERE remember != 0 OR score >= ? ORDER BY remember DESC, score DESC, id")
    params: tuple = (*score_params(cfg, now_ts), cfg.threshold)
    if cfg.cap:
        sql += " LIMIT ?"
        params += (cfg.cap,)
    return ctx.store.execute(sql, params).fetchall()


def run(ctx: JobContext) -> dict:
    cfg: PromoteConfig = ctx.config
    now_ts = ctx.now().timestamp()
    candidates = select_candidates(ctx, cfg, now_ts)
    # Each chunk moves in one transaction: inserted into long-term and deleted from pending together.
    promoted = in_batches(ctx, [row[0] for row in candidates], cfg.batch_size,
                          (MOVE_SQL, (now_ts, now_ts)), ("DELETE FROM pending_memory WHERE id IN ({ids})", ()))
    scoring = (*score_params(cfg, now_ts), cfg.threshold)
    deferred = 0
    if cfg.cap and len(candidates) >= cfg.cap:  # the cap may have left qualifiers behind: they wait
        deferred = ctx.store.execute(f"SELECT count(*) FROM pending_memory WHERE {QUALIFIES_SQL}",
                                     scoring).fetchone()[0]
    expiring = (now_ts - cfg.ttl_days * 86400, *scoring)
    # The listing only reads the created_at index; the score is tested in the DELETE, per batch, so a
    # qualifier (deferred by the cap, or used since this run began) stays, and only old rows are scored.
    stale = [r[0] for r in ctx.store.execute(
        "SELECT id FROM pending_memory WHERE created_at < ? AND remember = 0", expiring[:1])]
    expired = in_batches(ctx, stale, cfg.batch_size,
                         (f"DELETE FROM pending_memory WHERE {EXPIRES_SQL} AND id IN ({{ids}})", expiring))
    result = {"promoted": promoted, "expired": expired, "deferred": deferred}
    scores = [row[1] for row in candidates if row[1] is not None]
    if scores:  # nothing scored: no top_score key, rather than a null shown as "None"
        result["top_score"] = round(max(scores), 3)
    return result


KIND = JobKind(
    name="promote",
    run=run,
    config=PromoteConfig,
    summary="promote short-term memories worth keeping into long-term memory",
    counters=("promoted", "expired"),  # not "deferred": the same memory may be deferred run after run
)
