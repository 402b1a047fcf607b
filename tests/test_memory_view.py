"""The memory view (``m``): pending and long-term memories a page at a time, search, story, pin, forget, keep.

Driven through Pilot on the dashboard, on SQLite and on PostgreSQL, with a
FakeClock: what the tables show is checked against ``memtui why``'s numbers
(``Engine.story``) and against the database; each key's effect is checked in the
database, with its audit row. The engine is not started: nothing fires on its
own, and every change is applied by the call that makes it.
"""
from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from textual.widgets import Static

from memtui.engine import Engine, EngineError
from memtui.engine.agent import Memory
from memtui.engine.browse import Cursor
from memtui.engine.config import Config, EngineSettings
from memtui.engine.jobs.promote import seen_mark
from memtui.engine.report import change_line, event_logger
from memtui.engine.story import describe
from memtui.tui.app import MemtuiApp
from memtui.tui.memories import MemoryScreen, MemoryTable, ResultsTable, StoryScreen, _until
from memtui.tui.widgets import KeysFooter
from tests.factories import add_long_term, add_pending

pytestmark = [pytest.mark.anyio, pytest.mark.both_backends]

SIZE = (160, 40)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def eng(store, clock):
    engine = Engine(store, Config(engine=EngineSettings(poll_interval_s=60.0, stop_timeout_s=5.0)), clock)
    yield engine
    engine.stop(timeout=5)


def opens_with_m() -> bool:
    return any(getattr(binding, "key", None) == "m" for binding in MemtuiApp.BINDINGS)


@asynccontextmanager
async def memory_view(engine, size=SIZE):
    """The dashboard with the memory view open: (pilot, the MemoryScreen)."""
    app = MemtuiApp(engine, db_label="test.db")
    async with app.run_test(size=size) as pilot:
        try:
            await pilot.pause()
            if opens_with_m():
                await pilot.press("m")
            else:  # until the jobs view binds m
                app.push_screen(MemoryScreen(engine))
            await pilot.pause()
            assert isinstance(app.screen, MemoryScreen)
            yield pilot, app.screen
        finally:
            if app.is_running:
                app.exit()


async def searched(pilot, view) -> None:
    """Wait for the search thread's answer to be shown: short pilot pauses, bounded (never a fixed sleep)."""
    for _ in range(200):
        if not view.searching:
            return
        await pilot.pause(0.02)
    assert not view.searching, "the search did not come back"


def keys(table: MemoryTable) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


def cell(table: MemoryTable, key, column: str) -> str:
    return table.part(str(key), column)


def run(engine, job: str = "promote") -> dict:
    info = engine.run_job(job)
    assert info.status == "success", info.error
    return info.result


def pending_order(store) -> list[int]:
    """Not scored yet first (newest first), then by stored score, highest first (ties: newest first)."""
    rows = store.execute("SELECT id, last_score FROM pending_memory").fetchall()
    return [i for i, _ in sorted(rows, key=lambda r: (r[1] is not None, -(r[1] or 0.0), -r[0]))]


def long_term_order(store, retired: bool = False) -> list[int]:
    """By retire_at, soonest first, then the pinned ones by id; with ``retired``, then the faded and
    forgotten ones, the latest first, and the merged and replaced ones by what stands for them."""
    rows = store.execute("SELECT id, retire_at, deleted_at, superseded_by, pinned FROM long_term_memory").fetchall()
    retiring = sorted((r for r in rows if r[1] is not None), key=lambda r: (r[1], r[0]))
    pinned = sorted((r for r in rows if r[4] and r[2] is None and r[3] is None), key=lambda r: r[0])
    order = retiring + pinned
    if retired:
        order += sorted((r for r in rows if r[2] is not None), key=lambda r: (-r[2], -r[0]))
        order += sorted((r for r in rows if r[3] is not None and r[2] is None), key=lambda r: (r[3], r[0]))
    assert len(order) == len({r[0] for r in order})
    return [r[0] for r in order]


def audit_rows(store) -> list[tuple]:
    return [tuple(r) for r in store.execute(
        "SELECT action, job, old_value, new_value, source FROM audit_log ORDER BY id").fetchall()]


