"""The Textual dashboard, driven through Pilot: what it shows and what each key does to the engine.

The engine runs on a FakeClock, so nothing fires on a wall-clock schedule. Runs
started from the UI run in the background; the tests wait for them with a bounded
loop of short pilot pauses (``until``), never a fixed sleep. A test-only ``block``
kind waits on a threading.Event, so "while it is running" is exact.
"""
from __future__ import annotations

import asyncio
import fcntl
import gc
import json
import logging
import os
import pty
import re
import signal
import stat
import struct
import subprocess
import sys
import termios
import threading
import time
from argparse import Namespace
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from zoneinfo import ZoneInfo
from textual.geometry import Region
from textual.widgets import Input, Static

from memtui.engine import Engine, EngineError
from memtui.engine.config import Config, EngineSettings
from memtui.engine.jobs import DEFAULT_JOBS
from memtui.engine.report import run_line
from memtui.tui import app as app_module
from memtui.tui.app import LogFile, MemtuiApp, PrivateRotatingFileHandler, ViewRead
from memtui.tui.screens import DetailsScreen, HelpScreen, RetimeScreen
from memtui.tui.widgets import HistoryTable, JobsTable, KeysFooter, PromotionChart, StatusLine
from tests.factories import static_text
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


def drawn_lines(widget) -> list[str]:
    """The lines a widget draws at its size, as text."""
    return [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, *widget.size))]


def notifications(app) -> list:
    return list(app._notifications)


async def count_layouts(pilot, monkeypatch) -> list:
    """The screens laid out from now on (each ``Screen._refresh_layout`` call), in a list that grows;
    counted once start-up has stopped laying out (two quiet pauses: slower on a loaded machine)."""
    from textual.screen import Screen

    layouts = []
    original = Screen._refresh_layout

    def counting(screen, *args, **kwargs):
        layouts.append(screen)
        return original(screen, *args, **kwargs)

    monkeypatch.setattr(Screen, "_refresh_layout", counting)
    quiet = 0
    for _ in range(100):
        seen = len(layouts)
        await pilot.pause(0.05)
        quiet = quiet + 1 if len(layouts) == seen else 0
        if quiet == 2:
            break
    layouts.clear()
    return layouts


async def select_job(pilot, name: str) -> None:
    """Put the jobs cursor on ``name`` (the arrow keys themselves are tested once, below)."""
    table = jobs_table(pilot.app)
    table.move_cursor(row=table.get_row_index(name))
    await pilot.pause()
    assert pilot.app.selected_job_name == name
    assert history_table(pilot.app).job == name


# -- 1. main screen -------------------------------------------------------------------------

