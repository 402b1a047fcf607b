"""The control room: cancel a run, ask another engine for a run, and a dashboard attached to the engines.

Engines here are Engine objects in this process with stores of their own, named as
if on other hosts (tests/test_several_engines.py does the same), on SQLite and on
PostgreSQL; the last test runs a real headless engine in a subprocess beside the
app. A test-only ``checking`` kind works in small batches and calls ``ctx.check()``
between them, as the real jobs do; waits are bounded loops on events or on the
database, never a sleep for a schedule.
"""
from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta

import pytest

from memtui.engine import Engine, EngineError, FakeClock
from memtui.engine.config import Config, EngineSettings
from memtui.engine.jobs import DEFAULT_JOBS, KINDS
from memtui.engine.jobs.base import JobKind, JobSpec
from memtui.models import Store
from memtui.tui.app import MemtuiApp, start_or_attach
from memtui.tui.screens import EnginesScreen
from memtui.tui.widgets import JobsTable, StatusLine
from tests.kinds import Blocker, Recorder, register

WAIT = 10  # seconds; only reached when something is broken
SETTINGS = dataclasses.replace(EngineSettings(), lease_ttl_s=60.0, poll_interval_s=60.0, stop_timeout_s=5.0)


@dataclass(frozen=True)
class NoConfig:
    pass


class Checking:
    """Works in 10 ms batches, calling ``ctx.check()`` before each, until told to stop."""

    def __init__(self):
        self.started = threading.Event()

    def run(self, ctx):
        self.started.set()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            ctx.check()
            ctx.cancel.wait(0.01)  # a batch of work
        raise RuntimeError("nobody stopped this run")


class Quick:
    def run(self, ctx):
        return {"done": 1}


@pytest.fixture
def kinds(monkeypatch):
    kinds = register(monkeypatch, Quick(), Blocker(), NoConfig)
    kinds.checking = Checking()
    monkeypatch.setitem(KINDS, "checking", JobKind("checking", kinds.checking.run, NoConfig, "works in batches"))
    monkeypatch.setitem(DEFAULT_JOBS, "checking", JobSpec("checking", "checking", "1h"))
    yield kinds
    kinds.blocker.release.set()


def wait_until(condition, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def runs(store, job) -> list[dict]:
    Run = store.m.Run
    return list(Run.select().where(Run.job == job).order_by(Run.id).dicts())


def audit(store, action) -> list[tuple]:
    AuditLog = store.m.AuditLog
    return list(AuditLog.select(AuditLog.job, AuditLog.new_value, AuditLog.source)
                .where(AuditLog.action == action).order_by(AuditLog.id).tuples())


def state(store, job) -> dict:
    JobState = store.m.JobState
    return JobState.select().where(JobState.name == job).dicts().get()


# -- cancel ------------------------------------------------------------------------------------

@pytest.mark.both_backends
def test_cancel_stops_a_run_at_its_next_check_point_and_says_who_asked(engine_on, kinds, store):
    a = engine_on("host-a:101:aaaa")
    a.start()
    finished = Recorder()
    a.subscribe(finished)
    a.run_now("checking", source="ui")
    assert kinds.checking.started.wait(WAIT)
    run_id = a.cancel("checking", source="ui")
    event = finished.wait_for(lambda e: e.kind == "run_finished" and e.job == "checking")
    assert event.run.id == run_id and event.run.status == "cancelled"
    [row] = runs(store, "checking")
    assert row["status"] == "cancelled"
    assert row["error"] == "cancelled on request (ui); stopped at a check point"
    assert row["cancel_requested_by"] == "ui" and row["cancel_requested_at"] is not None
    assert audit(store, "cancel") == [("checking", f"run #{run_id}", "ui")]
    s = state(store, "checking")
    # Neither a failure nor a success: no error counted, no backoff; the job is free again.
    assert (s["last_status"], s["runs"], s["errors"], s["consecutive_failures"], s["backoff_until"]) == \
        ("cancelled", 1, 0, 0, None)
    assert (s["lease_owner"], s["lease_run_id"]) == (None, None)


@pytest.mark.both_backends
def test_a_cancel_asked_from_another_process_is_applied_by_the_runs_owner(engine_on, kinds, store):
    a = engine_on("host-a:101:aaaa")
    cli = engine_on("host-c:303:cccc")  # the `memtui cancel` process: no engine of its own
    a.start()
    a.run_now("checking", source="api")
    assert kinds.checking.started.wait(WAIT)
    run_id = cli.cancel("checking", source="cli")
    a.sync()  # what its sync loop does at once when the request is announced, or at its next poll
    wait_until(lambda: runs(store, "checking")[-1]["status"] != "running", "the run to end")
    row = runs(store, "checking")[-1]
    assert (row["id"], row["status"], row["cancel_requested_by"]) == (run_id, "cancelled", "cli")
    assert audit(store, "cancel") == [("checking", f"run #{run_id}", "cli")]


@pytest.mark.both_backends
def test_a_run_of_a_cli_process_is_cancelled_through_its_heartbeat(engine_on, kinds, store):
    """`memtui run` has no sync loop: the thread that keeps its lease alive also looks for a cancel."""
    quick = dataclasses.replace(SETTINGS, poll_interval_s=0.1)
    cli_run = engine_on("host-r:404:rrrr", settings=quick)
    other = engine_on("host-c:303:cccc")
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(cli_run.run_job("checking")))
    thread.start()
    assert kinds.checking.started.wait(WAIT)
    other.cancel("checking", source="cli")
    thread.join(WAIT)
    assert not thread.is_alive()
    assert outcome[0].status == "cancelled"