def some_pending(engine, clock) -> dict[str, int]:
    """Scored memories of different scores (one qualifies and is promoted), then, later, a new one and a
    used one: the view's every kind of pending row."""
    ids = {
        "low": engine.remember("a passing remark about the weather", importance=2, confidence=0.2),
        "mid": engine.remember("alice takes the train on tuesdays", importance=8, confidence=0.5),
        "high": engine.remember("alice prefers aisle seats", importance=5, confidence=0.9),
        "tie": engine.remember("bob prefers window seats", importance=5, confidence=0.9),
        "qualifies": engine.remember("alice is allergic to peanuts", importance=10, confidence=0.7),
    }
    clock.advance(minutes=1)
    assert run(engine)["promoted"] == 1
    clock.advance(hours=2)
    ids["new"] = engine.remember("[bold]carol[/bold] starts on monday", importance=3, confidence=0.4, sender="bob")
    engine.record_access(ids["mid"])
    return ids


# -- pending --------------------------------------------------------------------------------------


async def test_pending_shows_memories_by_stored_score_with_the_terms_of_why(eng, store, clock):
    ids = some_pending(eng, clock)
    async with memory_view(eng) as (pilot, view):
        table = view.table("pending")
        expected = pending_order(store)
        assert keys(table) == [str(i) for i in expected]
        # A new memory has its score stored at once (its score then): placed by it, not first.
        assert keys(table).index(str(ids["new"])) > keys(table).index(str(ids["high"]))
        assert str(ids["qualifies"]) not in keys(table)  # promoted: no longer pending
        now = clock()
        for name in ("low", "mid", "high", "tie", "new"):
            story = eng.story(ids[name])
            key = ids[name]
            assert cell(table, key, "score") == f"{story.score:.3f}"
            assert cell(table, key, "gap") == f"{story.score - story.threshold:+.3f}"
            assert cell(table, key, "terms") == " ".join(
                f"{story.terms[term]:.2f}" for term in ("recency", "frequency", "confidence", "importance"))
            assert cell(table, key, "expires") == _until(story.expires, now)
        stored_new = store.execute("SELECT last_score FROM pending_memory WHERE id = ?", (ids["new"],)).fetchone()[0]
        assert cell(table, ids["new"], "stored") == f"{stored_new:.3f} ↻"  # new since the last run
        assert stored_new == pytest.approx(eng.story(ids["new"]).score, abs=1e-9)
        # A memory is shown as written, after its sender: never read as markup.
        assert cell(table, ids["new"], "content") == "bob · [bold]carol[/bold] starts on monday"
        stored_mid = store.execute("SELECT last_score FROM pending_memory WHERE id = ?", (ids["mid"],)).fetchone()[0]
        assert cell(table, ids["mid"], "stored") == f"{stored_mid:.3f} ↻"  # used since the last run
        assert stored_mid == pytest.approx(eng.story(ids["mid"]).score, abs=1e-9)  # the score at that use
        # The stored score is an upper bound: two hours of recency lost since it was stored.
        stored_low = store.execute("SELECT last_score FROM pending_memory WHERE id = ?", (ids["low"],)).fetchone()[0]
        assert stored_low > eng.story(ids["low"]).score
        note = str(view.query_one("#memory-note", Static).render())
        assert "upper bound" in note and "computed now" in note


async def test_a_promote_run_reads_the_shown_rows_again_keeping_the_cursor_on_its_memory(eng, store, clock):
    ids = some_pending(eng, clock)
    async with memory_view(eng) as (pilot, view):
        table = view.table("pending")
        table.move_cursor(row=table.get_row_index(str(ids["high"])))
        added = eng.remember("dave writes in the morning", importance=4, confidence=0.4)
        await pilot.pause()
        assert str(added) not in keys(table)  # nothing told the view yet
        clock.advance(minutes=1)
        run(eng)  # run_finished: the view reads its rows again
        await pilot.pause()
        assert keys(table) == [str(i) for i in pending_order(store)]
        assert str(added) in keys(table) and not cell(table, added, "stored").endswith("↻")
        assert table.selected_key == str(ids["high"])


