"""The jobs table fits its columns to the width it has (issue 13, "no wasted width").

Driven through Pilot at 80, 100, 120 and 140 columns over a fixed story (the engine is
not started, the clock is fake, local time is UTC): every column that fits is shown, the
table never runs past its edge, and a schedule is cut, with "…" at a word's end, only when
the row has no room left for it. The checks read the table's columns and cells, never time.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from memtui.engine import Engine
from memtui.engine.config import Config
from memtui.tui.app import MemtuiApp
from memtui.tui.widgets import JobsTable

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("utc")]  # NEXT shows local times

MONTH = "at 03:00 on the first day of every month"  # rollup-month's default schedule, the longest


@pytest.fixture
def anyio_backend():
    return "asyncio"


def set_state(store, job, *, runs, errors, last_run, status, ms, backoff_until=None) -> None:
    with store.atomic():
        store.execute(
            "UPDATE job_state SET runs = ?, errors = ?, last_run_at = ?, last_status = ?, last_duration_ms = ?,"
            " backoff_until = ?, consecutive_failures = ? WHERE name = ?",
            (runs, errors, last_run.timestamp(), status, ms, backoff_until.timestamp() if backoff_until else None,
             1 if backoff_until else 0, job))


@pytest.fixture
def story(store, clock):
    """An engine (not started) whose jobs have run: promote often, consolidate skipped, decay failing
    and backing off (STATUS reads 'failed ⟲30s'), a second-long duration in TOOK."""
    engine = Engine(store, Config(), clock)
    now = clock()
    set_state(store, "promote", runs=7, errors=0, last_run=now - timedelta(seconds=30), status="success", ms=45)
    set_state(store, "consolidate", runs=1, errors=0, last_run=now - timedelta(minutes=10), status="skipped", ms=2)
    set_state(store, "decay", runs=2, errors=1, last_run=now - timedelta(hours=1), status="failed", ms=1500,
              backoff_until=now + timedelta(seconds=30))
    yield engine
    engine.stop(timeout=5)


def jobs_table(app) -> JobsTable:
    return app.query_one("#jobs", JobsTable)


def columns(table) -> list[str]:
    return [c.key.value for c in table.columns.values()]


def cell(table, job: str, column: str) -> str:
    return str(table.get_cell(job, column))


def widths(table) -> dict[str, int]:
    """Each column as the DataTable draws it: its widest cell (or label) plus padding."""
    return {c.key.value: c.get_render_width(table) for c in table.columns.values()}


def need(table, column: str) -> int:
    """How wide ``column`` would be drawn if it were shown: its widest cell or label, plus padding."""
    label = dict(JobsTable.COLUMNS + JobsTable.NARROW)[column]
    cells = [str(c[column]) for c in (JobsTable.cells(j, table._shown[1], 0) for j in table._shown[0])]
    return max(len(label), *map(len, cells)) + 2 * table.cell_padding


def assert_fitted(table: JobsTable) -> None:
    """No column runs past the edge; a schedule is cut only when the room left cannot hold it whole;
    NEXT is left out only when it would not fit even with the schedule at its shortest; TOOK, and
    runs and errors in columns of their own, only when they would not fit beside whole schedules."""
    room = table.scrollable_content_region.width
    drawn = widths(table)
    free = room - sum(drawn.values())
    assert free >= 0, f"the table needs {sum(drawn.values())} columns but has {room}: {drawn}"
    schedule_text = drawn["schedule"] - 2 * table.cell_padding
    jobs = table._shown[0]
    detailed = [job.schedule_detail or job.schedule_text for job in jobs]
    shown = [cell(table, job.name, "schedule") for job in jobs]
    if shown != detailed:  # the jitter ("…, up to 5 min later") is left out only when some job's would not fit
        assert schedule_text + free < max(map(len, detailed)), f"jitter left out with {free} columns free"
        assert not any(s == d != j.schedule_text for s, d, j in zip(shown, detailed, jobs)), "all or none"
    for job in jobs:
        shown = cell(table, job.name, "schedule")
        if shown not in (job.schedule_text, job.schedule_detail):
            assert shown.endswith("…") and job.schedule_text.startswith(shown[:-1].rstrip()), shown
            assert schedule_text + free < len(job.schedule_text), (
                f"{job.name}'s schedule is cut to {shown!r} while {free} columns are free")
    spare = free + schedule_text - min(len(MONTH), JobsTable.SCHEDULE_MIN)  # with the schedule at its shortest
    if "next" not in drawn:
        assert spare < need(table, "next"), f"NEXT is left out with {spare} columns to spare"
    if "duration" not in drawn:
        assert free < need(table, "duration"), f"TOOK is left out with {free} columns free"
    if "counts" in drawn:
        split = need(table, "runs") + need(table, "errors") - drawn["counts"]
        assert split > free, f"RUNS and ERR would fit in columns of their own: {free} columns free"


async def test_each_width_shows_every_column_that_fits_and_cuts_the_schedule_only_without_room(story):
    """The issue's own case: at 100 columns NEXT is shown and the month's schedule is read far past
    'at 03:00 on the f…'; the schedule's words come before TOOK and split counts."""
    expected = {
        # a schedule cut at a word's end leaves a column of its room: enough for RUNS and ERR to part
        80: (["name", "schedule", "left", "last", "status", "runs", "errors"], "at 03:00 on the…"),
        100: (["name", "schedule", "next", "left", "last", "status", "runs", "errors"], "at 03:00 on the first day…"),
        120: (["name", "schedule", "next", "left", "last", "status", "runs", "errors"], MONTH),
        140: (["name", "schedule", "next", "left", "last", "status", "duration", "runs", "errors"], MONTH),
        # room for every schedule with its jitter: NEXT at 01:04 no longer reads as a clock gone wrong
        160: (["name", "schedule", "next", "left", "last", "status", "duration", "runs", "errors"],
              MONTH + ", up to 5 min later"),
    }
    for width, (keys, month) in expected.items():
        app = MemtuiApp(story, db_label="demo.db")
        async with app.run_test(size=(width, 30)) as pilot:
            await pilot.pause()
            table = jobs_table(app)
            assert columns(table) == keys, width
            assert cell(table, "rollup-month", "schedule") == month, width
            jitter = ", up to 5 min later" if width >= 160 else ""
            assert cell(table, "rollup-day", "schedule") == "at 01:00 every day" + jitter
            assert cell(table, "promote", "schedule") == "every 30 s"  # no jitter: nothing added
            assert_fitted(table)
            app.exit()


