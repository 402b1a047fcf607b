"""decay: let long-term memories that are never recalled fade away (hourly).

Retention follows MemoryBank's forgetting curve: R = exp(−Δt / S), Δt in days
since the memory was last reinforced, S = S0·(0.5 + importance/10)·(1 + recalls),
with S0 = half_life / ln 2 so that a memory of default importance (5) that is
never recalled keeps half its retention after ``half_life_days`` (30). Recalling
a memory (``Engine.reinforce``) adds a recall and resets Δt.

A memory whose R has fallen below ``floor``, that is older than
``min_age_days`` and not pinned, is soft-deleted (``deleted_at`` set, as in
Graphiti's soft invalidation: still there, still restorable by a recall); soft-
deleted memories are hard-deleted after ``grace_days``. Pinned memories never
decay away. R < floor is tested as Δt > −ln(floor)·S, which needs no math
functions in SQL and uses the same numbers.

Both writes go in batches of bounded size, and each repeats its whole condition,
so a memory recalled, pinned or restored after the listing is left alone. On
PostgreSQL that holds without locks: an UPDATE or DELETE that meets a row another
transaction changed tests its WHERE again on the row as it is now.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from memtui.engine.config import setting
from memtui.engine.jobs.base import JobContext, JobKind, count_rows, in_batches, raw_ids


@dataclass(frozen=True)
class DecayConfig:
    half_life_days: float = setting(30.0, min=0.01, doc="a default memory's retention halves in this time")
    floor: float = setting(0.05, min=0.0001, max=0.9999, doc="soft-delete below this retention")
    min_age_days: float = setting(7.0, min=0.0, doc="never soft-delete a memory younger than this")
    grace_days: float = setting(30.0, min=0.0, doc="hard-delete this long after a soft delete")
    batch_size: int = setting(5000, min=1, max=30_000,
                                    doc="rows changed per transaction (SQLite binds at most 32,766 values)")

    @property
    def s0_days(self) -> float:
        return self.half_life_days / math.log(2)


def retention(days_since_reinforced: float, importance: float, recalls: int, cfg: DecayConfig) -> float:
    """R = exp(−Δt / S); the Python twin of the SQL condition, for callers and tests."""
    strength = cfg.s0_days * (0.5 + importance / 10.0) * (1 + recalls)
    return math.exp(-max(0.0, days_since_reinforced) / strength)


def run(ctx: JobContext) -> dict:
    cfg: DecayConfig = ctx.config
    LongTerm = ctx.store.m.LongTermMemory
    now_ts = ctx.now().timestamp()
    limit = -math.log(cfg.floor) * cfg.s0_days  # R < floor  <=>  Δt > limit·(0.5 + i/10)·(1 + recalls)
    below_floor = ((now_ts - LongTerm.last_reinforced_at) / 86400.0
                   > limit * (0.5 + LongTerm.importance / 10.0) * (1 + LongTerm.recall_count))
    fading = LongTerm.deleted_at.is_null() & ~LongTerm.pinned & below_floor
    old_enough = LongTerm.created_at < now_ts - cfg.min_age_days * 86400
    listed = raw_ids(ctx, LongTerm.select(LongTerm.id).where(fading & old_enough))
    # The conditions are repeated in the writes: a memory recalled or pinned meanwhile is left alone.
    soft = in_batches(ctx, listed, cfg.batch_size,
                      lambda chunk: LongTerm.update(deleted_at=now_ts).where(fading & LongTerm.id.in_(chunk)))
    grace_cutoff = now_ts - cfg.grace_days * 86400
    past_grace = LongTerm.deleted_at.is_null(False) & (LongTerm.deleted_at < grace_cutoff) & ~LongTerm.pinned
    expired = raw_ids(ctx, LongTerm.select(LongTerm.id).where(past_grace))
    # The whole condition again: one restored and soft-deleted anew meanwhile starts a new grace period.
    hard = in_batches(ctx, expired, cfg.batch_size,
                      lambda chunk: LongTerm.delete().where(past_grace & LongTerm.id.in_(chunk)))
    remaining = count_rows(LongTerm, LongTerm.deleted_at.is_null())
    return {"soft_deleted": soft, "hard_deleted": hard, "remaining": remaining}


KIND = JobKind(
    name="decay",
    run=run,
    config=DecayConfig,
    summary="fade long-term memories that are never recalled; delete after a grace period",
    counters=("soft_deleted", "hard_deleted"),
)
