"""The engine: definitions and cursors in the database, runs, leases, backoff, misses, sync, events.

Every test that uses the store runs on SQLite and on a fresh PostgreSQL database
(tests/conftest.py), except the few about SQLite files, which ask for ``db_path``.
Time is the injected FakeClock; nothing here waits for a wall-clock schedule. The
only waits are on threading.Events for runs started in the background right away.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from memtui.engine import Engine, EngineError
from memtui.engine.config import Config, EngineSettings, parse_config
from memtui.engine.definitions import local_zone_name
from memtui.engine.jobs import DEFAULT_JOBS
from memtui.engine.schedule import Schedule
from memtui.engine.types import AuditEntry
from memtui.models import Store
from tests.kinds import Blocker, Recorder, fire, register

pytestmark = pytest.mark.both_backends

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
VENV_BIN = os.path.dirname(sys.executable)
MEMTUI = os.path.join(VENV_BIN, "memtui")
WAIT = 10  # seconds; only ever reached when something is broken


# -- test-only job kinds ----------------------------------------------------------

@dataclass(frozen=True)
class NoConfig:
    pass


class Flaky:
    """Fails with RuntimeError('kaboom') while ``fail`` is set; moves the fake clock by ``takes_s``."""

    def __init__(self):
        self.fail = False
        self.takes_s = 0
        self.calls = 0

    def run(self, ctx):
        self.calls += 1
        if self.takes_s:
            ctx.clock.advance(seconds=self.takes_s)
        if self.fail:
            raise RuntimeError("kaboom")
        return {"done": 1, "note": "ok"}


@pytest.fixture
def kinds(monkeypatch):
    kinds = register(monkeypatch, Flaky(), Blocker(), NoConfig)
    yield kinds
    kinds.blocker.release.set()


SETTINGS = dataclasses.replace(EngineSettings(), misfire_grace_s=60.0, backoff_base_s=30.0, backoff_cap_s=100.0,
                               lease_ttl_s=60.0, poll_interval_s=60.0, stop_timeout_s=5.0)


@pytest.fixture
def eng(kinds, store, clock):
    """An engine (not started) that knows the test kinds; its sync loop, if started, is slow (60 s)."""
    e = Engine(store, Config(engine=SETTINGS), clock)
    yield e
    kinds.blocker.release.set()
    e.stop(timeout=5)


@pytest.fixture
def polling_only(store, monkeypatch):
    """Changes from other processes come in by polling alone (PostgreSQL would otherwise announce
    them at once, on a thread of its own; tests/test_several_engines.py covers that)."""
    monkeypatch.setattr(store, "change_listener", lambda: None)


def state(store, name) -> dict | None:
    JobState = store.m.JobState
    return JobState.select().where(JobState.name == name).dicts().first()


def definition(store, name) -> dict | None:
    JobDefinition = store.m.JobDefinition
    return JobDefinition.select().where(JobDefinition.name == name).dicts().first()


def runs(store, name, status=None) -> list[dict]:
    Run = store.m.Run
    query = Run.select().where(Run.job == name).order_by(Run.id)
    if status:
        query = query.where(Run.status == status)
    return list(query.dicts())


def audit_rows(store) -> list[tuple]:
    AuditLog = store.m.AuditLog
    return list(AuditLog.select(AuditLog.at, AuditLog.action, AuditLog.job, AuditLog.old_value, AuditLog.new_value,
                                AuditLog.source).order_by(AuditLog.id).tuples())


def set_cursor(store, name, when: datetime | None) -> None:
    JobState = store.m.JobState
    with store.atomic():
        JobState.update(next_run_at=when.timestamp() if when else None).where(JobState.name == name).execute()


def plant_running_run(store, job, owner, started: datetime, lease_expires: float) -> int:
    """What a process that died mid-run leaves behind: a running row and its lease."""
    Run, JobState = store.m.Run, store.m.JobState
    with store.atomic():
        run_id = Run.insert(job=job, reason="manual", started_at=started.timestamp(), status="running",
                            owner=owner).execute()
        assert JobState.update(lease_owner=owner, lease_run_id=run_id, lease_expires_at=lease_expires).where(
            JobState.name == job).execute() == 1  # the job was seeded: its state row exists
    return run_id


# -- definitions: seeding, the table wins -------------------------------------------

def test_seeding_inserts_every_default_job_with_a_cursor(store, clock):
    engine = Engine(store, Config(), clock)
    JobDefinition = store.m.JobDefinition
    names = [name for (name,) in JobDefinition.select(JobDefinition.name).order_by(JobDefinition.name).tuples()]
    assert names == sorted(DEFAULT_JOBS)
    compact = definition(store, "compact")
    assert (compact["kind"], compact["enabled"], compact["schedule"], compact["timezone"], compact["jitter_s"]) == \
        ("compact", True, "0 4 * * 0", local_zone_name(), 0)
    assert compact["created_at"] == T0.timestamp()
    expected = Schedule.parse("0 4 * * 0", local_zone_name()).next_after(T0)
    assert state(store, "compact")["next_run_at"] == expected.timestamp()
    assert engine.job("compact").next_run == expected
    assert engine.audit_log() == []  # seeding is not an edit


def test_config_seeds_the_definition_on_first_start_only(db_target, clock):
    first = parse_config({"jobs": {"compact": {"schedule": "1h", "timezone": "UTC", "enabled": False}}})
    store = Store.open(db_target)
    Engine(store, first, clock)
    assert (definition(store, "compact")["schedule"], definition(store, "compact")["timezone"]) == ("1h", "UTC")
    assert definition(store, "compact")["enabled"] is False
    assert state(store, "compact")["next_run_at"] is None
    store.close()

    second = parse_config({"jobs": {"compact": {"schedule": "5m", "enabled": True}}})
    store = Store.open(db_target)
    try:
        engine = Engine(store, second, clock)
        job = engine.job("compact")
        assert (job.schedule, job.timezone, job.enabled, job.next_run) == ("1h", "UTC", False, None)
    finally:
        store.close()


def test_the_table_wins_after_a_restart(db_target, clock):
    store = Store.open(db_target)
    Engine(store, Config(), clock).retime("compact", "2h", tz="UTC", source="cli")
    store.close()

    clock.advance(minutes=10)
    override = parse_config({"jobs": {"compact": {"schedule": "5m"}}})
    store = Store.open(db_target)
    try:
        engine = Engine(store, override, clock)
        job = engine.job("compact")
        assert job.schedule == "2h"
        assert job.timezone == "UTC"
        assert job.schedule_text == "every 2 h"
        assert job.next_run == T0 + timedelta(hours=2)  # the stored cursor, not re-derived at restart
    finally:
        store.close()


# -- control API: enable / disable / retime ----------------------------------------

def test_disable_and_enable_audit_and_clear_or_set_the_cursor(engine, store, clock):
    job = engine.disable("compact", source="cli")
    assert job.enabled is False and job.next_run is None
    assert definition(store, "compact")["enabled"] is False
    assert state(store, "compact")["next_run_at"] is None
    assert engine.audit_log()[0] == AuditEntry(T0, "disable", "compact", "True", "False", "cli")

    clock.advance(hours=1)
    now = clock()
    job = engine.enable("compact", source="ui")
    expected = Schedule.parse("0 4 * * 0", local_zone_name()).next_after(now)
    assert job.enabled is True and job.next_run == expected
    assert state(store, "compact")["next_run_at"] == expected.timestamp()
    assert definition(store, "compact")["updated_at"] == now.timestamp()
    assert engine.audit_log()[0] == AuditEntry(now, "enable", "compact", "False", "True", "ui")

    job = engine.toggle("compact")
    assert job.enabled is False
    assert engine.audit_log()[0] == AuditEntry(now, "disable", "compact", "True", "False", "api")
    assert [e.action for e in engine.audit_log()] == ["disable", "enable", "disable"]


def test_retime_writes_audit_and_a_new_cursor(engine, store, clock):
    job = engine.retime("compact", "2h", tz="UTC", source="cli")
    assert (job.schedule, job.timezone, job.schedule_text) == ("2h", "UTC", "every 2 h")
    assert job.next_run == T0 + timedelta(hours=2)
    assert state(store, "compact")["next_run_at"] == (T0 + timedelta(hours=2)).timestamp()
    assert engine.audit_log()[0] == AuditEntry(T0, "retime", "compact", f"0 4 * * 0 {local_zone_name()}", "2h UTC",
                                               "cli")

    clock.advance(minutes=30)
    job = engine.retime("compact", "0 3 * * *", source="ui")  # tz=None keeps UTC
    assert (job.schedule, job.timezone) == ("0 3 * * *", "UTC")
    assert job.next_run == datetime(2026, 6, 2, 3, 0, tzinfo=UTC)
    assert engine.audit_log()[0] == AuditEntry(clock(), "retime", "compact", "2h UTC", "0 3 * * * UTC", "ui")

    engine.disable("compact")
    job = engine.retime("compact", "5m")
    assert job.schedule == "5m"
    assert job.enabled is False
    assert state(store, "compact")["next_run_at"] is None  # a disabled job gets no cursor


@pytest.mark.parametrize("spec, tz", [
    ("0s", None), ("-5m", None), ("garbage", None), ("61 * * * *", None), ("", None),
    ("0 3 * * *", "Mars/Olympus_Mons"),
])
def test_bad_retime_changes_nothing(engine, store, spec, tz):
    before = (definition(store, "compact"), state(store, "compact"), audit_rows(store))
    with pytest.raises(EngineError) as err:
        engine.retime("compact", spec, tz=tz, source="cli")
    assert "\n" not in str(err.value)
    assert (definition(store, "compact"), state(store, "compact"), audit_rows(store)) == before


def test_unknown_job_is_an_engine_error_naming_the_known_ones(engine):
    for call in (lambda: engine.enable("nope"), lambda: engine.disable("nope"), lambda: engine.retime("nope", "5m"),
                 lambda: engine.run_job("nope"), lambda: engine.run_now("nope"), lambda: engine.history("nope"),
                 lambda: engine.job("nope")):
        with pytest.raises(EngineError, match="unknown job 'nope'"):
            call()
    with pytest.raises(EngineError) as err:
        engine.enable("nope")
    assert "compact" in str(err.value)
    assert engine.audit_log() == []


# -- running ------------------------------------------------------------------------

def test_run_job_success_records_the_run_and_the_counters(engine, store, clock):
    old = (T0 - timedelta(days=100)).timestamp()
    with store.atomic():
        for _ in range(3):
            store.m.Run.insert(job="compact", reason="scheduled", started_at=old, finished_at=old,
                               status="success").execute()
    info = engine.run_job("compact")
    assert info.job == "compact"
    assert info.status == "success" and info.ok
    assert info.reason == "manual"
    assert info.scheduled_for is None
    assert info.started == T0 and info.finished == T0
    assert isinstance(info.duration_ms, float) and 0 < info.duration_ms < 10_000
    assert info.result["runs_pruned_by_age"] == 3
    assert info.result["runs_pruned_by_cap"] == 0
    assert info.error is None and info.traceback is None
    assert info.owner == engine.owner

    row = runs(store, "compact")[-1]
    assert row["id"] == info.id
    assert (row["status"], row["reason"], row["started_at"], row["finished_at"], row["duration_ms"]) == \
        ("success", "manual", T0.timestamp(), T0.timestamp(), info.duration_ms)
    assert json.loads(row["result"]) == info.result
    assert len(runs(store, "compact")) == 1  # the three old rows were pruned

    s = state(store, "compact")
    assert (s["runs"], s["errors"], s["last_status"], s["last_run_at"], s["consecutive_failures"]) == \
        (1, 0, "success", T0.timestamp(), 0)
    assert s["last_duration_ms"] == info.duration_ms
    assert s["backoff_until"] is None
    assert (s["lease_owner"], s["lease_run_id"], s["lease_expires_at"]) == (None, None, None)
    assert json.loads(s["totals"]) == {"runs_pruned_by_age": 3, "runs_pruned_by_cap": 0}

    job = engine.job("compact")
    assert (job.runs, job.errors, job.last_status, job.last_run, job.running) == (1, 0, "success", T0, False)
    assert engine.history("compact", 1) == [info]


def test_finish_time_and_totals_come_from_the_clock_and_the_counters(eng, kinds, store, clock):
    kinds.flaky.takes_s = 7
    first = eng.run_job("flaky")
    assert first.started == T0 and first.finished == T0 + timedelta(seconds=7)
    assert first.result == {"done": 1, "note": "ok"}
    eng.run_job("flaky")
    assert json.loads(state(store, "flaky")["totals"]) == {"done": 2}  # only the declared counters
    assert eng.job("flaky").runs == 2


def test_failures_back_off_exponentially_up_to_the_cap_and_a_success_resets(eng, kinds, store, clock):
    # base 30 s, cap 100 s; the 10 s schedule's cursor starts at T0 + 10 s
    assert state(store, "flaky")["next_run_at"] == (T0 + timedelta(seconds=10)).timestamp()
    kinds.flaky.fail = True

    info = eng.run_job("flaky")
    assert info.status == "failed"
    assert info.error == "RuntimeError: kaboom"
    assert info.traceback.startswith("Traceback (most recent call last)")
    assert "RuntimeError: kaboom" in info.traceback
    assert info.result == {}
    row = runs(store, "flaky")[-1]
    assert (row["status"], row["error"]) == ("failed", "RuntimeError: kaboom")
    assert "RuntimeError: kaboom" in row["traceback"]

    expected = [(1, 30), (2, 60), (3, 100), (4, 100)]  # (consecutive failures, delay)
    for n, delay in expected:
        if n > 1:
            clock.advance(seconds=1)
            assert eng.run_job("flaky").status == "failed"
        now = clock()
        s = state(store, "flaky")
        assert s["consecutive_failures"] == n
        assert s["errors"] == n
        assert s["backoff_until"] == (now + timedelta(seconds=delay)).timestamp()
        assert s["next_run_at"] >= s["backoff_until"]  # cursor pushed past the backoff
        assert s["next_run_at"] == (now + timedelta(seconds=delay)).timestamp()
        job = eng.job("flaky")
        assert job.backoff_until == now + timedelta(seconds=delay)
        assert job.consecutive_failures == n

    clock.advance(seconds=1)
    kinds.flaky.fail = False
    ok = eng.run_job("flaky")
    assert ok.status == "success"
    s = state(store, "flaky")
    assert (s["consecutive_failures"], s["backoff_until"], s["errors"], s["runs"], s["last_status"]) == \
        (0, None, 4, 5, "success")
    job = eng.job("flaky")
    assert job.backoff_until is None and job.consecutive_failures == 0


def test_a_scheduled_run_that_fails_pushes_the_next_cursor_past_the_backoff(eng, kinds, store, clock):
    kinds.flaky.fail = True
    due = T0 + timedelta(seconds=10)
    clock.set(due)
    fire(eng, "flaky", due.timestamp())
    [run] = runs(store, "flaky")
    assert (run["status"], run["reason"], run["scheduled_for"]) == ("failed", "scheduled", due.timestamp())
    s = state(store, "flaky")
    assert s["backoff_until"] == (due + timedelta(seconds=30)).timestamp()
    # the grid says due + 10 s, the backoff says due + 30 s: the backoff wins
    assert s["next_run_at"] == (due + timedelta(seconds=30)).timestamp()

    clock.set(due + timedelta(seconds=30))
    fire(eng, "flaky", s["next_run_at"])
    s = state(store, "flaky")
    assert s["consecutive_failures"] == 2
    assert s["next_run_at"] == (due + timedelta(seconds=30 + 60)).timestamp()


LONG_BACKOFF = dataclasses.replace(SETTINGS, backoff_cap_s=3600.0)


@pytest.fixture
def failing(kinds, store, clock):
    """An engine whose "flaky" job has failed six times in a row: backoff 960 s (30 s doubling)."""
    e = Engine(store, Config(engine=LONG_BACKOFF), clock)
    kinds.flaky.fail = True
    for _ in range(6):
        assert e.run_job("flaky").status == "failed"
        clock.advance(seconds=1)
    assert state(store, "flaky")["backoff_until"] == clock().timestamp() - 1 + 960
    yield e
    e.stop(timeout=5)


@pytest.mark.parametrize("off, on", [
    (lambda e: e.pause_all("cli"), lambda e: e.resume_all("cli")),
    (lambda e: e.disable("flaky", "cli"), lambda e: e.enable("flaky", "cli")),
    (lambda e: e.disable("flaky", "cli"), lambda e: e.toggle("flaky", "ui")),
    (lambda e: None, lambda e: e.retime("flaky", "20s", source="cli")),
], ids=["pause-resume", "disable-enable", "disable-toggle", "retime"])
def test_switching_a_failing_job_off_and_on_keeps_its_backoff(failing, store, clock, off, on):
    backoff_until = state(store, "flaky")["backoff_until"]
    off(failing)
    clock.advance(seconds=10)
    on(failing)
    s = state(store, "flaky")
    assert s["backoff_until"] == backoff_until
    assert s["next_run_at"] >= backoff_until, "the job would fail again 10 s later instead of after its backoff"
    assert failing.job("flaky").backoff_until is not None


def test_run_now_is_still_the_way_to_try_a_backed_off_job_at_once(failing, kinds, store, clock, caplog):
    kinds.flaky.fail = False
    assert failing.run_job("flaky").status == "success"
    s = state(store, "flaky")
    assert (s["backoff_until"], s["consecutive_failures"]) == (None, 0)
    # and the cursor the backoff pushed out is back on the 10 s grid, not read as a clock that went back
    assert s["next_run_at"] <= clock().timestamp() + 10
    failing.sync()
    assert "clock went back" not in caplog.text


# -- overlap ---------------------------------------------------------------------------

def test_overlap_in_process_is_recorded_as_skipped_busy(eng, kinds, store):
    results = []
    worker = threading.Thread(target=lambda: results.append(eng.run_job("block")))
    worker.start()
    assert kinds.blocker.started.wait(WAIT)
    assert eng.job("block").running is True
    assert eng.running_jobs() == ["block"]

    second = eng.run_job("block")
    assert second.status == "skipped"
    assert second.result == {"busy": True, "holder": eng.owner}
    assert second.error.startswith("already running in this process since 2026-06-01T12:00:00")
    assert second.duration_ms == 0
    assert second.finished == second.started
    assert kinds.blocker.calls == 1

    kinds.blocker.release.set()
    worker.join(WAIT)
    assert not worker.is_alive()
    [first] = results
    assert first.status == "success" and first.result == {"blocked": 1}
    assert [r["status"] for r in runs(store, "block")] == ["success", "skipped"]
    s = state(store, "block")
    assert (s["lease_owner"], s["lease_run_id"], s["last_status"]) == (None, None, "success")
    assert eng.job("block").running is False


def test_overlap_across_processes_cli_says_already_running(engine, store, db_target):
    owner = "other-host:4242:otherengine"  # a live process holds the lease
    held_run = plant_running_run(store, "compact", owner, T0, time.time() + 3600)

    proc = subprocess.run([MEMTUI, "run", "compact", "--db", str(db_target)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("compact skipped (manual)")
    assert f"already running in {owner}" in proc.stdout

    proc = subprocess.run([MEMTUI, "run", "compact", "--json", "--db", str(db_target)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["status"] == "skipped"
    assert json.loads(proc.stdout)["result"] == {"busy": True, "holder": owner}
    assert proc.stderr.startswith("memtui: compact is already running in ")
    assert len(proc.stderr.strip().splitlines()) == 1

    rows = runs(store, "compact")
    assert [r["status"] for r in rows] == ["running", "skipped", "skipped"]
    s = state(store, "compact")
    assert (s["lease_owner"], s["lease_run_id"]) == (owner, held_run)  # untouched
    assert engine.recover_interrupted() == 0  # the owner is alive and its lease valid
    assert runs(store, "compact")[0]["status"] == "running"


def test_a_run_whose_lease_expired_is_marked_interrupted_and_its_lease_freed(engine, store, clock):
    recorder = Recorder()
    engine.subscribe(recorder)
    owner = f"{socket.gethostname()}:{os.getpid()}:deadbeef"  # this host, even this pid: only the lease counts
    started = T0 - timedelta(seconds=60)
    run_id = plant_running_run(store, "compact", owner, started, T0.timestamp() - 0.001)

    assert engine.recover_interrupted() == 1
    row = runs(store, "compact")[0]
    assert row["id"] == run_id
    assert row["status"] == "interrupted"
    assert row["finished_at"] == T0.timestamp()
    assert row["duration_ms"] == 60_000
    assert row["error"] == "the process running it stopped before it finished"
    s = state(store, "compact")
    assert (s["lease_owner"], s["lease_run_id"], s["lease_expires_at"], s["last_status"]) == \
        (None, None, None, "interrupted")
    [event] = recorder.events
    assert (event.kind, event.job, event.run.id, event.run.status) == ("run_finished", "compact", run_id, "interrupted")

    assert engine.recover_interrupted() == 0  # once only
    assert engine.run_job("compact").status == "success"  # the lease is free again


def test_leases_of_other_hosts_are_trusted_until_they_expire(engine, store, clock):
    owner = "some-other-host:12345:cafe"
    run_id = plant_running_run(store, "compact", owner, T0, (T0 + timedelta(seconds=30)).timestamp())
    assert engine.recover_interrupted() == 0
    assert engine.run_job("compact").status == "skipped"

    clock.advance(seconds=31)
    assert engine.recover_interrupted() == 1
    assert runs(store, "compact")[0]["id"] == run_id
    assert runs(store, "compact")[0]["status"] == "interrupted"
    assert engine.run_job("compact").status == "success"


def test_start_recovers_interrupted_runs(engine, store):
    run_id = plant_running_run(store, "compact", "gone-host:1:x", T0 - timedelta(minutes=5),
                               (T0 - timedelta(minutes=1)).timestamp())
    engine.start()
    assert runs(store, "compact")[0]["id"] == run_id
    assert runs(store, "compact")[0]["status"] == "interrupted"
    assert state(store, "compact")["lease_owner"] is None


# -- firing: missed, catch-up, compare-and-set ---------------------------------------

def test_late_fire_records_one_missed_row_and_one_catch_up_run(engine, store, clock):
    engine.retime("compact", "1h", tz="UTC")
    due = T0 - timedelta(hours=3, minutes=30)  # 11:30 + 1h grid: 08:30, 09:30, 10:30, 11:30 missed
    set_cursor(store, "compact", due)

    fire(engine, "compact", due.timestamp())

    rows = runs(store, "compact")
    missed = [r for r in rows if r["status"] == "missed"]
    catch_up = [r for r in rows if r["reason"] == "catch-up"]
    assert len(rows) == 2 and len(missed) == 1 and len(catch_up) == 1
    [m], [c] = missed, catch_up
    assert json.loads(m["result"]) == {"missed": 4, "first_missed": "2026-06-01T08:30:00+00:00"}
    assert m["scheduled_for"] == due.timestamp()
    assert m["id"] < c["id"]
    assert (c["status"], c["scheduled_for"], c["started_at"]) == ("success", due.timestamp(), T0.timestamp())
    cursor = state(store, "compact")["next_run_at"]
    # the job's grid starts at its retime (12:00), not at the late due time: the next point is 13:00
    assert cursor == (T0 + timedelta(hours=1)).timestamp()
    assert engine.job("compact").next_run == T0 + timedelta(hours=1)


def test_started_engine_catches_up_a_missed_cursor_once(engine, store, clock):
    engine.retime("compact", "0 * * * *", tz="UTC")
    due = T0 - timedelta(hours=3)  # 09:00; 09, 10, 11 and 12 o'clock were all missed
    set_cursor(store, "compact", due)
    recorder = Recorder()
    engine.subscribe(recorder)

    engine.start()
    finished = recorder.wait_for(lambda e: e.kind == "run_finished" and e.run.reason == "catch-up")
    assert finished.job == "compact" and finished.run.status == "success"
    assert finished.run.scheduled_for == due

    missed = runs(store, "compact", "missed")
    assert len(missed) == 1
    assert json.loads(missed[0]["result"])["missed"] == 4
    assert len([r for r in runs(store, "compact") if r["reason"] == "catch-up"]) == 1
    assert state(store, "compact")["next_run_at"] == (T0 + timedelta(hours=1)).timestamp()
    assert engine.job("compact").next_run > clock()


@pytest.mark.parametrize("late_s, reason", [(0, "scheduled"), (10, "scheduled"), (60, "scheduled"),
                                            (61, "catch-up"), (3600, "catch-up")])
def test_fire_within_the_grace_time_is_a_plain_scheduled_run(engine, store, clock, late_s, reason):
    engine.retime("compact", "1h", tz="UTC")
    due = T0 + timedelta(hours=1)
    clock.set(due + timedelta(seconds=late_s))
    fire(engine, "compact", due.timestamp())
    rows = runs(store, "compact")
    assert rows[-1]["reason"] == reason
    assert rows[-1]["status"] == "success"
    assert rows[-1]["scheduled_for"] == due.timestamp()
    assert len(runs(store, "compact", "missed")) == (0 if reason == "scheduled" else 1)
    assert state(store, "compact")["next_run_at"] > clock().timestamp()


@pytest.mark.parametrize("late_s, next_in_s", [(0, 30), (14, 16), (16, 44), (29.8, 30.2)])
def test_an_interval_job_run_late_is_not_run_again_within_half_its_interval(engine, store, clock, late_s, next_in_s):
    engine.retime("compact", "30s", tz="UTC")  # grid: 12:00:00 + k·30 s
    due = T0 + timedelta(seconds=30)
    clock.set(due + timedelta(seconds=late_s))
    fire(engine, "compact", due.timestamp())
    assert [r["scheduled_for"] for r in runs(store, "compact")] == [due.timestamp()]
    # The next grid point stands unless it is less than 15 s away; then the one after it is next.
    assert state(store, "compact")["next_run_at"] == pytest.approx(clock().timestamp() + next_in_s, abs=0.001)


def test_a_calendar_job_run_late_keeps_its_next_stated_time(engine, store, clock):
    engine.retime("compact", "* * * * *", tz="UTC")  # 12:01, 12:02, …
    due = T0 + timedelta(minutes=1)
    clock.set(due + timedelta(seconds=45))  # within the grace time, 15 s before 12:02
    fire(engine, "compact", due.timestamp())
    assert runs(store, "compact")[-1]["reason"] == "scheduled"
    assert state(store, "compact")["next_run_at"] == (T0 + timedelta(minutes=2)).timestamp()


def test_firing_the_same_due_time_twice_runs_once(engine, store, clock):
    engine.retime("compact", "1h", tz="UTC")
    due = T0 + timedelta(hours=1)
    clock.set(due)
    fire(engine, "compact", due.timestamp())
    fire(engine, "compact", due.timestamp())
    assert len(runs(store, "compact")) == 1
    assert state(store, "compact")["next_run_at"] == (due + timedelta(hours=1)).timestamp()


def test_a_fire_for_a_stale_due_time_does_nothing(engine, store, clock):
    engine.retime("compact", "1h", tz="UTC")
    stale = T0 + timedelta(hours=1)
    engine.retime("compact", "2h", tz="UTC")  # the cursor moved meanwhile
    clock.set(stale)
    fire(engine, "compact", stale.timestamp())
    assert runs(store, "compact") == []
    assert state(store, "compact")["next_run_at"] == (T0 + timedelta(hours=2)).timestamp()


def test_two_engines_on_one_database_never_both_run_a_due_time(db_target, store, clock):
    a = Engine(store, Config(), clock)
    other = Store.open(db_target)
    try:
        b = Engine(other, Config(), clock)
        a.retime("compact", "1h", tz="UTC")
        due = T0 + timedelta(hours=1)
        clock.set(due)
        fire(a, "compact", due.timestamp())
        fire(b, "compact", due.timestamp())
        assert len(runs(store, "compact")) == 1
    finally:
        other.close()


def test_run_now_runs_in_the_background_and_does_not_move_the_cursor(engine, store, clock):
    before = state(store, "compact")["next_run_at"]
    recorder = Recorder()
    engine.subscribe(recorder)
    engine.run_now("compact", source="ui")
    event = recorder.wait_for(lambda e: e.kind == "run_finished")
    assert (event.job, event.run.status, event.run.reason) == ("compact", "success", "manual")
    assert state(store, "compact")["next_run_at"] == before
    assert engine.audit_log()[0] == AuditEntry(T0, "run_now", "compact", None, None, "ui")


# -- pause / resume ---------------------------------------------------------------------

def test_pause_and_resume_keep_each_jobs_enabled_flag(eng, kinds, store, clock):
    eng.disable("flaky")
    flags = {j.name: j.enabled for j in eng.jobs()}
    assert flags["flaky"] is False and flags["block"] is True and flags["compact"] is True
    recorder = Recorder()
    eng.subscribe(recorder)

    eng.pause_all(source="cli")
    assert eng.paused is True
    jobs = eng.jobs()
    assert {j.name: j.enabled for j in jobs} == flags
    assert all(j.next_run is None and j.paused for j in jobs)
    assert store.m.JobState.select().where(store.m.JobState.next_run_at.is_null(False)).count() == 0
    assert eng.audit_log()[0] == AuditEntry(T0, "pause_all", None, "False", "True", "cli")
    assert "paused" in recorder.kinds()

    # enabling a job while paused keeps it unscheduled until resume
    eng.enable("flaky")
    assert eng.job("flaky").next_run is None
    eng.disable("flaky")

    clock.advance(minutes=5)
    now = clock()
    eng.resume_all(source="ui")
    assert eng.paused is False
    jobs = {j.name: j for j in eng.jobs()}
    assert {n: j.enabled for n, j in jobs.items()} == flags
    assert jobs["flaky"].next_run is None
    assert state(store, "flaky")["next_run_at"] is None
    assert jobs["block"].next_run == T0 + timedelta(hours=1)  # back on its own grid, not shifted by the pause
    assert jobs["compact"].next_run == Schedule.parse("0 4 * * 0", local_zone_name()).next_after(now)
    assert all(j.next_run is not None for j in jobs.values() if j.enabled)
    assert not any(j.paused for j in jobs.values())
    assert eng.audit_log()[0] == AuditEntry(now, "resume_all", None, "True", "False", "ui")
    assert recorder.kinds().index("resumed") > recorder.kinds().index("paused")


def test_a_paused_engine_fires_nothing(eng, kinds, store, clock):
    eng.pause_all()
    fire(eng, "flaky", (T0 + timedelta(seconds=10)).timestamp())  # a stray alarm
    assert runs(store, "flaky") == []


# -- sync with another process ------------------------------------------------------------

def test_changes_made_through_a_second_engine_are_adopted_on_sync(eng, kinds, store, db_target, clock, polling_only):
    eng.start()
    recorder = Recorder()
    eng.subscribe(recorder)
    old_cursor = state(store, "compact")["next_run_at"]
    assert eng._alarms["compact"][1] == old_cursor
    assert "flaky" in eng._alarms

    other_store = Store.open(db_target)
    try:
        cli = Engine(other_store, Config(), clock)  # like the CLI: not started
        cli.retime("compact", "2h", tz="UTC", source="cli")
        cli.disable("flaky", source="cli")
        assert recorder.kinds() == []  # nothing adopted before a sync

        eng.sync()
        assert eng._alarms["compact"][1] == (T0 + timedelta(hours=2)).timestamp()
        assert eng._scheduler.get_job(eng._alarms["compact"][0]) is not None
        assert "flaky" not in eng._alarms
        changed = [e.job for e in recorder.events if e.kind == "job_changed"]
        assert sorted(changed) == ["compact", "flaky"]
        assert eng.job("compact").schedule == "2h"

        recorder.events.clear()
        cli.run_job("compact")  # another process ran it: a state change, not a definition change
        eng.sync()
        assert [(e.kind, e.job) for e in recorder.events] == [("state_changed", "compact")]
        eng.sync()
        assert [(e.kind, e.job) for e in recorder.events] == [("state_changed", "compact")]  # nothing new
    finally:
        other_store.close()


def test_pause_from_another_process_is_adopted_on_sync(eng, kinds, store, db_target, clock, polling_only):
    eng.start()
    recorder = Recorder()
    eng.subscribe(recorder)
    other_store = Store.open(db_target)
    try:
        Engine(other_store, Config(), clock).pause_all(source="cli")
        eng.sync()
        assert "paused" in recorder.kinds()
        assert eng._alarms == {}
    finally:
        other_store.close()


# -- stop ----------------------------------------------------------------------------------

def test_stop_with_a_job_still_running_marks_it_interrupted_and_returns_false(eng, kinds, store):
    recorder = Recorder()
    eng.subscribe(recorder)
    eng.start()
    eng.run_now("block")
    assert kinds.blocker.started.wait(WAIT)
    started = recorder.wait_for(lambda e: e.kind == "run_started")

    t0 = time.monotonic()
    assert eng.stop(timeout=0.3) is False
    assert time.monotonic() - t0 < 5
    [row] = runs(store, "block")
    assert row["id"] == started.run.id
    assert row["status"] == "interrupted"
    assert "engine stopped after waiting 0.3 s" in row["error"]
    assert state(store, "block")["lease_owner"] is None
    assert eng.running_jobs() == []

    kinds.blocker.release.set()  # the job returns after all; the record must stay interrupted
    recorder.wait_for(lambda e: e.kind == "run_finished" and e.run.id == row["id"] and e.run.status == "interrupted"
                      and sum(1 for x in recorder.events if x.kind == "run_finished") >= 2)
    assert runs(store, "block")[0]["status"] == "interrupted"


def test_stop_returns_true_when_nothing_is_running(eng):
    eng.start()
    assert eng.stop(timeout=1) is True
    assert eng.started is False


# -- events ----------------------------------------------------------------------------------

def test_events_for_a_run_are_published_in_order(eng, kinds, clock):
    recorder = Recorder()
    eng.subscribe(recorder)
    info = eng.run_job("flaky")
    assert [(e.kind, e.job) for e in recorder.events] == [("run_started", "flaky"), ("run_finished", "flaky")]
    started, finished = recorder.events
    assert started.run.id == finished.run.id == info.id
    assert started.run.status == "running" and started.run.finished is None
    assert finished.run == info
    assert started.at == finished.at == T0

    recorder.events.clear()
    kinds.flaky.fail = True
    eng.run_job("flaky")
    assert [e.kind for e in recorder.events] == ["run_started", "run_finished"]
    assert recorder.events[1].run.status == "failed"


def test_unsubscribe_and_a_failing_subscriber(eng, kinds):
    seen = []

    def broken(event):
        raise ValueError("subscriber bug")

    eng.subscribe(broken)
    unsubscribe = eng.subscribe(seen.append)
    assert eng.run_job("flaky").status == "success"  # a broken subscriber does not break runs
    assert [e.kind for e in seen] == ["run_started", "run_finished"]
    unsubscribe()
    eng.run_job("flaky")
    assert len(seen) == 2


def test_control_changes_publish_job_changed(eng, kinds):
    recorder = Recorder()
    eng.subscribe(recorder)
    eng.disable("flaky")
    eng.retime("block", "2h")
    assert ("job_changed", "flaky") in [(e.kind, e.job) for e in recorder.events]
    assert ("job_changed", "block") in [(e.kind, e.job) for e in recorder.events]
    recorder.events.clear()
    eng.retime("block", "3h")
    assert [(e.kind, e.job) for e in recorder.events] == [("audit", "block"), ("job_changed", "block")]


def test_pause_and_resume_publish_events_even_as_the_first_call(store, clock):
    engine = Engine(store, Config(engine=SETTINGS), clock)  # fresh: nothing has been applied yet
    recorder = Recorder()
    engine.subscribe(recorder)
    engine.pause_all()
    assert "paused" in recorder.kinds()
    engine.resume_all()
    assert "resumed" in recorder.kinds()


def test_a_jobs_own_timeout_overrides_the_engine_wide_one(kinds, store, clock):
    config = dataclasses.replace(parse_config({"jobs": {"block": {"timeout_s": 2}}}), engine=SETTINGS)
    engine = Engine(store, config, clock)
    try:
        engine.run_now("block")
        assert kinds.blocker.started.wait(WAIT)
        clock.advance(seconds=3)
        engine.sync()
        run = engine.history("block", 1)[0]
        assert run.status == "failed" and "timed out after 2 s" in run.error
        assert SETTINGS.job_timeout_s == 3600  # the engine-wide limit was not what stopped it
    finally:
        kinds.blocker.release.set()
        engine.stop(timeout=5)


# -- run-now while held, make_due, audit events, durations -------------------------------

def test_run_now_while_the_database_is_gone_says_why_and_brings_nothing_back(eng, db_path):
    os.remove(db_path)  # the sync loop has not noticed yet: run-now looks itself
    with pytest.raises(EngineError) as err:
        eng.run_now("flaky", source="ui")
    assert "jobs are held, nothing was run" in str(err.value) and "deleted" in str(err.value)
    assert not db_path.exists(), "nothing may bring back a deleted database file"
    assert eng.problem is not None


def test_run_now_while_held_writes_nothing(eng, kinds, store):
    eng._set_problem("memtui.db: disk I/O error (free some disk space)")
    with pytest.raises(EngineError, match="jobs are held, nothing was run: memtui.db: disk I/O error"):
        eng.run_now("flaky", source="ui")
    assert audit_rows(store) == [] and runs(store, "flaky") == [] and kinds.flaky.calls == 0


def test_no_connection_can_create_the_database_file(eng, db_path):
    """A new thread's connection after the file was deleted fails instead of making a fresh 0644 file."""
    os.remove(db_path)
    errors = []

    def use_from_new_thread():
        try:
            eng.store.execute("SELECT 1").fetchone()
        except Exception as exc:  # noqa: BLE001 - any failure is right; creating the file is not
            errors.append(exc)
        finally:
            eng.store.db.close()

    worker = threading.Thread(target=use_from_new_thread)
    worker.start()
    worker.join(WAIT)
    assert errors and not db_path.exists()


