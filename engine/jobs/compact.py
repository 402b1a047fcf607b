"""compact: keep the database small and its planner statistics fresh (weekly by default).

Prunes run history by age and by a per-job cap (django-apscheduler's history
pruning), then runs ``PRAGMA optimize`` and a WAL checkpoint, and VACUUMs only
when enough of the file is free pages, because VACUUM rewrites the whole file
while holding the write lock (agent-memory's compaction job vacuums
unconditionally; on a large store that blocks the agent for seconds).
Deletes go in bounded batches, one short transaction each.
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


def _delete_batched(ctx: JobContext, where: str, params: tuple) -> int:
    """Delete finished run rows matching ``where`` in batches; returns the count."""
    return delete_while(ctx, "run", f"status != 'running' AND {where}", params, BATCH)


def run(ctx: JobContext) -> dict:
    cfg: CompactConfig = ctx.config
    store = ctx.store
    cutoff = ctx.now().timestamp() - cfg.run_retention_days * 86400
    pruned_age = _delete_batched(ctx, "started_at < ?", (cutoff,))
    pruned_cap = 0
    for (job,) in store.execute("SELECT DISTINCT job FROM run").fetchall():
        row = store.execute(
            "SELECT id FROM run WHERE job = ? ORDER BY id DESC LIMIT 1 OFFSET ?", (job, cfg.runs_per_job)
        ).fetchone()
        if row:
            pruned_cap += _delete_batched(ctx, "job = ? AND id <= ?", (job, row[0]))
    with store.atomic():  # BEGIN IMMEDIATE waits for another writer; a bare ANALYZE would not
        store.execute("PRAGMA optimize")
    # PASSIVE: TRUNCATE would hold new writers back while it waits for readers.
    busy, wal_pages, checkpointed = store.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    page_count = store.execute("PRAGMA page_count").fetchone()[0]
    free_pages = store.execute("PRAGMA freelist_count").fetchone()[0]
    vacuumed = False
    if page_count and free_pages / page_count >= cfg.vacuum_free_ratio and free_pages > 0:
        store.execute("VACUUM")
        vacuumed = True
    return {
        "runs_pruned_by_age": pruned_age,
        "runs_pruned_by_cap": pruned_cap,
        "wal_checkpoint_busy": bool(busy),
        "free_pages": free_pages,
        "vacuumed": vacuumed,
    }


KIND = JobKind(
    name="compact",
    run=run,
    config=CompactConfig,
    summary="prune old run history, optimize, checkpoint the WAL, vacuum when worth it",
    counters=("runs_pruned_by_age", "runs_pruned_by_cap"),
)
