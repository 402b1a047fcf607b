"""The memory view (``m`` from the jobs view): the memories themselves, a page at a time.

Three modes over one screen, switched with ``1``, ``2`` and ``3``:

- pending: short-term memories by their stored score, the score at their last
  use (an upper bound on the score now: recency only falls), each with its score
  now term by term, how far it is from the threshold, and when it expires;
- long-term: memories by when decay will retire them, soonest first, with their
  retention now, recalls and pin; ``r`` adds the faded, forgotten, merged and
  replaced ones;
- search: what ``/`` found, ranked as ``recall`` ranks (nothing is reinforced).

``enter`` opens a memory's story (what ``memtui why`` says); ``p`` pins or
unpins, ``f`` forgets (a pending memory only at the second press: it is deleted),
``k`` keeps (promote at the next run); each is audited with source ``ui``.
``escape`` or ``m`` goes back to the jobs.

Every read and change goes through the engine's API (engine/browse.py), which
hands back plain dataclasses; the tables are diffed by row key like the jobs
view's (one cell a row: see MemoryTable), read more by key as the cursor nears
the end (``wants_more``), never the whole table, and read again when a memory
job finishes or anyone changes a memory. A search runs in the view's own thread,
so a word that a quarter of a million memories hold does not freeze the screen
while recall's ranking orders them.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import ContentSwitcher, DataTable, Input, Static

from memtui.engine import Engine, EngineError, Event
from memtui.engine.browse import Cursor, LongTermRow, MemoryChange, Page, PendingRow, SearchHit
from memtui.engine.memory import MemoryInputError
from memtui.engine.report import fmt_near, fmt_number
from memtui.engine.story import MemoryStory, describe
from memtui.tui.format import fmt_delta
from memtui.tui.screens import HelpScreen
from memtui.tui.widgets import KeysFooter, _DiffTable

# The jobs whose runs move memories: when one finishes, the view reads what it shows again.
MEMORY_JOBS = ("promote", "decay", "dedupe")


class SearchDone(Message):
    """A search made in the view's search thread came back (``hits`` None: ``problem`` says why)."""

    def __init__(self, token: int, query: str, hits: list[SearchHit] | None, problem: str | None):
        super().__init__()
        self.token, self.query, self.hits, self.problem = token, query, hits, problem


