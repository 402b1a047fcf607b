"""Several engines on one database: the engine registry, recovery without PIDs, claims, change news.

Engines here are Engine objects in this process, each on a store of its own (its
own connections), named as if on other hosts. A crashed engine is one whose
heartbeat and leases stop being renewed: an engine on a FakeClock of its own that
never moves, beside engines on the test's clock, which does. Everything runs on
SQLite and on a fresh PostgreSQL database (tests/conftest.py); the threads that
race here are released together by a barrier, and nothing waits for a schedule.
"""
from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, timedelta, timezone

import pytest

from memtui.engine import Engine, EngineInfo, FakeClock
from memtui.engine.clock import from_ts
from memtui.engine.config import Config, EngineSettings
from memtui.engine.jobs import DEFAULT_JOBS
from memtui.engine.registry import memtui_version
from memtui.models import DB_ERRORS, Store
from tests.kinds import Blocker, Recorder, register

pytestmark = pytest.mark.both_backends

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WAIT = 10  # seconds; only ever reached when something is broken
TTL = 60.0
SETTINGS = dataclasses.replace(EngineSettings(), lease_ttl_s=TTL, poll_interval_s=60.0, stop_timeout_s=5.0)
INTERRUPTED = "the process running it stopped before it finished"


@dataclass(frozen=True)
class NoConfig:
    pass


class Quick:
    """Returns at once."""

    def run(self, ctx):
        return {"done": 1}


@pytest.fixture
def kinds(monkeypatch):
    kinds = register(monkeypatch, Quick(), Blocker(), NoConfig)  # "flaky" (every 10 s) is Quick here
    yield kinds
    kinds.blocker.release.set()


def run_rows(store, job) -> list[dict]:
    Run = store.m.Run
    return list(Run.select().where(Run.job == job).order_by(Run.id).dicts())


def lease(store, job) -> tuple:
    JobState = store.m.JobState
    return JobState.select(JobState.lease_owner, JobState.lease_run_id, JobState.lease_expires_at).where(
        JobState.name == job).tuples().get()


def plant_running_run(store, job, owner, lease_expires: datetime) -> int:
    """What a process that died mid-run leaves behind: a running row holding the job's lease
    (after an engine seeded the job)."""
    Run, JobState = store.m.Run, store.m.JobState
    with store.atomic():
        run_id = Run.insert(job=job, reason="manual", started_at=(T0 - timedelta(minutes=1)).timestamp(),
                            status="running", owner=owner).execute()
        assert JobState.update(lease_owner=owner, lease_run_id=run_id, lease_expires_at=lease_expires.timestamp()
                               ).where(JobState.name == job).execute() == 1
    return run_id


def plant_engine(store, owner, heartbeat: datetime, stopped: datetime | None = None) -> None:
    host, pid, _ = owner.split(":")
    store.m.EngineInstance.insert(id=owner, host=host, pid=int(pid), version="0.1", started_at=T0.timestamp() - 3600,
                                  heartbeat_at=heartbeat.timestamp(),
                                  stopped_at=stopped.timestamp() if stopped else None).execute()


