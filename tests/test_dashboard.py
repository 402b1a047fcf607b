"""The Textual dashboard, driven through Pilot: what it shows and what each key does to the engine.

The engine runs on a FakeClock, so nothing fires on a wall-clock schedule. Runs
started from the UI run in the background; the tests wait for them with a bounded
loop of short pilot pauses (``until``), never a fixed sleep. A test-only ``block``
kind waits on a threading.Event, so "while it is running" is exact.
"""
from __future__ import annotations

import asyncio
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
from textual.widgets import Input, Static

from memtui.engine import Engine
from memtui.engine.config import Config, EngineSettings
from memtui.engine.jobs import DEFAULT_JOBS
from memtui.engine.schedule import local_zone
from memtui.tui.app import MemtuiApp
from memtui.tui.screens import DetailsScreen, HelpScreen, RetimeScreen
from memtui.tui.widgets import HistoryTable, JobsTable, StatusLine
from tests.kinds import Blocker, register

pytestmark = pytest.mark.anyio

WAIT = 10  # seconds a blocked test job waits before giving up; only reached when something is broken
SETTINGS = EngineSettings(poll_interval_s=60.0, stop_timeout_s=5.0)


@pytest.fixture
def anyio_backend():
    return "asyncio"


# -- test-only job kinds -------------------------------------------------------------------

@dataclass(frozen=True)
class FlakyConfig:
    threshold: int = 3
    label: str = "flaky-label"


class Flaky:
    """Fails with RuntimeError('kaboom') from a named function, so the traceback can be checked."""

    def run(self, ctx):
        explode_for_the_traceback()


def explode_for_the_traceback():
    raise RuntimeError("kaboom")


@pytest.fixture
def kinds(monkeypatch):
    kinds = register(monkeypatch, Flaky(), Blocker(), FlakyConfig)
    yield kinds
    kinds.blocker.release.set()


@pytest.fixture
def eng(kinds, store, clock):
    """An engine (not started) over the test db that also knows the test kinds."""
    e = Engine(store, Config(engine=SETTINGS), clock)
    yield e
    kinds.blocker.release.set()
    e.stop(timeout=5)


@pytest.fixture
def started(eng):
    """The engine, started: run-now runs in the background. Nothing fires: the fake clock stands still,
    so the first alarm (promote, 30 s on the fake clock) is 30 s of wall time away."""
    eng.start()
    return eng


def make_app(engine, **kwargs) -> MemtuiApp:
    kwargs.setdefault("db_label", "demo.db")
    return MemtuiApp(engine, **kwargs)


# -- helpers ------------------------------------------------------------------------------

@asynccontextmanager
async def running(app: MemtuiApp, size: tuple[int, int]):
    """``app.run_test`` that leaves the way a real exit does. ``App.exit()`` stops the half-second
    tick before the widgets go; run_test's own teardown does not, and a tick landing between the
    widgets' removal and the app's end fails with NoMatches('#jobs')."""
    async with app.run_test(size=size) as pilot:
        try:
            yield pilot
        finally:
            if app.is_running:
                app.exit()


async def until(pilot, condition, timeout: float = 5.0, what: str = "condition") -> None:
    """Pause the pilot in 50 ms steps until ``condition()`` is true; fail after ``timeout`` s."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    assert condition(), f"timed out waiting for {what}"


def jobs_table(app) -> JobsTable:
    return app.screen.query_one("#jobs", JobsTable)


def history_table(app) -> HistoryTable:
    return app.screen.query_one("#history", HistoryTable)


def status_line(app) -> str:
    return str(app.screen.query_one("#status", StatusLine).render())


def row(table, key: str) -> dict[str, str]:
    """The row's cells as plain text, by column key (the narrow RUNS/ERR column read as both)."""
    cells = {column.key.value: str(table.get_cell(key, column.key)) for column in table.columns.values()}
    if "counts" in cells:
        cells["runs"], cells["errors"] = cells["counts"].split("/")
    return cells


