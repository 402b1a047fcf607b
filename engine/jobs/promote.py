"""promote: move the short-term memories worth keeping into long-term memory (every 30 s).

Rule (jido_code's promotion timer and ImportanceScorer; recency as in
Generative Agents): score = w_r·recency + w_f·frequency + w_c·confidence +
w_i·importance, each term in [0, 1], with recency = 0.995^(hours since last
access), frequency = min(accesses / 10, 1) and importance = importance / 10.
Memories at or above the threshold promote highest score first, up to a per-run
cap; a memory marked "remember" always promotes, first, and arrives pinned
(it was explicitly asked to be kept, so decay must not drop it). Pending memories older
than the TTL that did not promote expire.

The scoring is one set-based query in SQLite; the moves then go in batches of
bounded size, each batch one transaction that inserts the long-term rows and
deletes the pending rows together — so a crash at any point leaves every memory
in exactly one table (``source_pending_id`` is UNIQUE besides), and an agent
writing to the same database waits at most one batch.
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


SCORE_SQL = (
    ":w_r * pow(:decay, max(0.0, (:now - coalesce(last_access_at, created_at)) / 3600.0))"
    " + :w_f * min(access_count / 10.0, 1.0)"
    " + :w_c * min(max(confidence, 0.0), 1.0)"
    " + :w_i * min(max(importance, 0.0), 10.0) / 10.0"
)

MOVE_SQL = (
    "INSERT INTO long_term_memory (content, kind, sender, importance, confidence, created_at, promoted_at,"
    " last_reinforced_at, recall_count, pinned, source_pending_id)"
    " SELECT content, kind, sender, importance, confidence, created_at, ?, ?, 0, remember, id"
    " FROM pending_memory WHERE id IN ({ids})"
)


def score_params(cfg: PromoteConfig, now_ts: float) -> dict:
    return {"w_r": cfg.w_recency, "w_f": cfg.w_frequency, "w_c": cfg.w_confidence, "w_i": cfg.w_importance,
            "decay": cfg.recency_decay, "now": now_ts}


def select_candidates(ctx: JobContext, cfg: PromoteConfig, now_ts: float) -> list[tuple[int, float]]:
    """(id, score) of the memories to promote, in promotion order."""
    # Rounding keeps a score meant to be exactly the threshold (0.6) from
    # missing it by float noise in the weighted sum.
    sql = (f"SELECT id, round({SCORE_SQL}, 9) AS score FROM pending_memory"
           " WHERE remember != 0 OR score >= :threshold ORDER BY remember DESC, score DESC, id")
    params = {**score_params(cfg, now_ts), "threshold": cfg.threshold}
    if cfg.cap:
        sql += " LIMIT :cap"
        params["cap"] = cfg.cap
    return ctx.store.execute(sql, params).fetchall()


def run(ctx: JobContext) -> dict:
    cfg: PromoteConfig = ctx.config
    now_ts = ctx.now().timestamp()
    candidates = select_candidates(ctx, cfg, now_ts)
    # Each chunk moves in one transaction: inserted into long-term and deleted from pending together.
    promoted = in_batches(ctx, [row[0] for row in candidates], cfg.batch_size,
                          (MOVE_SQL, (now_ts, now_ts)), ("DELETE FROM pending_memory WHERE id IN ({ids})", ()))
    cutoff = now_ts - cfg.ttl_days * 86400
    stale = [r[0] for r in ctx.store.execute(
        "SELECT id FROM pending_memory WHERE created_at < ? AND remember = 0", (cutoff,))]
    expired = in_batches(ctx, stale, cfg.batch_size, (
        "DELETE FROM pending_memory WHERE created_at < ? AND remember = 0 AND id IN ({ids})", (cutoff,)))
    top = max((row[1] for row in candidates), default=None)
    return {"promoted": promoted, "expired": expired, "top_score": None if top is None else round(top, 3)}


KIND = JobKind(
    name="promote",
    run=run,
    config=PromoteConfig,
    summary="promote short-term memories worth keeping into long-term memory",
    counters=("promoted", "expired"),
)