def test_make_due_runs_jobs_as_scheduled_without_an_audit_row(eng, kinds, store, clock):
    eng.make_due(["flaky"])
    due = state(store, "flaky")["next_run_at"]
    assert due == clock().timestamp()
    fire(eng, "flaky", due)
    [run] = runs(store, "flaky")
    assert (run["reason"], run["status"]) == ("scheduled", "success")
    assert audit_rows(store) == []


def test_every_change_picked_up_is_one_audit_event_with_its_source(eng, store, db_target, clock):
    rec = Recorder()
    eng.subscribe(rec)
    other = Engine(Store.open(db_target), Config(engine=SETTINGS), clock)  # the CLI, another dashboard
    try:
        other.disable("decay", "cli")
        other.retime("promote", "45s", source="cli")
        other.pause_all("cli")
        other.resume_all("ui")
        eng.sync()
        eng.sync()  # nothing new: nothing told twice
        audits = [e.audit for e in rec.events if e.kind == "audit"]
        assert [(a.action, a.job, a.source) for a in audits] == [
            ("disable", "decay", "cli"), ("retime", "promote", "cli"), ("pause_all", None, "cli"),
            ("resume_all", None, "ui")]
        assert audits[1].old_value == f"30s {local_zone_name()}" and audits[1].new_value.startswith("45s")
        eng.enable("decay", "ui")  # this engine's own change is told too
        assert [e.audit.action for e in rec.events if e.kind == "audit"][-1] == "enable"
    finally:
        other.close()


def test_changes_made_before_the_engine_opened_are_not_told_again(store, db_target, clock):
    first = Engine(store, Config(engine=SETTINGS), clock)
    first.disable("decay", "cli")
    rec = Recorder()
    second = Engine(Store.open(db_target), Config(engine=SETTINGS), clock)
    second.subscribe(rec)
    second.sync()
    assert [e for e in rec.events if e.kind == "audit"] == []
    second.close()


def test_a_fast_run_keeps_its_sub_millisecond_duration(eng, kinds, store):
    info = eng.run_job("flaky")
    assert isinstance(info.duration_ms, float) and 0 < info.duration_ms < 1000
    assert runs(store, "flaky")[-1]["duration_ms"] == info.duration_ms
    assert eng.job("flaky").last_duration_ms == info.duration_ms