async def test_k_keeps_a_pending_memory_and_the_next_run_promotes_it_pinned(eng, store, clock):
    ids = some_pending(eng, clock)
    async with memory_view(eng) as (pilot, view):
        table = view.table("pending")
        table.move_cursor(row=table.get_row_index(str(ids["low"])))
        await pilot.press("k")
        await pilot.pause()
        assert store.execute("SELECT remember, changed > ? FROM pending_memory WHERE id = ?",
                             (seen_mark(store), ids["low"])).fetchone() in ((1, 1), (True, True))
        assert audit_rows(store)[-1] == ("keep", None, None, f"pending:{ids['low']}", "ui")
        assert cell(table, ids["low"], "gap") == "kept"
        await pilot.press("k")  # kept already: nothing written
        await pilot.pause()
        assert [r[0] for r in audit_rows(store)].count("keep") == 1
        clock.advance(minutes=1)
        run(eng)
        await pilot.pause()
        assert str(ids["low"]) not in keys(table)
        pinned = store.execute("SELECT pinned FROM long_term_memory WHERE source_pending_id = ?",
                               (ids["low"],)).fetchone()[0]
        assert pinned in (1, True)


async def test_f_twice_forgets_a_pending_memory_once_with_its_audit_and_history_rows(eng, store, clock):
    ids = some_pending(eng, clock)
    async with memory_view(eng) as (pilot, view):
        table = view.table("pending")
        table.move_cursor(row=table.get_row_index(str(ids["tie"])))
        await pilot.press("f")  # asks first: a pending memory is deleted, not restorable
        await pilot.pause()
        assert str(ids["tie"]) in keys(table) and not [r for r in audit_rows(store) if r[0] == "forget"]
        await pilot.press("down", "up")  # moving away takes the question back
        await pilot.press("f")
        await pilot.pause()
        assert str(ids["tie"]) in keys(table)
        await pilot.press("f")
        await pilot.pause()
        assert store.execute("SELECT count(*) FROM pending_memory WHERE id = ?", (ids["tie"],)).fetchone()[0] == 0
        assert str(ids["tie"]) not in keys(table)
        assert audit_rows(store)[-1] == ("forget", None, None, f"pending:{ids['tie']}", "ui")
        assert store.execute("SELECT action, reason FROM memory_history WHERE tier = 'pending' AND memory_id = ?",
                             (ids["tie"],)).fetchone() == ("expire", "forgotten on request (ui)")
        assert isinstance(view.app.screen, MemoryScreen)


# -- long-term ----------------------------------------------------------------------------------------


def some_long_term(store, clock) -> dict[str, int]:
    now = clock()
    return {
        "fading": add_long_term(store, created=now - timedelta(days=200), reinforced=now - timedelta(days=150),
                                importance=2, content="the old printer code"),
        "strong": add_long_term(store, created=now - timedelta(days=30), importance=9, recalls=4,
                                content="alice's birthday is in may"),
        "young": add_long_term(store, created=now - timedelta(days=1), importance=0, content="a new acquaintance"),
        "pinned": add_long_term(store, created=now - timedelta(days=90), importance=5, pinned=True,
                                content="alice's passport number is on file"),
        "middle": add_long_term(store, created=now - timedelta(days=60), reinforced=now - timedelta(days=20),
                                importance=5, recalls=1, content="bob drinks oat milk"),
    }


async def test_long_term_by_retirement_soonest_first_with_retention_and_dates_of_why(eng, store, clock):
    ids = some_long_term(store, clock)
    async with memory_view(eng) as (pilot, view):
        await pilot.press("2")
        await pilot.pause()
        table = view.table("long-term")
        assert view.mode == "long-term" and table.has_focus
        assert keys(table) == [str(i) for i in long_term_order(store)]
        assert keys(table)[-1] == str(ids["pinned"])  # never retires: after every one that does
        now = clock()
        for name, key in ids.items():
            story = eng.story(key, long_term=True)
            assert cell(table, key, "retention") == f"{story.retention:.2f}"
            assert cell(table, key, "recalls") == str(story.recalls)
            assert cell(table, key, "retires") == ("never: pinned" if story.pinned else _until(story.retires, now))
        # The young memory retires no sooner than decay's minimum age allows, as why says.
        assert eng.story(ids["young"], long_term=True).retires >= now + timedelta(days=6)