class MemoriesChanged(Message):
    """A memory job finished, or someone changed a memory: read the shown rows again."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MemoriesChanged)


def _until(when: datetime | None, now: datetime) -> str:
    seconds = (when - now).total_seconds()
    return "due" if seconds <= 0 else f"in {fmt_delta(seconds)}"


class MemoryTable(_DiffTable):
    """A table of memories keyed by id, read a page at a time, each row one line of fields and the memory's
    text, cut to the room left.

    A row is one cell, its fields padded into columns here: a DataTable's time goes per cell (each one
    rendered and measured through Rich), and one cell a row instead of seven halves what a page costs to
    show (bench/memory_view.py). ``FIELDS`` are the columns before the text; ``part(key, field)`` reads one
    back. A field that grows wider than any before it (a longer id) lays every row out again, once.

    ``next`` is where the next page starts (None: all read). ``show_page`` adds a page at the end;
    ``replace`` puts freshly read rows in place of those shown, updating rows by key and moving them
    only when their order changed, so the cursor stays on the memory it was on."""

    FIELDS: tuple[tuple[str, str], ...] = ()  # (key, label) of the columns before the memory's text
    NARROW_DROPS: tuple[str, ...] = ()  # fields left out in a table narrower than WIDE_AT (the story has them)
    WIDE_AT = 100
    COLUMNS = (("line", ""),)
    TEXT = "content"
    GAP = 2  # spaces between two columns
    TEXT_MIN = 16
    MORE_WITHIN = 20  # rows from the end at which the next page is read

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.next: Cursor | None = None
        self.exhausted = False
        self.loaded = False  # read at least once since the last reset
        self.text_width = 0  # the room for the text: reckoned at the first page (_layout)
        self.widths = {key: 0 for key, _ in self.FIELDS}  # each field's widest, label included
        self.narrow = False
        self._parts: dict[str, dict[str, Text]] = {}  # each row's fields
        self._full: dict[str, tuple[str, str, bool]] = {}  # each row's (sender, whole text, dimmed)
        self._rows: dict[str, object] = {}  # the dataclass each row shows
        self.read_more = None  # called to read the next page when the cursor nears the end (set by the view)
        self._updating = False  # rows being put in: a cursor moved meanwhile reads nothing

    def cells(self, row, now: datetime) -> dict:
        raise NotImplementedError

    def key_of(self, row) -> str:
        return str(row.id)

    def row(self, key: str | None):
        return self._rows.get(key) if key is not None else None

    @property
    def selected(self):
        return self.row(self.selected_key)

    def part(self, key: str, field: str) -> str:
        """What row ``key`` shows in ``field`` (``content``: the text as cut)."""
        if field == self.TEXT:
            return _memory_text(*self._full[key], self.text_width).plain
        return self._parts[key][field].plain

    # -- one line a row ------------------------------------------------------------------------

    def _add_columns(self) -> None:
        self.add_column(self.header(), key="line")

    @property
    def fields(self) -> list[tuple[str, str]]:
        """(key, label) of the fields shown at this width."""
        return [(key, self.label(key, label)) for key, label in self.FIELDS
                if not (self.narrow and key in self.NARROW_DROPS)]

    def label(self, key: str, label: str) -> str:
        return label

    def header(self) -> Text:
        return Text("".join(label.ljust(self.widths[key] + self.GAP) for key, label in self.fields) + "MEMORY")

    def _line(self, key: str) -> Text:
        line = Text(no_wrap=True, end="")
        for field, _ in self.fields:
            part = self._parts[key][field]
            line.append_text(part)
            line.append(" " * (self.widths[field] + self.GAP - part.cell_len))
        line.append_text(_memory_text(*self._full[key], self.text_width))
        return line

    def _show(self, key: str) -> bool:
        return self.upsert(key, {"line": self._line(key)})

    def reset(self, columns=None) -> None:
        super().reset(columns)
        self.next, self.exhausted, self.loaded = None, False, False
        self.widths = {key: 0 for key, _ in self.FIELDS}
        self._parts.clear()
        self._full.clear()
        self._rows.clear()

    def drop(self, key: str) -> None:
        super().drop(key)
        self._parts.pop(key, None)
        self._full.pop(key, None)
        self._rows.pop(key, None)

    def wants_more(self) -> bool:
        return not self.exhausted and self.row_count - self.cursor_row <= self.MORE_WITHIN

    def watch_cursor_coordinate(self, old_coordinate, new_coordinate) -> None:
        """The next page is read here, as the cursor moves near the end, not on the RowHighlighted
        message that follows: the rows then arrive in the same screen update as the move, not one later."""
        super().watch_cursor_coordinate(old_coordinate, new_coordinate)
        if (old_coordinate != new_coordinate and self.loaded and not self._updating and self.read_more is not None
                and self.wants_more()):
            self.read_more()

    def _put_all(self, rows, now: datetime) -> None:
        """Show ``rows`` (added at the end, or updated where they are), laid out to the room there is."""
        keys = []
        for row in rows:
            key, cells = self.key_of(row), self.cells(row, now)
            self._rows[key] = row
            self._full[key] = cells.pop(self.TEXT)  # (sender, content, dimmed): made into Text at the room there is
            self._parts[key] = cells
            keys.append(key)
        self._updating = True
        try:
            self._layout(keys)
            for key in keys:
                self._show(key)
        finally:
            self._updating = False

    def show_page(self, page: Page, now: datetime) -> None:
        """Add ``page`` at the end (a row already shown is updated where it is)."""
        self._put_all(page.rows, now)
        self.next, self.exhausted, self.loaded = page.next, page.next is None, True

    def replace(self, rows: list, next_cursor: Cursor | None, now: datetime) -> None:
        """Show exactly ``rows``, in their order, in place of what is shown."""
        selected = self.selected_key
        keys = [self.key_of(row) for row in rows]
        for key in set(self._cells) - set(keys):
            self.drop(key)
        self._put_all(rows, now)
        order = {key: i for i, key in enumerate(keys)}
        if [row.key.value for row in self.ordered_rows] != keys:
            # DataTable.sort moves rows, never re-adds them; a row's line is the object shown (identity).
            place = {id(self._cells[key][0]): i for key, i in order.items()}
            self.sort("line", key=lambda line: place.get(id(line), len(place)))
        self.next, self.exhausted, self.loaded = next_cursor, next_cursor is None, True
        if selected in order:
            self._updating = True
            try:
                self.move_cursor(row=self.get_row_index(selected), animate=False)
            finally:
                self._updating = False

    def on_resize(self) -> None:
        self._updating = True
        try:
            self._layout()
        finally:
            self._updating = False

    def _layout(self, adding: list[str] = ()) -> None:
        """Fit the columns to their widest field and the text to the room left, before ``adding`` is
        shown. A column grown wider changes the header: the table is built again (rows, order, cursor
        kept). A changed room cuts every text again. Before the table is laid out, the room is reckoned
        from the screen's width (the tables span it, inside a border, beside a scrollbar), so a first
        page is not cut twice."""
        width = self.scrollable_content_region.width
        if width <= 0:
            width = self.app.size.width - 2 - self.styles.scrollbar_size_vertical
        narrow = width < self.WIDE_AT
        was, self.narrow = self.narrow, narrow
        widths = dict(self.widths)
        for field, label in self.fields:
            widths[field] = max(widths[field], len(label))
        for key in adding:
            for field, part in self._parts[key].items():
                widths[field] = max(widths[field], part.cell_len)
        used = sum(widths[field] + self.GAP for field, _ in self.fields) + 2 * self.cell_padding
        room = max(self.TEXT_MIN, width - used)
        if widths == self.widths and room == self.text_width and narrow == was:
            return
        rebuild = widths != self.widths or narrow != was
        self.widths, self.text_width = widths, room
        if rebuild:
            self._rebuild()
        else:
            for key in self._cells:
                self._show(key)

    def _rebuild(self) -> None:
        """Every row laid out again under a new header, in the same order, the cursor on the same row."""
        order = [row.key.value for row in self.ordered_rows]
        selected = self.selected_key
        self.clear(columns=True)
        self._cells.clear()
        self._add_columns()
        for key in order:
            self._show(key)
        if selected in self._cells:
            self.move_cursor(row=self.get_row_index(selected), animate=False)


def _importance(value: float) -> str:
    """One decimal at least, so a column of importances lines up ("8.0", "0.9"; it read "8", "0.9")."""
    return f"{value:.1f}" if round(value, 1) == value else fmt_number(value)


def _memory_text(sender: str, content: str, dim: bool = False, width: int | None = None) -> Text:
    """The memory's text after its sender (dim), as Text: a memory is shown as written, never read as markup."""
    text = Text(f"{sender} · " if sender else "", style="dim")
    text.append(" ".join(content.split()), style="dim" if dim else "")
    if width is not None and text.cell_len > width:
        text.truncate(max(width - 1, 0))
        text.append("…")
    return text