def row_keys(table) -> list[str]:
    """Row keys in display order."""
    return [r.key.value for r in table.ordered_rows]


def column_keys(table) -> list[str]:
    return [c.key.value for c in table.columns.values()]


def static_text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def notifications(app) -> list:
    return list(app._notifications)


async def select_job(pilot, name: str) -> None:
    """Put the jobs cursor on ``name`` (the arrow keys themselves are tested once, below)."""
    table = jobs_table(pilot.app)
    table.move_cursor(row=table.get_row_index(name))
    await pilot.pause()
    assert pilot.app.selected_job_name == name
    assert history_table(pilot.app).job == name


# -- 1. main screen -------------------------------------------------------------------------

@pytest.mark.parametrize("size, columns", [
    ((80, 24), ["name", "schedule", "left", "last", "status", "counts"]),
    ((140, 40), ["name", "schedule", "next", "left", "last", "status", "duration", "runs", "errors"]),
])
async def test_main_screen_shows_every_job_the_status_line_and_the_columns_for_the_width(eng, size, columns):
    app = make_app(eng, model="gpt-test")
    async with running(app, size) as pilot:
        await pilot.pause()
        table = jobs_table(app)
        # every job, in the registry's order; the test kinds come last
        assert row_keys(table) == [j.name for j in eng.jobs()] == list(DEFAULT_JOBS)
        assert row_keys(table)[:3] == ["promote", "consolidate", "decay"] and row_keys(table)[-2:] == ["flaky", "block"]
        assert column_keys(table) == columns
        assert ("NEXT" in [str(c.label) for c in table.columns.values()]) == (size[0] >= 140)
        text = status_line(app)
        assert "demo.db" in text and "model: gpt-test" in text
        assert "engine stopped" in text  # not started
        promote = row(table, "promote")
        assert promote["name"] == "● promote"
        assert promote["schedule"] == "every 30 s"
        assert promote["left"] == "30s"
        assert promote["runs"] == "0"
        assert app.focused is table and app.selected_job_name == "promote"
        assert_every_column_fits(table)


def assert_every_column_fits(table: JobsTable) -> None:
    widths = {c.key.value: c.get_render_width(table) for c in table.columns.values()}
    assert sum(widths.values()) <= table.size.width, (
        f"the jobs table needs {sum(widths.values())} columns but has {table.size.width}; "
        f"the last ones are cut off: {widths}")


async def test_every_jobs_column_is_visible_at_80_columns(eng):
    """The narrow layout exists so the table "fits 80 columns without scrolling" (JobsTable's
    docstring); it cannot scroll sideways (overflow-x: hidden), so a column past the edge is lost."""
    app = make_app(eng)
    async with running(app, (80, 24)) as pilot:
        await pilot.pause()
        assert column_keys(jobs_table(app)) == [c for c, _ in JobsTable.NARROW]
        assert_every_column_fits(jobs_table(app))


# -- 2. toggling and selection --------------------------------------------------------------

