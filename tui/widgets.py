"""The dashboard's widgets: the jobs table, the run history, the promotion stats, the status line.

Durations and run results are put in words by engine/report.py (through
tui/format.py), the same words the command line and the log file use.

Each widget takes plain engine dataclasses and renders them; none touches the
database. Tables are diffed by row key and changed with ``update_cell`` —
never cleared on a tick — so a job firing every second costs a few cell
updates, and a history of thousands of rows stays cheap. Only the cells that
changed are rendered again, and DataTable's render caches hold two screens, not
thousands of dead renders for the garbage collector to walk (``_DiffTable``).
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import lru_cache

from rich.cells import cell_len
from rich.console import Group
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable, Static

try:  # DataTable's own cell formatting, so a cell drawn here is the cell it would draw (private)
    from textual.widgets._data_table import _EMPTY_TEXT
    from textual.widgets._data_table import default_cell_formatter as formatter
except ImportError:  # another Textual: DataTable draws every cell itself
    _EMPTY_TEXT, formatter = Text(no_wrap=True, end=""), None

from memtui.engine import JobInfo, RunInfo
from memtui.engine.memory import PromotionStats
from memtui.engine.report import cut_to_fit, label as key_words
from memtui.tui.format import describe_result, fmt_delta, fmt_duration, fmt_short_time, fmt_time

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
STATUS_STYLES = {
    "success": "green", "failed": "bold red", "skipped": "yellow", "missed": "magenta",
    "interrupted": "dark_orange", "running": "bold cyan", "cancelled": "yellow",
}


def _width(value) -> int:
    return value.cell_len if isinstance(value, Text) else len(str(value))


def status_text(status: str | None, frame: int = 0) -> Text:
    if status is None:
        return Text("-", style="dim")
    label = f"{SPINNER[frame % len(SPINNER)]} running" if status == "running" else status
    return Text(label, style=STATUS_STYLES.get(status, ""))


_NULL = Style.null()
_NEWLINE = Text("\n")  # what Text's own render joins its lines with


def one_line_cell(cell: Text, width: int, padding: int, console, pre_style: Style, post_style: Style,
                  justify=None, overflow=None) -> list[Segment] | None:
    """The line DataTable draws for a text cell on a row one line high, made without Rich's general
    machinery: the same segments as ``console.render_lines(Styled(Padding(cell, (0, padding)),
    pre_style, post_style), options)`` at ``width`` cells, one line, no wrapping (DataTable's call),
    at a fifth of the cost (~25 against ~120 µs: a page of search hits is ~250 cells). ``justify``
    and ``overflow``: the console options' own. None for any cell it does not do (more than one
    line, tabs, centred or right-aligned, wrapping asked for): DataTable draws those itself."""
    plain = cell.plain
    inner = width - 2 * padding
    justify = cell.justify or justify or "default"
    overflow = cell.overflow or overflow or "fold"
    if (inner < 1 or "\n" in plain or "\t" in plain or cell.no_wrap is False or overflow == "ignore"
            or justify not in ("default", "left")):
        return None
    length = cell_len(plain)
    if length > inner or (justify == "left" and length < inner):  # as Text.wrap cuts or pads it
        cell = cell.copy()
        cell.truncate(inner, overflow=overflow, pad=justify == "left")
        length = cell_len(cell.plain)
        if length > inner:
            return None
    line = [Segment(" " * padding, _NULL)] if padding else []
    line += _NEWLINE.join((cell,)).render(console, end="")  # joined, as Rich does: its style becomes a span
    if length < inner:  # what Padding's render_lines pads the line with
        line.append(Segment(" " * (inner - length), _NULL))
    if padding:
        line.append(Segment(" " * padding, _NULL))
    return list(Segment.apply_style(line, style=pre_style, post_style=post_style))


@lru_cache(maxsize=4096)
def _place_style(row: int, column: int) -> Style:
    """The meta a DataTable cell's styles carry: which cell a click on it is."""
    return Style.from_meta({"row": row, "column": column})


