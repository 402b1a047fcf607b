"""Keeps the compositor's per-frame pieces of lines out of the garbage collector's way.

Textual's compositor cuts every line it draws with ``Strip.divide(cuts)`` and
the strip keeps the pieces in a cache of its own. Two things follow:

- When the line stays one piece (a full-width line: the status line, a panel's
  border) ``divide`` answers ``[self]`` and keeps that list, so the strip refers
  to itself. Reference counting can never free it: it waits, with its seven
  caches and its segments, for a full collection. In ``python -m bench.ui``
  that was ~1,300 strips (23,000 objects) per full collection, which then took
  17-22 ms instead of ~8, inside a frame: the stutter issue 13 is about.
- Every line a widget keeps (each container's background lines, each table
  line) keeps its pieces too, each a strip with seven caches: half of the
  strips alive at any time (1,057 -> 543), and every full collection walks them.

``install()`` replaces ``Strip.divide`` with the same cut that keeps nothing:
a piece lives as long as the frame that drew it. Cutting again costs a few
microseconds a line; bench.ui measured full collections at 3-10 ms against
4-19 ms with the pieces kept (``tests/test_strips.py`` checks the pieces are
Textual's own).
"""
from __future__ import annotations

from functools import wraps
from typing import Iterable

from rich.segment import Segment
from textual.strip import Strip


def install() -> None:
    """Replace ``Strip.divide`` once per process (idempotent); Textual's own stays as ``__wrapped__``."""
    divide = Strip.divide
    if getattr(divide, "keeps_nothing", False):
        return

    @wraps(divide)
    def divide_keeping_nothing(self: Strip, cuts: Iterable[int]) -> list[Strip]:
        cell_length = self.cell_length
        cuts = [cut for cut in cuts if cut <= cell_length]
        if cuts == [cell_length]:
            return [self]
        pieces, pos = [], 0
        for segments, cut in zip(Segment.divide(self._segments, cuts), cuts):
            pieces.append(Strip(segments, cut - pos))
            pos = cut
        return pieces

    divide_keeping_nothing.keeps_nothing = True
    Strip.divide = divide_keeping_nothing
