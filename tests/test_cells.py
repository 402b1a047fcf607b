"""tui/widgets.py one_line_cell: a table cell one line high drawn without Rich's general machinery is,
segment for segment, the cell DataTable draws; anything it does not do is left to DataTable."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.padding import Padding
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.renderables.styled import Styled
from textual.widgets import DataTable

from memtui.tui import widgets
from memtui.tui.widgets import _DiffTable, one_line_cell

CONSOLE = Console(width=120, color_system="truecolor", force_terminal=True, legacy_windows=False)
STYLES = [Style.null(), Style(color="green"), Style(bold=True), Style(color="red", bgcolor="blue"),
          Style(dim=True, italic=True), Style(underline=True, color="#ff8800"),
          Style.from_meta({"row": 4, "column": 1}) + Style(bgcolor="black")]
# ASCII, accents, double-width CJK, an emoji, and now and then what the fast path leaves to Rich
LETTERS = st.sampled_from(list("abc xyz") + ["é", "ü", "漢", "字", "🙂", "…"])
RARE = st.sampled_from(["\n", "\t"])


@st.composite
def cells(draw) -> Text:
    plain = "".join(draw(st.lists(st.one_of(LETTERS, LETTERS, LETTERS, LETTERS, RARE), max_size=30)))
    text = Text(plain, style=draw(st.sampled_from(STYLES)),
                justify=draw(st.sampled_from([None, "default", "left", "center", "right"])),
                overflow=draw(st.sampled_from([None, "fold", "crop", "ellipsis"])),
                no_wrap=draw(st.sampled_from([None, True, False])), end=draw(st.sampled_from(["", "\n"])))
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(0, max(len(plain), 0)))
        text.stylize(draw(st.sampled_from(STYLES[1:])), start, draw(st.integers(start, len(plain) + 2)))
    return text


def datatables_line(cell: Text, width: int, padding: int, pre: Style, post: Style):
    """DataTable's own call (_render_cell) for a row one line high."""
    options = CONSOLE.options.update_dimensions(width, 1).update(no_wrap=True)
    return CONSOLE.render_lines(Styled(Padding(cell, (0, padding)), pre_style=pre, post_style=post), options)


def simple(cell: Text, width: int, padding: int) -> bool:
    """What the fast path must draw itself, not hand back."""
    return (width - 2 * padding >= 1 and not set(cell.plain) & {"\n", "\t"} and cell.no_wrap is not False
            and (cell.justify or "default") in ("default", "left"))


@settings(max_examples=600, deadline=None)
@given(cells(), st.integers(0, 40), st.integers(0, 2), st.sampled_from(STYLES), st.sampled_from(STYLES))
def test_a_one_line_cell_is_the_line_datatable_draws(cell, width, padding, pre, post):
    line = one_line_cell(cell, width, padding, CONSOLE, pre, post)
    if simple(cell, width, padding):
        assert line is not None
    if line is not None:
        assert [line] == datatables_line(cell, width, padding, pre, post)


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Table(_DiffTable):
    COLUMNS = (("id", "ID"), ("what", "WHAT"), ("when", "WHEN"), ("n", "N"))


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield Table()


@pytest.mark.anyio
async def test_every_cell_of_a_table_is_drawn_as_datatable_draws_it(monkeypatch):
    """Through the table itself: its values (markup strings, styled Text, None, numbers) formatted
    as DataTable formats them, the header, the cursor's row and the zebra stripes' styles."""
    app = TableApp()
    async with app.run_test(size=(80, 12)) as pilot:
        table = app.query_one(Table)
        values = ["[b]bold[/b] word", Text("success", style="green"), None, 3.14159, 42,
                  Text("a memory much longer than its column is wide", overflow="ellipsis"), "plain", "é 漢字"]
        for i in range(6):
            table.upsert(str(i), {"id": str(i), "what": values[i % len(values)],
                                  "when": values[(i + 3) % len(values)], "n": values[(i + 5) % len(values)]})
        table.move_cursor(row=2)
        await pilot.pause()
        base = table.rich_style
        drawn = 0
        for row in range(-1, table.row_count):
            for column, col in enumerate(table.ordered_columns):
                width = col.get_render_width(table)
                for cursor in (False, row == 2):
                    mine = table._render_cell(row, column, base, width, cursor)
                    table._drawn.clear()
                    theirs = DataTable._render_cell(table, row, column, base, width, cursor)
                    assert mine == theirs, (row, column, cursor)
                    drawn += 1
        # and it was the fast path that drew them: without it each cell goes to DataTable
        calls = []
        real = widgets.one_line_cell
        monkeypatch.setattr(widgets, "one_line_cell", lambda *a, **k: calls.append(a) or real(*a, **k))
        table._drawn.clear()
        table._render_cell(0, 1, base, table.ordered_columns[1].get_render_width(table))
        assert len(calls) == 1 and drawn > 40