async def test_a_resize_refits_the_columns_and_keeps_the_selected_job(story):
    app = MemtuiApp(story, db_label="demo.db")
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        table = jobs_table(app)
        table.move_cursor(row=table.get_row_index("decay"))
        await pilot.pause()
        seen = []
        for width in (100, 80, 120, 140, 90):
            await pilot.resize_terminal(width, 30)
            await pilot.pause()
            assert_fitted(table)
            assert app.selected_job_name == "decay", width
            seen.append(tuple(columns(table)))
        assert len(set(seen)) == 4  # 100 and 90 may share a layout; each other width has its own
        app.exit()


async def test_long_cells_take_room_from_the_schedule_and_give_it_back(story, store, clock):
    """A minutes-long duration, a backoff and six-digit counts widen their columns: the schedule
    gets shorter (or a column steps aside) instead of a column going past the edge; when the cells
    have been short again for JobsTable.HOLD, the room comes back (a DataTable column never narrows
    by itself)."""
    now = clock()
    for width in (100, 119, 120, 126, 140):
        set_state(store, "rollup-month", runs=0, errors=0, last_run=now, status="success", ms=2)
        app = MemtuiApp(story, db_label="demo.db")
        async with app.run_test(size=(width, 30)) as pilot:
            await pilot.pause()
            table = jobs_table(app)
            before = (columns(table), cell(table, "rollup-month", "schedule"))
            assert_fitted(table)

            set_state(store, "rollup-month", runs=123456, errors=678, last_run=now - timedelta(seconds=3599),
                      status="failed", ms=184_000.0, backoff_until=now + timedelta(seconds=3000))
            app.refresh_all()
            await pilot.pause()
            assert_fitted(table)
            counts = (cell(table, "rollup-month", "runs"), cell(table, "rollup-month", "errors")) \
                if "runs" in columns(table) else tuple(cell(table, "rollup-month", "counts").split("/"))
            assert counts == ("123456", "678")
            during = (columns(table), cell(table, "rollup-month", "schedule"))

            set_state(store, "rollup-month", runs=0, errors=0, last_run=now, status="success", ms=2)
            app.refresh_all()
            await pilot.pause()
            assert_fitted_or_held(table)
            # short again only just now: the room stays as the long cells had it
            assert (columns(table), cell(table, "rollup-month", "schedule")) == during, width

            clock.advance(JobsTable.HOLD + timedelta(seconds=1))  # the other rows' LAST and LEFT shorten too
            app.refresh_all()
            await pilot.pause()
            assert_fitted(table)
            assert set(before[0]) <= set(columns(table)), width
            assert len(cell(table, "rollup-month", "schedule")) >= len(before[1]), width
            clock.set(now)
            app.exit()