TERMS = ("recency", "frequency", "confidence", "importance")


class PendingTable(MemoryTable):
    FIELDS = (("id", "ID"), ("score", "SCORE"), ("gap", "VS"), ("terms", "REC  FREQ CONF IMP"),
              ("stored", "STORED"), ("expires", "EXPIRES"))
    NARROW_DROPS = ("terms",)
    threshold: float | None = None

    def label(self, key: str, label: str) -> str:
        if key == "gap":  # how far from the threshold: the threshold itself in the header
            return "VS THRESHOLD" if self.threshold is None else f"VS {fmt_number(self.threshold)}"
        return label

    def cells(self, row: PendingRow, now: datetime) -> dict:
        self.threshold = row.threshold
        if row.keep:
            gap = Text("kept", style="bold green")
        else:
            gap = Text(fmt_near(row.gap, sign=True), style="green" if row.gap >= 0 else "")
        if row.stored_score is None:
            stored = Text("none", style="cyan")  # a store from before scores were stored, not yet filled
        else:  # ↻: new, used or edited since the last promote run (or deferred): the next run scores it
            stored = Text(f"{row.stored_score:.3f}" + (" ↻" if row.changed else ""), style="dim")
        expires = (Text("next run", style="green") if row.qualifies
                   else Text(_until(row.expires, now), style="yellow" if row.expires <= now else ""))
        return {
            "id": Text(str(row.id)), "score": Text(fmt_near(row.score, row.threshold)), "gap": gap,
            "terms": Text(" ".join(f"{row.terms[name]:.2f}" for name in TERMS)), "stored": stored,
            "expires": expires, "content": (row.sender, row.content, False),
        }