@pytest.mark.parametrize("size, columns", [
    ((80, 24), ["name", "schedule", "left", "last", "status", "runs", "errors"]),  # tests/test_jobs_width.py
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
    """The table fits its columns to the width it has (JobsTable's docstring); it cannot scroll
    sideways (overflow-x: hidden), so a column past the edge is lost."""
    app = make_app(eng)
    async with running(app, (80, 24)) as pilot:
        await pilot.pause()
        assert {"name", "schedule", "left", "last", "status"} <= set(column_keys(jobs_table(app)))
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

        await pilot.press("end")
        await pilot.pause()
        assert app.selected_job_name == row_keys(jobs_table(app))[-1]
        await pilot.press("home")
        await pilot.pause()
        assert app.selected_job_name == "promote"
        assert row_keys(history_table(app)) == [str(i) for i in reversed(promote_runs)]

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
        stored_zone = eng.job("consolidate").timezone  # every job has a named zone (the machine's, at seeding)
        assert stored_zone and screen.query_one("#tz", Input).value == stored_zone
        assert static_text(screen, "#preview").startswith("every 10 min")
        assert static_text(screen, "#problem") == ""

        await type_spec(pilot, screen, "45s", keys=True)  # validated and previewed as you type
        preview = static_text(screen, "#preview").splitlines()
        zone = ZoneInfo(stored_zone)
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
        assert (job.schedule, job.timezone) == ("45s", stored_zone)
        assert (job.next_run - clock()).total_seconds() == 45
        audit = eng.audit_log()[0]
        assert (audit.action, audit.job, audit.old_value, audit.new_value, audit.source) == (
            "retime", "consolidate", f"10m {stored_zone}", f"45s {stored_zone}", "ui")
        assert row(jobs_table(app), "consolidate")["schedule"] == "every 45 s"
        assert row(jobs_table(app), "consolidate")["left"] == "45s"
        assert notifications(app)[-1].message == "consolidate: now every 45 s"  # in words, as the table says


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
        # in words, with a real duration (not "0 ms" for a sub-millisecond run), never key=value
        assert re.fullmatch(r"decay: done in [\d.]+ m?s — soft-deleted 0 · hard-deleted 0 · full pass",
                            done.message), done.message
        assert not re.search(r"\bin 0 ms\b", done.message) and "=" not in done.message


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
    async with running(app, (160, 30)) as pilot:  # wide enough for pytest's long temporary path, whole
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
        assert text.startswith("flaky — fails on demand")  # kind "flaky" too: not repeated
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

        # a job whose kind is not its name says its kind
        await select_job(pilot, "rollup-day")
        await pilot.press("enter")
        await pilot.pause()
        assert static_text(app.screen, "#details").startswith("rollup-day  (kind: rollup) — summarize")


# -- 7. help --------------------------------------------------------------------------------

async def test_help_lists_every_key_and_escape_closes(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = static_text(app.screen, "#help")
        lines = text.splitlines()
        for key, _, _, description in MemtuiApp.KEYS:
            shown = "?" if key == "question_mark" else key
            description = description.split(": ", 1)[1]
            assert any(line.split() and line.split()[0] == shown and description in line for line in lines), key
        # what q really does: the engine's stop timeout (5 s in SETTINGS), then runs are interrupted
        [quit_line] = [line for line in lines if line.split() and line.split()[0] == "q"]
        assert "waiting for running jobs (up to 5 s; runs still going then are marked interrupted)" in quit_line
        assert "within about 60 s" in text  # SETTINGS.poll_interval_s, not a promise of 2 s
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1
        assert app.focused is jobs_table(app)


async def test_help_wraps_a_long_description_within_its_column(eng):
    """At 80 columns a description runs over two lines; the second starts under the first, not under the keys."""
    app = make_app(eng)
    async with running(app, (80, 30)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        lines = drawn_lines(app.screen.query_one("#help"))
        [at] = [i for i, line in enumerate(lines) if line.split()[:2] == ["t", "Retime"]]
        column = lines[at].index("Retime")
        assert len(lines[at]) < 80 and not lines[at].endswith("preview")  # it did wrap here
        assert lines[at + 1].index(lines[at + 1].split()[0]) == column, lines[at:at + 2]


async def test_help_scrolls_to_the_log_file_line_in_a_small_terminal(eng, tmp_path):
    app = make_app(eng, log_path=tmp_path / "log" / "memtui.log")
    async with running(app, (80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        dialog = app.screen.query_one("#dialog")
        assert dialog.max_scroll_y > 0 and dialog.allow_vertical_scroll  # more than fits, and reachable
        await pilot.press("end")
        await pilot.pause()
        assert dialog.scroll_y == dialog.max_scroll_y > 0
        assert str(tmp_path / "log" / "memtui.log") in static_text(app.screen, "#help")


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

async def test_a_burst_of_engine_events_collapses_into_few_reads_made_off_the_screen_thread(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        reads, shown = [], []
        read_view, show_view = app.read_view, app.show_view

        def counting_read(ask):
            reads.append(threading.current_thread())
            return read_view(ask)

        def counting_show(view):
            shown.append(view.ask.seq)
            show_view(view)

        app.read_view, app.show_view = counting_read, counting_show  # looked up on the instance per call
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
        # an update within MemtuiApp.UPDATE_GAP_S of the last waits on a timer; then the reader reads it
        await until(pilot, lambda: app._update_timer is None and app._shown_seq == app._asked_seq,
                    what="the last update to be drawn")
        settled = len(reads)
        await pilot.pause(0.1)
        assert len(reads) == settled  # the queue is drained: no backlog of reads
        assert 1 <= len(reads) <= 200, f"{len(reads)} reads for 1000 events"
        assert all(thread is not threading.main_thread() for thread in reads)  # the screen thread never waited
        assert shown == sorted(shown) and len(shown) <= len(reads)

        # still responsive: keys work and engine changes still show
        await pilot.press("down")
        await pilot.pause()
        assert app.selected_job_name == "consolidate"
        eng.run_job("decay")
        await until(pilot, lambda: row(jobs_table(app), "decay")["runs"] == "1", what="a refresh after the burst")


async def test_a_view_read_before_a_keys_own_refresh_is_not_drawn_over_it(eng):
    """A key redraws at once from a read on the screen thread; a view the reader thread was asked
    for before it holds older data and is dropped, so the screen never steps back."""
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        app._asked_seq += 1
        stale = app.read_view(app._view_ask(app._asked_seq))
        assert next(j for j in stale.jobs if j.name == "promote").enabled is True
        await pilot.press("space")  # promote off, drawn at once
        await pilot.pause()
        after_key = row(jobs_table(app), "promote")
        app.post_message(ViewRead(stale, None))
        await pilot.pause()
        assert eng.job("promote").enabled is False
        assert row(jobs_table(app), "promote") == after_key


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


async def test_a_new_run_in_the_history_scrolls_further_without_laying_the_screen_out(eng, monkeypatch):
    """The history's size is the layout's, not its rows': a new run updates its scrollbar in place
    instead of laying out and repainting the whole screen (~40 ms a run, bench/ui.py)."""
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        for _ in range(40):  # more runs than the table shows: it scrolls
            eng.run_job("promote")
        app.refresh_all()
        await pilot.pause()
        table = history_table(app)
        assert table.show_vertical_scrollbar and table.row_count == 40
        layouts = await count_layouts(pilot, monkeypatch)
        eng.run_job("promote")
        app.refresh_all()
        await pilot.pause()
        await pilot.pause()
        assert table.row_count == 41
        assert table.vertical_scrollbar.window_virtual_size == table.virtual_size.height == 41 + table.header_height
        assert layouts == []
        table.move_cursor(row=40)  # it scrolls to the new last row
        await pilot.pause()
        assert table.cursor_row == 40 and table.scroll_y == table.max_scroll_y > 0


async def test_a_wider_jobs_cell_keeps_the_layout_and_a_new_job_row_lays_it_out(eng, monkeypatch):
    """The jobs table's height follows its rows (height: auto), its width does not: a wider value
    widens its column without laying the whole screen out (12-40 ms, bench/ui.py); a new row does."""
    app = make_app(eng)
    async with running(app, (120, 40)) as pilot:  # room below the table's max-height for one more row
        await pilot.pause()
        table = jobs_table(app)
        layouts = await count_layouts(pilot, monkeypatch)
        width, height = table.virtual_size.width, table.size.height
        table.update_cell(row_keys(table)[0], column_keys(table)[-1], "x" * 40, update_width=True)
        await pilot.pause()
        await pilot.pause()
        assert table.virtual_size.width > width and not table.show_horizontal_scrollbar
        assert layouts == []
        table.add_row(*["y"] * len(table.columns), key="extra")
        await pilot.pause()
        await pilot.pause()
        assert layouts and table.size.height == height + 1


async def test_a_new_run_redraws_only_the_lines_that_changed_and_a_click_still_finds_its_row(eng, monkeypatch):
    """History lines are kept by row, not by y: a new run on top moves every row down one, and only the
    new row and the rows whose look changed (the cursor's) are drawn again, not every line on screen,
    from the first new run on (a moved row keeps its zebra stripe, so its kept line still fits). A kept
    line names the row it was drawn at, so a click reads its row from where it is."""
    from textual.widgets import DataTable

    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        for _ in range(30):
            eng.run_job("promote")
        app.refresh_all()
        await pilot.pause()
        table = history_table(app)
        table.focus()
        await pilot.press("down", "up")  # keys turn the mouse's hover highlight off
        await pilot.pause()
        drawn = []
        original = DataTable._render_line

        def counting(self, y, *args):
            if self is table:
                drawn.append(y)
            return original(self, y, *args)

        monkeypatch.setattr(DataTable, "_render_line", counting)
        eng.run_job("promote")
        app.refresh_all()
        await pilot.pause()
        await pilot.pause()
        visible = table.size.height - table.header_height
        assert table.row_count == 31 and visible > 10
        assert 1 <= len(drawn) <= 3, drawn  # the new row, the cursor's old and new row
        assert 0 not in drawn  # the header: its labels and widths are as they were
        # a click on the 6th row selects that row's run (its kept line was drawn two rows higher)
        keys = row_keys(table)
        await pilot.click(table, offset=(3, table.header_height + 5 + 1))  # +1: the table's top border
        await pilot.pause()
        assert table.cursor_row == 5 and app.history_table.selected_key == keys[5]


async def test_a_row_keeps_its_zebra_stripe_as_runs_arrive_above_it_and_go_below_it(eng, monkeypatch):
    """DataTable stripes rows by index: each new run on top moved every row to the other stripe, the whole
    table changing colour each second. A row now keeps its stripe, and neighbours still alternate: after
    new runs on top, after the oldest are trimmed below, and after a row inserted between two."""
    monkeypatch.setattr(HistoryTable, "MAX_ROWS", 12)
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        for _ in range(10):
            eng.run_job("promote")
        app.refresh_all()
        await pilot.pause()
        table = history_table(app)

        def backgrounds() -> dict[str, object]:
            keys = row_keys(table)
            colours = [table._get_row_style(i, table.rich_style).bgcolor for i in range(len(keys))]
            assert all(a != b for a, b in zip(colours, colours[1:])), colours  # neighbours alternate
            return dict(zip(keys, colours))

        first = backgrounds()
        assert len(first) == 10 and len(set(first.values())) == 2
        for runs in (1, 2, 3):  # 3, then 6 more rows than fit in MAX_ROWS: the oldest go
            for _ in range(runs):
                eng.run_job("promote")
            app.refresh_all()
            await pilot.pause()
            now = backgrounds()
            assert {key: now[key] for key in first if key in now} == {key: first[key] for key in now if key in first}
        assert table.row_count == 12 and len(set(now) & set(first)) == 6
        # a row sorted in between two (a run of another engine seen late): it and those below it restripe.
        # Its id is a whole number, as a run's is: the app's own refresh may sort the table meanwhile.
        eng.run_job("decay")  # ids are shared by all jobs: the next promote run's id leaves a gap below it
        eng.run_job("promote")
        app.refresh_all()
        await pilot.pause()
        backgrounds()
        between = int(row_keys(table)[0]) - 1
        assert int(row_keys(table)[1]) == between - 1
        table.add_row(str(between), *["x"] * (len(table.columns) - 1), key="between")
        table.sort("id", key=int, reverse=True)
        assert row_keys(table)[1] == "between"
        await pilot.pause()
        backgrounds()


async def test_frames_leave_no_strips_for_the_garbage_collector(eng, monkeypatch):
    """A full-width line drawn again each frame (the status line) left one self-referencing strip per
    frame, which only a full collection could free (tui/strips.py). Frames now leave no cyclic strip."""
    from textual.strip import Strip

    # Textual's own divide back in place (another test may have installed ours): the app must install it.
    monkeypatch.setattr(Strip, "divide", getattr(Strip.divide, "__wrapped__", Strip.divide))
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        status = app.screen.query_one("#status")
        divided = []
        original = Strip.divide

        def counting(self, cuts):
            divided.append(self)
            return original(self, cuts)

        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable goes to gc.garbage, not away
        Strip.divide = counting
        try:
            for _ in range(10):
                status.refresh()
                await pilot.pause()
            lines_cut = len(divided)
            divided.clear()  # drop the test's own references before collecting
            gc.collect()
            cyclic = [o for o in gc.garbage if isinstance(o, Strip)]
        finally:
            Strip.divide = original
            gc.set_debug(0)
            gc.garbage.clear()
        assert lines_cut >= 10  # each frame cut the status line at least
        assert cyclic == []


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


# -- 12. words: durations, run ids, the promotion chart, the palette -----------------------------

def add_run_ms(store, job: str, now_ts: float, duration_ms: float, result: dict, status: str = "success") -> int:
    """One finished run of ``job`` with an exact (fractional) duration, written with SQL."""
    with store.atomic():
        return store.execute(
            "INSERT INTO run (job, reason, started_at, finished_at, duration_ms, status, result, owner)"
            " VALUES (?, 'scheduled', ?, ?, ?, ?, ?, 'test')",
            (job, now_ts, now_ts + duration_ms / 1000, duration_ms, status, json.dumps(result)),
        ).lastrowid


async def test_durations_read_in_fitting_units_everywhere(eng, store, clock):
    """Sub-millisecond runs read '0.4 ms' (not '0 ms' or '0.4123ms'); longer ones in s and min."""
    now_ts = clock().timestamp()
    quick = add_run_ms(store, "decay", now_ts - 120, 0.4123, {"soft_deleted": 0, "hard_deleted": 0})
    slow = add_run_ms(store, "decay", now_ts - 60, 184_000.0, {"soft_deleted": 2, "hard_deleted": 0})
    with store.atomic():
        store.execute("UPDATE job_state SET runs = 2, last_run_at = ?, last_status = 'success',"
                      " last_duration_ms = 0.4123 WHERE name = 'decay'", (now_ts - 60,))
    app = make_app(eng)
    async with running(app, (140, 40)) as pilot:
        await pilot.pause()
        assert row(jobs_table(app), "decay")["duration"] == "0.4 ms"
        await select_job(pilot, "decay")
        history = history_table(app)
        assert row(history, str(quick))["duration"] == "0.4 ms"
        assert row(history, str(slow))["duration"] == "3 min 4 s"
        assert row(history, str(slow))["result"] == "soft-deleted 2 · hard-deleted 0"
        await pilot.press("enter")
        await pilot.pause()
        text = static_text(app.screen, "#details")
        assert "0.4 ms" in text and "3 min 4 s" in text
        assert "\n          soft-deleted 2 · hard-deleted 0\n" in text  # each result whole, under its run
        assert "took 0.4 ms" in text  # the last run's duration, beside its time
        assert "soft-deleted" in text and "soft_deleted" not in text  # totals in words too


async def test_a_result_that_wraps_in_the_details_stays_under_its_run(eng):
    run = eng.run_job("promote")
    app = make_app(eng)
    async with running(app, (80, 40)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        lines = drawn_lines(app.screen.query_one("#details"))
        [at] = [i for i, line in enumerate(lines) if line.split()[:2] == [str(run.id), "success"]]
        column = lines[at].index("success")
        result = at + 1
        assert lines[result].index("promoted") == column, lines[at:]
        rest = lines[result + 1]  # "promoted 0 · expired 0 · full pass (first run) · scored 0" wraps here
        assert rest.strip() and rest.index(rest.split()[0]) == column, lines[at:]


async def test_the_run_column_says_it_holds_run_ids(eng):
    """Runs of one job skip numbers (ids are shared by all jobs): the column says they are ids."""
    ids = [eng.run_job(name).id for name in ("promote", "decay", "promote")]
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        history = history_table(app)
        assert [str(c.label) for c in history.columns.values()][0] == "RUN ID"
        assert row_keys(history) == [str(ids[2]), str(ids[0])]  # 3 and 1: a gap, explained by the header
        await pilot.press("enter")
        await pilot.pause()
        assert re.search(r"run id\s+status\s+started\s+took\s+reason", static_text(app.screen, "#details"))


def chart_lines(app) -> list[str]:
    return str(app.screen.query_one("#stats-chart", PromotionChart).render()).splitlines()


async def test_the_promotion_chart_on_a_fresh_database_says_there_are_no_runs(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        lines = chart_lines(app)
        assert lines == ["promoted per run", "no promote runs yet"]
        assert "█" not in "".join(lines)


async def test_the_promotion_chart_draws_zeros_flat_and_is_scaled_to_its_top(eng, store, clock):
    now_ts = clock().timestamp()
    for i in range(3):
        add_run_ms(store, "promote", now_ts - 90 + 30 * i, 1.0, {"promoted": 0, "expired": 0})
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        lines = chart_lines(app)
        assert lines[0] == "promoted per run: all 0"
        assert [line.strip() for line in lines[1:4]] == ["", "", ""]  # no bars at all, let alone full ones
        assert set(lines[4].replace(" ", "")) == {"▔"}  # the baseline, under each run

        for count in (5, 10):
            add_run_ms(store, "promote", now_ts, 1.0, {"promoted": count, "expired": 0})
        app.refresh_all()
        await pilot.pause()
        lines = chart_lines(app)
        assert lines[0] == "promoted per run"
        room = len(lines[2])  # the bars' width; the scale is to the right of it
        assert lines[1][room:] == " 10" and lines[4][room:] == "  0"  # full height is 10, the baseline 0
        columns = ["".join(c) for c in zip(*(line[:room] for line in lines[1:4]))]  # each top to bottom
        bars = [c for i, c in enumerate(columns) if c.strip() and (i == 0 or c != columns[i - 1])]
        assert bars == [" ▄█", "███"]  # 5 is half the height of 10; the three 0s draw nothing
        assert lines[4][:room].split() == ["▔▔"] * 5  # but each of the 5 runs has its place on the baseline


async def test_the_palette_quit_says_it_waits_for_running_jobs(eng):
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        commands = list(app.get_system_commands(app.screen))
        [quit_command] = [c for c in commands if c.title == "Quit"]  # Textual's own is replaced, not doubled
        assert "as soon as possible" not in quit_command.help
        assert quit_command.help.startswith("stop the engine, waiting for running jobs (up to 5 s")
        assert quit_command.callback == app.action_quit
        titles = [c.title for c in commands]
        for _, action, _, text in MemtuiApp.KEYS:
            assert titles.count(text.split(": ", 1)[0]) == 1, action


async def test_the_stats_panel_says_paused_and_enabling_while_paused_says_when_it_runs(started):
    app = make_app(started)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        assert "schedule   every 30 s" in static_text(app.screen, "#stats-text")
        assert "short-term" in static_text(app.screen, "#stats-text")
        await pilot.press("p")
        await pilot.pause()
        assert "schedule   paused" in static_text(app.screen, "#stats-text")
        await select_job(pilot, "decay")
        await pilot.press("d", "e")
        await pilot.pause()
        assert notifications(app)[-1].message == (
            "decay: enabled; all jobs are paused, so it runs once you resume (p)")


async def test_open_details_follow_the_engine(eng):
    """Details left open do not go stale: a run that happens meanwhile shows in them."""
    app = make_app(eng)
    async with running(app, (120, 40)) as pilot:
        await pilot.pause()
        await select_job(pilot, "decay")
        await pilot.press("enter")
        await pilot.pause()
        assert "runs / errors 0 / 0" in static_text(app.screen, "#details")
        run = await asyncio.to_thread(eng.run_job, "decay")
        await until(pilot, lambda: "runs / errors 1 / 0" in static_text(app.screen, "#details"),
                    what="the details to show the new run")
        assert re.search(rf"\n  {run.id}\s+success", static_text(app.screen, "#details"))


async def test_a_long_database_path_gives_way_in_its_middle_to_the_model(eng):
    """At 80 columns a demo's path in /tmp pushed the model off the status line ("model:" and nothing)."""
    path = "/tmp/a-rather-long-folder-name-for-a-database/and-another-one/memtui.db"
    app = make_app(eng, db_label=path, model="openai/gpt-4o-mini")
    async with running(app, (80, 24)) as pilot:
        await pilot.pause()
        line = status_line(app)
        assert line.rstrip().endswith("model: openai/gpt-4o-mini") and len(line) <= 80
        shown = line.split("  model:")[0].split()[-1]
        start, cut, end = shown.partition("…")
        assert cut and end == "/memtui.db" and len(start) > 5 and path.startswith(start)
        await pilot.resize_terminal(160, 24)
        await pilot.pause()
        assert f"{path}  model: openai/gpt-4o-mini" in status_line(app)


async def test_a_narrow_footer_leaves_out_whole_keys_and_keeps_help_and_quit(eng):
    """At 80 columns the keys did not fit and the line was cut at "m Me": "? Help" (which lists every key)
    and "q Quit" were not to be seen. Whole keys are left out now, e/d first (space does both)."""
    app = make_app(eng)
    async with running(app, (80, 24)) as pilot:
        await pilot.pause()
        footer = app.screen.query_one(KeysFooter)
        line = footer.render().plain
        assert line.startswith("space On/off t Retime r Run p Pause m Memories ? Help q Quit ")
        assert line.rstrip().endswith("▏^p palette") and len(line) <= 80
        await pilot.resize_terminal(140, 24)
        await pilot.pause()
        assert footer.render().plain.startswith(
            "space On/off e Enable d Disable t Retime r Run x Cancel p Pause m Memories n Engines ? Help q Quit ")


async def test_a_narrow_runs_panel_leaves_out_reason_rather_than_run_past_its_edge(eng, store, clock):
    """In an 80-column terminal the runs panel is 46 columns wide: the columns ran past its edge, TOOK cut
    to "125 m" and RESULT gone. REASON is left out there (the details tell it), and comes back with room;
    a job's columns are made anew when another job is selected, so one job's widths never push another's."""
    add_run_ms(store, "promote", clock().timestamp(), 125.0, {"promoted": 67, "expired": 62, "deferred": 0})
    add_run_ms(store, "decay", clock().timestamp(), 2.5, {"soft_deleted": 49, "hard_deleted": 0})
    app = make_app(eng)
    async with running(app, (80, 24)) as pilot:
        await pilot.pause()
        history = history_table(app)
        for job in ("promote", "decay", "promote"):
            await select_job(pilot, job)
            await pilot.pause()
            assert "reason" not in column_keys(history) and history.virtual_size.width <= history.size.width
            cells = list(history._cells.values())[0]
            assert cells[column_keys(history).index("duration")] in ("125 ms", "2.5 ms")
        await pilot.resize_terminal(140, 24)
        await pilot.pause()
        assert "reason" in column_keys(history) and history.virtual_size.width <= history.size.width
        assert row_keys(history)  # the rows are there again, laid out anew


async def test_a_long_result_is_cut_with_an_ellipsis_to_the_room_there_is(eng, store, clock):
    """The history cannot scroll sideways: a result cut by the edge alone could read
    'best score 0' for 0.84, so it is cut, visibly, to fit, and shown whole when there is room."""
    result = {"promoted": 67, "expired": 62, "deferred": 1200, "top_score": 0.835}
    whole = "promoted 67 · expired 62 · deferred to the next run 1,200 · best score 0.84"
    run_id = add_run_ms(store, "promote", clock().timestamp(), 1.9, result)
    app = make_app(eng)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        history = history_table(app)
        cell = row(history, str(run_id))["result"]
        assert cell.endswith("…") and whole.startswith(cell[:-1])
        others = sum(c.get_render_width(history) for c in history.columns.values() if c.key.value != "result")
        assert others + len(cell) + 2 * history.cell_padding <= history.size.width
        # and the column itself fits: a column left wider than its cells runs past the edge, which then cuts
        # the results again, without their "…" (it stayed 80 wide, as cut before the first layout)
        assert history.virtual_size.width <= history.size.width

        await pilot.resize_terminal(180, 30)
        await pilot.pause()
        assert row(history, str(run_id))["result"] == whole

        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        cell = row(history, str(run_id))["result"]
        assert cell.endswith("…") and whole.startswith(cell[:-1]) and len(cell) <= history.result_width
        assert history.virtual_size.width <= history.size.width


# -- 13. run now while held -------------------------------------------------------------------

async def test_run_now_while_jobs_are_held_says_why_and_that_nothing_ran(started, monkeypatch):
    app = make_app(started)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await select_job(pilot, "decay")

        def held(name, source="api"):
            raise EngineError("jobs are held: the database file is gone")

        monkeypatch.setattr(started, "run_now", held)
        await pilot.press("r")
        await pilot.pause()
        toast = notifications(app)[-1]
        assert (toast.title, toast.severity) == ("nothing ran", "error")
        assert toast.message == "decay: jobs are held: the database file is gone"
        assert not any("starting now" in n.message for n in notifications(app))
        assert started.history("decay") == []


async def test_run_now_with_the_engine_holding_jobs_runs_nothing(started):
    app = make_app(started)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await select_job(pilot, "decay")
        assert row(jobs_table(app), "decay")["left"] == "1h"
        problem = ("/home/someone/.local/share/memtui/memtui.db: the database is read-only; jobs are held until"
                   " it can be written again")
        started._set_problem(problem)  # what the health check sets
        await until(pilot, lambda: "jobs held" in status_line(app), what="the held status")
        await pilot.pause(3 * app.tick_s)  # ticks pass: the countdowns must not start again
        # nothing counts down to a run that will not happen, and the reason is there whole
        assert {row(jobs_table(app), j.name)["left"] for j in started.jobs() if j.enabled} == {"held"}
        assert "schedule   held" in static_text(app.screen, "#stats-text")
        assert problem in status_line(app) and app.screen.query_one("#status").size.height >= 2
        await pilot.press("r")
        await pilot.pause()
        toast = notifications(app)[-1]
        assert toast.title == "nothing ran" and "the database is read-only" in toast.message
        assert not any("starting now" in n.message for n in notifications(app))
        assert started.history("decay") == []


async def test_a_failed_runs_toast_shows_its_error_as_written(started, monkeypatch):
    """Errors quote config sections and values in brackets; a toast must not read them as markup."""
    def explode():
        raise RuntimeError("[jobs.flaky] threshold: [bold]must be[/bold] at least 1")

    monkeypatch.setattr(f"{__name__}.explode_for_the_traceback", explode)
    app = make_app(started)
    async with running(app, (100, 30)) as pilot:
        await pilot.pause()
        await select_job(pilot, "flaky")
        await pilot.press("r")
        await until(pilot, lambda: any(n.title == "run failed" for n in notifications(app)), what="the toast")
        [toast] = [n for n in notifications(app) if n.title == "run failed"]
        assert toast.message == "flaky: failed — RuntimeError: [jobs.flaky] threshold: [bold]must be[/bold] at least 1"
        assert toast.markup is False
        assert all(n.markup is False for n in notifications(app))


# -- 14. the log file -------------------------------------------------------------------------

def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def log_file(tmp_path):
    log = LogFile(tmp_path / "state" / "log" / "memtui.log")
    yield log
    log.close()


async def test_the_log_file_gets_the_headless_line_for_each_run_and_change(started, log_file):
    old_umask = os.umask(0o022)  # the usual umask: files would be 0644
    try:
        log_file.follow(started)
        app = make_app(started, log_path=log_file.path)
        async with running(app, (100, 30)) as pilot:
            await pilot.pause()
            await select_job(pilot, "decay")
            await pilot.press("r")
            await until(pilot, lambda: any(r.status == "success" for r in started.history("decay")), what="the run")
            [run] = started.history("decay")
            await until(pilot, lambda: run_line(run) in log_file.path.read_text(), what="the run line in the log")
            await pilot.press("d")
            await until(pilot, lambda: "decay disabled (ui)" in log_file.path.read_text(), what="the change line")
            await pilot.press("question_mark")
            await pilot.pause()
            assert str(log_file.path) in static_text(app.screen, "#help")
    finally:
        os.umask(old_umask)
    text = log_file.path.read_text()
    assert "INFO memtui: decay run now (ui)" in text
    assert f"INFO memtui: {run_line(run)}" in text
    assert mode(log_file.path) == 0o600
    assert mode(log_file.path.parent) == 0o700 and mode(log_file.path.parent.parent) == 0o700


def test_the_log_file_rotates_and_every_file_is_owner_only(tmp_path):
    path = tmp_path / "memtui.log"
    path.write_text("left readable by an older version\n")
    path.chmod(0o644)
    old_umask = os.umask(0o022)
    handler = PrivateRotatingFileHandler(path, maxBytes=300, backupCount=2, encoding="utf-8")
    logger = logging.getLogger("memtui.test-rotation")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for i in range(40):
            logger.warning("line %d of a log that would grow without bound %s", i, "x" * 30)
    finally:
        logger.removeHandler(handler)
        handler.close()
        os.umask(old_umask)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["memtui.log", "memtui.log.1", "memtui.log.2"]  # bounded: 1 + 2 backups
    assert all(p.stat().st_size <= 300 for p in tmp_path.iterdir())
    assert {mode(p) for p in tmp_path.iterdir()} == {0o600}


def test_the_log_file_puts_the_loggers_back_when_closed(tmp_path):
    logger = logging.getLogger("memtui")
    before = (logger.level, logger.propagate, list(logger.handlers))
    log = LogFile(tmp_path / "memtui.log")
    assert logger.propagate is False and log.handler in logger.handlers
    log.close()
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_a_log_file_that_cannot_be_written_does_not_stop_the_dashboard(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be\n")
    log = LogFile(blocker / "memtui.log")
    try:
        assert log.path is None and "cannot write" in log.problem
        assert logging.getLogger("memtui").propagate is False  # still nothing onto the dashboard's screen
        logging.getLogger("memtui").warning("goes nowhere")
    finally:
        log.close()


# -- 15. --demo -------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["closed terminal", "kill"])
def test_a_closed_terminal_or_a_kill_quits_as_q_does_and_the_demo_folder_goes(tmp_path, sig):
    """``memtui --demo`` on a terminal of its own (a pty): SIGHUP (the terminal closed) or SIGTERM quits
    through the app, so the engine stops and the demo's temporary folder is removed; killed where it
    stood, it left the folder behind."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = dict(os.environ, TMPDIR=str(tmp_path), HOME=str(tmp_path / "home"), TERM="xterm-256color",
               XDG_STATE_HOME=str(tmp_path / "state"), XDG_DATA_HOME=str(tmp_path / "data"))
    proc = subprocess.Popen([sys.executable, "-m", "memtui", "--demo"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True,
                            # as a terminal leaves it, whatever this test run inherited (under nohup: ignored)
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    os.close(slave)
    drawn = bytearray()
    reader = threading.Thread(target=drain, args=(master, drawn), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60  # a bound for a slow machine, not a wait for a schedule
        while b"rollup-month" not in drawn and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"rollup-month" in drawn, bytes(drawn[-500:])  # the dashboard is up, its jobs on screen
        assert [p.name for p in tmp_path.glob("memtui-demo-*")]
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
        assert not list(tmp_path.glob("memtui-demo-*"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        os.close(master)


def drain(fd: int, into: bytearray) -> None:
    """Read a pty until its other end is gone, so the program on it never blocks on a full buffer."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the program on the terminal has exited
            return
        if not chunk:
            return
        into.extend(chunk)


def test_demo_first_runs_are_scheduled_runs_and_are_logged(kinds, tmp_path, monkeypatch):
    """--demo makes its jobs due instead of pressing run-now for them: the runs are 'scheduled',
    no audit row says someone asked for them, no 'run finished' toasts, and the log file has them: the
    demo's own, beside its database and gone with it, never the user's (whose lines name no database)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(logging.getLogger("memtui"), "handlers", [])
    names = ["promote", "decay", "consolidate", "rollup-day", "profile"]
    seen = {}

    def run(self):  # instead of taking over the terminal: wait for the demo's first runs, bounded
        for _ in range(400):
            runs = [r for r in self.engine.history(None, 100) if r.status != "running"]
            if {r.job for r in runs} >= set(names):
                break
            time.sleep(0.05)
        seen.update(runs=runs, audit=self.engine.audit_log(), log_path=self.log_path,
                    log_text=self.log_path.read_text(), log_mode=mode(self.log_path), db=self.engine.store.path)

    monkeypatch.setattr(MemtuiApp, "run", run)
    assert app_module.run_dashboard(Namespace(demo=True, db=None, config=None)) == 0
    firsts = {}
    for r in sorted(seen["runs"], key=lambda r: r.id):
        firsts.setdefault(r.job, r)
    assert set(firsts) >= set(names)
    assert {firsts[n].reason for n in names} == {"scheduled"}
    assert not [a for a in seen["audit"] if a.action == "run_now"]
    text = seen["log_text"]
    for name in names:
        assert f"INFO memtui: {name} " in text or f"WARNING memtui: {name} " in text, name
    assert seen["log_mode"] == 0o600
    assert seen["log_path"].parent == Path(seen["db"]).parent and not seen["log_path"].parent.exists()
    assert not list((tmp_path / "state").rglob("*.log"))  # the user's own log: untouched
    assert not any(isinstance(h, PrivateRotatingFileHandler) for h in logging.getLogger("memtui").handlers)
