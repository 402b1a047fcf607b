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
functions in SQLite and uses the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from memtui.engine.config import setting
from memtui.engine.jobs.base import JobContext, JobKind, in_batches


@dataclass(frozen=True)
class DecayConfig:
    half_life_days: float = setting(30.0, min=0.01, doc="a default memory's retention halves in this time")
    floor: float = setting(0.05, min=0.0001, max=0.9999, doc="soft-delete below this retention")
    min_age_days: float = setting(7.0, min=0.0, doc="never soft-delete a memory younger than this")
    grace_days: float = setting(30.0, min=0.0, doc="hard-delete this long after a soft delete")
    batch_size: int = setting(5000, min=1, max=100_000, doc="rows changed per transaction")

    @property
    def s0_days(self) -> float:
        return self.half_life_days / math.log(2)


def retention(days_since_reinforced: float, importance: float, recalls: int, cfg: DecayConfig) -> float:
    """R = exp(−Δt / S); the Python twin of the SQL condition, for callers and tests."""
    strength = cfg.s0_days * (0.5 + importance / 10.0) * (1 + recalls)
    return math.exp(-max(0.0, days_since_reinforced) / strength)


def run(ctx: JobContext) -> dict:
    cfg: DecayConfig = ctx.config
    now_ts = ctx.now().timestamp()
    limit = -math.log(cfg.floor) * cfg.s0_days  # R < floor  <=>  Δt > limit·(0.5 + i/10)·(1 + recalls)
    fading = [r[0] for r in ctx.store.execute(
        "SELECT id FROM long_term_memory WHERE deleted_at IS NULL AND pinned = 0 AND created_at < ?"
        " AND (? - last_reinforced_at) / 86400.0 > ? * (0.5 + importance / 10.0) * (1 + recall_count)",
        (now_ts - cfg.min_age_days * 86400, now_ts, limit))]
    # The conditions are repeated in the writes: a memory recalled or pinned meanwhile is left alone.
    soft = in_batches(ctx, fading, cfg.batch_size, (
        "UPDATE long_term_memory SET deleted_at = ? WHERE deleted_at IS NULL AND pinned = 0"
        " AND (? - last_reinforced_at) / 86400.0 > ? * (0.5 + importance / 10.0) * (1 + recall_count)"
        " AND id IN ({ids})",
        (now_ts, now_ts, limit)))
    grace_cutoff = now_ts - cfg.grace_days * 86400
    expired = [r[0] for r in ctx.store.execute(
        "SELECT id FROM long_term_memory WHERE deleted_at IS NOT NULL AND deleted_at < ? AND pinned = 0",
        (grace_cutoff,))]
    # The whole condition again: one restored and soft-deleted anew meanwhile starts a new grace period.
    hard = in_batches(ctx, expired, cfg.batch_size, (
        "DELETE FROM long_term_memory WHERE deleted_at IS NOT NULL AND deleted_at < ? AND pinned = 0"
        " AND id IN ({ids})", (grace_cutoff,)))
    remaining = ctx.store.execute("SELECT count(*) FROM long_term_memory WHERE deleted_at IS NULL").fetchone()[0]
    return {"soft_deleted": soft, "hard_deleted": hard, "remaining": remaining}


KIND = JobKind(
    name="decay",
    run=run,
    config=DecayConfig,
    summary="fade long-term memories that are never recalled; delete after a grace period",
    counters=("soft_deleted", "hard_deleted"),
)
