"""compact: keep the database small and its planner statistics fresh (weekly by default).

Prunes run history by age and by a per-job cap (django-apscheduler's history
pruning), then has the store do its maintenance (``Store.maintain``). On SQLite:
``PRAGMA optimize``, a WAL checkpoint, and a VACUUM only when enough of the file
is free pages, because VACUUM rewrites the whole file while holding the write
lock (agent-memory's compaction job vacuums unconditionally; on a large store
that blocks the agent for seconds). On PostgreSQL: ``VACUUM (ANALYZE)`` of every
table, which blocks neither readers nor writers. Deletes go in bounded batches,
one short transaction each, and never touch a run that is still running.
"""
from __future__ import annotations

from dataclasses import dataclass

from memtui.engine.config import setting
from memtui.engine.jobs.base import JobContext, JobKind, delete_while

BATCH = 5000


@dataclass(frozen=True)
class CompactConfig:
    run_retention_days: float = setting(90.0, min=1.0, doc="run rows older than this are pruned")
    runs_per_job: int = setting(10_000, min=10, doc="newest run rows kept per job")
    vacuum_free_ratio: float = setting(0.25, min=0.0, max=1.0, doc="VACUUM when this share of pages is free")


def _delete_batched(ctx: JobContext, where) -> int:
    """Prune the finished run rows matching ``where``, in batches; returns how many went."""
    Run = ctx.store.m.Run
    return delete_while(ctx, Run, (Run.status != "running") & where, BATCH)


def run(ctx: JobContext) -> dict:
    cfg: CompactConfig = ctx.config
    Run = ctx.store.m.Run
    cutoff = ctx.now().timestamp() - cfg.run_retention_days * 86400
    pruned_age = _delete_batched(ctx, Run.started_at < cutoff)
    pruned_cap = 0
    for (job,) in list(Run.select(Run.job).distinct().tuples()):  # read whole before deleting
        # the newest id beyond the cap: it and every older run of the job go
        last_over = (Run.select(Run.id).where(Run.job == job)
                     .order_by(Run.id.desc()).limit(1).offset(cfg.runs_per_job).scalar())
        if last_over is not None:
            pruned_cap += _delete_batched(ctx, (Run.job == job) & (Run.id <= last_over))
    # SQLite: wal_checkpoint_busy, free_pages, vacuumed; PostgreSQL: vacuumed, tables_vacuumed.
    return {"runs_pruned_by_age": pruned_age, "runs_pruned_by_cap": pruned_cap,
            **ctx.store.maintain(cfg.vacuum_free_ratio)}


KIND = JobKind(
    name="compact",
    run=run,
    config=CompactConfig,
    summary="prune old run history, optimize, checkpoint the WAL, vacuum when worth it",
    counters=("runs_pruned_by_age", "runs_pruned_by_cap"),
)