class _DiffTable(DataTable):
    """A DataTable updated in place by row key: only cells whose text changed are touched, and only
    those are rendered again (``_render_cell``)."""

    COLUMNS: tuple[tuple[str, str], ...] = ()

    def __init__(self, **kwargs):
        # cell -> (its value, where it was drawn, its lines): see _render_cell. Made first: DataTable's
        # __init__ already clears its caches (_clear_caches), this one with them.
        self._drawn: LRUCache[tuple, tuple[object, tuple[int, int], list]] = LRUCache(1000)
        self._styles_seen: dict[tuple, Style] = {}  # see rich_style
        # a body line as drawn, by its row and what it shows (see _render_line); each row's content version
        self._lines: LRUCache[tuple, Strip] = LRUCache(100)
        self._versions: dict[object, int] = {}
        self._version = 0
        self._stripes: dict[object, int] = {}  # each row's zebra stripe, kept as rows come and go: _restripe
        self._striped = False
        self._widths_now: tuple[int, ...] = ()
        self._labels_now: tuple[str, ...] = ()
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._cells: dict[str, tuple] = {}
        self.columns_in_use = self.COLUMNS

    def on_mount(self) -> None:
        self._add_columns()
        self._bound_caches()

    # home and end go to the first and last row: DataTable's own, with a row cursor, only scroll sideways
    def action_scroll_home(self) -> None:
        self.action_scroll_top()

    def action_scroll_end(self) -> None:
        self.action_scroll_bottom()

    def on_resize(self) -> None:
        self._bound_caches()

    # Textual's DataTable keeps LRU caches of rendered cells (10,000), rows, row renderables and lines
    # (1,000 each), all keyed by a counter that every cell update bumps: an entry is read only until the
    # next update, and a table updated every second kept ~40 renders of dead Segments and Strips alive
    # (~200,000 objects for two tables). They reached the oldest generation, set off a full collection
    # every ~8 s and made each walk them (100-300 ms frozen, bench/ui.py). With this table's own caches
    # in front (_render_line, _render_cell), theirs only serve the line being drawn: a few rows' worth.
    # Ours hold a screen in both zebra stripes. Each kept line is a Strip, and a Strip carries seven
    # caches of its own: ~10 objects the collector walks at every full collection.
    CACHES = ("_cell_render_cache", "_row_render_cache", "_row_renderable_cache", "_line_cache")
    THEIRS = 4  # rows

    def _bound_caches(self) -> None:
        rows = max(self.size.height, 12) + 2
        columns = max(len(self.COLUMNS), 1)
        for name in self.CACHES:
            cache = getattr(self, name, None)
            if cache is None or not hasattr(cache, "maxsize"):  # private to Textual: a version without it
                continue
            size = self.THEIRS * columns if name == "_cell_render_cache" else self.THEIRS
            if len(cache) > size:
                cache.clear()  # an LRUCache evicts one entry per insert: it would never shrink
            cache.maxsize = size
        for cache, size in ((self._drawn, 2 * rows * columns), (self._lines, 2 * rows)):
            if len(cache) > size:
                cache.clear()
            cache.maxsize = size

    # -- a body line is drawn once per row and content, wherever the row is --------------------------
    # DataTable keys every line it draws by its y and a counter each update bumps, so one new run
    # (every row moves down one) or one countdown second drew every line on screen again: ~0.6 ms a
    # line, 20-40 ms a frame for both tables (bench/ui.py). Here a line is kept by its row key, the
    # row's content version, its stripe, whether the cursor or the mouse is on it, and the column
    # widths: a moved row's line is drawn again only when its stripe has no line kept yet. Its
    # segments then carry the row index it was drawn at, which clicks must not trust: _at_row. The
    # header's line is kept by its labels and the widths.

    def render_lines(self, crop):
        columns = self.ordered_columns  # a list DataTable builds on each call: once a render, not a line
        self._widths_now = tuple(column.get_render_width(self) for column in columns)
        self._labels_now = tuple(str(column.label) for column in columns)
        return super().render_lines(crop)

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        try:
            row_key, line_no = self._get_offsets(y)
            index = self._row_locations.get(row_key)
        except (LookupError, AttributeError):  # past the end; or another Textual's insides
            return super()._render_line(y, x1, x2, base_style)
        if self.cursor_type != "row" or (index is not None and index < self.fixed_rows):  # fixed rows: none
            return super()._render_line(y, x1, x2, base_style)
        if index is not None:
            key = (row_key, line_no, self._versions.get(row_key), x1, x2, self.size.width, base_style,
                   self._stripe(row_key, index), self.show_cursor and self.cursor_coordinate.row == index,
                   self._show_hover_cursor and self.hover_coordinate.row == index, self._pseudo_class_state,
                   self._widths_now)
        elif row_key is self._header_row_key:  # drawn again only when its labels or the widths change
            key = ("header", line_no, x1, x2, self.size.width, base_style,
                   self._show_hover_cursor and self.hover_coordinate.row == -1, self._pseudo_class_state,
                   self._widths_now, self._labels_now)
        else:
            return super()._render_line(y, x1, x2, base_style)
        strip = self._lines.get(key)
        if strip is None:
            strip = self._lines[key] = super()._render_line(y, x1, x2, base_style)
        return strip

    # -- a row keeps its zebra stripe wherever it moves --------------------------------------------
    # DataTable stripes rows by their index, so a run added on top moved every row below it to the other
    # stripe: each second the whole history table changed colour, row by row, and every line on screen was
    # drawn again (those in the stripe they had not been drawn in yet: 26 lines, 12-14 ms, the first
    # time after the engine starts; bench/ui.py). Here a row keeps the stripe it was first shown in:
    # rows added above or below a striped row alternate outwards from it, a row removed takes its stripe
    # with it, and only a row that now sits beside one of its own stripe (a run inserted between two, or
    # a sort) takes the other, and the rows after it follow.

    def _stripe(self, row_key, index: int) -> int:
        if not self.zebra_stripes:
            return 0
        if not self._striped:  # rows came, went or moved since: once, before the first line is drawn
            self._restripe()
        return self._stripes.get(row_key, index % 2)

    def _restripe(self) -> None:
        self._striped = True
        if not self.zebra_stripes:
            return
        keys = [row.key for row in self.ordered_rows]
        old, new = self._stripes, {}
        anchor = next((i for i, key in enumerate(keys) if key in old), None)
        if anchor is None:
            new = {key: i % 2 for i, key in enumerate(keys)}
        else:
            first = old[keys[anchor]]
            for i in range(anchor + 1):  # the rows above the first striped one alternate up from it
                new[keys[i]] = (first + anchor - i) % 2
            before = first
            for key in keys[anchor + 1:]:
                stripe = old.get(key)
                if stripe is None or stripe == before:
                    stripe = 1 - before
                new[key] = before = stripe
        self._stripes = new

    def _get_row_style(self, row_index: int, base_style: Style) -> Style:
        if row_index >= 0 and self.zebra_stripes and row_index >= self.fixed_rows:
            try:
                stripe = self._stripe(self._row_locations.get_key(row_index), row_index)
            except (AttributeError, KeyError):  # DataTable's insides: another Textual may differ
                stripe = row_index % 2
            key = ("row", stripe, getattr(self, "_pseudo_class_state", None))
            style = self._styles_seen.get(key)
            if style is None:  # DataTable's own style for a row of that stripe
                index = self.fixed_rows + (stripe - self.fixed_rows) % 2
                style = self._styles_seen[key] = super()._get_row_style(index, base_style)
            return style
        return super()._get_row_style(row_index, base_style)

    def sort(self, *columns, key=None, reverse: bool = False):
        self._striped = False
        return super().sort(*columns, key=key, reverse=reverse)

    def clear(self, columns: bool = False):
        self._striped = False
        self._stripes = {}
        return super().clear(columns=columns)

    def _changed(self, row_key) -> None:
        self._version += 1
        self._versions[row_key] = self._version  # never reused: a row added again under an old key is new

    def update_cell(self, row_key, column_key, value, *, update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, value, update_width=update_width)
        self._changed(row_key)  # a RowKey hashes and compares as its str: either finds the row

    def add_row(self, *cells, height: int | None = 1, key: str | None = None, label=None):
        row_key = super().add_row(*cells, height=height, key=key, label=label)
        self._changed(row_key)
        self._striped = False
        return row_key

    # A new row makes a table one row longer, a wider value one column wider, and a removed row one row
    # shorter. For each, DataTable lays the whole screen out again and repaints every widget (12-40 ms of
    # the screen thread: bench/ui.py): the virtual size it sets is a reactive that asks for layout, and
    # remove_row asks for it outright. Only a table whose height follows its rows (height: auto) changes
    # the layout when its row count does; otherwise only its scrollbars follow the new size, here, and a
    # scrollbar that appears or goes still asks for layout.
    _sizing = False
    _sized_height = 0

    @contextmanager
    def _resizing(self):
        self._sizing, self._sized_height = True, self.virtual_size.height
        try:
            yield
        finally:
            self._sizing = False

    def _update_dimensions(self, new_rows) -> None:
        with self._resizing():
            super()._update_dimensions(new_rows)

    def remove_row(self, row_key) -> None:
        with self._resizing():
            super().remove_row(row_key)
            self._versions.pop(row_key, None)
            self._striped = False

    def refresh(self, *regions, repaint: bool = True, layout: bool = False, recompose: bool = False):
        if layout and self._sizing and self.is_mounted and self.container_size:
            bars = (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
            self._scroll_update(self.virtual_size)
            height = self.styles.height
            layout = (bars != (self.show_vertical_scrollbar, self.show_horizontal_scrollbar)
                      or (height is not None and height.is_auto and self.virtual_size.height != self._sized_height))
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _at_row(self, event) -> None:
        """The row under the mouse, from its y: a kept line's segments name the row it was drawn at."""
        meta = event.style.meta
        offset = event.get_content_offset(self)
        if "row" not in meta or meta["row"] < 0 or offset is None:
            return
        y = offset.y + (self.scroll_offset.y if offset.y >= self.header_height * self.show_header else 0)
        try:
            index = self._row_locations.get(self._get_offsets(y)[0])
        except LookupError:
            return
        if index is not None and index != meta["row"]:
            event.style = event.style + Style.from_meta({**meta, "row": index})

    # Textual calls the handler of each class in the MRO: these correct the event, then DataTable's own read it.
    def _on_click(self, event) -> None:
        self._at_row(event)

    def _on_mouse_move(self, event) -> None:
        self._at_row(event)

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False):
        """A cell's lines, rendered again only when its value changed.

        DataTable keys its cell cache by a counter every update bumps, so one new run or one
        countdown second re-rendered every cell on screen through Rich (~0.3 ms each, ~60 ms a
        frame for both tables). Here a cell whose value is the same object as when it was drawn,
        at the same width and in the same style, reuses its lines; moved to another row (a new run
        on top moves every row down), it only gets the new row and column in its styles' meta,
        which is what a click on it is read by."""
        if column_index < 0:  # row labels (none here)
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        try:
            column_key = self._column_locations.get_key(column_index)
            if row_index < 0:  # the header: its labels
                row_key, height = self._header_row_key, self.header_height
                value = self.columns[column_key].label
            else:
                row_key = self._row_locations.get_key(row_index)
                row = self.rows[row_key]
                if row.auto_height:
                    return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
                height, value = row.height, self._data[row_key][column_key]
            key = (row_key, column_key, base_style, width, cursor, hover, self._show_hover_cursor, self.show_cursor,
                   self._pseudo_class_state, height, row_index < self.fixed_rows or column_index < self.fixed_columns)
        except (AttributeError, KeyError):  # DataTable's insides, private: another Textual may differ
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        place = (row_index, column_index)
        drawn = self._drawn.get(key)
        if drawn is not None and drawn[0] is value:
            if drawn[1] == place:
                return drawn[2]
            meta = _place_style(row_index, column_index)
            lines = [[Segment(text, style + meta if style else meta, control) for text, style, control in line]
                     for line in drawn[2]]
        else:
            line = self._one_line(row_index, column_index, base_style, width, cursor, hover, value, height)
            lines = [line] if line is not None else super()._render_cell(
                row_index, column_index, base_style, width, cursor, hover)
        if drawn is not None:
            self._drawn.discard(key)  # LRUCache.set keeps the entry a key already has
        self._drawn[key] = (value, place, lines)
        return lines

    def _one_line(self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool,
                  hover: bool, value, height: int) -> list[Segment] | None:
        """A text cell one line high as DataTable draws it, by ``one_line_cell``; None for the rest."""
        if height != 1 or formatter is None:
            return None
        header = row_index < 0
        # as DataTable's _compute_row_renderables: a header's label as it is, a body cell formatted
        cell = value if header else _EMPTY_TEXT if value is None else formatter(value, wrap=False, height=1)
        if not header and not cell:
            cell = _EMPTY_TEXT
        if not isinstance(cell, Text):
            return None
        fixed = not header and (row_index < self.fixed_rows or column_index < self.fixed_columns)
        component, post = self._get_styles_to_render_cell(
            header, False, fixed, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        options = self.app.console_options
        return one_line_cell(cell, width, self.cell_padding, self.app.console,
                             base_style + _place_style(row_index, column_index) + component, post,
                             options.justify, options.overflow)

    # Each line drawn asks for the table's style and its row's (zebra) style, both computed again
    # through the CSS and every ancestor (~0.1 ms each, three times a line). They change only with
    # the CSS (notify_style_update) or a pseudo-class (focus, hover): kept per pseudo-class state
    # (the row's in _get_row_style, above, per stripe too).
    @property
    def rich_style(self) -> Style:
        key = ("table", getattr(self, "_pseudo_class_state", None))
        style = self._styles_seen.get(key)
        if style is None:
            style = self._styles_seen[key] = super().rich_style
        return style

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._drawn.clear()
        self._styles_seen.clear()
        self._lines.clear()
        self._versions.clear()  # clear() drops every row without remove_row; no kept line needs them now

    def notify_style_update(self) -> None:
        self._drawn.clear()  # the theme or CSS changed: every cell's style may have
        self._styles_seen.clear()
        self._lines.clear()
        super().notify_style_update()

    def _add_columns(self) -> None:
        for key, label in self.columns_in_use:
            self.add_column(label, key=key)

    def upsert(self, key: str, cells: dict) -> bool:
        """Add the row or update its changed cells; True when the row is new."""
        row = tuple(cells[column] for column, _ in self.columns_in_use)
        old = self._cells.get(key)
        if old == row:
            return False
        self._cells[key] = row
        if old is None:
            self.add_row(*row, key=key)
            return True
        for (column, _), before, after in zip(self.columns_in_use, old, row):
            if before != after:
                # Only a cell wider than its column needs the column re-measured: any other makes
                # Textual measure every cell of the column again (250 ms at 10,000 rows, bench/ui.py).
                drawn = self.columns.get(column)  # keyed by ColumnKey, which a str finds
                wider = drawn is None or _width(after) > drawn.content_width
                self.update_cell(key, column, after, update_width=wider)
        return False

    def drop(self, key: str) -> None:
        if self._cells.pop(key, None) is not None:
            self.remove_row(key)

    def reset(self, columns: tuple[tuple[str, str], ...] | None = None) -> None:
        self.clear(columns=columns is not None)
        self._cells.clear()
        if columns is not None:
            self.columns_in_use = columns
            self._add_columns()

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None


class JobsTable(_DiffTable):
    """One row per job, keyed by job name: schedule, countdown, last status, counters.

    The columns are fitted to the width the table has, from what the cells hold now, or held within
    the last HOLD (``_fit``).
    JOB, SCHEDULE (SCHEDULE_MIN characters; fewer only when even that leaves no room), LEFT, LAST,
    STATUS and RUNS/ERR are always there; then, each while it fits, in this order: NEXT (the absolute time), the schedule whole
    (up to SCHEDULE_MAX), TOOK, and runs and errors in columns of their own; room still left lets
    a schedule longer than SCHEDULE_MAX show whole, then with its jitter ("at 01:00 every day, up to
    5 min later", as ``memtui jobs`` says it; every job's or none). A schedule's words come before the duration
    and the split counts (the details show all three), so 100 columns show NEXT and most of
    "at 03:00 on the first day of every month" rather than "at 03:00 on the f…" and TOOK.

    A schedule is cut only when the row has no room for it, with "…", at a word's end when that
    keeps most of the room. LAST keeps "ago" to one unit. A DataTable column never narrows by
    itself: the widest text each column has held since the last rebuild is what it draws. When
    that no longer fits, or another set of columns fits, the table is rebuilt (nine rows: cheap,
    and rare: a tick with nothing new rebuilds nothing)."""

    COLUMNS = (
        ("name", "JOB"), ("schedule", "SCHEDULE"), ("next", "NEXT"), ("left", "LEFT"),
        ("last", "LAST"), ("status", "STATUS"), ("duration", "TOOK"), ("runs", "RUNS"), ("errors", "ERR"),
    )
    NARROW = (("name", "JOB"), ("schedule", "SCHEDULE"), ("left", "LEFT"), ("last", "LAST"),
              ("status", "STATUS"), ("counts", "RUNS/ERR"))
    # What the width left over goes to, in turn: "schedule" grows the schedule up to SCHEDULE_MAX,
    # "split" shows runs and errors in two columns instead of RUNS/ERR.
    CLAIMS = ("next", "schedule", "duration", "split")
    SCHEDULE_MIN, SCHEDULE_MAX = 18, 48
    # A column's room is the widest it needed within this long, so a cell that changes width back and
    # forth (STATUS "⠹ running" then "success" for a job firing every second; TOOK, a countdown) does
    # not refit the table each time (RUNS and ERR split or not, the schedule cut again), each time
    # with every cell drawn again (bench/ui.py: 80-90 cells, most of the slowest frames). Room a
    # column no longer needs comes back after it.
    HOLD = timedelta(minutes=1)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._shown: tuple[list[JobInfo], datetime, int, bool] | None = None
        self.schedule_width = self.SCHEDULE_MIN
        self._widest: dict[str, int] = {}  # per column, the widest cell since the last rebuild
        self._held: dict[str, tuple[int, datetime]] = {}  # per column, the width it keeps room for, until when

    @property
    def wide(self) -> bool:
        """Every column is shown."""
        return self.columns_in_use == self.COLUMNS

    def reset(self, columns: tuple[tuple[str, str], ...] | None = None) -> None:
        super().reset(columns)
        self._widest.clear()

    def on_resize(self) -> None:
        if self._shown:
            self.show(*self._shown)  # the room changed: another set of columns may fit

    def show(self, jobs: list[JobInfo], now: datetime, frame: int, held: bool = False) -> None:
        """``held``: the engine holds every job (the database is unusable), so none is counting down."""
        self._shown = (jobs, now, frame, held)
        rows = {job.name: self.cells(job, now, frame, held=held) for job in jobs}
        selected = None
        fitted = self._fit(jobs, rows.values(), now)
        if fitted is not None:
            columns, self.schedule_width, needed = fitted
        jitter = self._detailed(jobs) <= self.schedule_width
        for job in jobs:
            rows[job.name]["schedule"] = self._schedule(job, self.schedule_width, jitter)
        # a column wider than its cells now (it never narrows) leaves the others less room than the fit gave
        if fitted is not None and (columns != self.columns_in_use
                                   or self._drawn_width(rows.values()) > max(needed, self._room())):
            selected = self.selected_key
            self.reset(columns)
        for name, cells in rows.items():
            for column, _ in self.columns_in_use:
                self._widest[column] = max(self._widest.get(column, 0), _width(cells[column]))
            self.upsert(name, cells)
        for name in set(self._cells) - set(rows):
            self.drop(name)
        if selected in self._cells:
            self.move_cursor(row=self.get_row_index(selected))

    def _room(self) -> int:
        return self.scrollable_content_region.width

    def _hold(self, column: str, widths: list[int], now: datetime) -> int:
        """The width ``column`` keeps room for: its widest cell now, or a wider one seen within HOLD."""
        widest = max(widths, default=0)
        held, until = self._held.get(column, (0, now))
        if widest >= held or not now < until:  # now < until is False too after the clock moved back past it
            self._held[column] = (widest, now + self.HOLD)
            return widest
        if until - now > self.HOLD:  # the clock moved backwards: hold no longer than HOLD from now
            self._held[column] = (held, now + self.HOLD)
        return held

    def _fit(self, jobs: list[JobInfo], rows, now: datetime) -> tuple[tuple[tuple[str, str], ...], int, int] | None:
        """The columns to show, the room for the schedule's text and the table's width, from the cells
        as they are now; None before the table has a size. A column is its widest cell (or a wider one
        within HOLD) or its label, plus padding; the schedule's is its widest text as cut to its room."""
        room = self._room()
        if room <= 0:
            return None
        rows = list(rows)
        pad = 2 * self.cell_padding
        labels = dict(self.COLUMNS + self.NARROW)
        need = {column: max([len(label), self._hold(column, [_width(r[column]) for r in rows], now)]) + pad
                for column, label in labels.items() if column != "schedule"}
        cost = {"next": need["next"], "duration": need["duration"],
                "split": need["runs"] + need["errors"] - need["counts"]}
        whole = max((len(job.schedule_text) for job in jobs), default=0)
        detailed = self._detailed(jobs)

        def schedule_column(text_room: int) -> int:  # cut at a word's end, the text may leave some room
            return max([len(labels["schedule"])] + [len(self._schedule(job, text_room, detailed <= text_room))
                                                    for job in jobs]) + pad

        base = sum(need[c] for c, _ in self.NARROW if c != "schedule")
        shown: set[str] = set()
        # SCHEDULE_MIN unless even that leaves no room (a narrow terminal, a scrollbar): then what is left
        text_room = min(whole, self.SCHEDULE_MIN, max(len(labels["schedule"]), room - base - pad))
        for claim in self.CLAIMS:
            others = base + sum(cost[c] for c in shown)
            if claim == "schedule":
                text_room = max(text_room, min(whole, self.SCHEDULE_MAX, room - others - pad))
            elif others + cost[claim] + schedule_column(text_room) <= room:
                shown.add(claim)
        others = base + sum(cost[c] for c in shown)
        # past SCHEDULE_MAX, when room is left; then the jitter too ("…, up to 5 min later": NEXT is not on the hour)
        text_room = max(text_room, min(detailed, room - others - pad))
        return self._layout(shown), text_room, others + schedule_column(text_room)

    def _layout(self, shown: set[str]) -> tuple[tuple[str, str], ...]:
        """The columns in their order, with the optional ones in ``shown`` (CLAIMS)."""
        columns = []
        for column, label in self.COLUMNS:
            if column in ("next", "duration") and column not in shown:
                continue
            if column in ("runs", "errors") and "split" not in shown:
                if column == "runs":
                    columns.append(("counts", "RUNS/ERR"))
                continue
            columns.append((column, label))
        return tuple(columns)

    def _drawn_width(self, rows) -> int:
        """How wide the table would draw ``rows`` now: a column is as wide as the widest text it held
        since the last rebuild (it never narrows) or holds now."""
        rows = list(rows)
        pad = 2 * self.cell_padding
        return sum(max([len(label), self._widest.get(column, 0)] + [_width(r[column]) for r in rows]) + pad
                   for column, label in self.columns_in_use)

    @staticmethod
    def _detailed(jobs: list[JobInfo]) -> int:
        """The room every schedule needs to show whole with its jitter."""
        return max((len(job.schedule_detail or job.schedule_text) for job in jobs), default=0)

    @classmethod
    def _schedule(cls, job: JobInfo, width: int, jitter: bool) -> str:
        """The schedule's words in ``width``: with its jitter when every job's fits (one job's words without
        it would read as a schedule with none), else without, cut if need be."""
        if jitter and job.schedule_detail:
            return job.schedule_detail
        return cls._cut(job.schedule_text, width)

    @staticmethod
    def _cut(text: str, width: int) -> str:
        """``text`` in ``width`` characters: whole, or cut with "…", at a word's end when one is in the
        second half (a word cut in two misleads: "every mo…")."""
        if len(text) <= width:
            return text
        kept = text[:width - 1]
        if text[width - 1] != " ":  # the cut falls inside a word
            space = kept.rfind(" ")
            if space >= width // 2:
                kept = kept[:space]
        return kept.rstrip() + "…"

    @classmethod
    def cells(cls, job: JobInfo, now: datetime, frame: int, schedule_width: int | None = None,
              held: bool = False) -> dict:
        """Every column's cell, whichever are shown; the schedule cut to ``schedule_width``, if given."""
        if job.paused and job.enabled:
            marker = Text("‖ ", style="yellow")
        else:
            marker = Text("● ", style="green") if job.enabled else Text("○ ", style="dim")
        name = marker + Text(job.name, style="bold" if job.enabled else "dim")
        if held and job.enabled:  # its stored next run is stale: nothing fires until the database is back
            left = Text("held", style="bold red")
        elif job.next_run is None:
            left = Text("paused" if job.paused and job.enabled else "-", style="dim")
        else:
            seconds = (job.next_run - now).total_seconds()
            left = Text("due" if seconds <= 0 else fmt_delta(seconds))
        if job.last_run is None:
            last = Text("-", style="dim")
        else:
            ago = fmt_delta((now - job.last_run).total_seconds())
            last = Text(f"{ago.split()[0]} ago")
        status = status_text("running" if job.running else job.last_status, frame)
        if job.backoff_until is not None:
            status.append(f" ⟲{fmt_delta((job.backoff_until - now).total_seconds()).split()[0]}", style="red")
        schedule = job.schedule_text if schedule_width is None else cls._cut(job.schedule_text, schedule_width)
        errors = Text(str(job.errors), style="red" if job.errors else "dim")
        return {
            "name": name, "schedule": schedule, "next": fmt_short_time(job.next_run, now), "left": left,
            "last": last, "status": status, "duration": fmt_duration(job.last_duration_ms),
            "runs": str(job.runs), "errors": errors, "counts": Text(f"{job.runs}/") + errors,
        }


class HistoryTable(_DiffTable):
    """Runs of one job, newest first, keyed by run id; older pages load as the cursor nears the end.

    The first column is the run's id, not a count: ids are shared by all jobs, so one job's runs
    skip numbers. The id is what ``memtui history`` prints and the details call "run #N", so a run
    can be found again anywhere; a per-job count would shift whenever compact prunes old runs.

    The result (or error) is cut, with "…", to the room the other columns leave, never inside a number
    (``cut_to_fit``): the table cannot scroll sideways, and text cut by the edge alone, or a number cut
    short, can mislead ("best score 0" for 0.84). Where even
    the shortest result would not fit (the runs panel is 46 columns wide in an 80-column terminal),
    REASON is left out, as the details (enter) still tell it, rather than TOOK cut to "125 m"."""

    COLUMNS = (
        ("id", "RUN ID"), ("status", "STATUS"), ("reason", "REASON"), ("started", "STARTED"),
        ("duration", "TOOK"), ("result", "RESULT"),
    )
    NARROW_COLUMNS = tuple(column for column in COLUMNS if column[0] != "reason")
    PAGE = 200
    # Newest rows kept while the cursor is near the top: a job firing every second would otherwise
    # grow the table, and the memory (~6 KB a row) and each full garbage collection with it, for ever
    MAX_ROWS = 2 * PAGE
    RESULT_MIN, RESULT_BEFORE_LAYOUT = 12, 80

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.job: str | None = None
        self.oldest_id: int | None = None
        self.exhausted = False
        self.result_width = self.RESULT_BEFORE_LAYOUT
        self._full: dict[str, str] = {}  # each row's whole result text, to cut again when the room changes
        self._every: dict[str, dict] = {}  # each row's cells in every column, to lay the row out again
        self._widest: dict[str, int] = {}  # per column, the widest cell (a DataTable column never narrows)
        self._seen: dict[str, tuple] = {}  # each row's run as last shown (see merge)

    def start(self, job: str | None) -> None:
        self.job = job
        self.oldest_id = None
        self.exhausted = False
        # The columns made anew: a DataTable column never narrows, and one left as wide as another job's
        # runs needed would push this job's past the edge (the room for results is reckoned from its own).
        self.reset(self.columns_in_use)
        self.border_title = f"runs of {job}" if job else "runs"

    def reset(self, columns: tuple[tuple[str, str], ...] | None = None) -> None:
        super().reset(columns)
        self._full.clear()
        self._every.clear()
        self._widest.clear()
        self._seen.clear()

    def drop(self, key: str) -> None:
        super().drop(key)
        self._full.pop(key, None)
        self._every.pop(key, None)
        self._seen.pop(key, None)

    def merge(self, runs: list[RunInfo], now: datetime, older: bool = False) -> None:
        """Add or update ``runs`` (any order). ``older``: a page from the end, no re-sort needed."""
        added = False
        for run in runs:
            key = str(run.id)
            # what the row shows changes with these (a finished run's result no longer does); atoms
            # only, so the garbage collector stops tracking the tuple
            seen = (run.status, run.finished, run.duration_ms, run.error, run.reason,
                    fmt_short_time(run.started, now))
            if self._seen.get(key) == seen:
                continue  # shown as it is: each refresh re-reads the newest 50, almost all unchanged
            self._seen[key] = seen
            cells = self.cells(run, now)
            self._full[key] = str(cells["result"])
            for column, value in cells.items():
                self._widest[column] = max(self._widest.get(column, 0), _width(value))
            cells["result"] = self._cut(self._full[key])
            self._every[key] = cells
            added |= self.upsert(key, cells)
            if self.oldest_id is None or run.id < self.oldest_id:
                self.oldest_id = run.id
        if older and len(runs) < self.PAGE:
            self.exhausted = True
        if added and not older:
            self._trim()
            self.sort("id", key=int, reverse=True)
        self._fit_result()

    def on_resize(self) -> None:
        self._fit_result()

    def _cut(self, text: str) -> Text:
        return Text(cut_to_fit(text, self.result_width))  # Text: never read as markup

    def _fit_result(self) -> None:
        """Cut every result again when the room for it changed (a resize, a wider cell elsewhere)."""
        width = self.scrollable_content_region.width
        if width <= 0:
            return
        pad = 2 * self.cell_padding

        def room_beside(columns) -> int:
            return width - pad - sum(max(self._widest.get(column, 0), len(label_text)) + pad
                                     for column, label_text in columns if column != "result")

        columns = self.COLUMNS if room_beside(self.COLUMNS) >= self.RESULT_MIN else self.NARROW_COLUMNS
        room = max(len(dict(columns)["result"]), room_beside(columns))  # narrow: what is left, to its label's width
        if room == self.result_width and columns == self.columns_in_use:
            return
        self.result_width = room
        if columns != self.columns_in_use:
            self._lay_out(columns)
        widest = len(dict(self.columns_in_use)["result"])
        for key, full in self._full.items():
            cut = self._cut(full)
            widest = max(widest, _width(cut))
            self._every[key]["result"] = cut
            self.upsert(key, self._every[key])
        # upsert widens a column, never narrows one (that re-measures every cell): the results were cut to
        # less room, so the column takes their width again, or it stays as wide as before the layout (80)
        # and the table runs past its edge, cutting the results there without their "…".
        column = self.columns.get("result")
        if column is not None and column.content_width != widest:
            column.content_width = widest
            self._require_update_dimensions = True
            self.refresh()

    def _lay_out(self, columns: tuple[tuple[str, str], ...]) -> None:
        """Show ``columns``: every row again, in the same order, the cursor on the same run."""
        order = [row.key.value for row in self.ordered_rows]
        selected = self.selected_key
        _DiffTable.reset(self, columns)  # this class's own reset forgets the rows' cells too
        for key in order:
            self.upsert(key, self._every[key])
        if selected in self._cells:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def _trim(self) -> None:
        """New runs arrive on top; beyond MAX_ROWS the oldest loaded rows go (scrolling reloads them)."""
        excess = len(self._cells) - self.MAX_ROWS
        if excess <= 0 or self.cursor_row > self.MAX_ROWS // 2:
            return  # someone is reading far down: leave their rows alone
        for key in sorted(self._cells, key=int)[:excess]:
            self.drop(key)
        self.oldest_id = min(int(k) for k in self._cells)
        self.exhausted = False

    @staticmethod
    def cells(run: RunInfo, now: datetime) -> dict:
        """The row's cells; the result whole (``merge`` cuts it to the room there is)."""
        detail = run.error if run.status != "success" and run.error else describe_result(run.result)
        return {
            "id": str(run.id), "status": status_text(run.status), "reason": run.reason,
            "started": fmt_short_time(run.started, now), "duration": fmt_duration(run.duration_ms),
            "result": " ".join((detail or "").split()),
        }

    def wants_more(self) -> bool:
        return not self.exhausted and self.row_count - self.cursor_row <= 20


class PromotionChart(Widget):
    """Promoted per run as bars, oldest on the left, on a baseline, with a scale on the right.

    The largest count is full height and is written beside the top row, 0 beside the baseline, so
    the bars read as numbers. A run that promoted nothing is baseline only (a sparkline stretches
    a flat series, all zeros included, to full height); with no runs yet it says so instead."""

    ROWS = 3
    BLOCKS = " ▁▂▃▄▅▆▇█"
    CAPTION = "promoted per run"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.counts: list[int] = []
        self.runs = 0

    def show(self, counts: list[int], runs: int) -> None:
        if (counts, runs) != (self.counts, self.runs):
            self.counts, self.runs = list(counts), runs
            self.refresh()

    def render(self) -> Text:
        if not self.counts:
            text = Text(self.CAPTION + "\n", style="dim")
            text.append("no promote runs yet" if self.runs == 0 else "no successful promote run yet", style="italic")
            return text
        top = max(self.counts)  # the scale: full height, written beside the top row
        text = Text(self.CAPTION + ("" if top else ": all 0") + "\n", style="dim")
        scale = f"{top:,}"
        room = max(self.size.width - len(scale) - 1, 1)  # the bars, then a space and the scale
        counts = self.counts[-room:]
        step = max(1, min(3, room // len(counts)))  # up to 3 columns a run: 2 of bar, 1 of gap
        bar = step - 1 if step > 1 else 1
        levels = [0 if not top or not c else max(1, round(c / top * self.ROWS * 8)) for c in counts]
        for row in range(self.ROWS - 1, -1, -1):
            line = "".join((self.BLOCKS[min(8, max(0, level - 8 * row))] * bar).ljust(step) for level in levels)
            text.append(line.ljust(room), style="cyan")
            text.append(f" {scale:>{len(scale)}}\n" if row == self.ROWS - 1 and top else "\n", style="dim")
        text.append("".join(("▔" * bar).ljust(step) for _ in levels).ljust(room), style="dim")
        text.append(f" {'0':>{len(scale)}}" if top else "", style="dim")
        return text


class StatsPanel(Vertical):
    """Promotion figures and a chart of promoted per run."""

    _text: Text | None = None  # as last shown

    def compose(self) -> ComposeResult:
        yield Static(id="stats-text")
        yield PromotionChart(id="stats-chart")

    def show(self, stats: PromotionStats, now: datetime, paused: bool = False, held: bool = False) -> None:
        text = Text()
        rows = [
            ("runs", f"{stats.runs:,}"),
            ("promoted", f"{stats.total_promoted:,}"),
            ("expired", f"{stats.total_expired:,}"),
            ("last run", f"{fmt_delta((now - stats.last_run).total_seconds())} ago" if stats.last_run else "never"),
            # indented: what that last run moved, not another total
            ("  promoted", "-" if stats.last_promoted is None else f"{stats.last_promoted:,}"),
            # scored only what changed since the last run, or every memory (a full pass)
            ("  pass", stats.last_pass or "-"),
            ("short-term", f"{stats.pending:,}"),
            ("long-term", f"{stats.long_term:,}"),
            # the dedupe job's totals: duplicates merged away, memories a newer one replaced
            ("  merged", f"{stats.merged:,}"),
            ("  replaced", f"{stats.superseded:,}"),  # superseded by a newer memory
            ("schedule", "disabled" if not stats.enabled else "held" if held else "paused" if paused
             else stats.schedule_text),
        ]
        for name, value in rows:
            text.append(f"{name:<11}", style="dim")
            text.append(f"{value}\n")
        text.rstrip()
        if text != self._text:  # the tick shows the same figures most of the time: no repaint then
            static = self.query_one("#stats-text", Static)
            # Static.update lays the whole screen out again by default; the figures keep their height
            # unless a line is added or one is (or was) too long for the panel and wraps
            width = static.content_region.width
            lines = (self._text.plain.split("\n") if self._text else []) + text.plain.split("\n")
            layout = (self._text is None or self._text.plain.count("\n") != text.plain.count("\n")
                      or width <= 0 or any(cell_len(line) > width for line in lines))
            self._text = text
            static.update(text, layout=layout)
        self.query_one("#stats-chart", PromotionChart).show(stats.recent, stats.runs)


class KeysFooter(Widget, can_focus=False):
    """The keys the screen and its focused widget answer to, on one line, as Textual's compact Footer
    shows them (the command palette's key on the right); a click on a key presses it.

    Textual's Footer is a widget per key, and each change of the active bindings — every change of focus
    — unmounts them all, mounts new ones and lays the whole screen out again: ~65 ms of this machine's
    screen thread each time, twice in every search of the memory view (the box takes the focus, then the
    table), which alone put a search's results past 100 ms (bench/memory_view.py). Here the same change
    draws this one line again, and only when the keys shown changed. Bindings in a group are shown one by
    one (none of memtui's are grouped).

    When the line is too narrow for every key, whole keys are left out — those in ``drop_order`` first, in
    that order, then the last ones — but never help and quit: at 80 columns Textual's cut the line at
    "m Me", so "? Help", which lists every key, and "q Quit" were not to be seen."""

    KEPT = ("question_mark", "q")  # the keys left out last: help (it lists every key) and quit

    DEFAULT_CSS = """
    KeysFooter {
        dock: bottom; height: 1; color: $footer-foreground; background: $footer-background;
        & > .keys-footer--key { color: $footer-key-foreground; background: $footer-key-background; text-style: bold; }
        & > .keys-footer--description {
            color: $footer-description-foreground; background: $footer-description-background;
        }
        & > .keys-footer--hover { background: $block-hover-background; }
        & > .keys-footer--separator { color: $foreground 20%; }
    }
    """
    COMPONENT_CLASSES = {"keys-footer--key", "keys-footer--description", "keys-footer--hover",
                         "keys-footer--separator"}
    ALLOW_SELECT = False

    def __init__(self, *, drop_order: tuple[str, ...] = (), id: str | None = None) -> None:  # drawn compact
        super().__init__(id=id)
        self.drop_order = drop_order
        self._keys: tuple[tuple[str, str, str, bool, str], ...] = ()  # (key, shown as, label, enabled, tooltip)
        self._palette: tuple[str, str, str, bool, str] | None = None
        self._spans: list[tuple[int, int, int]] = []  # (first x, end x, index into _keys + [_palette]) drawn
        self._hover: int | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen) -> None:
        if not screen.app.app_focus or not self.is_attached or screen is not self.screen:
            return  # as Textual's: an app without focus keeps the keys it showed
        app = self.app
        keys: list[tuple[str, str, str, bool, str]] = []
        actions: set[str] = set()
        active = screen.active_bindings

        def entry(binding, enabled: bool, tooltip: str) -> tuple[str, str, str, bool, str]:
            return (binding.key, app.get_key_display(binding), binding.description, enabled,
                    tooltip or binding.tooltip or binding.description)

        for _, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in actions:  # one key an action, the first, as Textual's
                actions.add(binding.action)
                keys.append(entry(binding, enabled, tooltip))
        palette = None
        if app.ENABLE_COMMAND_PALETTE and app.COMMAND_PALETTE_BINDING in active:  # shown whether or not .show
            _, binding, enabled, tooltip = active[app.COMMAND_PALETTE_BINDING]
            palette = entry(binding, enabled, tooltip)
        if (tuple(keys), palette) != (self._keys, self._palette):
            self._keys, self._palette, self._hover = tuple(keys), palette, None
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("keys-footer--key", partial=True)
        label_style = self.get_component_rich_style("keys-footer--description", partial=True)
        hover_style = self.get_component_rich_style("keys-footer--hover", partial=True)
        text = Text(no_wrap=True, overflow="crop", end="")
        self._spans = []

        def add(index: int, entry) -> None:
            _, shown, label, enabled, _ = entry
            start = text.cell_len
            text.append(shown, key_style)
            if label:
                text.append(f" {label}", label_style)
            if not enabled:
                text.stylize(Style(dim=True), start)
            if index == self._hover:
                text.stylize(hover_style, start)
            self._spans.append((start, text.cell_len, index))

        palette_width = 0 if self._palette is None else (
            cell_len(self._palette[1]) + 1 + cell_len(self._palette[2]) + 2)  # "▏^p palette "
        room = max(0, self.size.width - palette_width)
        for index in self._shown(room):
            add(index, self._keys[index])
            text.append(" ")
        if self._palette is not None:  # on the right, as Textual's
            if text.cell_len > room:
                text.truncate(room)
                self._spans = [(start, min(end, room), index) for start, end, index in self._spans if start < room]
            text.append(" " * (room - text.cell_len))
            text.append("▏", self.get_component_rich_style("keys-footer--separator"))
            add(len(self._keys), self._palette)
            text.append(" ")
        return text

    def _shown(self, room: int) -> list[int]:
        """The indexes of the keys to show in ``room`` cells, in their order: all of them when they fit,
        else without the last ones but the KEPT (which may still be cut at the edge, on a very narrow line)."""
        widths = [cell_len(shown) + (1 + cell_len(label) if label else 0) + 1
                  for _, shown, label, _, _ in self._keys]
        shown = list(range(len(self._keys)))
        rank = {key: n for n, key in enumerate(self.drop_order)}
        candidates = sorted((i for i in shown if self._keys[i][0] not in self.KEPT),
                            key=lambda i: (rank.get(self._keys[i][0], len(rank)), -i))
        for index in candidates:
            if sum(widths[i] for i in shown) <= room:
                break
            shown.remove(index)
        return shown

    def _entry_at(self, x: int) -> tuple[int, tuple] | None:
        for start, end, index in self._spans:
            if start <= x < end:
                return index, (self._keys[index] if index < len(self._keys) else self._palette)
        return None

    def on_mouse_move(self, event) -> None:
        found = self._entry_at(event.x)
        hover = found[0] if found is not None else None
        if hover != self._hover:
            self._hover = hover
            self.tooltip = found[1][4] if found is not None else None
            self.refresh()

    def on_leave(self, _) -> None:
        if self._hover is not None:
            self._hover = None
            self.refresh()

    def on_mouse_down(self, event) -> None:
        found = self._entry_at(event.x)
        if found is None:
            return
        key, _, _, enabled, _ = found[1]
        if enabled:
            self.app.simulate_key(key)
        else:
            self.app.bell()


class StatusLine(Static):
    """Engine state, database path, model in use; or, while the jobs are held, why (on as many
    lines as it takes: the reason names the database path and what brings the jobs back)."""

    def show(self, *, running: bool, paused: bool, stopping: str | None, db_path: str, model: str,
             problem: str | None = None, attached: tuple[str, str] | None = None) -> None:
        """``attached``: (words, style) when this dashboard runs no engine and follows the ones that
        serve the database ("attached · engine on HOST (pid N)", or that none does)."""
        self._args = dict(running=running, paused=paused, stopping=stopping, db_path=db_path, model=model,
                          problem=problem, attached=attached)
        text = Text(" memtui ", style="bold reverse")
        self.set_class(problem is not None, "-problem")
        if problem is not None:
            text.append(f" ■ jobs held: {problem} ", style="bold white on red")
            self._put(text, held=True)
            return
        if stopping is not None:
            text.append(f" ■ {stopping} ", style="bold yellow")
        elif attached is not None:
            text.append(f" {attached[0]} ", style=attached[1])
            if paused:
                text.append(" ‖ paused ", style="bold yellow")
        elif not running:
            text.append(" ■ engine stopped ", style="bold red")
        elif paused:
            text.append(" ‖ paused ", style="bold yellow")
        else:
            text.append(" ● running ", style="bold green")
        # The path gives way, in its middle, to what follows it: at 80 columns a demo's path in /tmp
        # pushed the model off the line ("model:" and nothing after it).
        room = self.size.width - text.cell_len - cell_len(f"  model: {model}") - 2
        text.append(f" {_middle_cut(db_path, room)} ", style="dim")
        text.append(" model: ", style="dim")
        text.append(model)
        self._put(text, held=False)

    _shown: tuple | None = None
    _held = False
    _args: dict | None = None  # what was last shown, to fit it again to a new width

    def on_resize(self) -> None:
        if self._args is not None:
            self.show(**self._args)

    def _put(self, text: Text, held: bool) -> None:
        """Draw ``text`` only when it differs from what is shown (it is asked for on every update and
        every other tick), and lay the screen out again only when its height can change: a held
        store's reason may take several lines."""
        shown = (text.plain, tuple(text.spans))
        if shown == self._shown:
            return
        relayout = held or self._held
        self._shown, self._held = shown, held
        self.update(text, layout=relayout)


def _middle_cut(path: str, width: int) -> str:
    """``path`` in ``width`` cells: whole, or its middle left out ("/tmp/mem…/demo.db"), the file's name
    kept whole as long as there is room for it; as it is when ``width`` is unknown (not laid out yet)."""
    if width <= 0 or cell_len(path) <= width:
        return path
    head, sep, name = path.rpartition("/")
    tail = sep + name if head else path
    if cell_len(tail) + 1 >= width:
        return "…" + tail[len(tail) - max(width - 1, 1):]
    return path[:width - 1 - len(tail)] + "…" + tail


def key_value_grid(rows, *, indent: int = 0, key_style: str = "dim", key_width: int | None = None,
                   gap: int = 1) -> Padding:
    """Two columns, keys and values: a value that wraps continues under itself, not under the keys."""
    grid = Table.grid(padding=(0, gap))
    grid.add_column(style=key_style, no_wrap=True, min_width=key_width)
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value)
    return Padding(grid, (0, 0, 0, indent))


def job_details(job: JobInfo, runs: list[RunInfo], now: datetime) -> Group:
    """Everything about one job: its schedule, config, totals, last error with traceback, recent results."""
    parts: list = []
    head = Text(f"{job.name}", style="bold")
    if job.kind != job.name:  # "promote (promote)" would say nothing
        head.append(f"  (kind: {job.kind})")
    head.append(f" — {job.summary}\n")
    parts.append(head)
    facts = [
        ("enabled", "yes" if job.enabled else "no"),
        ("schedule", f"{job.schedule_detail or job.schedule_text}   [{job.schedule}]"),
        ("time zone", job.timezone),
        ("next run", fmt_time(job.next_run)),
        ("last run", fmt_time(job.last_run)
                     + (f", took {fmt_duration(job.last_duration_ms)}" if job.last_duration_ms is not None else "")),
        ("runs / errors", f"{job.runs} / {job.errors}"),
    ]
    if job.backoff_until:
        facts.append(("backoff", f"{job.consecutive_failures} failure(s) in a row; next try not before "
                                 f"{fmt_time(job.backoff_until)}"))
    parts.append(key_value_grid(facts))

    def heading(title: str) -> Text:
        return Text(f"\n{title}", style="bold underline")

    config = [(key, str(value)) for key, value in job.config.items()]
    parts += [heading("config"), key_value_grid(config, indent=2, key_width=23)]
    if job.totals:
        totals = [(key_words(key), f"{value:,}" if isinstance(value, int) else str(value))
                  for key, value in job.totals.items()]
        parts += [heading("totals"), key_value_grid(totals, indent=2, key_width=23)]
    failed = next((r for r in runs if r.status in ("failed", "interrupted")), None)
    parts.append(heading("last error"))
    if failed is None:
        parts.append(Text("  none in the recent runs", style="dim"))
    else:
        said = (f"run #{failed.id} at {fmt_time(failed.started)}:", Text(f"{failed.error}", style="red"))
        parts.append(key_value_grid([said], indent=2))
        if failed.traceback:
            parts.append(Text(failed.traceback.rstrip(), style="dim red"))
    parts.append(heading("recent runs"))
    if not runs:
        parts.append(Text("  none yet", style="dim"))
        return Group(*parts)
    # run ids are shared by all jobs, so one job's list skips numbers (see HistoryTable)
    rows = [(Text("run id", style="dim"), Text(f"{'status':<13}{'started':<11}{'took':>9}  reason", style="dim"))]
    for run in runs[:15]:
        line = status_text(run.status)
        line.pad_right(13 - line.cell_len)
        line.append(f"{fmt_short_time(run.started, now):<11}{fmt_duration(run.duration_ms):>9}  {run.reason}")
        # whole, under its run: the details are where a result is read in full
        detail = run.error if run.status != "success" and run.error else describe_result(run.result)
        if detail:
            line.append(f"\n{detail}", style="red" if run.status in ("failed", "interrupted") else "dim")
        rows.append((Text(str(run.id)), line))
    parts.append(key_value_grid(rows, indent=2, key_style="", key_width=7))
    return Group(*parts)