def together(*calls):
    """Run the calls on threads of their own, released at once; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list[BaseException] = []

    def go(i, call):
        try:
            barrier.wait(WAIT)
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a racing call never returned"
    if errors:
        raise errors[0]
    return results


def join_new_threads(before: set) -> None:
    for thread in set(threading.enumerate()) - before:
        if thread.name.startswith("memtui-run-"):
            thread.join(WAIT)
            assert not thread.is_alive()


# -- the registry --------------------------------------------------------------------------

def test_a_started_engine_registers_beats_and_says_when_it_stopped(engine_on, clock):
    a = engine_on("host-a:101:aaaa")
    assert a.engines(include_gone=True) == []  # not started: not an engine anyone waits for
    a.start()
    assert a.engines() == [EngineInfo(
        id="host-a:101:aaaa", host="host-a", pid=101, version=memtui_version(), started=T0, heartbeat=T0,
        stopped=None, running=[], alive=True, this=True)]
    assert memtui_version() != "unknown"

    beat = 0.9 * TTL / 3  # a sync loop every third of a TTL must not miss every other beat by a hair
    clock.advance(seconds=beat - 1)
    a.sync()
    assert a.engines()[0].heartbeat == T0  # renewed about every third of a lease TTL, not every poll
    clock.advance(seconds=1)
    a.sync()
    assert a.engines()[0].heartbeat == T0 + timedelta(seconds=beat)

    a.stop(timeout=1)
    assert a.engines() == []
    [gone] = a.engines(include_gone=True)
    assert (gone.stopped, gone.alive, gone.started) == (T0 + timedelta(seconds=beat), False, T0)


def test_another_engine_sees_who_is_alive_and_what_each_is_running(engine_on, kinds, clock):
    a = engine_on("host-a:101:aaaa")
    b = engine_on("host-b:202:bbbb")
    a.start()
    b.start()
    a.run_now("block")
    assert kinds.blocker.started.wait(WAIT)
    seen = {info.id: info for info in b.engines()}
    assert set(seen) == {a.owner, b.owner}
    assert (seen[a.owner].running, seen[a.owner].this, seen[a.owner].host) == (["block"], False, "host-a")
    assert (seen[b.owner].running, seen[b.owner].this) == ([], True)
    kinds.blocker.release.set()
    deadline = time.monotonic() + WAIT
    while a.running_jobs() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [info.running for info in b.engines() if info.id == a.owner] == [[]]


def test_an_engine_silent_for_a_lease_ttl_is_not_alive(engine_on, clock):
    a = engine_on("host-a:101:aaaa", FakeClock(T0))  # its clock never moves: it never beats again
    b = engine_on("host-b:202:bbbb")
    a.start()
    clock.advance(seconds=TTL)
    assert [info.id for info in b.engines()] == [a.owner]
    clock.advance(seconds=1)
    assert b.engines() == []
    [info] = b.engines(include_gone=True)
    assert (info.id, info.alive, info.stopped) == (a.owner, False, None)


def test_a_cli_engine_that_only_runs_a_job_is_not_registered(engine_on, store):
    cli = engine_on("host-a:101:cccc")
    assert cli.run_job("flaky").status == "success"
    assert store.m.EngineInstance.select().count() == 0


def test_engines_gone_for_more_than_a_day_are_pruned_at_start(engine_on, store):
    plant_engine(store, "old-host:1:stopped", T0 - timedelta(days=3), stopped=T0 - timedelta(days=2))
    plant_engine(store, "old-host:2:crashed", T0 - timedelta(days=1, seconds=1))
    plant_engine(store, "new-host:3:stopped", T0 - timedelta(hours=2), stopped=T0 - timedelta(hours=1))
    a = engine_on("host-a:101:aaaa")
    a.start()
    assert [info.id for info in a.engines(include_gone=True)] == ["new-host:3:stopped", a.owner]


# -- recovery: by lease and heartbeat, never by PID ------------------------------------------

def test_a_crashed_engines_run_is_interrupted_by_a_survivor_within_one_lease_ttl(engine_on, kinds, store, clock):
    a = engine_on("host-a:101:aaaa", FakeClock(T0))  # crashes: from T0 on, it renews nothing
    b = engine_on("host-b:202:bbbb")
    a.start()
    b.start()
    recorder = Recorder()
    b.subscribe(recorder)
    a.run_now("block")
    assert kinds.blocker.started.wait(WAIT)
    [run] = run_rows(store, "block")

    clock.advance(seconds=TTL)  # A's lease and heartbeat are exactly one TTL old: still alive
    b.sync()
    assert run_rows(store, "block")[0]["status"] == "running"
    busy = b.run_job("block")
    assert (busy.status, busy.error) == ("skipped", f"already running in {a.owner} since 2026-06-01T12:00:00+00:00")

    clock.advance(seconds=1)
    b.sync()
    row = run_rows(store, "block")[0]
    assert (row["id"], row["status"], row["error"]) == (run["id"], "interrupted", INTERRUPTED)
    assert row["finished_at"] == clock().timestamp()
    assert lease(store, "block") == (None, None, None)
    recorder.wait_for(lambda e: e.kind == "run_finished" and e.run.id == run["id"] and e.run.status == "interrupted")

    before = set(threading.enumerate())
    kinds.blocker.release.set()  # the "dead" run returns after all: its first ending stands
    deadline = time.monotonic() + WAIT
    while a.running_jobs() and time.monotonic() < deadline:
        time.sleep(0.01)
    join_new_threads(before)
    assert run_rows(store, "block")[0]["status"] == "interrupted"
    assert b.run_job("block").status == "success"  # and the survivor runs the job from now on


def test_a_run_held_by_a_live_lease_is_never_touched_whatever_pid_it_names(engine_on, store, clock):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that is certainly not running on this host now
    owner = f"{socket.gethostname()}:{child.pid}:cli"  # a `memtui run` process: it renews its lease only
    b = engine_on("host-b:202:bbbb")
    run_id = plant_running_run(store, "compact", owner, T0 + timedelta(seconds=TTL))
    b.start()
    assert b.recover_interrupted() == 0
    assert run_rows(store, "compact")[0]["status"] == "running"
    assert lease(store, "compact")[:2] == (owner, run_id)


def test_a_cli_run_is_kept_alive_by_renewing_its_lease_without_registering(engine_on, kinds, store, clock):
    """``memtui run`` has no sync loop and is not an engine: its heartbeat thread renews the lease (every
    third of a TTL of wall time), and that alone keeps the run from being taken for dead."""
    short = dataclasses.replace(SETTINGS, lease_ttl_s=5.0)  # the least allowed: a renewal every 1.7 s
    cli = engine_on("host-a:101:cli", settings=short)
    b = engine_on("host-b:202:bbbb", settings=short)
    worker = threading.Thread(target=cli.run_job, args=("block",))
    worker.start()
    try:
        assert kinds.blocker.started.wait(WAIT)
        first_expiry = lease(store, "block")[2]
        clock.advance(seconds=4)
        deadline = time.monotonic() + WAIT
        while lease(store, "block")[2] == first_expiry:  # the heartbeat thread's next renewal
            assert time.monotonic() < deadline, "the CLI run never renewed its lease"
            time.sleep(0.05)
        clock.advance(seconds=2)  # past the first expiry, within the renewed one
        assert b.recover_interrupted() == 0
        assert run_rows(store, "block")[0]["status"] == "running"
        assert b.engines(include_gone=True) == []
    finally:
        kinds.blocker.release.set()
        worker.join(WAIT)
    assert run_rows(store, "block")[0]["status"] == "success"


def test_the_run_of_an_engine_whose_heartbeat_stopped_is_interrupted_before_its_lease_expires(engine_on, store):
    """The heartbeat says an engine is gone even while a lease it took (a long one) has time left."""
    b = engine_on("host-b:202:bbbb")
    owner = "far-host:7:dead"
    plant_engine(store, owner, heartbeat=T0 - timedelta(seconds=TTL + 1))
    plant_running_run(store, "compact", owner, T0 + timedelta(hours=1))
    assert b.recover_interrupted() == 1
    assert run_rows(store, "compact")[0]["status"] == "interrupted"
    assert lease(store, "compact") == (None, None, None)

    alive = "near-host:8:alive"
    plant_engine(store, alive, heartbeat=T0 - timedelta(seconds=TTL))
    plant_running_run(store, "decay", alive, T0 + timedelta(hours=1))
    assert b.recover_interrupted() == 0  # a heartbeat one TTL old is still alive
    assert run_rows(store, "decay")[0]["status"] == "running"


def test_the_run_of_an_engine_that_stopped_is_interrupted(engine_on, store):
    b = engine_on("host-b:202:bbbb")
    owner = "far-host:7:stopped"
    plant_engine(store, owner, heartbeat=T0, stopped=T0)
    plant_running_run(store, "compact", owner, T0 + timedelta(hours=1))
    assert b.recover_interrupted() == 1
    assert run_rows(store, "compact")[0]["status"] == "interrupted"


def test_several_engines_recovering_at_once_end_each_run_once(engine_on, store):
    engines = [engine_on(f"host-{i}:{i}:e") for i in range(3)]
    jobs = ["compact", "decay", "promote", "consolidate", "profile"]
    for job in jobs:
        plant_running_run(store, job, "gone-host:9:x", T0 - timedelta(seconds=1))
    recorders = [Recorder() for _ in engines]
    for engine, recorder in zip(engines, recorders):
        engine.subscribe(recorder)
    ended = together(*(engine.recover_interrupted for engine in engines))
    assert sum(ended) == len(jobs)
    for job in jobs:
        [row] = run_rows(store, job)
        assert row["status"] == "interrupted"
        assert lease(store, job) == (None, None, None)
    told = [e.run.id for recorder in recorders for e in recorder.events if e.kind == "run_finished"]
    assert sorted(told) == sorted(set(told)) and len(told) == len(jobs)


# -- claims ----------------------------------------------------------------------------------

def test_engines_seeding_a_new_database_at_once_write_each_job_once(db_target, store, kinds, clock):
    stores = [Store.open(db_target) for _ in range(3)]
    try:
        together(*(lambda s=s: Engine(s, Config(engine=SETTINGS), clock) for s in stores))
    finally:
        for s in stores:
            s.close()
    JobDefinition, JobState = store.m.JobDefinition, store.m.JobState
    assert sorted(name for (name,) in JobDefinition.select(JobDefinition.name).tuples()) == sorted(DEFAULT_JOBS)
    assert JobState.select().where(JobState.next_run_at.is_null(False)).count() == len(DEFAULT_JOBS)


def test_two_engines_claiming_the_same_due_times_at_once_run_each_once(engine_on, store, clock):
    a = engine_on("host-a:101:aaaa")
    b = engine_on("host-b:202:bbbb")
    JobState = store.m.JobState
    for _ in range(8):
        due = JobState.select(JobState.next_run_at).where(JobState.name == "flaky").scalar()
        clock.set(from_ts(due))
        before = set(threading.enumerate())
        together(lambda: a._fire("flaky", due), lambda: b._fire("flaky", due))
        join_new_threads(before)
    rows = run_rows(store, "flaky")
    assert len(rows) == 8
    assert [r["status"] for r in rows] == ["success"] * 8
    assert len({r["scheduled_for"] for r in rows}) == 8  # each due time once, none skipped as busy
    assert {r["owner"] for r in rows} <= {a.owner, b.owner}


def test_an_engine_whose_clock_lags_does_not_hand_a_claimed_due_time_out_again(engine_on, store, clock):
    """Engine a claims the due time and moves the cursor one step on; engine b, whose clock is 3 s
    behind, still sees that due time ahead of it. Its cursor repair must not take the moved cursor
    for a clock that went back and set it back, or the due time would run twice."""
    a = engine_on("host-a:101:aaaa")
    lagging = FakeClock(clock())
    b = engine_on("host-b:202:bbbb", own_clock=lagging)
    JobState = store.m.JobState
    due = JobState.select(JobState.next_run_at).where(JobState.name == "flaky").scalar()
    clock.set(from_ts(due))
    lagging.set(from_ts(due - 3))
    before = set(threading.enumerate())
    a._fire("flaky", due)
    join_new_threads(before)
    b._repair_cursors()
    assert JobState.select(JobState.next_run_at).where(JobState.name == "flaky").scalar() > due
    before = set(threading.enumerate())
    b._fire("flaky", due)  # b's own alarm for that due time goes off late: nothing left to claim
    join_new_threads(before)
    assert [r["scheduled_for"] for r in run_rows(store, "flaky")] == [due]


# -- news of changes ---------------------------------------------------------------------------

@pytest.mark.postgres_only
def test_a_change_reaches_a_started_engine_at_once_on_postgresql(engine_on, store, clock):
    a = engine_on("host-a:101:aaaa")  # polls every 20 s at the soonest (a third of its lease TTL)
    b = engine_on("host-b:202:bbbb")
    a.start()
    recorder = Recorder()
    a.subscribe(recorder)
    b.retime("compact", "2h", tz="UTC", source="cli")
    recorder.wait_for(lambda e: e.kind == "job_changed" and e.job == "compact", timeout=5)
    assert a._alarms["compact"][1] == (T0 + timedelta(hours=2)).timestamp()


@pytest.mark.postgres_only
def test_an_engine_listens_again_after_its_listening_connection_was_lost(engine_on, store, clock):
    a = engine_on("host-a:101:aaaa")
    b = engine_on("host-b:202:bbbb")
    a.start()
    recorder = Recorder()
    a.subscribe(recorder)
    [killed] = store.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = current_database() AND query LIKE 'LISTEN%'").fetchall()
    assert killed == (True,)
    deadline = time.monotonic() + WAIT  # listening again within about a second
    while not store.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND query LIKE 'LISTEN%'").fetchone()[0]:
        assert time.monotonic() < deadline, "the engine never listened again"
        time.sleep(0.05)
    b.retime("compact", "2h", tz="UTC", source="cli")
    recorder.wait_for(lambda e: e.kind == "job_changed" and e.job == "compact", timeout=5)


def test_audit_rows_committed_out_of_id_order_are_each_told_once(engine_on, store):
    """On PostgreSQL ids come from a sequence and transactions commit in any order: a lower id can
    appear after a higher one was told, and must still be told."""
    a = engine_on("host-a:101:aaaa")
    recorder = Recorder()
    a.subscribe(recorder)
    AuditLog = store.m.AuditLog
    AuditLog.insert(id=5, at=T0.timestamp(), action="disable", job="decay", source="cli").execute()
    a.sync()
    AuditLog.insert(id=3, at=T0.timestamp(), action="enable", job="promote", source="cli").execute()
    a.sync()
    a.sync()
    told = [(e.audit.id, e.audit.action) for e in recorder.events if e.kind == "audit"]
    assert told == [(5, "disable"), (3, "enable")]


def test_limit_lock_wait_bounds_how_long_the_callers_writes_wait(engine_on, store, db_target):
    a = engine_on("host-a:101:aaaa")
    holder = Store.open(db_target)
    locked, release = threading.Event(), threading.Event()

    def hold_compacts_state():
        JobState = holder.m.JobState
        with holder.atomic():  # SQLite: the write lock; PostgreSQL: the row
            list(holder.for_update(JobState.select().where(JobState.name == "compact")))
            JobState.update(runs=JobState.runs).where(JobState.name == "compact").execute()
            locked.set()
            release.wait(5)  # without the limit, the write below would wait this long
        holder.db.close()

    thread = threading.Thread(target=hold_compacts_state)
    thread.start()
    try:
        assert locked.wait(WAIT)
        a.limit_lock_wait(0.2)
        t0 = time.monotonic()
        with pytest.raises(DB_ERRORS):
            a.disable("compact")
        assert time.monotonic() - t0 < 3
    finally:
        release.set()
        thread.join(WAIT)
        holder.close()


def wait_until_blocked_in(thread: threading.Thread, module: str, function: str) -> None:
    """Until ``thread`` is inside ``function`` of engine/``module`` and there waits on the database
    (in a peewee query, or in SQLite's BEGIN IMMEDIATE)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        frame, names = sys._current_frames().get(thread.ident), []
        while frame is not None:
            code = frame.f_code
            names.append((Path(code.co_filename).parent.name, Path(code.co_filename).name, code.co_name))
            frame = frame.f_back
        waiting = any(file == "peewee.py" and name in ("execute_sql", "begin") for _, file, name in names)
        if ("engine", module, function) in names and waiting:
            return
        time.sleep(0.005)
    raise AssertionError(f"the thread never waited on the database in {function}")


def test_a_run_that_waited_for_the_lock_starts_when_it_got_it(engine_on, store, db_target, clock):
    """A claim can wait for the lock (SQLite's file, PostgreSQL's job row) while another writer
    commits: a long run's last write, say. Its start and its lease count from when it got the lock.
    Read before the wait, the start was earlier than the end of the run it followed, and the two
    looked as if they had overlapped (tests/reliability/test_faults.py saw it once)."""
    a = engine_on("host-a:101:aaaa")
    holder = Store.open(db_target)
    locked, release = threading.Event(), threading.Event()

    def hold_flakys_state():
        JobState = holder.m.JobState
        with holder.atomic():
            list(holder.for_update(JobState.select().where(JobState.name == "flaky")))
            JobState.update(runs=JobState.runs).where(JobState.name == "flaky").execute()
            locked.set()
            release.wait(WAIT)
        holder.db.close()

    lock_thread = threading.Thread(target=hold_flakys_state)
    lock_thread.start()
    runs: list = []
    run_thread = threading.Thread(target=lambda: runs.append(a.run_job("flaky")))
    try:
        assert locked.wait(WAIT)
        run_thread.start()
        wait_until_blocked_in(run_thread, "runner.py", "_execute")
        got_it = clock.advance(seconds=30)  # the other writer holds the lock this long
    finally:
        release.set()
        lock_thread.join(WAIT)
        holder.close()
    run_thread.join(WAIT)
    assert not run_thread.is_alive()
    [run] = runs
    assert run.status == "success"
    row = run_rows(store, "flaky")[-1]
    assert row["started_at"] == got_it.timestamp()
    assert row["finished_at"] >= row["started_at"]


def test_a_stopping_engine_keeps_its_leases_while_its_runs_drain(engine_on, kinds, store, clock):
    """stop() waits for running jobs; the sync loop is gone by then, so stop() itself must keep the
    lease and heartbeat alive, or another engine would interrupt a run that is still going."""
    short = dataclasses.replace(SETTINGS, lease_ttl_s=0.6, poll_interval_s=60.0)
    real_clock = lambda: datetime.now(UTC)  # noqa: E731 - stop() waits in real time
    a = engine_on("host-a:101:aaaa", own_clock=real_clock, settings=short)
    b = engine_on("host-b:202:bbbb", own_clock=real_clock, settings=short)
    a.start()
    a.run_now("block")
    assert kinds.blocker.started.wait(WAIT)
    stopper = threading.Thread(target=lambda: a.stop(timeout=5))
    stopper.start()
    time.sleep(1.5)  # more than two lease TTLs of waiting inside stop()
    assert b.recover_interrupted() == 0, "a live, stopping engine's run was taken for a dead one's"
    kinds.blocker.release.set()
    stopper.join(WAIT)
    assert [r["status"] for r in run_rows(store, "block")] == ["success"]


@pytest.mark.postgres_only
def test_an_engine_carries_on_after_the_server_dropped_its_connections(engine_on, kinds, store, db_target):
    """A server restart, a failover or a dropped network ends every connection: each of the engine's
    threads must open a new one, not stay on its dead one (Peewee never reopens by itself)."""
    from tests import postgres

    engine = engine_on("host-a:101:aaaa")
    assert engine.run_job("flaky").status == "success"
    name = db_target.rsplit("/", 1)[1]
    with postgres.connect("postgres") as admin:
        ended = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                              " WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()[0]
    assert ended >= 1
    engine.sync()  # the first statement on the dead connection fails: the jobs are held, and say why
    engine.sync()  # the next one is made on a new connection: held no more
    assert engine.problem is None
    assert engine.run_job("flaky").status == "success"
    assert [r.status for r in engine.history("flaky")] == ["success", "success"]
