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

Incremental: the time a memory's retention crosses the floor is known when it
is written — R < floor exactly when Δt > S·ln(1/floor) — so the database keeps
it in ``long_term_memory.retire_at`` (a trigger, migration 0004, so a plain-SQL
write by an agent keeps it right too; NULL while pinned or soft-deleted). A run
is an index range scan over ``retire_at < now``, and the hard deletes one over
``deleted_at``. The trigger reads the horizon ``S0·ln(1/floor)`` from the setting
``decay.horizon_s``; when this job's config gives another one, the run writes it
and recomputes every row first (once per change; a crash part-way leaves the
recompute owed in the checkpoint). Every ``full_pass_every_h`` hours a run tests
the formula on every row instead, as the safety net (and the reference the tests
compare the incremental run against).

Both writes go in batches of bounded size, and each repeats its whole condition,
so a memory recalled, pinned or restored after the listing is left alone. On
PostgreSQL that holds without locks: an UPDATE or DELETE that meets a row another
transaction changed tests its WHERE again on the row as it is now.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from memtui.engine.config import setting
from memtui.engine.jobs.base import JobContext, JobKind, in_batches, raw_ids, write_with_history

HORIZON_KEY = "decay.horizon_s"  # read by the retire_at trigger (models/migrations/0004_incremental.py)
RECOMPUTE_BATCH = 20_000  # rows per transaction when a new horizon is written into every row


@dataclass(frozen=True)
class DecayConfig:
    half_life_days: float = setting(30.0, min=0.01, doc="a default memory's retention halves in this time")
    floor: float = setting(0.05, min=0.0001, max=0.9999, doc="soft-delete below this retention")
    min_age_days: float = setting(7.0, min=0.0, doc="never soft-delete a memory younger than this")
    grace_days: float = setting(30.0, min=0.0, doc="hard-delete this long after a soft delete")
    batch_size: int = setting(5000, min=1, max=30_000,
                                    doc="rows changed per transaction (SQLite binds at most 32,766 values)")
    full_pass_every_h: float = setting(24.0, min=0.0,
                                       doc="test the formula on every memory at least this often; 0 = every run")

    @property
    def s0_days(self) -> float:
        return self.half_life_days / math.log(2)

    @property
    def horizon_s(self) -> float:
        """S0·ln(1/floor) in seconds: a memory retires this long (times its strength factor) after its
        last reinforcement. Written as migration 0004 computes its default, so the defaults agree exactly."""
        return -math.log(self.floor) * self.half_life_days / math.log(2) * 86400


def retention(days_since_reinforced: float, importance: float, recalls: int, cfg: DecayConfig) -> float:
    """R = exp(−Δt / S); the Python twin of the SQL condition, for callers and tests."""
    strength = cfg.s0_days * (0.5 + importance / 10.0) * (1 + recalls)
    return math.exp(-max(0.0, days_since_reinforced) / strength)


def below_floor(ctx: JobContext, cfg: DecayConfig, now_ts: float):
    """The formula itself, on every row: R < floor, tested as Δt > −ln(floor)·S (no math functions in SQL)."""
    LongTerm = ctx.store.m.LongTermMemory
    limit = -math.log(cfg.floor) * cfg.s0_days
    return ((now_ts - LongTerm.last_reinforced_at) / 86400.0
            > limit * (0.5 + LongTerm.importance / 10.0) * (1 + LongTerm.recall_count))