@pytest.mark.both_backends
def test_cancel_of_a_job_that_is_not_running_says_so_and_records_nothing(engine_on, kinds, store):
    a = engine_on("host-a:101:aaaa")
    with pytest.raises(EngineError, match="checking is not running; nothing to cancel"):
        a.cancel("checking", source="ui")
    with pytest.raises(EngineError, match="unknown job"):
        a.cancel("nope", source="ui")
    assert audit(store, "cancel") == []


@pytest.mark.both_backends
def test_a_run_that_reaches_no_check_point_fails_at_its_timeout_as_before(engine_on, kinds, store, clock):
    a = engine_on("host-a:101:aaaa")
    a.start()
    a.run_now("block", source="ui")
    assert kinds.blocker.started.wait(WAIT)
    a.cancel("block", source="ui")  # asked, but the blocker never calls ctx.check()
    a.sync()
    assert runs(store, "block")[-1]["status"] == "running"
    clock.advance(timedelta(seconds=a.config.job_timeout_s("block") + 1))
    a.sync()
    row = runs(store, "block")[-1]
    assert row["status"] == "failed" and row["error"].startswith("timed out after")
    kinds.blocker.release.set()


# -- run-now asked of another engine -----------------------------------------------------------

@pytest.mark.both_backends
def test_a_run_asked_of_the_engines_is_run_once_by_one_of_them(engine_on, kinds, store):
    a, b = engine_on("host-a:101:aaaa"), engine_on("host-b:202:bbbb")
    dashboard = engine_on("host-d:505:dddd")
    a.start()
    b.start()
    dashboard.request_run("flaky", source="ui")
    assert state(store, "flaky")["run_requested_by"] == "ui"
    done = threading.Barrier(2)

    def sync(engine):
        done.wait(WAIT)
        engine.sync()

    threads = [threading.Thread(target=sync, args=(e,)) for e in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    wait_until(lambda: [r["status"] for r in runs(store, "flaky")] == ["success"], "one run of flaky")
    [row] = runs(store, "flaky")
    assert row["reason"] == "manual" and row["owner"] in (a.owner, b.owner)
    assert (state(store, "flaky")["run_requested_at"], state(store, "flaky")["run_requested_by"]) == (None, None)
    assert audit(store, "run_now") == [("flaky", None, "ui")]


@pytest.mark.both_backends
def test_an_engine_that_is_not_started_never_takes_a_run_request(engine_on, kinds, store):
    attached = engine_on("host-d:505:dddd")
    attached.attach()
    attached.request_run("flaky", source="ui")
    attached.sync()
    assert runs(store, "flaky") == []
    assert state(store, "flaky")["run_requested_by"] == "ui"  # left for an engine that runs jobs


# -- attached ----------------------------------------------------------------------------------

@pytest.mark.both_backends
def test_an_attached_engine_follows_the_store_without_scheduling_or_registering(engine_on, kinds, store):
    a = engine_on("host-a:101:aaaa")
    a.start()
    attached = engine_on("host-d:505:dddd")
    attached.attach()
    assert attached.attached and not attached.started and attached._scheduler is None
    assert [e.id for e in attached.live_engines()] == [a.owner]  # it is not one of them
    seen = Recorder()
    attached.subscribe(seen)
    a.retime("compact", "2h", tz="UTC", source="cli")  # announced: the attached engine wakes at once
    seen.wait_for(lambda e: e.kind == "audit" and e.job == "compact", timeout=5)
    a.stop(timeout=5)
    seen.wait_for(lambda e: e.kind == "engines", timeout=5)
    wait_until(lambda: attached.live_engines() == [], "the stop to be seen")
    attached.start()  # in place: now a scheduling engine, registered
    assert attached.started and not attached.attached
    assert [e.id for e in attached.live_engines()] == [attached.owner]


@pytest.mark.both_backends
def test_a_change_reaches_a_started_engine_at_once(engine_on, kinds, store):
    """Announced changes wake the other engines on SQLite too (a counted setting row, watched
    through PRAGMA data_version), not only at their next poll (60 s here)."""
    a, b = engine_on("host-a:101:aaaa"), engine_on("host-b:202:bbbb")
    a.start()
    seen = Recorder()
    a.subscribe(seen)
    b.disable("compact", source="cli")
    seen.wait_for(lambda e: e.kind == "job_changed" and e.job == "compact", timeout=5)


# -- the dashboard, attached -------------------------------------------------------------------

@pytest.fixture
def anyio_backend():
    return "asyncio"


async def until(pilot, condition, what: str, timeout: float = WAIT) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    assert condition(), f"timed out waiting for {what}"


def status_text(app) -> str:
    return str(app.screen_stack[0].query_one("#status", StatusLine).render())


async def select(app, pilot, name: str) -> None:
    table = app.screen_stack[0].query_one("#jobs", JobsTable)
    table.move_cursor(row=table.get_row_index(name))
    await pilot.pause()


@pytest.mark.anyio
@pytest.mark.both_backends
async def test_the_dashboard_attaches_to_a_live_engine_and_asks_it_for_runs(engine_on, kinds, store):
    headless = engine_on("host-b:202:bbbb")
    headless.start()
    mine = engine_on("host-d:505:dddd")
    start_or_attach(mine)
    assert mine.attached
    app = MemtuiApp(mine, db_label="memtui.db")
    async with app.run_test(size=(120, 30)) as pilot:
        assert "attached · engine on host-b (pid 202)" in status_text(app)
        await select(app, pilot, "compact")
        await pilot.press("d")  # a change: written by this process, applied by the other's scheduler
        assert state(store, "compact")["next_run_at"] is None
        assert [(job, source) for job, _, source in audit(store, "disable")] == [("compact", "ui")]
        await select(app, pilot, "flaky")
        await pilot.press("r")  # run now: asked of the headless engine, which runs it
        await until(pilot, lambda: [r["owner"] for r in runs(store, "flaky")] == [headless.owner], "its run")
        await until(pilot, lambda: runs(store, "flaky")[0]["status"] == "success", "the run to end")
        assert mine._scheduler is None and not mine.started
        await select(app, pilot, "checking")
        await pilot.press("r")
        await until(pilot, kinds.checking.started.is_set, "checking to start in the other engine")
        await until(pilot, lambda: any(j.name == "checking" and j.running for j in app.jobs), "the run on screen")
        await pilot.press("x")
        await until(pilot, lambda: runs(store, "checking")[-1]["status"] == "cancelled", "the cancel")
        assert audit(store, "cancel")[-1][2] == "ui"
        app.exit()


@pytest.mark.anyio
@pytest.mark.both_backends
async def test_when_the_last_engine_goes_the_status_says_so_and_s_starts_one_here(engine_on, kinds, store, clock):
    frozen = FakeClock(clock())  # this engine's heartbeat stops moving: it looks dead to the others
    quick = dataclasses.replace(SETTINGS, poll_interval_s=1.0)  # silent after 20 s + 2 syncs of 1 s
    headless = engine_on("host-b:202:bbbb", own_clock=frozen, settings=quick)
    headless.start()
    mine = engine_on("host-d:505:dddd", settings=quick)
    start_or_attach(mine)
    app = MemtuiApp(mine, db_label="memtui.db")
    async with app.run_test(size=(140, 30)) as pilot:
        assert "attached · engine on host-b (pid 202)" in status_text(app)
        clock.advance(timedelta(seconds=25))  # more than one heartbeat period and two syncs of silence
        await until(pilot, lambda: "engine on host-b (pid 202) silent for 25s" in status_text(app), "silence")
        clock.advance(timedelta(seconds=40))  # past the lease TTL: no longer live
        mine.sync()
        await until(pilot, lambda: "no engine serves this database — s starts one here" in status_text(app),
                    "no engine")
        await pilot.press("s")
        await until(pilot, lambda: mine.started, "the engine here")
        assert [e.id for e in mine.live_engines()] == [mine.owner]
        await until(pilot, lambda: "● running" in status_text(app), "the status of an engine here")
        app.exit()


@pytest.mark.anyio
@pytest.mark.both_backends
async def test_the_engines_panel_lists_each_live_engine_and_what_it_runs(engine_on, kinds, store):
    a, b = engine_on("host-a:101:aaaa"), engine_on("host-b:202:bbbb")
    a.start()
    b.start()
    b.run_now("checking", source="api")
    assert kinds.checking.started.wait(WAIT)
    mine = engine_on("host-d:505:dddd")
    start_or_attach(mine)
    app = MemtuiApp(mine, db_label="memtui.db")
    async with app.run_test(size=(140, 30)) as pilot:
        assert "attached · 2 engines on host-a, host-b" in status_text(app)
        await pilot.press("n")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, EnginesScreen)
        table = screen.query_one("#engines")
        rows = {key.value: [str(c) for c in table.get_row(key)] for key in table.rows}
        assert set(rows) == {a.owner, b.owner}
        assert rows[b.owner][0] == "host-b" and rows[b.owner][1] == "202" and rows[b.owner][5] == "checking"
        assert rows[a.owner][5] == "-"
        b.cancel("checking", source="api")
        await until(pilot, lambda: [str(c) for c in table.get_row(b.owner)][5] == "-", "the run gone from the panel")
        await pilot.press("escape")
        app.exit()


