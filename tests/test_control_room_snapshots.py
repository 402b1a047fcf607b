"""Screenshots of the control room compared with accepted SVGs: an attached dashboard, the engines
panel, and the memory view (pending, long-term, search, a memory's story).

The same fixed store as tests/test_dashboard_snapshots.py (FakeClock, UTC, fixed runs
and memories). The attached dashboard follows a headless engine "on worker-1" that is
a registered row with a fresh heartbeat: nothing runs, so nothing moves. Update the
SVGs after an intended change with ``pytest --snapshot-update``.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from textual.widgets import Input

from tests.test_dashboard_snapshots import app_for, demo, seeded_engine  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("utc")  # times on screen are local: UTC (tests/conftest.py)

HEADLESS = "worker-1:4242:5f3a9c1e"


@pytest.fixture
def attached(demo, store, clock):
    """The demo engine attached to a headless engine on another host, heard from 4 s ago."""
    now = clock()
    store.m.EngineInstance.insert(id=HEADLESS, host="worker-1", pid=4242, version="0.5.0",
                                  started_at=(now - timedelta(days=1)).timestamp(),
                                  heartbeat_at=(now - timedelta(seconds=4)).timestamp()).execute()
    demo.attach()
    return demo


def test_attached_status(snap_compare, attached):
    """The status line names the engine serving the store; the footer has no "start engine" key."""
    assert snap_compare(app_for(attached), terminal_size=(120, 30))


def test_engines_panel(snap_compare, attached):
    assert snap_compare(app_for(attached), press=["n"], terminal_size=(120, 30))


def test_memory_view_pending(snap_compare, demo):
    """Pending memories by score with the four terms, the distance to the threshold, the expiry."""
    assert snap_compare(app_for(demo), press=["m"], terminal_size=(120, 30))


def test_memory_view_long_term(snap_compare, demo):
    """Long-term memories soonest to retire first, with retention now and the retirement date."""
    assert snap_compare(app_for(demo), press=["m", "2"], terminal_size=(120, 30))


async def _search_long(pilot) -> None:
    await pilot.press("m")
    await pilot.pause()
    await pilot.press("slash")
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False  # a blinking cursor would make the screenshot depend on timing
    await pilot.press(*"long-term 1", "enter")
    for _ in range(200):  # a search slower than the screen's 50 ms wait finishes on the view's thread
        if not pilot.app.screen.searching:
            break
        await pilot.pause(0.05)
    await pilot.pause()


def test_memory_view_search(snap_compare, demo):
    assert snap_compare(app_for(demo), terminal_size=(120, 30), run_before=_search_long)


def test_memory_story(snap_compare, demo):
    """enter on a pending memory: its score term by term, the threshold, when it expires."""
    assert snap_compare(app_for(demo), press=["m", "enter"], terminal_size=(120, 36))