class LongTermTable(MemoryTable):
    FIELDS = (("id", "ID"), ("retention", "RETENTION"), ("recalls", "RECALLS"), ("retires", "RETIRES"),
              ("importance", "IMP"))

    def cells(self, row: LongTermRow, now: datetime) -> dict:
        if row.status in ("merged", "replaced"):
            retires = Text(f"{row.status} → #{row.superseded_by}", style="dim")
        elif row.status != "current":
            retires = Text(row.status, style="dim red")
        elif row.pinned or row.retires is None:
            retires = Text("never: pinned", style="cyan")
        else:
            retires = Text(_until(row.retires, now), style="yellow" if row.retires <= now else "")
        low = row.retention < row.floor
        return {
            "id": Text(str(row.id)), "retention": Text(f"{row.retention:.2f}", style="red" if low else ""),
            "recalls": Text(str(row.recalls)), "retires": retires, "importance": Text(_importance(row.importance)),
            "content": (row.sender, row.content, row.status != "current"),
        }


class ResultsTable(MemoryTable):
    """A search's hits, best first: all of them read at once (a search is not paged), but only the first
    ``SHOWN_FIRST`` made into rows at once, the rest as the cursor nears them — a row costs its making
    and measuring whether shown or not, and the hits are drawn in the update after the search."""

    FIELDS = (("tier", "TIER"), ("id", "ID"), ("importance", "IMP"), ("note", "NOTE"))
    SHOWN_FIRST = 40

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.query = ""  # the search whose hits are shown
        self.found = 0  # how many hits it had
        self._later: list[SearchHit] = []  # hits not made into rows yet
        self._now: datetime | None = None

    def show_hits(self, query: str, hits: list[SearchHit], now: datetime) -> None:
        """Search ``query``'s hits in place of the last one's."""
        self.reset()
        self.query, self.found, self._now = query, len(hits), now
        self.show_page(Page(tuple(hits[:self.SHOWN_FIRST]), None), now)
        self._later = list(hits[self.SHOWN_FIRST:])
        self.read_more = self._show_later

    def _show_later(self) -> None:
        later, self._later = self._later, []
        self._put_all(later, self._now)

    def reset(self, columns=None) -> None:
        super().reset(columns)
        self.query, self.found, self._later = "", 0, []

    def key_of(self, row: SearchHit) -> str:
        return f"{row.tier}:{row.id}"

    def cells(self, row: SearchHit, now: datetime) -> dict:
        note = "superseded" if row.superseded else "faded" if row.decayed else ""
        return {
            "tier": Text("long-term" if row.tier == "long_term" else "pending"), "id": Text(str(row.id)),
            "importance": Text(_importance(row.importance)), "note": Text(note, style="dim"),
            "content": (row.sender, row.content, row.superseded or row.decayed),
        }

    def wants_more(self) -> bool:
        return bool(self._later) and self.row_count - self.cursor_row <= self.MORE_WITHIN


