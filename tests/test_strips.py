"""tui/strips.py: Strip.divide keeps no pieces (nor itself) and cuts the same strips as Textual's own."""
from __future__ import annotations

import sys

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from memtui.tui import strips


def make_strip() -> Strip:
    return Strip([Segment("memtui ", Style(bold=True)), Segment("● running", Style(color="green"))])


def test_a_strip_cut_into_one_piece_keeps_no_reference_to_itself():
    strips.install()
    strip = make_strip()
    held = sys.getrefcount(strip)
    assert strip.divide([strip.cell_length]) == [strip]
    assert strip.divide(iter([strip.cell_length, strip.cell_length + 5])) == [strip]
    assert sys.getrefcount(strip) == held  # so reference counting alone frees it when it is dropped


def test_other_cuts_give_the_same_strips_as_textuals_own_code_and_keep_none():
    strips.install()
    textuals = Strip.divide.__wrapped__
    strip = make_strip()
    for cuts in ([3, strip.cell_length], [7, 10, strip.cell_length], [1, 2, 3, strip.cell_length, 99]):
        pieces = strip.divide(cuts)
        assert [(p.cell_length, list(p)) for p in pieces] == [(p.cell_length, list(p))
                                                              for p in textuals(make_strip(), cuts)]
        assert [p.text for p in pieces] == [strip.text[a:b] for a, b in zip([0, *cuts], cuts[:len(pieces)])]
    assert len(strip._divide_cache) == 0  # the pieces live as long as the frame that drew them


def test_install_wraps_once():
    strips.install()
    wrapped = Strip.divide
    strips.install()
    assert Strip.divide is wrapped and wrapped.keeps_nothing