# -- a real headless engine beside the app --------------------------------------------------

CHECKING_HEADLESS = textwrap.dedent("""
    import sys, time
    import memtui.engine.jobs as jobs
    from memtui.engine.jobs.base import JobKind
    from memtui.engine.jobs.compact import CompactConfig

    def batches(ctx):
        print("working", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ctx.check()
            ctx.cancel.wait(0.01)
        return {}

    jobs.KINDS["compact"] = JobKind("compact", batches, CompactConfig, "works in batches")
    from memtui.tui.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def query(db, sql):
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def registered(db) -> bool:
    try:
        return query(db, "SELECT count(*) FROM engine_instance WHERE stopped_at IS NULL") == [(1,)]
    except sqlite3.OperationalError:  # the file is there, its schema not yet
        return False


@pytest.mark.anyio
async def test_a_dashboard_beside_a_headless_engine_process_runs_no_scheduler_and_steers_it(tmp_path):
    db = tmp_path / "memtui.db"
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[engine]\npoll_interval_s = 0.5\n")
    proc = subprocess.Popen([sys.executable, "-c", CHECKING_HEADLESS, "--no-ui", "--db", str(db), "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT * 2
        while not (db.exists() and registered(db)):
            assert proc.poll() is None and time.monotonic() < deadline, "the headless engine never registered"
            time.sleep(0.05)
        [(other,)] = query(db, "SELECT id FROM engine_instance")
        engine = Engine(Store.open(db), Config(engine=dataclasses.replace(SETTINGS, poll_interval_s=0.5)))
        start_or_attach(engine)
        app = MemtuiApp(engine, db_label=str(db))
        async with app.run_test(size=(120, 30)) as pilot:
            assert engine.attached and engine._scheduler is None
            assert f"(pid {proc.pid})" in status_text(app)
            await select(app, pilot, "decay")
            await pilot.press("d")
            await select(app, pilot, "compact")
            await pilot.press("r")
            await until(pilot, lambda: query(db, "SELECT owner, status FROM run WHERE job = 'compact'")
                        == [(other, "running")], "the other process to run compact")
            t0 = time.monotonic()
            await until(pilot, lambda: any(j.name == "compact" and j.running for j in app.jobs), "the run on screen")
            seen_after = time.monotonic() - t0
            await pilot.press("x")
            await until(pilot, lambda: query(db, "SELECT status FROM run WHERE job = 'compact'") == [("cancelled",)],
                        "the other process to cancel its run")
            assert query(db, "SELECT action, job, source FROM audit_log ORDER BY id") == [
                ("disable", "decay", "ui"), ("run_now", "compact", "ui"), ("cancel", "compact", "ui")]
            assert query(db, "SELECT enabled FROM job_definition WHERE name = 'decay'") == [(0,)]
            assert query(db, "SELECT next_run_at FROM job_state WHERE name = 'decay'") == [(None,)]
            app.exit()
        engine.stop()
        engine.close()
        assert seen_after < WAIT
    finally:
        proc.terminate()
        proc.wait(WAIT)
    assert proc.returncode == 0


def memtui(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memtui", *map(str, args)], capture_output=True, text=True,
                          timeout=60, **kwargs)


def test_memtui_cancel_asks_the_headless_engine_and_says_how_the_run_ended(tmp_path):
    db = tmp_path / "memtui.db"
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[engine]\npoll_interval_s = 0.5\n")
    idle = memtui("cancel", "compact", "--db", db)
    assert (idle.returncode, idle.stderr) == (2, "memtui: compact is not running; nothing to cancel\n")
    assert memtui("cancel", "compact", "--wait", "-1", "--db", db).returncode == 2  # one line, no traceback
    proc = subprocess.Popen([sys.executable, "-c", CHECKING_HEADLESS, "--no-ui", "--db", str(db), "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + WAIT * 2
        while not registered(db):
            assert proc.poll() is None and time.monotonic() < deadline, "the headless engine never registered"
            time.sleep(0.05)
        asker = Engine(Store.open(db), Config())
        asker.request_run("compact", source="api")
        asker.close()
        while query(db, "SELECT status FROM run WHERE job = 'compact'") != [("running",)]:
            assert time.monotonic() < deadline, "compact never started"
            time.sleep(0.05)
        done = memtui("cancel", "compact", "--db", db)
        assert done.returncode == 0, done.stderr
        [(run_id, owner)] = query(db, "SELECT id, owner FROM run WHERE job = 'compact'")
        asked, ended = done.stdout.splitlines()
        assert asked == f"compact: asked {owner} to stop run #{run_id}"
        assert ended.startswith("compact cancelled after ") and ended.endswith(
            "(manual) — cancelled on request (cli); stopped at a check point")
        assert query(db, "SELECT action, job, new_value, source FROM audit_log WHERE action = 'cancel'") == [
            ("cancel", "compact", f"run #{run_id}", "cli")]
    finally:
        proc.terminate()
        proc.wait(WAIT)


@pytest.mark.anyio
@pytest.mark.both_backends
async def test_costly_promotion_figures_are_read_off_the_screen_thread_after_each_promote_run(engine_on, kinds,
                                                                                             store, clock):
    """Counting a big store's memories takes a second at 10 million rows: once a read is slower than
    STATS_INLINE_MS the panel's figures come from a worker thread (here: every read counts as slow)."""
    from tests.factories import add_pending

    engine = engine_on("host-d:505:dddd")
    app = MemtuiApp(engine, db_label="memtui.db")
    app.STATS_INLINE_MS = -1.0
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert (app.stats.runs, app.stats.pending) == (0, 0)  # the first read, inline
        for i in range(3):
            add_pending(store, clock(), content=f"remember {i}", importance=10, confidence=1)
        engine.run_job("promote")  # its run_finished event: the app asks for the figures again
        await until(pilot, lambda: app.stats.runs == 1, "the worker's figures")
        assert app.stats.total_promoted == 3 and app.stats.long_term == 3 and app._stats_ms >= 0
        app.exit()