class StoryScreen(ModalScreen[None]):
    """One memory's story: the same facts as ``memtui why ID``."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("enter", "close", "Close", show=False)]

    def __init__(self, story: MemoryStory):
        super().__init__()
        self.story = story

    def compose(self) -> ComposeResult:
        lines = describe(self.story)
        text = Text(lines[0] + "\n", style="bold")
        for line in lines[1:]:
            text.append(line + "\n")
        text.append("\nescape closes", style="dim")
        with VerticalScroll(id="dialog"):
            yield Static(text, id="story")

    def action_close(self) -> None:
        self.dismiss(None)


class MemoryScreen(Screen):
    """Pending and long-term memories, and search over both; ``escape`` or ``m`` goes back to the jobs."""

    DEFAULT_CSS = """
    MemoryScreen #memory-tabs { height: 1; background: $panel; }
    MemoryScreen #memory-note { height: auto; color: $text-muted; padding: 0 1; }
    MemoryScreen #memory-search { margin: 0 0; }
    MemoryScreen #memory-modes { height: 1fr; }
    MemoryScreen MemoryTable {
        height: 1fr; overflow-x: hidden;
        border: round $primary 50%; border-title-color: $text-muted; border-subtitle-color: $text-muted;
    }
    MemoryScreen MemoryTable:focus { border: round $primary; }
    """

    # key, action, footer label, what it does (for the footer, help and the command palette)
    KEYS = [
        ("1", "mode('pending')", "Pending", "Pending: short-term memories by score, with the four terms"),
        ("2", "mode('long-term')", "Long-term", "Long-term: memories by when decay retires them"),
        ("3", "mode('results')", "Results", "Search results: the last search's hits"),
        ("slash", "search", "Search", "Search: every word (or its prefix), ranked as recall ranks"),
        ("enter", "story", "Story", "Story: where the memory is and why (as memtui why says)"),
        ("p", "pin", "Pin", "Pin or unpin the long-term memory: a pinned memory never retires"),
        ("f", "forget", "Forget", "Forget: long-term soft-deleted (a use or a recall restores it); "
                                  "pending deleted (press f twice)"),
        ("k", "keep", "Keep", "Keep the pending memory: the next promote run promotes it, pinned"),
        ("r", "retired", "Retired", "Show or hide faded, forgotten, merged and replaced memories"),
        ("escape", "back", "Jobs", "Back to the jobs view (escape in the search box returns to the table)"),
        ("m", "back", "Jobs", "Back to the jobs view"),
        ("question_mark", "help", "Help", "Help: every key of this view"),
    ]
    BINDINGS = [Binding(key, action, label, show=key not in ("enter", "m", "1", "2", "3"))  # 1-3: the tabs line
                for key, action, label, _ in KEYS] + [
        # The jobs view's keys act on jobs this view does not show: here they only say so.
        Binding(key, "jobs_key", show=False) for key in ("space", "e", "d", "t")]
    PAGE = 60  # two screens' worth: a DataTable measures every cell it is given, shown or not
    HITS = 100  # the best search hits, read at once (ResultsTable makes rows of them as they are reached)
    # A search this quick (a rare word: 5-7 ms at a million memories) is drawn in the key's own update; a
    # longer one goes on in the background while the screen shows the switch to the results (bench/memory_view.py).
    SEARCH_WAIT_S = 0.015
    MODES = {"pending": "pending", "long-term": "long-term", "results": "search"}

    def __init__(self, engine: Engine):
        super().__init__()
        self.engine = engine
        self.mode = "pending"
        self.retired = False
        self.query_text = ""
        self._armed: str | None = None  # the pending memory a first f asked to forget
        self._unsubscribe = None
        self._stale: set[str] = set()  # modes to read again when shown (a change happened while hidden)
        self._opened = False  # shown once: showing it again (an installed screen, pushed anew) reads again
        self._over = False  # a story or the help is open over it: closing that reads nothing again
        self._searcher: ThreadPoolExecutor | None = None  # the search's own thread, made at the first search
        self._search_token = self._search_shown = 0  # the last search asked for, and the last shown
        self._note_shown: str | None = None  # the mode's note as shown (see _show_mode)

    def compose(self) -> ComposeResult:
        yield Static(id="memory-tabs")
        yield Static(id="memory-note")
        # Short enough for an 80-column terminal (the note under it says that nothing is reinforced).
        yield Input(placeholder="/ to search: every word or its prefix, as recall ranks; enter searches",
                    id="memory-search")
        with ContentSwitcher(initial="pending", id="memory-modes"):
            yield PendingTable(id="pending")
            yield LongTermTable(id="long-term")
            yield ResultsTable(id="results")
        yield KeysFooter()

    # -- lifecycle ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        for mode, title in self.MODES.items():
            self.table(mode).border_title = title
        for mode in ("pending", "long-term"):
            self.table(mode).read_more = lambda mode=mode: self.more(mode)
        self._unsubscribe = self.engine.subscribe(self._on_engine_event)
        self.load("pending")
        self._show_mode()
        self.table("pending").focus()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._searcher is not None:  # its thread's database connection closed, then the thread ends
            self._searcher.submit(self.engine.release_thread)
            self._searcher.shutdown(wait=False)
            self._searcher = None

    def _on_engine_event(self, event: Event) -> None:
        """On engine threads: only post a message from here."""
        if (event.kind == "run_finished" and event.job in MEMORY_JOBS) or (
                event.kind == "audit" and event.audit is not None and event.audit.job is None):
            self.post_message(MemoriesChanged())

    def on_screen_resume(self) -> None:
        """Shown again (the app may keep one view and push it each time ``m`` is pressed: composing a
        screen costs more than reading a page): what it shows is read again, the cursor kept."""
        if self._opened and not self._over:
            self._stale.update(("pending", "long-term"))
        if self._opened and self.mode in self._stale:
            self.reload(self.mode)
            self._show_mode()
        self._opened, self._over = True, False

    def _push_over(self, screen) -> None:
        """A modal over this view (a story, the help)."""
        self._over = True
        self.app.push_screen(screen)

    def on_memories_changed(self, _: MemoriesChanged) -> None:
        self._stale.update(("pending", "long-term"))
        if self.is_attached and self.is_current and self.mode in self._stale:
            self.reload(self.mode)  # else when it is shown again

    # -- reading -------------------------------------------------------------------------------

    def table(self, mode: str) -> MemoryTable:
        return self.query_one(f"#{mode}", MemoryTable)

    @property
    def current(self) -> MemoryTable:
        return self.table(self.mode)

    def _page(self, mode: str, after: Cursor | None, limit: int) -> Page:
        if mode == "pending":
            return self.engine.pending_page(after, limit)
        return self.engine.long_term_page(after, limit, retired=self.retired)

    def _read(self, what: str, read):
        """Run one read of the engine; a failure (the database gone, busy) is a toast, never a crash."""
        try:
            return read()
        except EngineError as exc:
            self.notify(str(exc), severity="error", markup=False)
        except Exception as exc:  # the store unusable right now
            self.notify(f"could not read {what}: {' '.join(str(exc).split())[:200]}", severity="error",
                        markup=False)
        return None

    def load(self, mode: str) -> None:
        """Read ``mode``'s first page into its emptied table."""
        table = self.table(mode)
        page = self._read(f"the {self.MODES[mode]} memories", lambda: self._page(mode, None, self.PAGE))
        table.reset()
        if page is not None:
            table.show_page(page, self.engine.clock())
        self._stale.discard(mode)
        self._subtitle(mode)

    def more(self, mode: str) -> None:
        """The next page, read from where the last one ended."""
        table = self.table(mode)
        if table.exhausted:
            return
        page = self._read(f"more {self.MODES[mode]} memories", lambda: self._page(mode, table.next, self.PAGE))
        if page is not None:
            table.show_page(page, self.engine.clock())
        self._subtitle(mode)

    def reload(self, mode: str) -> None:
        """Read again as many rows as are shown, from the top, and put them in place (same keys kept)."""
        if mode == "results":
            self.run_search(self.query_text)
            return
        table = self.table(mode)
        wanted = max(self.PAGE, table.row_count)
        rows: list = []
        after: Cursor | None = None

        def read() -> Cursor | None:
            nonlocal after
            while len(rows) < wanted:
                page = self._page(mode, after, min(wanted - len(rows), 1000))
                rows.extend(page.rows)
                after = page.next
                if after is None:
                    break
            return after

        done = self._read(f"the {self.MODES[mode]} memories", read)
        if done is None and after is not None:  # the read failed part-way: keep what is shown
            return
        table.replace(rows, after, self.engine.clock())
        self._stale.discard(mode)
        self._subtitle(mode)

    def _subtitle(self, mode: str) -> None:
        table = self.table(mode)
        if mode == "results":
            table.border_subtitle = f"{table.found} found for {table.query!r}" if table.query else ""
            return
        more = "all shown" if table.exhausted else "more below: read as you scroll"
        table.border_subtitle = f"{table.row_count:,} shown · {more}"

    def _show_mode(self) -> None:
        tabs = Text()
        for key, mode in (("1", "pending"), ("2", "long-term"), ("3", "results")):
            label = f" {key} {self.MODES[mode]} "
            tabs.append(label, style="bold reverse" if mode == self.mode else "dim")
            tabs.append(" ")
        tabs.append("  escape: jobs", style="dim")
        self.query_one("#memory-tabs", Static).update(tabs, layout=False)  # one line high (DEFAULT_CSS)
        note = self.note()
        if note.plain != self._note_shown:  # its height follows its text: a new text lays the screen out
            self._note_shown = note.plain
            self.query_one("#memory-note", Static).update(note)
        self.query_one("#memory-modes", ContentSwitcher).current = self.mode

    def note(self) -> Text:
        """What the current mode shows, and how it is ordered."""
        now = self.engine.clock().astimezone().strftime("%H:%M:%S")
        if self.mode == "pending":
            return Text(f"By the stored score, the score at the memory's last use: an upper bound, as recency only "
                        f"falls (↻: new, used or edited since the last promote run, which scores it next). "
                        f"Score and terms are computed now ({now}); a score at or above the threshold "
                        f"promotes at the next run.")
        if self.mode == "long-term":
            shown = (", then the faded and forgotten ones (latest first), then the merged and replaced"
                     if self.retired else "; current ones only (r shows the faded, forgotten, merged and replaced)")
            return Text(f"Soonest to retire first, then pinned{shown}. Retention is computed now ({now}); "
                        f"decay retires a memory when it falls below its floor.")
        if not self.query_text:
            return Text("Press / and type words to search pending and long-term memories.")
        # The words are in the box and the table's subtitle, not here: a new search then lays nothing out.
        return Text("Memories holding every word searched for (or its prefix), most relevant first "
                    "(relevance × importance, as recall ranks); searching reinforces nothing.")

    # -- events from the tables and the search box ---------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._armed is not None:  # a first f asked about another row: moving away takes it back
            selected = self._selected()
            if selected is None or f"{selected[0]}:{selected[1].id}" != self._armed:
                self._armed = None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_story()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        query = event.value.strip()
        if not query:
            self.mode = "pending" if self.mode == "results" else self.mode
            self._show_mode()
            self.current.focus()
            return
        self.run_search(query)
        self.mode = "results"
        self._show_mode()
        self.current.focus()

    def run_search(self, query: str) -> None:
        """Search in the view's own thread: a word a quarter of a million memories hold takes recall's
        ranking a second or more (bench/memory_view.py), and the screen must not freeze meanwhile. The
        screen waits for it up to ``SEARCH_WAIT_S`` (most searches: the hits are then drawn in the same
        update as the key, with no "searching…" drawn first); after that the hits come back as a
        SearchDone message, and those of a search since superseded are dropped."""
        self._search_token += 1
        token, retired = self._search_token, self.retired
        self.query_text = query
        if self._searcher is None:
            self._searcher = ThreadPoolExecutor(1, thread_name_prefix="memtui-search")

        def search() -> tuple[list[SearchHit] | None, str | None]:
            try:
                return self.engine.search_memories(query, self.HITS, retired=retired), None
            except EngineError as exc:
                return None, str(exc)
            except Exception as exc:  # the store unusable right now
                return None, f"could not search now: {' '.join(str(exc).split())[:200]}"

        future = self._searcher.submit(search)
        try:
            hits, problem = future.result(timeout=self.SEARCH_WAIT_S)  # the GIL is the search's meanwhile
        except TimeoutError:
            table = self.table("results")
            if table.query != query:  # another search's hits would pass for this one's meanwhile
                table.show_hits("", [], self.engine.clock())
            table.border_subtitle = f"searching for {query!r}…"
            future.add_done_callback(lambda done: self.post_message(SearchDone(token, query, *done.result())))
            return
        self.on_search_done(SearchDone(token, query, hits, problem))

    def on_search_done(self, done: SearchDone) -> None:
        if done.token != self._search_token or not self.is_attached:
            return  # another search was asked for since
        self._search_shown = done.token
        table = self.table("results")
        if done.problem is not None:
            table.reset()
            self.notify(done.problem, severity="error", markup=False)
        else:
            table.show_hits(done.query, done.hits, self.engine.clock())
            if not done.hits:
                self.notify(f"nothing holds every word of {done.query!r}", markup=False)
        self._subtitle("results")

    @property
    def searching(self) -> bool:
        """A search asked for has not come back yet."""
        return self._search_token != self._search_shown

    # -- actions -------------------------------------------------------------------------------

    def action_mode(self, mode: str) -> None:
        if mode == "results" and not self.query_text:
            self.action_search()
            return
        self.mode, self._armed = mode, None
        if not self.current.loaded:
            self.load(mode)
        elif mode in self._stale:
            self.reload(mode)
        self._show_mode()
        self.current.focus()

    def action_search(self) -> None:
        self.query_one("#memory-search", Input).focus()

    def action_back(self) -> None:
        search = self.query_one("#memory-search", Input)
        if search.has_focus:
            self.current.focus()
            return
        self.app.pop_screen()

    def action_retired(self) -> None:
        self.retired = not self.retired
        self.notify("showing faded, forgotten, merged and replaced memories too" if self.retired
                    else "showing current memories only")
        self.load("long-term")
        if self.query_text:
            self.run_search(self.query_text)
        self._show_mode()

    def action_jobs_key(self) -> None:
        self.notify("that key acts on jobs: escape goes back to them", severity="warning")

    def action_help(self) -> None:
        names = {"question_mark": "?", "slash": "/"}
        keys = [(names.get(key, key), text) for key, _, _, text in self.KEYS]
        keys.append(("↑ ↓", "move; the next page is read as the cursor nears the end"))
        keys.append(("home end", "the first row, or the last row read so far"))
        keys.append(("", "Pending: by the stored score, the score at the memory's last use, an upper bound "
                         "(recency only falls; ↻ marks a memory new, used or edited since the last promote run); "
                         "score and terms are computed now."))
        self._push_over(HelpScreen(keys, sync_s=self.engine.config.engine.poll_interval_s))

    def _selected(self) -> tuple[str, object] | None:
        """(tier, row) of the selected memory in the current mode, or None."""
        row = self.current.selected
        if row is None:
            return None
        if self.mode == "results":
            return row.tier, row
        return ("pending" if self.mode == "pending" else "long_term"), row

    def action_story(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        tier, row = selected
        try:
            story = self.engine.story(row.id, long_term=tier == "long_term")
        except (MemoryInputError, EngineError) as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        except Exception as exc:  # the store unusable right now
            self.notify(f"could not read its story: {' '.join(str(exc).split())[:200]}", severity="error",
                        markup=False)
            return
        self._push_over(StoryScreen(story))

    def _change(self, change) -> None:
        """Apply one change through the engine; show what it did, or why not, and read the rows again."""
        try:
            done: MemoryChange = change()
        except EngineError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        except Exception as exc:  # the database busy past the dashboard's short wait, or worse
            self.notify(f"could not change it now: {' '.join(str(exc).split())[:200]} — try again",
                        severity="error", markup=False)
            return
        self.notify(done.words if done.changed else f"{done.words} (nothing to change)", markup=False)
        if done.changed:
            self._stale.update(("pending", "long-term", "results") if self.query_text else ("pending", "long-term"))
            self.reload(self.mode)

    def action_pin(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        tier, row = selected
        if tier != "long_term":
            self.notify("pin is for long-term memories: k keeps a pending one (it arrives pinned)",
                        severity="warning")
            return
        pinned = getattr(row, "pinned", None)
        if pinned is None:  # a search hit does not say: ask the memory's story
            story = self._read("the memory", lambda: self.engine.story(row.id, long_term=True))
            if story is None:
                return
            pinned = story.pinned
        self._change(lambda: self.engine.pin(row.id, not pinned, source="ui"))

    def action_keep(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        tier, row = selected
        if tier != "pending":
            self.notify("keep is for pending memories: p pins a long-term one", severity="warning")
            return
        self._change(lambda: self.engine.keep(row.id, source="ui"))

    def action_forget(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        tier, row = selected
        key = f"{tier}:{row.id}"
        if tier == "pending" and self._armed != key:
            # Forgetting a pending memory deletes it (it was never promoted): asked twice.
            self._armed = key
            self.notify(f"f again to forget pending #{row.id}: it is deleted, not restorable", severity="warning")
            return
        self._armed = None
        self._change(lambda: self.engine.forget_memory(row.id, long_term=tier == "long_term", source="ui"))


__all__ = ["MemoryScreen", "StoryScreen"]
