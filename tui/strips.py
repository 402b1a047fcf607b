"""Keeps the compositor's per-frame strips out of reference cycles, so they are freed as soon as they are dropped.

Textual's compositor cuts every line it draws with ``Strip.divide(cuts)``. When
the line stays one piece (a full-width line: the status line, a panel's border)
``divide`` answers ``[self]`` and keeps that list in the strip's own
``_divide_cache``, so the strip refers to itself. Reference counting can then
never free it: it waits, with its seven caches and its segments, for a full
collection of the garbage collector. In ``python -m bench.ui`` that was about
1,300 strips (23,000 objects) per full collection, which then took 17-22 ms
instead of about 4, inside a frame: the stutter issue 13 is about.

``install()`` wraps ``Strip.divide`` so that this one case returns a new
``[self]`` without keeping it; every other cut goes through Textual's own
cached code. The strips that come out are the same ones.
"""
from __future__ import annotations

from functools import wraps
from typing import Iterable

from textual.strip import Strip


def install() -> None:
    """Wrap ``Strip.divide`` once per process (idempotent)."""
    divide = Strip.divide
    if getattr(divide, "keeps_no_self", False):
        return

    @wraps(divide)
    def divide_without_self_reference(self: Strip, cuts: Iterable[int]) -> list[Strip]:
        cuts = cuts if isinstance(cuts, list) else list(cuts)
        cell_length = self.cell_length
        if [cut for cut in cuts if cut <= cell_length] == [cell_length]:
            return [self]
        return divide(self, cuts)

    divide_without_self_reference.keeps_no_self = True
    Strip.divide = divide_without_self_reference