@pytest.mark.parametrize("width", [100, 110, 120, 130, 140])
async def test_a_cell_changing_width_back_and_forth_leaves_the_columns_alone(story, store, clock, width):
    """STATUS wider on alternate seconds (as "⠹ running" and "success" are with a job firing every
    second; here a backoff's "failed ⟲30s"): the room for the wider is held (JobsTable.HOLD), so the
    columns are not fitted again each time (RUNS and ERR in columns of their own or not, a schedule
    cut again), each time with every cell of the table drawn again."""
    # promote's cells are the widest of their columns; six-digit counts, as bench/ui.py's store has
    set_state(store, "decay", runs=2, errors=0, last_run=clock(), status="success", ms=3)
    app = MemtuiApp(story, db_label="demo.db")
    async with app.run_test(size=(width, 30)) as pilot:
        await pilot.pause()
        table = jobs_table(app)
        fits = []
        for second in range(12):
            clock.advance(seconds=1)
            failed = second % 2 == 0
            set_state(store, "promote", runs=100_000 + second, errors=0, last_run=clock(),
                      status="failed" if failed else "success", ms=12,
                      backoff_until=clock() + timedelta(seconds=30) if failed else None)
            app.refresh_all()
            await pilot.pause()
            assert_fitted_or_held(table)
            fit = (tuple(columns(table)), cell(table, "rollup-month", "schedule"))
            if not fits or fits[-1] != fit:
                fits.append(fit)
        assert len(fits) <= 2, fits  # the first fit, and at most one more as the wider STATUS arrives
        app.exit()


async def test_the_tick_does_not_rebuild_the_table(story, monkeypatch):
    """Refitting reads the cells on every tick; it rebuilds only when the fit changes (a rebuild
    re-adds every row and resets the scroll)."""
    app = MemtuiApp(story, db_label="demo.db")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        table = jobs_table(app)
        rebuilds = []
        monkeypatch.setattr(table, "reset", lambda *a, **k: rebuilds.append(a))
        for _ in range(3):
            app._tick()
        app.refresh_all()
        await pilot.pause()
        assert rebuilds == []
        app.exit()


def assert_fitted_or_held(table: JobsTable) -> None:
    """No column runs past the edge (a column may hold room for a wider cell it had within HOLD)."""
    assert sum(widths(table).values()) <= table.scrollable_content_region.width


@pytest.mark.parametrize("width, shown", [
    (40, MONTH),
    (41, MONTH),
    (39, "at 03:00 on the first day of every…"),
    (27, "at 03:00 on the first day…"),
    (18, "at 03:00 on the…"),
    (8, "at 03:0…"),  # no word's end in the second half: cut inside the word
])
def test_a_schedule_is_cut_at_a_words_end(width, shown):
    assert JobsTable._cut(MONTH, width) == shown
    assert len(shown) <= width


def add_run(store, job: str, started: float, duration_ms: float = 40.0) -> int:
    with store.atomic():
        return store.execute(
            "INSERT INTO run (job, reason, started_at, finished_at, duration_ms, status, result, owner)"
            " VALUES (?, 'scheduled', ?, ?, ?, 'success', ?, 'test') RETURNING id",
            (job, started, started + duration_ms / 1000, duration_ms, json.dumps({"promoted": 1})),
        ).fetchone()[0]


async def test_a_click_finds_its_row_after_new_runs_moved_every_row_down(story, store, clock):
    """A row's line is kept and shown again wherever the row moves, its meta still naming the row it
    was drawn at: a click reads its row from where it lands, so the row clicked is the row selected,
    not the one drawn there before."""
    now = clock().timestamp()
    ids = [add_run(store, "promote", now - 60 + i) for i in range(5)]
    app = MemtuiApp(story, db_label="demo.db")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        history = app.history_table
        assert [r.key.value for r in history.ordered_rows] == [str(i) for i in reversed(ids)]
        # two new runs: each row moves down two, keeping its zebra stripe, so its cells are reused
        newest = [add_run(store, "promote", now - 10), add_run(store, "promote", now - 5)]
        app.refresh_all()
        await pilot.pause()
        assert history.ordered_rows[0].key.value == str(newest[-1])
        # the border, the header, then rows 0 to 6: the line at row 3 was kept from row 1
        assert app.screen.get_style_at(history.region.x + 4, history.region.y + 2 + 3).meta.get("row") == 1
        await pilot.click("#history", offset=(4, 5))
        await pilot.pause()
        assert history.cursor_row == 3
        assert history.coordinate_to_cell_key(history.cursor_coordinate).row_key.value == str(ids[-2])
        app.exit()


async def test_a_scrollbar_takes_its_room_from_the_schedule(story):
    """24 lines leave the jobs table fewer rows than jobs: its scrollbar takes two columns, which
    come off the schedule rather than off the last column's edge."""
    app = MemtuiApp(story, db_label="demo.db")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = jobs_table(app)
        assert table.scrollable_content_region.width < table.size.width  # the scrollbar is there
        assert_fitted(table)
        app.exit()
