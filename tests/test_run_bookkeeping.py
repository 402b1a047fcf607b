"""What a run costs the store besides its job: the bookkeeping statements of ``run_job``.

On a large store an incremental run takes a few milliseconds, so the statements
around it count: the definition is read once, the state row is locked once per
transaction, its insert is tried only when it is missing, and the run_started
event is built from the row as inserted, equal to the row read back. Runs on
SQLite and on PostgreSQL (tests/conftest.py).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from memtui.engine import Engine, FakeClock
from memtui.engine.config import Config, EngineSettings
from tests.kinds import Blocker, Recorder, register

pytestmark = pytest.mark.both_backends

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, 0, 123457, tzinfo=UTC)  # microseconds: the float must round-trip
SETTINGS = dataclasses.replace(EngineSettings(), backoff_base_s=30.0, backoff_cap_s=100.0, lease_ttl_s=60.0,
                               poll_interval_s=60.0)


@dataclass(frozen=True)
class NoConfig:
    pass


class Counting:
    """A job that issues no SQL of its own; fails while ``fail`` is set."""

    def __init__(self):
        self.fail = False

    def run(self, ctx):
        if self.fail:
            raise RuntimeError("kaboom")
        return {"done": 2}


@pytest.fixture
def kinds(monkeypatch):
    kinds = register(monkeypatch, Counting(), Blocker(), NoConfig)
    yield kinds
    kinds.blocker.release.set()


@pytest.fixture
def eng(kinds, store):
    e = Engine(store, Config(engine=SETTINGS), FakeClock(T0))
    yield e
    e.stop(timeout=5)


class Statements(logging.Handler):
    """The SQL Peewee issues while installed (its debug log: one record a statement)."""

    def __init__(self):
        super().__init__()
        self.sql: list[str] = []

    def emit(self, record):
        self.sql.append(str(record.msg[0]) if isinstance(record.msg, tuple) else record.getMessage())

    def __enter__(self):
        self.logger = logging.getLogger("peewee")
        self.level = self.logger.level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)

    def count(self, start: str, table: str) -> int:
        return sum(1 for s in self.sql if s.startswith(start) and f'"{table}"' in s.split(" WHERE ")[0])


def test_run_job_bookkeeping_statements(eng, kinds):
    eng.run_job("flaky")  # the state row exists from the first run on (seeded anyway)
    with Statements() as seen:
        info = eng.run_job("flaky")
    assert info.status == "success"
    assert seen.count("SELECT", "job_definition") == 1, seen.sql
    assert seen.count("INSERT", "job_state") == 0, "the state row exists: no insert tried"
    # One lock in the claim, one in the finish (not again for the counters).
    assert seen.count("SELECT", "job_state") == 2, seen.sql
    # The row is read once, at the end, for run_finished; run_started is built from what was inserted.
    assert seen.count("SELECT", "run") == 1, seen.sql
    assert len(seen.sql) == 10, "\n".join(seen.sql)


def test_run_started_is_the_row_as_read_back(eng, kinds):
    """The run_started event carries exactly what reading the run row gives at that moment."""
    read_back = []

    def on_event(event):
        if event.kind == "run_started":
            read_back.append((event.run, eng.run(event.run.id)))

    eng.subscribe(on_event)
    eng.run_job("flaky")
    eng._execute("flaky", "catch-up", scheduled_for=T0 - timedelta(seconds=7.654321))  # as a scheduled run says
    eng.clock.advance(seconds=0.000001)
    eng.run_job("flaky", reason="manual")
    assert len(read_back) == 3
    for sent, row in read_back:
        assert sent == row
        assert sent.status == "running" and sent.finished is None and sent.result is None
        assert type(sent.id) is type(row.id) and sent.started.tzinfo == row.started.tzinfo
    assert read_back[1][0].scheduled_for == read_back[1][1].scheduled_for is not None


def test_a_job_written_with_plain_sql_runs_and_gets_its_state_row(eng, kinds, store):
    store.execute("INSERT INTO job_definition (name, kind, enabled, schedule, timezone, jitter_s, config,"
                  " created_at, updated_at) VALUES ('hand', 'flaky', TRUE, '10s', 'UTC', 0, '{}', 0, 0)")
    JobState = store.m.JobState
    assert JobState.get_or_none(JobState.name == "hand") is None
    recorder = Recorder()
    eng.subscribe(recorder)
    first = eng.run_job("hand")
    assert first.status == "success"
    row = JobState.get(JobState.name == "hand")
    assert (row.runs, row.lease_owner, row.lease_run_id, row.totals) == (1, None, None, '{"done": 2}')
    assert [e.kind for e in recorder.events] == ["run_started", "run_finished"]
    assert eng.run_job("hand").status == "success"
    assert JobState.get(JobState.name == "hand").runs == 2


def test_counters_and_backoff_from_the_row_locked_once(eng, kinds, store):
    JobState = store.m.JobState
    kinds.flaky.fail = True
    for failures in (1, 2):
        assert eng.run_job("flaky").status == "failed"
        row = JobState.get(JobState.name == "flaky")
        assert (row.runs, row.errors, row.consecutive_failures) == (failures, failures, failures)
        assert row.backoff_until == T0.timestamp() + 30.0 * 2 ** (failures - 1)
    kinds.flaky.fail = False
    assert eng.run_job("flaky").status == "success"
    row = JobState.get(JobState.name == "flaky")
    assert (row.runs, row.errors, row.consecutive_failures, row.backoff_until) == (3, 2, 0, None)
    assert row.totals == '{"done": 2}'
    assert eng.run_job("flaky").status == "success"
    assert JobState.get(JobState.name == "flaky").totals == '{"done": 4}'