async def test_space_toggles_the_selected_job_and_writes_an_ui_audit_row(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        assert app.selected_job_name == "promote"
        await pilot.press("space")
        await pilot.pause()
        assert eng.job("promote").enabled is False
        assert eng.job("promote").next_run is None
        assert row(jobs_table(app), "promote")["name"] == "○ promote"
        assert row(jobs_table(app), "promote")["left"] == "-"
        audit = eng.audit_log()[0]
        assert (audit.action, audit.job, audit.old_value, audit.new_value, audit.source) == (
            "disable", "promote", "True", "False", "ui")

        await pilot.press("space")
        await pilot.pause()
        assert eng.job("promote").enabled is True
        assert row(jobs_table(app), "promote")["name"] == "● promote"
        audit = eng.audit_log()[0]
        assert (audit.action, audit.job, audit.source) == ("enable", "promote", "ui")
        # the other jobs were not touched
        assert all(j.enabled for j in eng.jobs())
        assert [m.message for m in notifications(app)][-2:] == ["promote: disabled", "promote: enabled"]


async def test_e_and_d_enable_and_disable_the_selected_job(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await select_job(pilot, "decay")
        await pilot.press("d")
        await pilot.pause()
        assert eng.job("decay").enabled is False
        assert eng.job("promote").enabled is True
        assert row(jobs_table(app), "decay")["name"] == "○ decay"
        assert (eng.audit_log()[0].action, eng.audit_log()[0].job, eng.audit_log()[0].source) == (
            "disable", "decay", "ui")

        await pilot.press("d")  # already disabled: stays disabled
        await pilot.pause()
        assert eng.job("decay").enabled is False

        await pilot.press("e")
        await pilot.pause()
        assert eng.job("decay").enabled is True
        assert row(jobs_table(app), "decay")["name"] == "● decay"
        assert row(jobs_table(app), "decay")["left"] == "1h"
        assert (eng.audit_log()[0].action, eng.audit_log()[0].job, eng.audit_log()[0].source) == (
            "enable", "decay", "ui")
        assert {a.source for a in eng.audit_log() if a.job == "decay"} == {"ui"}


async def test_moving_the_cursor_selects_another_job_and_shows_its_runs(eng):
    promote_runs = [eng.run_job("promote").id for _ in range(2)]
    consolidate_runs = [eng.run_job("consolidate").id for _ in range(3)]
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        history = history_table(app)
        assert history.job == "promote"
        assert row_keys(history) == [str(i) for i in reversed(promote_runs)]
        assert history.border_title == "runs of promote"

        await pilot.press("down")
        await pilot.pause()
        assert app.selected_job_name == "consolidate"
        history = history_table(app)
        assert history.job == "consolidate"
        assert row_keys(history) == [str(i) for i in reversed(consolidate_runs)]
        assert row(history, str(consolidate_runs[0]))["status"] == "skipped"  # the session gate said no
        assert row(history, str(consolidate_runs[0]))["reason"] == "manual"

        await pilot.press("down")
        await pilot.pause()
        assert app.selected_job_name == "decay"
        assert row_keys(history_table(app)) == []

        await pilot.press("up", "up")
        await pilot.pause()
        assert app.selected_job_name == "promote"
        assert row_keys(history_table(app)) == [str(i) for i in reversed(promote_runs)]


# -- 3. retime ------------------------------------------------------------------------------

async def open_retime(pilot, name: str) -> RetimeScreen:
    await select_job(pilot, name)
    await pilot.press("t")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, RetimeScreen)
    return screen


async def type_spec(pilot, screen, text: str, selector: str = "#spec", *, keys: bool = False) -> None:
    """Replace the field's text: typed key by key with ``keys``, else set, which posts the same
    Input.Changed (each simulated key costs ~0.1 s, so only a few tests type)."""
    field = screen.query_one(selector, Input)
    field.focus()
    if keys:
        field.value = ""
        await pilot.press(*text)
    else:
        field.value = text
    await pilot.pause()
    assert field.value == text


def definition(engine, name):
    job = engine.job(name)
    return job.schedule, job.timezone, job.next_run


async def test_retime_opens_prefilled_previews_cancels_and_applies(eng, clock):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        # escape on a valid new spec: nothing changes
        before, audit_before = definition(eng, "decay"), eng.audit_log()
        screen = await open_retime(pilot, "decay")
        await type_spec(pilot, screen, "5m")
        assert static_text(screen, "#preview").startswith("every 5 min")
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1
        assert definition(eng, "decay") == before
        assert eng.audit_log() == audit_before
        assert row(jobs_table(app), "decay")["schedule"] == "every 1 h"

        # enter on a valid spec: applied
        screen = await open_retime(pilot, "consolidate")
        assert screen.query_one("#spec", Input).value == "10m"
        assert screen.query_one("#tz", Input).value == ""
        assert static_text(screen, "#preview").startswith("every 10 min")
        assert static_text(screen, "#problem") == ""

        await type_spec(pilot, screen, "45s", keys=True)  # validated and previewed as you type
        preview = static_text(screen, "#preview").splitlines()
        zone = local_zone()  # a blank time zone field means the machine's zone
        assert preview == ["every 45 s"] + [
            "  " + (clock() + timedelta(seconds=s)).astimezone(zone).strftime("%a %Y-%m-%d %H:%M:%S %Z")
            for s in (45, 90, 135)
        ]
        assert static_text(screen, "#problem") == ""
        assert eng.job("consolidate").schedule == "10m"  # nothing applied while typing

        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, RetimeScreen)
        assert len(app.screen_stack) == 1
        job = eng.job("consolidate")
        assert (job.schedule, job.timezone) == ("45s", None)
        assert (job.next_run - clock()).total_seconds() == 45
        audit = eng.audit_log()[0]
        assert (audit.action, audit.job, audit.old_value, audit.new_value, audit.source) == (
            "retime", "consolidate", "10m", "45s", "ui")
        assert row(jobs_table(app), "consolidate")["schedule"] == "every 45 s"
        assert row(jobs_table(app), "consolidate")["left"] == "45s"


