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
qualify before one of its inputs is written again. The database numbers every
new row and every write to an input in its order of changes
(``pending_memory.changed``, kept by a trigger, so an agent's plain-SQL UPDATE
is seen too: migration 0008); a run takes the store's mark first
(``Store.pending_change_mark``), scores only the rows above the mark of the last
run that committed, plus the qualifiers an earlier run's cap left behind
(``rescore``, set by promote only), and records its own mark when it ends. It
writes nothing to a memory it finds below the threshold: what it writes is what
it promotes, expires and defers. Three things can make an unchanged row qualify
without a write, and each forces a *full pass* (every row scored): a change to
the weights, threshold or recency rate; the clock moving backwards (recency is
higher at an earlier now; a clock behind by under ``CLOCK_SKEW_S``, another
host's, scores at the last run's now instead); and nothing at all: a full pass
also runs every ``full_pass_every_h`` hours as the safety net. The checkpoint
records the scoring settings of the last full pass, when it ran, the latest now
a run scored at and the mark of changes seen; a full pass that is owed (clock
moved back) stays owed until one commits, and the mark moves only when a run
commits, so a crash loses neither.

Stored scores (``pending_memory.last_score``, migrations 0006 and 0008): the
same trigger stores the memory's score at its last use (recency 1, from the
weights promote keeps in ``setting``), so the memory view can list pending
memories by score from an index instead of scoring the whole table. A use sets
the last access to now, so that is the score then; since a score only falls
until the next write, it is an upper bound on the score now. It drifts below the
truth as recency decays: a full pass, which computes every score anyway, writes
it again where it is more than ``SCORE_DRIFT`` off (or missing), so an hourly
pass rewrites a row only every ten hours or so (recency costs a score at most
0.001 an hour), not every row every hour.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from peewee import Value, fn