def ensure_horizon(ctx: JobContext, cfg: DecayConfig, mark: dict) -> bool:
    """Make every row's retire_at follow this config's horizon; True when it had to be recomputed."""
    store, LongTerm = ctx.store, ctx.store.m.LongTermMemory
    horizon = repr(cfg.horizon_s)  # repr round-trips: the trigger reads back exactly this float
    if store.setting(HORIZON_KEY) == horizon and not mark.get("recompute_due"):
        return False
    with store.atomic():  # from here rows written by anyone get the new horizon; the rest is owed
        store.set_setting(HORIZON_KEY, horizon)
        ctx.save_checkpoint({**mark, "recompute_due": True})
    # A write to an input fires the trigger, so the formula stays in one place (the migration).
    after, top = 0, LongTerm.select(LongTerm.id).order_by(LongTerm.id.desc()).limit(1).scalar() or 0
    while after < top:
        ctx.check()
        with store.atomic():
            LongTerm.update(importance=LongTerm.importance).where(
                (LongTerm.id > after) & (LongTerm.id <= after + RECOMPUTE_BATCH)).execute()
        after += RECOMPUTE_BATCH
    with store.atomic():
        ctx.save_checkpoint({**mark, "recompute_due": False})
    return True


def run(ctx: JobContext) -> dict:
    cfg: DecayConfig = ctx.config
    LongTerm = ctx.store.m.LongTermMemory
    now_ts = ctx.now().timestamp()
    mark = ctx.load_checkpoint()
    recomputed = ensure_horizon(ctx, cfg, mark)
    full_at = mark.get("full_at")
    full = full_at is None or not 0 <= now_ts - full_at < cfg.full_pass_every_h * 3600
    due = below_floor(ctx, cfg, now_ts) if full else LongTerm.retire_at < now_ts
    fading = LongTerm.deleted_at.is_null() & LongTerm.superseded_by.is_null() & ~LongTerm.pinned & due
    old_enough = LongTerm.created_at < now_ts - cfg.min_age_days * 86400
    # Incremental: listed by retire_at alone (NULL while pinned or soft-deleted, so it implies the rest).
    # With "deleted_at IS NULL" beside it SQLite took that for an equality on the deleted_at index and walked
    # every live memory instead of the range (2.4 s against 4 ms at 10M rows, bench/incremental.py), until
    # migration 0007 left the live memories out of that index; the range alone is still all it needs.
    listed = raw_ids(ctx, LongTerm.select(LongTerm.id).where((fading if full else due) & old_enough))
    # The conditions are repeated in the writes: a memory recalled or pinned meanwhile is left alone.
    # retire_at = NULL is what the trigger would compute for a soft-deleted row; writing it here spares
    # SQLite's trigger a second write of each row.
    soft = in_batches(ctx, listed, cfg.batch_size, *write_with_history(
        ctx, LongTerm, lambda chunk: fading & LongTerm.id.in_(chunk),
        lambda where: LongTerm.update(deleted_at=now_ts, retire_at=None).where(where),
        "soft_delete", f"retention below {cfg.floor:g}", now_ts))
    grace_cutoff = now_ts - cfg.grace_days * 86400
    past_grace = LongTerm.deleted_at.is_null(False) & (LongTerm.deleted_at < grace_cutoff) & ~LongTerm.pinned
    expired = raw_ids(ctx, LongTerm.select(LongTerm.id).where(past_grace))
    # The whole condition again: one restored and soft-deleted anew meanwhile starts a new grace period.
    hard = in_batches(ctx, expired, cfg.batch_size, *write_with_history(
        ctx, LongTerm, lambda chunk: past_grace & LongTerm.id.in_(chunk),
        lambda where: LongTerm.delete().where(where),
        "hard_delete", f"soft-deleted more than {cfg.grace_days:g} days ago", now_ts))
    if full:
        with ctx.store.atomic():
            ctx.save_checkpoint({"full_at": now_ts, "recompute_due": False})
    result = {"soft_deleted": soft, "hard_deleted": hard, "pass": "full" if full else "incremental"}
    if recomputed:
        result["horizon_recomputed"] = True
    return result


KIND = JobKind(
    name="decay",
    run=run,
    config=DecayConfig,
    summary="fade long-term memories that are never recalled; delete after a grace period",
    counters=("soft_deleted", "hard_deleted"),
)
