"""The compact job: run history pruned by age and by the per-job cap, a running run never touched, and
the store's own maintenance; on SQLite and on PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pytest

from memtui.engine.jobs import compact
from memtui.engine.jobs.base import JobContext
from memtui.engine.jobs.compact import CompactConfig
from tests.factories import count

pytestmark = pytest.mark.both_backends


def add_run(store, job: str, started, status: str = "success") -> int:
    return store.execute(
        "INSERT INTO run (job, reason, started_at, status, owner) VALUES (?, 'manual', ?, ?, 'test') RETURNING id",
        (job, started.timestamp(), status)).fetchone()[0]


def compact_now(store, clock, **config) -> dict:
    return compact.run(JobContext(store=store, clock=clock, config=CompactConfig(**config), job="compact"))


def test_prunes_finished_runs_older_than_the_retention_but_never_a_running_one(store, clock):
    now = clock()
    old = [add_run(store, "decay", now - timedelta(days=91)) for _ in range(3)]
    stuck = add_run(store, "decay", now - timedelta(days=200), status="running")
    young = add_run(store, "decay", now - timedelta(days=89))
    result = compact_now(store, clock)
    assert (result["runs_pruned_by_age"], result["runs_pruned_by_cap"]) == (3, 0)
    assert {r[0] for r in store.execute("SELECT id FROM run")} == {stuck, young}
    assert not set(old) & {r[0] for r in store.execute("SELECT id FROM run")}


def test_keeps_the_newest_runs_per_job_up_to_the_cap(store, clock):
    now = clock()
    running = add_run(store, "promote", now - timedelta(hours=1), status="running")  # the oldest of its job
    promote = [add_run(store, "promote", now - timedelta(minutes=30 - i)) for i in range(15)]
    decay = [add_run(store, "decay", now - timedelta(minutes=20 - i)) for i in range(12)]
    result = compact_now(store, clock, runs_per_job=10)
    assert result["runs_pruned_by_cap"] == 5 + 2
    left = {r[0] for r in store.execute("SELECT id FROM run")}
    assert left == set(promote[5:]) | set(decay[2:]) | {running}  # the oldest go; a running run never does
    assert compact_now(store, clock, runs_per_job=10)["runs_pruned_by_cap"] == 0


def test_the_run_ends_with_the_stores_maintenance(store, clock):
    add_run(store, "decay", clock())
    result = compact_now(store, clock)
    assert count(store, "run") == 1
    if store.kind == "sqlite":  # PRAGMA optimize, a WAL checkpoint, VACUUM when enough pages are free
        assert set(result) == {"runs_pruned_by_age", "runs_pruned_by_cap", "wal_checkpoint_busy", "free_pages",
                               "vacuumed"}
        assert result["wal_checkpoint_busy"] is False and result["vacuumed"] is False
    else:  # VACUUM (ANALYZE) of every table
        assert set(result) == {"runs_pruned_by_age", "runs_pruned_by_cap", "vacuumed", "tables_vacuumed"}
        assert result["vacuumed"] is True and result["tables_vacuumed"] == len(vars(store.m))


@pytest.mark.sqlite_only
def test_sqlite_vacuums_once_enough_of_the_file_is_free(store, clock):
    for _ in range(4):
        store.execute("INSERT INTO outcome (sender, lesson, created_at) VALUES ('a', ?, 0)", ("x" * 50_000,))
    store.execute("DELETE FROM outcome")
    result = compact_now(store, clock, vacuum_free_ratio=0.1)
    assert result["free_pages"] > 0 and result["vacuumed"] is True
    assert compact_now(store, clock, vacuum_free_ratio=0.1)["free_pages"] == 0