async def test_retime_with_a_cron_spec_and_a_time_zone(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        screen = await open_retime(pilot, "compact")
        assert screen.query_one("#spec", Input).value == "0 4 * * 0"
        await type_spec(pilot, screen, "Europe/Berlin", "#tz")
        await type_spec(pilot, screen, "0 2 * * *")
        preview = static_text(screen, "#preview").splitlines()
        assert "(Europe/Berlin)" in preview[0]
        assert preview[1:] == [
            "  Tue 2026-06-02 02:00:00 CEST",
            "  Wed 2026-06-03 02:00:00 CEST",
            "  Thu 2026-06-04 02:00:00 CEST",
        ]
        await pilot.press("enter")
        await pilot.pause()
        assert len(app.screen_stack) == 1
        job = eng.job("compact")
        assert (job.schedule, job.timezone) == ("0 2 * * *", "Europe/Berlin")
        audit = eng.audit_log()[0]
        assert (audit.action, audit.new_value, audit.source) == ("retime", "0 2 * * * Europe/Berlin", "ui")


BAD_SPECS = [
    ("0s", "interval '0s' must be longer than zero"),
    ("61 * * * *", "bad cron expression '61 * * * *'"),
    ("abc", "cannot read 'abc'"),
]


async def test_bad_retime_input_is_explained_keeps_the_modal_and_changes_nothing(eng, monkeypatch):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        bells = []
        monkeypatch.setattr(app, "bell", lambda: bells.append(1))
        await pilot.pause()
        before, audit_before = definition(eng, "promote"), eng.audit_log()
        screen = await open_retime(pilot, "promote")
        spec = screen.query_one("#spec", Input)
        for bad, reason in BAD_SPECS:
            await type_spec(pilot, screen, bad, keys=bad == "abc")
            assert reason in static_text(screen, "#problem"), bad
            assert static_text(screen, "#preview") == ""
            assert spec.is_valid is False
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is screen, f"enter on {bad!r} closed the modal"
            assert definition(eng, "promote") == before
            assert eng.audit_log() == audit_before
        assert len(bells) == len(BAD_SPECS)

        # a bad time zone is reported too, and blocks apply from either field
        await type_spec(pilot, screen, "30s")
        assert static_text(screen, "#problem") == "" and spec.is_valid
        await type_spec(pilot, screen, "Mars/Olympus", "#tz")
        assert "unknown time zone 'Mars/Olympus'" in static_text(screen, "#problem")
        assert static_text(screen, "#preview") == ""
        assert spec.is_valid is False  # the spec is revalidated against the new zone
        await pilot.press("enter")  # submitted from the time zone field
        await pilot.pause()
        assert app.screen is screen
        spec.focus()
        await pilot.press("enter")  # and from the spec field
        await pilot.pause()
        assert app.screen is screen
        assert len(bells) == len(BAD_SPECS) + 2
        await type_spec(pilot, screen, "UTC", "#tz")  # fixing the zone makes it valid again
        assert static_text(screen, "#problem") == ""
        assert static_text(screen, "#preview").startswith("every 30 s")

        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1
        assert definition(eng, "promote") == before
        assert eng.audit_log() == audit_before
        assert row(jobs_table(app), "promote")["schedule"] == "every 30 s"


# -- 4. run now -----------------------------------------------------------------------------

async def test_r_runs_the_selected_job_now_in_the_background(started):
    app = make_app(started)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await select_job(pilot, "decay")
        before = started.job("decay").next_run
        await pilot.press("r")
        await until(pilot, lambda: row(jobs_table(app), "decay")["runs"] == "1", what="the run in the jobs table")
        [run] = started.history("decay")
        assert (run.status, run.reason) == ("success", "manual")
        await until(pilot, lambda: row_keys(history_table(app)) == [str(run.id)], what="the run in the history")
        assert row(history_table(app), str(run.id))["status"] == "success"
        assert row(history_table(app), str(run.id))["reason"] == "manual"
        assert row(jobs_table(app), "decay")["status"] == "success"
        assert started.job("decay").next_run == before  # the schedule is not shifted
        assert any(a.action == "run_now" and a.job == "decay" and a.source == "ui" for a in started.audit_log())
        await until(pilot, lambda: any(n.title == "run finished" for n in notifications(app)), what="the toast")
        [done] = [n for n in notifications(app) if n.title == "run finished"]
        assert done.message.startswith("decay: done in ")
        assert "soft_deleted=0" in done.message


async def test_run_now_while_the_job_is_running_is_recorded_skipped_and_says_so(started, kinds):
    app = make_app(started)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await select_job(pilot, "block")
        await pilot.press("r")
        await until(pilot, kinds.blocker.started.is_set, what="the blocking run to start")
        await until(pilot, lambda: "running" in row(jobs_table(app), "block")["status"], what="running status")

        await pilot.press("r")
        await until(pilot, lambda: any(r.status == "skipped" for r in started.history("block")), what="skip row")
        skipped = next(r for r in started.history("block") if r.status == "skipped")
        assert skipped.reason == "manual"
        assert skipped.error.startswith("already running in this process")
        await until(pilot, lambda: any(n.title == "run skipped" for n in notifications(app)), what="skip toast")
        [toast] = [n for n in notifications(app) if n.title == "run skipped"]
        assert toast.severity == "warning"
        assert toast.message.startswith("block: skipped — already running in this process")
        await until(pilot, lambda: str(skipped.id) in row_keys(history_table(app)), what="skip row in history")
        assert row(history_table(app), str(skipped.id))["status"] == "skipped"
        assert "already running" in row(history_table(app), str(skipped.id))["result"]
        assert kinds.blocker.calls == 1

        kinds.blocker.release.set()
        await until(pilot, lambda: started.history("block")[-1].status == "success", what="the first run to end")
        first = started.history("block")[-1]
        await until(pilot, lambda: row(history_table(app), str(first.id))["status"] == "success",
                    what="the finished run in the history")
        assert row_keys(history_table(app)) == [str(skipped.id), str(first.id)]
        assert row(jobs_table(app), "block")["runs"] == "2"


# -- 5. pause / resume ----------------------------------------------------------------------

async def test_p_pauses_all_and_p_again_resumes_keeping_enabled_flags(started):
    started.disable("decay")
    app = MemtuiApp(started)  # no db_label, no model: the database path and the offline fallback
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        assert "● running" in status_line(app)
        assert str(started.store.path) in status_line(app)
        assert "model: offline fallback" in status_line(app)
        await pilot.press("p")
        await pilot.pause()
        assert started.paused is True
        assert "‖ paused" in status_line(app)
        table = jobs_table(app)
        for job in started.jobs():
            cells = row(table, job.name)
            if job.name == "decay":
                assert job.enabled is False
                assert (cells["name"], cells["left"]) == ("○ decay", "-")
            else:
                assert job.enabled is True and job.next_run is None
                assert (cells["name"], cells["left"]) == (f"‖ {job.name}", "paused")
        audit = started.audit_log()[0]
        assert (audit.action, audit.source) == ("pause_all", "ui")

        await pilot.press("p")
        await pilot.pause()
        assert started.paused is False
        assert "● running" in status_line(app) and "paused" not in status_line(app)
        assert [j.enabled for j in started.jobs()] == [j.name != "decay" for j in started.jobs()]
        assert row(table, "promote")["name"] == "● promote"
        assert row(table, "promote")["left"] == "30s"
        assert row(table, "decay")["name"] == "○ decay"
        assert started.job("decay").next_run is None
        audit = started.audit_log()[0]
        assert (audit.action, audit.source) == ("resume_all", "ui")


# -- 6. details -----------------------------------------------------------------------------

async def test_enter_opens_details_with_config_error_and_traceback(eng):
    failed = eng.run_job("flaky")
    assert failed.status == "failed"
    eng.run_job("promote")
    app = make_app(eng)
    async with running(app, (120, 40)) as pilot:
        await pilot.pause()
        await select_job(pilot, "flaky")
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DetailsScreen)
        assert len(app.screen_stack) == 2  # one details screen, not two (table enter and app enter)
        text = static_text(screen, "#details")
        assert "flaky  (flaky) — fails on demand" in text
        assert "config" in text and "threshold" in text and "flaky-label" in text
        assert f"run #{failed.id} at" in text
        assert "RuntimeError: kaboom" in text
        assert "Traceback (most recent call last)" in text
        assert "explode_for_the_traceback" in text  # the frame that raised
        assert "runs / errors 1 / 1" in text

        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1
        assert app.focused is jobs_table(app)

        # a healthy job: every key of its config, no error
        config = eng.job("promote").config
        assert config
        await select_job(pilot, "promote")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen)
        text = static_text(app.screen, "#details")
        for key in config:
            assert f"  {key} " in text, key
        assert "none in the recent runs" in text
        await pilot.press("enter")  # enter closes it too
        await pilot.pause()
        assert len(app.screen_stack) == 1


