"""Screenshots of the dashboard compared with accepted SVGs (pytest-textual-snapshot).

Everything on screen is fixed: the FakeClock, the time zone (UTC), the database
label, and the run rows, written with SQL so durations are exact. The engine is not
started, so nothing changes while the screenshot is taken (the status line says
"engine stopped"); one view starts it paused, which fires nothing either.
Update the SVGs after an intended change with ``pytest --snapshot-update``.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from textual.widgets import Input

from memtui.engine import Engine
from memtui.engine.config import Config
from tests.factories import add_long_term, add_pending
from memtui.tui.app import MemtuiApp

pytestmark = pytest.mark.usefixtures("utc")  # times on screen are local: UTC, the same on every machine

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "engine/jobs/decay.py", line 42, in run\n'
    "    raise RuntimeError(\"disk full\")\n"
    "RuntimeError: disk full"
)


def add_run(store, job, started, *, status="success", reason="scheduled", duration_ms=120, result=None,
            error=None, traceback=None) -> int:
    ts = started.timestamp()
    return store.execute(
        "INSERT INTO run (job, reason, started_at, finished_at, duration_ms, status, result, error, traceback, owner)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'demo')",
        (job, reason, ts, ts + duration_ms / 1000, duration_ms, status, json.dumps(result or {}), error, traceback),
    ).lastrowid


def set_state(store, job, *, runs, errors, last_run, last_status, last_ms, totals=None, failures=0,
              backoff_until=None) -> None:
    store.execute(
        "UPDATE job_state SET runs = ?, errors = ?, last_run_at = ?, last_status = ?, last_duration_ms = ?,"
        " totals = ?, consecutive_failures = ?, backoff_until = ? WHERE name = ?",
        (runs, errors, last_run.timestamp(), last_status, last_ms, json.dumps(totals or {}, sort_keys=True),
         failures, backoff_until.timestamp() if backoff_until else None, job),
    )


@pytest.fixture
def seeded_engine(store, clock):
    """An engine (not started): its jittered jobs get the same first fire times on every run, as jitter
    is drawn from the job's name and the fire time (engine/schedule.py)."""
    engine = Engine(store, Config(), clock)
    yield engine
    engine.stop(timeout=5)


@pytest.fixture
def demo(seeded_engine, store, clock):
    """An engine over a database with a fixed story: promote busy, consolidate gated, decay failing."""
    engine = seeded_engine
    now = clock()
    with store.atomic():
        add_run(store, "promote", now - timedelta(minutes=5), reason="manual", duration_ms=38,
                result={"promoted": 0, "expired": 0, "top_score": None})
        promoted = [3, 0, 5, 2, 7, 1]
        for i, count in enumerate(promoted):
            add_run(store, "promote", now - timedelta(seconds=30 * (len(promoted) - i)), duration_ms=40 + i,
                    result={"promoted": count, "expired": i % 2, "top_score": 0.75})
        set_state(store, "promote", runs=7, errors=0, last_run=now - timedelta(seconds=30), last_status="success",
                  last_ms=45, totals={"expired": 3, "promoted": 18})
        add_run(store, "consolidate", now - timedelta(minutes=10), status="skipped", duration_ms=2,
                result={"gate": "session", "new_conversations": 1},
                error="session gate: 1 new conversation(s) since the last consolidation, needs 5")
        set_state(store, "consolidate", runs=1, errors=0, last_run=now - timedelta(minutes=10),
                  last_status="skipped", last_ms=2)
        add_run(store, "decay", now - timedelta(hours=2), duration_ms=310, result={"soft_deleted": 4, "hard_deleted": 1})
        add_run(store, "decay", now - timedelta(hours=1), status="failed", duration_ms=1500,
                error="RuntimeError: disk full", traceback=TRACEBACK)
        set_state(store, "decay", runs=2, errors=1, last_run=now - timedelta(hours=1), last_status="failed",
                  last_ms=1500, totals={"hard_deleted": 1, "soft_deleted": 4}, failures=1,
                  backoff_until=now + timedelta(seconds=30))
        for i in range(12):
            add_pending(store, now, content=f"pending {i}")
        for i in range(40):
            add_long_term(store, created=now - timedelta(days=i), content=f"long-term {i}")
    return engine


def app_for(engine) -> MemtuiApp:
    return MemtuiApp(engine, db_label="demo.db")


def test_main_view_100x30(snap_compare, demo):
    """Status line, every job, promote's history in words and the promotion stats with the
    promoted-per-run chart (scaled to its top count). A 100-column terminal gets the narrow
    layout (JobsTable.WIDE_AT is 120)."""
    assert snap_compare(app_for(demo), terminal_size=(100, 30))


def test_main_view_80x24(snap_compare, demo):
    """The narrow layout: no NEXT and TOOK columns, runs and errors in one column; every column fits."""
    assert snap_compare(app_for(demo), terminal_size=(80, 24))


def test_main_view_140x40_with_decay_selected(snap_compare, demo):
    """The wide layout, whole schedules at 140 columns; the failed job's history with its error."""
    assert snap_compare(app_for(demo), press=["down", "down"], terminal_size=(140, 40))


def test_main_view_started_paused(snap_compare, demo, store):
    """A running engine, paused: the status line says paused, enabled jobs show it; nothing fires."""
    demo.pause_all()
    demo.start()
    assert snap_compare(app_for(demo), terminal_size=(100, 30))


async def _open_retime_on_compact(pilot) -> None:
    table = pilot.app.query_one("#jobs")
    table.move_cursor(row=table.get_row_index("compact"))
    await pilot.pause()
    await pilot.press("t")
    await pilot.pause()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False  # a blinking cursor would make the screenshot depend on timing


def test_retime_modal(snap_compare, demo):
    """Prefilled with compact's cron spec; words and the next three fire times."""
    assert snap_compare(app_for(demo), terminal_size=(100, 30), run_before=_open_retime_on_compact)


def test_details_of_a_failed_job(snap_compare, demo):
    """Config, totals, the last error with its traceback, recent runs."""
    assert snap_compare(app_for(demo), press=["down", "down", "enter"], terminal_size=(100, 40))


def test_help(snap_compare, demo):
    assert snap_compare(app_for(demo), press=["question_mark"], terminal_size=(100, 30))