from memtui.engine.config import setting
from memtui.engine.jobs.base import (JobContext, JobKind, count_rows, in_batches, raw_ids,
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

# The settings a memory's score depends on: a change to any forces a full pass.
SCORING_SETTINGS = ("w_recency", "w_frequency", "w_confidence", "w_importance", "threshold", "recency_decay")

# A full pass writes a stored score (last_score) again when it is this much off the score now: enough to
# keep the memory view's order by stored score close to the truth, without rewriting every row every hour.
SCORE_DRIFT = 0.01

# The weights the pending_memory trigger computes last_score with (models/migrations/0008_change_marks.py):
# a full pass writes them, so a changed weight reaches the trigger before the pass corrects the scores.
WEIGHT_SETTINGS = ("w_recency", "w_frequency", "w_confidence", "w_importance")


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


@dataclass(frozen=True)
class Scored:
    """A pending memory as a run scored it."""

    id: int
    remember: bool
    score: float | None
    qualifies: bool
    deferred: bool  # rescore: a qualifier an earlier run's cap left behind


def scored_rows(ctx: JobContext, cfg: PromoteConfig, now_ts: float, where, *also):
    """The pending memories matching ``where``, each scored at ``now_ts``: a Scored, then ``also``'s
    columns as the driver returns them, row by row as the cursor reads them (a full pass reads millions).
    Whether one qualifies is decided here from the score SQL computed (the same comparison of the same
    double as ``qualifies``), so that the statement holds the score's expression once."""
    Pending = ctx.store.m.PendingMemory
    query = Pending.select(Pending.id, Pending.remember, score(ctx, cfg, now_ts), Pending.rescore, *also).where(where)
    for i, keep, s, flag, *more in ctx.store.db.execute(query):
        keep = bool(keep)
        yield Scored(i, keep, s, keep or (s is not None and s >= cfg.threshold), bool(flag)), *more


def changed_since(ctx: JobContext, cfg: PromoteConfig, now_ts: float, seen: int) -> list[Scored]:
    """What an incremental run scores: the memories written since the mark ``seen`` and those the cap
    left behind, each set read through its own index (one OR would be a scan of the table on SQLite)."""
    Pending = ctx.store.m.PendingMemory
    ids = Pending.select(Pending.id).where(Pending.changed > seen) | Pending.select(Pending.id).where(Pending.rescore)
    return [row for row, in scored_rows(ctx, cfg, now_ts, Pending.id.in_(ids))]


def full_pass(ctx: JobContext, cfg: PromoteConfig, now_ts: float) -> tuple[list[Scored], list[int]]:
    """One read of the whole table (it does not hold up writers): the memories that qualify or were
    deferred, and the ids of those whose stored score is off."""
    Pending = ctx.store.m.PendingMemory
    is_off = score_is_off(ctx, cfg, now_ts)
    rows, off = [], []
    for row, wrong in scored_rows(ctx, cfg, now_ts, qualifies(ctx, cfg, now_ts) | Pending.rescore | is_off, is_off):
        if row.qualifies or row.deferred:
            rows.append(row)
        if wrong:
            off.append(row.id)  # (promoted ones are gone by the time it is corrected: no match then)
    return rows, off


def in_promotion_order(rows: list[Scored]) -> list[Scored]:
    """The qualifiers among ``rows``: marked "remember" first, then highest score, then oldest."""
    return sorted((row for row in rows if row.qualifies),
                  key=lambda row: (not row.remember, -(row.score if row.score is not None else 0.0), row.id))


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
    """Why this run must score every memory, or None when the changed and deferred ones are enough."""
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


def store_weights(ctx: JobContext, cfg: PromoteConfig) -> None:
    """The weights the trigger computes ``last_score`` with, as this run's config has them."""
    with ctx.store.atomic():
        for name in WEIGHT_SETTINGS:
            ctx.store.set_setting(f"promote.{name}", repr(float(getattr(cfg, name))))


def score_is_off(ctx: JobContext, cfg: PromoteConfig, now_ts: float):
    """The stored score is missing, or more than ``SCORE_DRIFT`` off the score now."""
    Pending = ctx.store.m.PendingMemory
    return Pending.last_score.is_null() | (fn.ABS(Pending.last_score - score(ctx, cfg, now_ts)) > SCORE_DRIFT)


def correct_stored_scores(ctx: JobContext, cfg: PromoteConfig, now_ts: float, ids: list[int]) -> int:
    """A full pass: store the score now on the memories ``ids`` whose stored one is off, in small
    transactions. The condition again in the write: a row used meanwhile has the score of that use."""
    Pending = ctx.store.m.PendingMemory
    off = score_is_off(ctx, cfg, now_ts)
    return in_batches(ctx, ids, cfg.batch_size, lambda chunk: Pending.update(last_score=score(ctx, cfg, now_ts))
                      .where(off & Pending.id.in_(chunk)))


def defer(ctx: JobContext, cfg: PromoteConfig, now_ts: float, rows: list[Scored], left: list[Scored]) -> None:
    """Flag the qualifiers the cap left behind (``left``) so that the next run scores them again, and
    clear the flag of the flagged ``rows`` that no longer qualify (tested again in the write)."""
    Pending = ctx.store.m.PendingMemory
    in_batches(ctx, [row.id for row in left if not row.deferred], cfg.batch_size,
               lambda chunk: Pending.update(rescore=True).where(Pending.id.in_(chunk)))
    in_batches(ctx, [row.id for row in rows if row.deferred and not row.qualifies], cfg.batch_size,
               lambda chunk: Pending.update(rescore=False).where(
                   Pending.rescore & ~qualifies(ctx, cfg, now_ts) & Pending.id.in_(chunk)))


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
    # This run's now is recorded before it defers anything at it (a later run at an earlier now must then
    # see the clock moved back), and a full pass owed stays owed until one commits. The mark of changes is
    # taken before anything is read: a write committed after it is above it, and the next run scores it.
    with ctx.store.atomic():
        seen = ctx.store.pending_change_mark()
        ctx.save_checkpoint({**mark, "now": now_ts, "full_due": full_because})
    off: list[int] = []
    if full_because:
        store_weights(ctx, cfg)  # first: a row written from now on gets its stored score by these
        rows, off = full_pass(ctx, cfg, now_ts)
        scored = count_rows(Pending)  # a full pass scores the whole table
    else:
        rows = changed_since(ctx, cfg, now_ts, mark.get("seen", 0))
        scored = len(rows)
    candidates = in_promotion_order(rows)
    moving = candidates[:cfg.cap] if cfg.cap else candidates
    # Each chunk moves in one transaction: inserted into long-term and deleted from pending together.
    promoted = in_batches(ctx, [row.id for row in moving], cfg.batch_size,
                          lambda chunk: copy_to_long_term(ctx, cfg, now_ts, chunk),
                          lambda chunk: Pending.delete().where(Pending.id.in_(chunk)))
    left = candidates[len(moving):]  # the cap left these behind: they wait, flagged ``rescore``
    defer(ctx, cfg, now_ts, rows, left)
    correct_stored_scores(ctx, cfg, now_ts, off)
    # The listing only reads the created_at index; the score is tested in the DELETE, per batch, so a
    # qualifier (deferred by the cap, or used since this run began) stays, and only old rows are scored.
    stale = raw_ids(ctx, Pending.select(Pending.id).where(
        (Pending.created_at < now_ts - cfg.ttl_days * 86400) & ~Pending.remember))
    expiring = expires(ctx, cfg, now_ts)
    expired = in_batches(ctx, stale, cfg.batch_size, *write_with_history(
        ctx, Pending, lambda chunk: expiring & Pending.id.in_(chunk), lambda where: Pending.delete().where(where),
        "expire", f"not promoted within {cfg.ttl_days:g} days", now_ts))
    with ctx.store.atomic():
        if full_because:
            ctx.save_checkpoint({"now": now_ts, "full_at": now_ts, "scored_with": scoring_settings(cfg),
                                 "full_due": None, "scores_stored": True, "seen": seen})
        else:
            ctx.save_checkpoint({**mark, "now": now_ts, "full_due": None, "seen": seen})
    result = {"promoted": promoted, "expired": expired, "deferred": len(left),
              "pass": "full" if full_because else "incremental"}
    if full_because:
        result["full_because"] = full_because
    result["scored"] = scored
    scores = [row.score for row in moving if row.score is not None]
    if scores:  # nothing scored: no top_score key, rather than a null shown as "None"
        result["top_score"] = round(max(scores), 3)
    return result


def awaits_scoring(store):
    """SQL: the next promote run scores this pending memory (written since the last run's mark, or a
    qualifier the cap left behind)."""
    Pending = store.m.PendingMemory
    return Pending.rescore | (Pending.changed > seen_mark(store))


def seen_mark(store) -> int:
    """The mark of changes the last committed promote run saw: a pending memory whose ``changed`` is
    above it (or flagged ``rescore``) is scored by the next run."""
    Checkpoint = store.m.JobCheckpoint
    value = Checkpoint.select(Checkpoint.value).where(Checkpoint.job == "promote").scalar()
    return int(json.loads(value).get("seen", 0)) if value else 0


KIND = JobKind(
    name="promote",
    run=run,
    config=PromoteConfig,
    summary="promote short-term memories worth keeping into long-term memory",
    counters=("promoted", "expired"),  # not "deferred": the same memory may be deferred run after run
)