async def test_p_pins_and_unpins_a_long_term_memory_with_ui_audit_rows(eng, store, clock, caplog):
    ids = some_long_term(store, clock)
    eng.subscribe(event_logger(logging.getLogger("memtui.test")))  # the log --no-ui and the log file write
    caplog.set_level(logging.INFO, logger="memtui.test")
    async with memory_view(eng) as (pilot, view):
        await pilot.press("2")
        await pilot.pause()
        table = view.table("long-term")
        table.move_cursor(row=table.get_row_index(str(ids["fading"])))
        await pilot.press("p")
        await pilot.pause()
        pinned, retire_at = store.execute("SELECT pinned, retire_at FROM long_term_memory WHERE id = ?",
                                          (ids["fading"],)).fetchone()
        assert pinned in (1, True) and retire_at is None
        assert audit_rows(store)[-1] == ("pin", None, None, f"long_term:{ids['fading']}", "ui")
        assert cell(table, ids["fading"], "retires") == "never: pinned"
        assert table.selected_key == str(ids["fading"])  # moved down among the pinned, followed
        await pilot.press("p")
        await pilot.pause()
        assert store.execute("SELECT pinned FROM long_term_memory WHERE id = ?",
                             (ids["fading"],)).fetchone()[0] in (0, False)
        assert audit_rows(store)[-1] == ("unpin", None, None, f"long_term:{ids['fading']}", "ui")
        assert keys(table) == [str(i) for i in long_term_order(store)]
        # The log line of each change (an audit row with no job) names the memory, not "all jobs".
        for entry in eng.audit_log(2):
            assert f"long_term:{ids['fading']}" in change_line(entry) and not change_line(entry).startswith("all")
        logged = [r.getMessage() for r in caplog.records if r.name == "memtui.test"]
        assert logged == [change_line(entry) for entry in reversed(eng.audit_log(2))]
        assert all(line.endswith("(ui)") for line in logged)


async def test_f_forgets_a_long_term_memory_restorably_and_r_shows_it_with_the_merged_ones(eng, store, clock):
    ids = some_long_term(store, clock)
    now = clock().timestamp()
    with store.atomic():  # as the dedupe job leaves them: one merged into another, one faded by decay
        store.execute("UPDATE long_term_memory SET superseded_by = ?, superseded_at = ? WHERE id = ?",
                      (ids["strong"], now, ids["middle"]))
        store.execute("UPDATE long_term_memory SET deleted_at = ? WHERE id = ?", (now, ids["young"]))
    async with memory_view(eng) as (pilot, view):
        await pilot.press("2")
        await pilot.pause()
        table = view.table("long-term")
        assert str(ids["middle"]) not in keys(table) and str(ids["young"]) not in keys(table)
        table.move_cursor(row=table.get_row_index(str(ids["pinned"])))
        await pilot.press("f")  # long-term: soft-deleted and unpinned at once (restorable)
        await pilot.pause()
        deleted_at, pinned = store.execute("SELECT deleted_at, pinned FROM long_term_memory WHERE id = ?",
                                           (ids["pinned"],)).fetchone()
        assert deleted_at is not None and pinned in (0, False)
        assert audit_rows(store)[-1] == ("forget", None, None, f"long_term:{ids['pinned']}", "ui")
        assert str(ids["pinned"]) not in keys(table)
        await pilot.press("r")  # the retired ones too
        await pilot.pause()
        assert keys(table) == [str(i) for i in long_term_order(store, retired=True)]
        assert cell(table, ids["middle"], "retires") == f"merged → #{ids['strong']}"
        assert cell(table, ids["young"], "retires") == "faded"
        assert cell(table, ids["pinned"], "retires") == "forgotten"
        await pilot.press("r")
        await pilot.pause()
        assert keys(table) == [str(i) for i in long_term_order(store)]
    eng.reinforce(ids["pinned"])  # a recall restores what was forgotten
    assert store.execute("SELECT deleted_at FROM long_term_memory WHERE id = ?",
                         (ids["pinned"],)).fetchone()[0] is None


async def test_pin_refuses_a_memory_merged_into_another_and_says_why(eng, store, clock):
    ids = some_long_term(store, clock)
    store.execute("UPDATE long_term_memory SET superseded_by = ? WHERE id = ?", (ids["strong"], ids["middle"]))
    with pytest.raises(EngineError, match=f"merged into or replaced by #{ids['strong']}"):
        eng.pin(ids["middle"], source="ui")
    with pytest.raises(EngineError, match="no long-term memory with id 999"):
        eng.pin(999)
    with pytest.raises(EngineError, match="whole number"):
        eng.forget_memory("12")
    assert not [r for r in audit_rows(store) if r[0] in ("pin", "forget")]


# -- paging ---------------------------------------------------------------------------------------