# -- 7. help --------------------------------------------------------------------------------

async def test_help_lists_every_key_and_escape_closes(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        lines = static_text(app.screen, "#help").splitlines()
        for key, _, _, text in MemtuiApp.KEYS:
            shown = "?" if key == "question_mark" else key
            description = text.split(": ", 1)[1]
            assert any(line.split() and line.split()[0] == shown and description in line for line in lines), key
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1
        assert app.focused is jobs_table(app)


# -- 8. live updates ------------------------------------------------------------------------

async def test_a_run_by_another_engine_on_the_same_db_shows_after_sync(eng, db_path, clock):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await select_job(pilot, "decay")
        assert row(jobs_table(app), "decay")["runs"] == "0"
        other = Engine(db_path, Config(engine=SETTINGS), clock)  # like the CLI: its own connection
        try:
            run = other.run_job("decay")
            other.disable("compact", source="cli")
        finally:
            other.close()
        await pilot.pause()
        assert row(jobs_table(app), "decay")["runs"] == "0"  # nothing told the app yet
        eng.sync()
        await until(pilot, lambda: row(jobs_table(app), "decay")["runs"] == "1", what="the other engine's run")
        assert row(jobs_table(app), "decay")["status"] == "success"
        assert row(jobs_table(app), "compact")["name"] == "○ compact"
        assert row_keys(history_table(app)) == [str(run.id)]


async def test_the_sync_thread_brings_in_changes_from_another_engine(kinds, store, db_path, clock):
    fast = Config(engine=EngineSettings(poll_interval_s=0.1, stop_timeout_s=5.0))
    engine = Engine(store, fast, clock)
    engine.start()
    try:
        app = make_app(engine)
        async with running(app, (100, 30)) as pilot:
            await pilot.pause()
            other = Engine(db_path, fast, clock)
            try:
                other.run_job("promote")
                other.retime("decay", "2h", source="cli")
            finally:
                other.close()
            await until(pilot, lambda: row(jobs_table(app), "promote")["runs"] == "1", what="the sync thread")
            await until(pilot, lambda: row(jobs_table(app), "decay")["schedule"] == "every 2 h", what="retime")
            assert len(row_keys(history_table(app))) == 1
    finally:
        engine.stop(timeout=5)


async def test_a_run_on_the_same_engine_updates_the_row_through_its_event(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        run = await asyncio.to_thread(eng.run_job, "promote")  # an engine thread, not the UI
        await until(pilot, lambda: row(jobs_table(app), "promote")["runs"] == "1", what="the event")
        assert row(jobs_table(app), "promote")["status"] == "success"
        assert row(jobs_table(app), "promote")["last"] == "0s ago"
        assert row_keys(history_table(app)) == [str(run.id)]
        run2 = eng.run_job("promote")  # on the UI's own thread: the event still arrives as a message
        await until(pilot, lambda: row(jobs_table(app), "promote")["runs"] == "2", what="the second event")
        assert row_keys(history_table(app)) == [str(run2.id), str(run.id)]


# -- 9. quit --------------------------------------------------------------------------------

async def wait_for_exit(app, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if not app.is_running:
            return
        await asyncio.sleep(0.05)
    assert not app.is_running, "the app did not exit"


async def test_q_stops_the_engine_and_exits(started):
    app = make_app(started)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        assert started.started
        await pilot.press("q")
        await wait_for_exit(app)
    assert app.return_code == 0
    assert started.started is False


async def test_quit_while_a_job_runs_waits_for_it_and_says_so(started, kinds):
    app = make_app(started)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await select_job(pilot, "block")
        await pilot.press("r")
        await until(pilot, kinds.blocker.started.is_set, what="the blocking run")
        await pilot.press("q")
        await pilot.pause()
        assert "stopping: waiting for block" in status_line(app)
        await pilot.pause(0.3)
        assert app.is_running  # still waiting for the job
        assert "stopping: waiting for block" in status_line(app)
        assert started.started is False  # no longer scheduling
        kinds.blocker.release.set()
        await wait_for_exit(app)
    assert app.return_code == 0
    [run] = started.history("block")
    assert run.status == "success"  # it finished on its own, not interrupted
    assert started.running_jobs() == []


# -- 10. history paging ---------------------------------------------------------------------

def add_runs(store, job: str, now_ts: float, n: int) -> None:
    """``n`` finished runs of ``job``, one a minute up to now, written with plain SQL in one transaction."""
    with store.atomic():
        for i in range(n, 0, -1):
            started = now_ts - 60 * i
            store.execute(
                "INSERT INTO run (job, reason, started_at, finished_at, duration_ms, status, result, owner)"
                " VALUES (?, 'scheduled', ?, ?, 5, 'success', '{\"soft_deleted\": 0}', 'test')",
                (job, started, started + 0.005),
            )


async def test_history_loads_older_pages_as_the_cursor_nears_the_end(eng, store, clock):
    n = 3000
    add_runs(store, "decay", clock().timestamp(), n)
    add_runs(store, "consolidate", clock().timestamp(), 210)  # one full page and a short one
    ids = [r[0] for r in store.execute("SELECT id FROM run WHERE job = 'decay' ORDER BY id DESC")]
    assert len(ids) == n
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await select_job(pilot, "decay")
        history = history_table(app)
        page = HistoryTable.PAGE
        assert page == 200
        assert row_keys(history) == [str(i) for i in ids[:page]]  # the first page only, newest first

        history.focus()
        await pilot.press("ctrl+end")  # DataTable: ctrl+end moves the row cursor to the last row
        await until(pilot, lambda: history.row_count > page, what="the next page")
        assert row_keys(history) == [str(i) for i in ids[:2 * page]]
        assert history.cursor_row == page - 1  # the cursor stays where it was; the rows grow below

        await pilot.press("ctrl+end")
        await until(pilot, lambda: history.row_count > 2 * page, what="the page after")
        assert row_keys(history) == [str(i) for i in ids[:3 * page]]  # no gap, no duplicate, descending

        await pilot.press("up")  # away from the end: nothing more is loaded
        await pilot.pause()
        assert history.row_count == 3 * page
        assert history.exhausted is False
        assert app.selected_job_name == "decay"

        # a job whose last page is short: paging stops once the oldest run is in
        await select_job(pilot, "consolidate")
        assert history.row_count == page
        history.focus()
        await pilot.press("ctrl+end")
        await until(pilot, lambda: history.row_count == 210, what="the last, short page")
        assert history.exhausted is True
        consolidate_ids = [r[0] for r in store.execute(
            "SELECT id FROM run WHERE job = 'consolidate' ORDER BY id DESC")]
        assert row_keys(history) == [str(i) for i in consolidate_ids]


# -- 11. bursts -----------------------------------------------------------------------------

async def test_a_burst_of_engine_events_collapses_into_few_refreshes(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        refreshes = []
        original = app.refresh_all

        def counting_refresh_all():
            refreshes.append(1)
            original()

        app.refresh_all = counting_refresh_all  # on_engine_update looks it up on the instance per call
        delivered = []
        eng.subscribe(lambda event: delivered.append(event.kind))

        def burst():  # an engine thread publishing fast: each event posts one EngineUpdate
            for _ in range(1000):
                eng._publish("state_changed", "promote")

        worker = threading.Thread(target=burst)
        worker.start()
        await until(pilot, lambda: not worker.is_alive(), what="the burst to be posted")
        worker.join()
        assert len(delivered) == 1000
        await pilot.pause()
        settled = len(refreshes)
        await pilot.pause(0.1)
        assert len(refreshes) == settled  # the queue is drained: no backlog of refreshes
        assert 1 <= len(refreshes) <= 200, f"{len(refreshes)} refreshes for 1000 events"

        # still responsive: keys work and engine changes still show
        await pilot.press("down")
        await pilot.pause()
        assert app.selected_job_name == "consolidate"
        eng.run_job("decay")
        await until(pilot, lambda: row(jobs_table(app), "decay")["runs"] == "1", what="a refresh after the burst")


# -- robustness -------------------------------------------------------------------------------

async def test_a_change_while_another_process_holds_the_write_lock_fails_briefly_and_visibly(eng, db_path):
    """The keyboard's writes wait at most MemtuiApp.LOCK_WAIT_S for another writer, then say so:
    the screen never freezes for the store's 30 s busy timeout, and the app never crashes."""
    import sqlite3
    import time as wall

    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            t0 = wall.monotonic()
            await pilot.press("space")
            await pilot.pause()
            waited = wall.monotonic() - t0
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert waited < MemtuiApp.LOCK_WAIT_S + 3
        assert app.is_running
        assert eng.job("promote").enabled is True  # nothing changed
        assert any("could not change it now" in n.message and "locked" in n.message
                   for n in notifications(app)), [n.message for n in notifications(app)]
        await pilot.press("space")  # the lock is gone: the same key works
        await pilot.pause()
        assert eng.job("promote").enabled is False


async def test_the_history_table_keeps_a_bounded_number_of_rows(eng, store, monkeypatch):
    monkeypatch.setattr(HistoryTable, "MAX_ROWS", 50)
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        for _ in range(60):
            eng.run_job("promote")
            app.refresh_all()
        await pilot.pause()
        table = history_table(app)
        keys = [int(k) for k in row_keys(table)]
        assert len(keys) == 50
        assert keys == sorted(keys, reverse=True)
        assert keys[0] == max(r.id for r in eng.history("promote", 1))
        assert table.oldest_id == min(keys) and table.exhausted is False
