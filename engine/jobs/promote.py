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

The scoring is one set-based query; the moves then go in batches of bounded
size, each batch one transaction that inserts the long-term rows and deletes the
pending rows together — so a crash at any point leaves every memory in exactly
one table (``source_pending_id`` is UNIQUE besides), and an agent writing to the
same database waits at most one batch. The expiry goes in batches too, and each
DELETE tests the expiry condition again, so a memory used (or marked "remember")
after the stale ones were listed is left alone.

On PostgreSQL, where an agent's write does not wait for a whole-database lock,
a batch's INSERT … SELECT locks the rows it copies (``store.for_update``): an
access recorded meanwhile either commits before the copy, which then reads it,
or waits until the batch has moved the memory and then finds it in long-term
memory, as ``record_access`` expects. The expiry DELETE needs no lock: PostgreSQL
tests its WHERE again on a row another transaction changed meanwhile.

Incremental (what a run costs is what changed, not what is stored): a memory's
score only falls while nobody writes to it — recency decays, frequency,
confidence and importance stay — so a memory scored below the threshold cannot
qualify before one of its inputs is written again. The database flags every
new row and every write to an input (``pending_memory.rescore``, kept by a
trigger, so an agent's plain-SQL UPDATE is seen too: migration 0004); a run
scores only the flagged rows and clears the flag on those it found below the
threshold. Deferred qualifiers keep theirs. Three things can make an unflagged
row qualify without a write, and each forces a *full pass* (every row scored,
the qualifiers among the unflagged ones flagged, then the same run): a change to
the weights, threshold or recency rate; the clock moving backwards (recency is
higher at an earlier now; a clock behind by under ``CLOCK_SKEW_S``, another
host's, scores at the last run's now instead); and nothing at all: a full pass
also runs every ``full_pass_every_h`` hours as the safety net. The checkpoint records the
scoring settings of the last full pass, when it ran, and the latest now a run
scored at; a full pass that is owed (clock moved back) stays owed until one
commits, so a crash cannot lose it.

Stored scores (``pending_memory.last_score``, migration 0006): the statement that
clears a row's flag also writes the score it was cleared at, so the memory view
can list pending memories by score from an index instead of scoring the whole
table. Since a score only falls while the flag is clear, the stored one is an
upper bound on the score now. It drifts below the truth as recency decays: a full
pass, which computes every score anyway, writes it again where it is missing (a
store from before 0006: the first run after the upgrade is a full pass for it)
or more than ``SCORE_DRIFT`` too high, so an hourly pass rewrites a row only
every ten hours or so (recency costs a score at most 0.001 an hour), not every
row every hour.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from peewee import Value, fn

from memtui.engine.config import setting
from memtui.engine.jobs.base import (JobContext, JobKind, count_rows, in_batches, raw_ids, raw_rows,
                                     write_with_history)


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
    batch_size: int = setting(1000, min=1, max=30_000,
                                    doc="memories moved per transaction (SQLite binds at most 32,766 values)")
    full_pass_every_h: float = setting(1.0, min=0.0,
                                       doc="score every pending memory at least this often; 0 = every run")


# Engines on several hosts run promote in turn, and their clocks differ by a little (NTP keeps them within
# milliseconds to seconds); a run whose clock is behind the last run's by less than this scores at the
# last run's now instead of paying a full pass.
CLOCK_SKEW_S = 30.0

# A run that cleared this many flags changed what the planner must know to keep using the partial index.
REFRESH_STATISTICS_AFTER = 10_000

# The settings a memory's score depends on: a change to any forces a full pass.
SCORING_SETTINGS = ("w_recency", "w_frequency", "w_confidence", "w_importance", "threshold", "recency_decay")

# A full pass writes a stored score (last_score) again when it is this much above the score now: enough to
# keep the memory view's order by stored score close to the truth, without rewriting every row every hour.
SCORE_DRIFT = 0.01


def score_terms(store, cfg: PromoteConfig, now_ts: float) -> dict:
    """The four terms of a pending memory's score, each in [0, 1], as SQL expressions (``why`` shows them)."""
    Pending = store.m.PendingMemory
    hours = store.greatest(0.0, (now_ts - fn.COALESCE(Pending.last_access_at, Pending.created_at)) / 3600.0)
    if cfg.recency_decay < 1:
        # PostgreSQL's pow() raises "value out of range: underflow" below the smallest double (0.9 to the
        # 300 days' hours); beyond these hours recency is under 1e-200, 0 at the score's 9 places anyway.
        hours = store.least(hours, math.log(1e-200) / math.log(cfg.recency_decay))
    return {
        "recency": fn.POW(cfg.recency_decay, hours),
        # coerce(False): else peewee converts 10.0 to the integer column's type, and 9 / 10 is 0.
        "frequency": store.least(Pending.access_count.coerce(False) / 10.0, 1.0),
        "confidence": store.least(store.greatest(Pending.confidence, 0.0), 1.0),
        "importance": store.least(store.greatest(Pending.importance, 0.0), 10.0) / 10.0,
    }


def score_of(store, cfg: PromoteConfig, now_ts: float):
    """The score of each pending memory, rounded to 9 places: rounding keeps a score meant to be
    exactly the threshold (0.6) from missing it by float noise in the weighted sum."""
    terms = score_terms(store, cfg, now_ts)
    weighted = (cfg.w_recency * terms["recency"] + cfg.w_frequency * terms["frequency"]
                + cfg.w_confidence * terms["confidence"] + cfg.w_importance * terms["importance"])
    return store.round_to(weighted, 9)


def score(ctx: JobContext, cfg: PromoteConfig, now_ts: float):
    return score_of(ctx.store, cfg, now_ts)


def qualifies(ctx: JobContext, cfg: PromoteConfig, now_ts: float):
    """Marked "remember", or scoring at least the threshold."""
    return ctx.store.m.PendingMemory.remember | (score(ctx, cfg, now_ts) >= cfg.threshold)


def expires(ctx: JobContext, cfg: PromoteConfig, now_ts: float):
    """Older than the TTL and not qualifying (a row whose score is NULL matches neither, so it is
    never expired on doubt)."""
    Pending = ctx.store.m.PendingMemory
    return ((Pending.created_at < now_ts - cfg.ttl_days * 86400) & ~Pending.remember
            & (score(ctx, cfg, now_ts) < cfg.threshold))


def select_candidates(ctx: JobContext, cfg: PromoteConfig, now_ts: float) -> list[tuple[int, float]]:
    """(id, score) of the memories to promote, in promotion order: every qualifier is flagged."""
    Pending = ctx.store.m.PendingMemory
    scored = score(ctx, cfg, now_ts)
    query = (Pending.select(Pending.id, scored)
             .where(Pending.rescore & (Pending.remember | (scored >= cfg.threshold)))
             .order_by(Pending.remember.desc(), scored.desc(), Pending.id))
    if cfg.cap:
        query = query.limit(cfg.cap)
    return raw_rows(ctx, query)


def copy_to_long_term(ctx: JobContext, cfg: PromoteConfig, now_ts: float, chunk):
    """The chunk's pending memories copied into long-term memory (one INSERT … SELECT), with the score,
    its terms and the threshold they were promoted on, locking the rows it copies until the batch's
    transaction ends (where the backend needs it)."""
    Pending, LongTerm = ctx.store.m.PendingMemory, ctx.store.m.LongTermMemory
    terms = score_terms(ctx.store, cfg, now_ts)
    # A memory derived from a demo memory is a demo memory too (migration 0002); an explicit
    # "remember" arrives pinned, so decay never drops it.
    copies = ctx.store.for_update(Pending.select(
        Pending.content, Pending.kind, Pending.sender, Pending.importance, Pending.confidence,
        Pending.created_at, Value(now_ts), Value(now_ts), Value(0), Pending.remember, Pending.id, Pending.demo,
        Pending.content_key, score(ctx, cfg, now_ts), terms["recency"], terms["frequency"], terms["confidence"],
        terms["importance"], Value(cfg.threshold),
    ).where(Pending.id.in_(chunk)))
    return LongTerm.insert_from(copies, [
        LongTerm.content, LongTerm.kind, LongTerm.sender, LongTerm.importance, LongTerm.confidence,
        LongTerm.created_at, LongTerm.promoted_at, LongTerm.last_reinforced_at, LongTerm.recall_count,
        LongTerm.pinned, LongTerm.source_pending_id, LongTerm.demo, LongTerm.content_key,
        LongTerm.promotion_score, LongTerm.promotion_recency, LongTerm.promotion_frequency,
        LongTerm.promotion_confidence, LongTerm.promotion_importance, LongTerm.promotion_threshold,
    ])


def full_pass_reason(cfg: PromoteConfig, mark: dict, now_ts: float) -> str | None:
    """Why this run must score every memory, or None when the flagged ones are enough."""
    if not mark.get("scored_with"):
        return "first run"
    if mark.get("full_due"):
        return mark["full_due"]  # owed by an earlier run that did not commit its full pass
    if mark["scored_with"] != scoring_settings(cfg):
        return "scoring settings changed"
    if not mark.get("scores_stored"):
        return "scores not stored yet"  # the last full pass was before migration 0006: fill last_score
    if now_ts < mark.get("now", now_ts):
        return "clock moved back"
    if now_ts - mark.get("full_at", now_ts) >= cfg.full_pass_every_h * 3600:
        return "safety net" if cfg.full_pass_every_h else "configured for every run"
    return None


def scoring_settings(cfg: PromoteConfig) -> dict:
    return {name: getattr(cfg, name) for name in SCORING_SETTINGS}


def flag_qualifiers(ctx: JobContext, cfg: PromoteConfig, now_ts: float) -> int:
    """A full pass: score every unflagged memory, flag those that qualify and store the score again
    where the stored one is missing or has drifted (one read of the whole table, which does not hold
    up writers, then small transactions)."""
    Pending = ctx.store.m.PendingMemory
    scored, qualifying = score(ctx, cfg, now_ts), qualifies(ctx, cfg, now_ts)
    # A NULL score (a row written with plain SQL may lack an input) is neither: never flagged or stored on doubt.
    stale = Pending.last_score.is_null() | (Pending.last_score - scored > SCORE_DRIFT)
    rows = raw_rows(ctx, Pending.select(Pending.id, qualifying).where(~Pending.rescore & (qualifying | stale)))
    flagged = in_batches(ctx, [i for i, qualified in rows if qualified], cfg.batch_size,
                         lambda chunk: Pending.update(rescore=True).where(Pending.id.in_(chunk)))
    # The condition again in the write: a row written to meanwhile is flagged, and the run scores it.
    in_batches(ctx, [i for i, qualified in rows if not qualified], cfg.batch_size,
               lambda chunk: Pending.update(last_score=scored).where(~Pending.rescore & ~qualifying & stale
                                                                     & Pending.id.in_(chunk)))
    return flagged


def settle(ctx: JobContext, cfg: PromoteConfig, now_ts: float) -> int:
    """Clear the flag of each flagged memory scoring below the threshold at ``now_ts``, storing that
    score (``last_score``) in the same statement, in id order, a batch per transaction. The UPDATE
    tests the score itself: a memory written to since it was listed (flagged again by the trigger, or
    qualifying now) keeps its flag."""
    Pending = ctx.store.m.PendingMemory
    below = Pending.rescore & ~qualifies(ctx, cfg, now_ts)
    scored = score(ctx, cfg, now_ts)
    cleared, after = 0, 0
    while True:
        ctx.check()
        ids = raw_ids(ctx, Pending.select(Pending.id).where(Pending.rescore & (Pending.id > after))
                      .order_by(Pending.id).limit(cfg.batch_size))
        if not ids:
            return cleared
        with ctx.store.atomic():
            cleared += Pending.update(rescore=False, last_score=scored).where(
                below & ctx.store.in_ids(Pending.id, ids)).execute()
        after = ids[-1]


def run(ctx: JobContext) -> dict:
    cfg: PromoteConfig = ctx.config
    Pending = ctx.store.m.PendingMemory
    now_ts = ctx.now().timestamp()
    mark = ctx.load_checkpoint()
    if mark.get("now") is not None and mark["now"] - CLOCK_SKEW_S <= now_ts < mark["now"]:
        # The last run was on an engine whose clock is a little ahead (several hosts): score at its now,
        # as if this clock agreed. Only a real jump back costs a full pass.
        now_ts = mark["now"]
    full_because = full_pass_reason(cfg, mark, now_ts)
    # This run's now is recorded before any flag is cleared at it (a later run at an earlier now must
    # then see the clock moved back), and a full pass owed stays owed until one commits.
    with ctx.store.atomic():
        ctx.save_checkpoint({**mark, "now": now_ts, "full_due": full_because})
    if full_because:
        flag_qualifiers(ctx, cfg, now_ts)
    # How many memories this run scores: the flagged ones; a full pass scored the whole table.
    scored = count_rows(Pending) if full_because else count_rows(Pending, Pending.rescore)
    candidates = select_candidates(ctx, cfg, now_ts)
    # Each chunk moves in one transaction: inserted into long-term and deleted from pending together.
    promoted = in_batches(ctx, [row[0] for row in candidates], cfg.batch_size,
                          lambda chunk: copy_to_long_term(ctx, cfg, now_ts, chunk),
                          lambda chunk: Pending.delete().where(Pending.id.in_(chunk)))
    deferred = 0
    if cfg.cap and len(candidates) >= cfg.cap:  # the cap may have left qualifiers behind: they wait
        deferred = count_rows(Pending, Pending.rescore & qualifies(ctx, cfg, now_ts))
    if settle(ctx, cfg, now_ts) >= REFRESH_STATISTICS_AFTER:  # a first pass over a big store
        ctx.store.refresh_statistics(Pending)
    # The listing only reads the created_at index; the score is tested in the DELETE, per batch, so a
    # qualifier (deferred by the cap, or used since this run began) stays, and only old rows are scored.
    stale = raw_ids(ctx, Pending.select(Pending.id).where(
        (Pending.created_at < now_ts - cfg.ttl_days * 86400) & ~Pending.remember))
    expiring = expires(ctx, cfg, now_ts)
    expired = in_batches(ctx, stale, cfg.batch_size, *write_with_history(
        ctx, Pending, lambda chunk: expiring & Pending.id.in_(chunk), lambda where: Pending.delete().where(where),
        "expire", f"not promoted within {cfg.ttl_days:g} days", now_ts))
    if full_because:
        with ctx.store.atomic():
            ctx.save_checkpoint({"now": now_ts, "full_at": now_ts, "scored_with": scoring_settings(cfg),
                                 "full_due": None, "scores_stored": True})
    result = {"promoted": promoted, "expired": expired, "deferred": deferred,
              "pass": "full" if full_because else "incremental"}
    if full_because:
        result["full_because"] = full_because
    result["scored"] = scored
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