async def test_the_next_page_is_read_by_key_as_the_cursor_nears_the_end(eng, store, clock, monkeypatch):
    monkeypatch.setattr(MemoryScreen, "PAGE", 10)
    monkeypatch.setattr(MemoryTable, "MORE_WITHIN", 3)
    for i in range(24):  # ties: four memories of each score
        add_pending(store, clock(), content=f"note {i}", importance=i // 4, confidence=0.5)
    run(eng)
    for i in range(4):
        eng.remember(f"newer {i}")
    expected = [str(i) for i in pending_order(store)]
    reads = []
    real = eng.pending_page
    monkeypatch.setattr(eng, "pending_page", lambda after=None, limit=100: reads.append((after, limit)) or
                        real(after, limit))
    async with memory_view(eng) as (pilot, view):
        table = view.table("pending")
        assert keys(table) == expected[:10] and reads == [(None, 10)]
        await pilot.press(*["down"] * 6)
        await pilot.pause()
        assert keys(table) == expected[:10]  # 4 rows below the cursor: not yet
        await pilot.press("down")
        await pilot.pause()
        assert keys(table) == expected[:20]
        last = store.execute("SELECT id, last_score FROM pending_memory WHERE id = ?",
                             (int(expected[9]),)).fetchone()
        assert reads[-1] == (Cursor(1, last[1], last[0]), 10)  # from the tenth row's key, not an offset
        await pilot.press(*["down"] * 20)
        await pilot.pause()
        assert keys(table) == expected and table.exhausted
        assert "all shown" in str(table.border_subtitle)
        await pilot.press("home")
        await pilot.pause()
        assert table.cursor_row == 0 and table.selected_key == expected[0]
        await pilot.press("end")
        await pilot.pause()
        assert table.selected_key == expected[-1]


async def test_end_goes_to_the_last_row_read_and_that_reads_the_next_page(eng, store, clock, monkeypatch):
    monkeypatch.setattr(MemoryScreen, "PAGE", 10)
    monkeypatch.setattr(MemoryTable, "MORE_WITHIN", 3)
    for i in range(24):
        add_pending(store, clock(), content=f"note {i}", importance=i // 4, confidence=0.5)
    run(eng)
    expected = [str(i) for i in pending_order(store)]
    async with memory_view(eng) as (pilot, view):
        table = view.table("pending")
        assert keys(table) == expected[:10]
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_row == 9 and table.selected_key == expected[9]
        assert keys(table) == expected[:20]  # near the end now: the next page was read below it
        await pilot.press("home")
        await pilot.pause()
        assert table.cursor_row == 0


def test_pages_by_key_cover_every_memory_once_across_ties_and_both_runs_of_each_order(eng, store, clock):
    for i in range(13):
        add_pending(store, clock(), content=f"note {i}", importance=i % 3, confidence=0.5)
    run(eng)
    for i in range(4):
        eng.remember(f"newer {i}")
    now = clock()
    lt = [add_long_term(store, created=now - timedelta(days=40), reinforced=now - timedelta(days=i % 4),
                        importance=5, pinned=i % 4 == 0, content=f"lt {i}") for i in range(18)]
    # The runs only `r` shows, with ties across page ends: faded at one time (decay's batch) and at another,
    # merged into one memory and into another.
    with store.atomic():
        for memory_id, faded in ((lt[1], 1), (lt[2], 1), (lt[3], 1), (lt[5], 2), (lt[6], 1)):
            store.execute("UPDATE long_term_memory SET deleted_at = ? WHERE id = ?",
                          (now.timestamp() - faded * 3600, memory_id))
        for memory_id, into in ((lt[9], lt[17]), (lt[10], lt[17]), (lt[11], lt[17]), (lt[13], lt[16])):
            store.execute("UPDATE long_term_memory SET superseded_by = ?, superseded_at = ? WHERE id = ?",
                          (into, now.timestamp(), memory_id))

    def every(read) -> list[int]:
        out, after = [], None
        while True:
            page = read(after)
            assert len(page.rows) <= 3
            out.extend(row.id for row in page.rows)
            if page.next is None:
                return out
            after = page.next

    assert every(lambda after: eng.pending_page(after, 3)) == pending_order(store)
    assert every(lambda after: eng.long_term_page(after, 3)) == long_term_order(store)
    assert every(lambda after: eng.long_term_page(after, 3, retired=True)) == long_term_order(store, retired=True)
    with pytest.raises(EngineError, match="at least one row"):
        eng.pending_page(limit=0)


# -- search and story -----------------------------------------------------------------------------------


async def test_search_ranks_as_recall_does_reinforces_nothing_and_enter_tells_the_story(eng, store, clock):
    for importance, text in ((3, "alice prefers aisle seats"), (9, "aisle seats for bob too"),
                             (6, "alice likes the aisle"), (5, "nothing to see here")):
        eng.remember(text, importance=importance, confidence=0.95 if importance == 9 else 0.5)
    clock.advance(minutes=1)
    assert run(eng)["promoted"] == 1  # one hit is long-term, the others pending
    before = store.execute("SELECT id, access_count FROM pending_memory ORDER BY id").fetchall(), \
        store.execute("SELECT id, recall_count FROM long_term_memory ORDER BY id").fetchall()
    expected = [f"{hit.tier}:{hit.id}" for hit in Memory(store, clock).recall("AISLE", reinforce=False)]
    assert len(expected) == 3
    async with memory_view(eng) as (pilot, view):
        await pilot.press("slash")
        await pilot.press(*"AISLE")
        await pilot.press("enter")
        await searched(pilot, view)
        table = view.table("results")
        assert view.mode == "results" and table.has_focus
        assert keys(table) == expected
        assert (store.execute("SELECT id, access_count FROM pending_memory ORDER BY id").fetchall(),
                store.execute("SELECT id, recall_count FROM long_term_memory ORDER BY id").fetchall()) == before
        await pilot.press("enter")  # the top hit's story
        await pilot.pause()
        assert isinstance(view.app.screen, StoryScreen)
        tier, memory_id = expected[0].split(":")
        told = str(view.app.screen.query_one("#story", Static).render())
        for line in describe(eng.story(int(memory_id), long_term=tier == "long_term")):
            assert line in told
        await pilot.press("escape")
        await pilot.pause()
        assert view.app.screen is view


async def test_the_hits_past_the_first_become_rows_as_the_cursor_nears_them_in_rank_order(eng, store, clock,
                                                                                         monkeypatch):
    monkeypatch.setattr(ResultsTable, "SHOWN_FIRST", 4)
    monkeypatch.setattr(MemoryTable, "MORE_WITHIN", 2)
    for i in range(9):
        eng.remember(f"window seat request {i}", importance=1 + i % 5)
    expected = [f"{hit.tier}:{hit.id}" for hit in Memory(store, clock).recall("window", reinforce=False)]
    assert len(expected) == 9
    async with memory_view(eng) as (pilot, view):
        await pilot.press("slash", *"window", "enter")
        await searched(pilot, view)
        table = view.table("results")
        assert keys(table) == expected[:4] and "9 found" in str(table.border_subtitle)
        await pilot.press("down", "down")
        await pilot.pause()
        assert keys(table) == expected  # the rest, once, in rank order
        await pilot.press("slash", *" seat", "enter")  # a new search starts over from its own first hits
        await searched(pilot, view)
        again = [f"{hit.tier}:{hit.id}" for hit in Memory(store, clock).recall("window seat", reinforce=False)]
        assert keys(table) == again[:4] and "9 found" in str(table.border_subtitle)


async def test_enter_on_a_pending_row_opens_the_same_story_as_why(eng, store, clock):
    ids = some_pending(eng, clock)
    async with memory_view(eng) as (pilot, view):
        table = view.table("pending")
        table.move_cursor(row=table.get_row_index(str(ids["mid"])))
        await pilot.press("enter")
        await pilot.pause()
        told = str(view.app.screen.query_one("#story", Static).render())
        assert describe(eng.story(ids["mid"]))[0] in told and "score now" in told


async def test_escape_leaves_the_search_box_then_the_view(eng, store, clock):
    async with memory_view(eng) as (pilot, view):
        await pilot.press("slash")
        await pilot.press(*"m")  # typed into the box, not taken for the key that leaves
        await pilot.pause()
        assert view.app.screen is view
        await pilot.press("escape")
        await pilot.pause()
        assert view.app.screen is view and view.current.has_focus
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(view.app.screen, MemoryScreen)


async def test_the_footer_follows_the_focus_without_mounting_and_a_click_on_a_key_presses_it(eng, store, clock):
    """KeysFooter: the search box takes the letter keys, so the footer drops them while it has the focus
    and shows them again after; one line drawn again, no widget mounted (Textual's Footer mounts one a
    key on each change of focus). A click on a key does what the key does."""
    add_long_term(store, content="the user likes green tea", created=clock())
    async with memory_view(eng) as (pilot, view):
        footer = view.query_one(KeysFooter)

        def shown() -> list[str]:
            return [label for _, _, label, _, _ in footer._keys]

        assert {"Pin", "Forget", "Keep", "Search", "Help", "Quit"} <= set(shown())
        assert not footer.children
        await pilot.press("slash")
        await pilot.pause()
        assert "Pin" not in shown() and "Quit" not in shown()  # typed into the box now
        await pilot.press("escape")
        await pilot.pause()
        assert {"Pin", "Forget", "Quit"} <= set(shown()) and not footer.children
        line = "".join(segment.text for segment in view._compositor.render_strips()[-1])
        assert line.startswith("/ Search p Pin f Forget") and line.rstrip().endswith("▏^p palette")

        await pilot.press("2")
        await pilot.pause()
        x = line.index("p Pin")
        await pilot.click(KeysFooter, offset=(x, 0))
        await pilot.pause()
        assert store.m.LongTermMemory.get().pinned  # the click pressed p on the selected memory


async def test_a_view_kept_installed_and_shown_again_reads_what_changed_meanwhile(eng, store, clock):
    app = MemtuiApp(eng, db_label="test.db")
    async with app.run_test(size=SIZE) as pilot:
        try:
            view = MemoryScreen(eng)
            app.install_screen(view, "memories")
            app.push_screen("memories")
            await pilot.pause()
            assert keys(view.table("pending")) == []
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is not view
            added = eng.remember("erin is back from leave")
            app.push_screen("memories")
            await pilot.pause()
            assert app.screen is view and keys(view.table("pending")) == [str(added)]
            await pilot.press("enter")  # a story over it, closed: nothing is read again for that
            await pilot.pause()
            reads = []
            real = eng.pending_page
            eng.pending_page = lambda *a, **k: reads.append(a) or real(*a, **k)
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is view and reads == []
        finally:
            if app.is_running:
                app.exit()


async def test_at_80_columns_each_row_fits_and_the_terms_come_back_when_there_is_room(eng, store, clock):
    some_pending(eng, clock)
    async with memory_view(eng, size=(80, 24)) as (pilot, view):
        table = view.table("pending")
        assert table.narrow and "REC" not in table.header().plain  # the story still has the terms
        room = table.scrollable_content_region.width - 2 * table.cell_padding
        assert all(table.get_row(key)[0].cell_len <= room for key in keys(table))
        assert "VS 0.6" in table.header().plain  # how far from the threshold, the threshold in the header
        await pilot.resize_terminal(140, 30)
        await pilot.pause()
        assert not table.narrow and "REC  FREQ CONF IMP" in table.header().plain
        room = table.scrollable_content_region.width - 2 * table.cell_padding
        assert all(table.get_row(key)[0].cell_len <= room for key in keys(table))


async def test_a_slow_search_finishes_in_the_background_and_only_the_last_one_asked_is_shown(
        eng, store, clock, monkeypatch):
    monkeypatch.setattr(MemoryScreen, "SEARCH_WAIT_S", 0.0)  # every search goes on in the search thread
    for text in ("alice prefers aisle seats", "bob likes window seats", "carol takes the train"):
        eng.remember(text)
    release = threading.Event()
    real = eng.search_memories

    def slow_for_aisle(query, *args, **kwargs):
        if query == "aisle":
            release.wait(10)  # held until the second search has been asked for
        return real(query, *args, **kwargs)

    monkeypatch.setattr(eng, "search_memories", slow_for_aisle)
    async with memory_view(eng) as (pilot, view):
        view.run_search("aisle")
        await pilot.pause()
        assert view.searching and "searching" in str(view.table("results").border_subtitle)
        view.run_search("train")
        release.set()
        await searched(pilot, view)
        assert keys(view.table("results")) == [f"pending:{hit.id}" for hit in real("train")]
        assert view.query_text == "train"
        assert str(view.table("results").border_subtitle) == "1 found for 'train'"
        # A new slow search: the last one's hits leave at once rather than pass for its own meanwhile.
        release.clear()
        view.run_search("aisle")
        await pilot.pause()
        assert keys(view.table("results")) == []
        assert str(view.table("results").border_subtitle) == "searching for 'aisle'…"
        release.set()
        await searched(pilot, view)
        assert keys(view.table("results")) == [f"pending:{hit.id}" for hit in real("aisle")]
