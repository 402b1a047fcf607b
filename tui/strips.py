"""Keeps what Textual draws with out of the garbage collector's way: pieces of lines, their caches, cleared caches.

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
- Each strip makes its seven caches when it is made, each an object the collector
  tracks, though a strip a table keeps is mostly only drawn: with 100,000 runs in
  ``python -m bench.ui`` 4,700 of the 34,000 objects a full collection walked were
  those caches (14 %), and every one that outlives two young collections counts
  towards the next full one.
- ``LRUCache.clear()`` drops its entries as they are linked: a ring of lists,
  each pointing at its neighbours, so reference counting can free none of them
  nor what they hold. DataTable clears its render caches at every cell update,
  row added or removed (each second in the dashboard), and each clear left a
  ring of rendered rows (Segments, lists, Text, RowRenderables) for the next
  full collection: 13,000-28,000 objects of garbage found by each one in
  ``python -m bench.ui``, freed inside a frame.

``install()`` replaces ``Strip.divide`` with the same cut that keeps nothing:
a piece lives as long as the frame that drew it; makes a strip's caches when
it first uses each (``Strip.__getattr__`` is asked only for a slot not yet set);
and has ``LRUCache.clear`` empty each link before it lets the ring go, so each
entry is freed the moment it is cleared. Cutting again costs a few
microseconds a line; bench.ui measured full collections at 3-10 ms against
4-19 ms with the pieces kept (``tests/test_strips.py`` checks the pieces are
Textual's own).
"""
from __future__ import annotations

from functools import wraps
from typing import Iterable

from rich.segment import Segment
from textual.cache import FIFOCache, LRUCache
from textual.strip import Strip

# Textual's Strip.__init__ (8.x) makes these caches, with these sizes, and sets the other slots.
CACHE_SIZES = {"_divide_cache": 4, "_crop_cache": 16, "_style_cache": 16, "_filter_cache": 4,
               "_line_length_cache": 4, "_crop_extend_cache": 4, "_offsets_cache": 4}
OTHER_SLOTS = {"_segments", "_cell_length", "_render_cache", "_link_ids", "_cell_count"}


def install() -> None:
    """Patch ``Strip`` once per process (idempotent); Textual's own ``divide`` and ``__init__`` stay
    as ``__wrapped__``."""
    divide = Strip.divide
    if getattr(divide, "keeps_nothing", False):
        return
    _free_what_clear_drops()
    init = Strip.__init__
    # A Textual whose Strip has other slots keeps making its own caches (tests/test_strips.py says so).
    lazy = (set(getattr(Strip, "__slots__", ())) == set(CACHE_SIZES) | OTHER_SLOTS
            and not hasattr(Strip, "__getattr__"))

    @wraps(init)
    def init_without_caches(self: Strip, segments: Iterable[Segment], cell_length: int | None = None) -> None:
        self._segments = list(segments)
        self._cell_length = cell_length
        self._render_cache = None
        self._link_ids = None
        self._cell_count = None

    def make_cache(self: Strip, name: str) -> FIFOCache:
        """A cache slot read before it was set: make that cache now, as Textual's __init__ would have."""
        size = CACHE_SIZES.get(name)
        if size is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        cache = FIFOCache(size)
        setattr(self, name, cache)
        return cache

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
    if lazy:
        Strip.__init__ = init_without_caches
        Strip.__getattr__ = make_cache
    Strip.divide = divide_keeping_nothing


def _free_what_clear_drops() -> None:
    """``LRUCache.clear`` that breaks the ring of links first (Textual's own stays as ``__wrapped__``)."""
    clear = LRUCache.clear

    @wraps(clear)
    def clear_freeing_links(self: LRUCache) -> None:
        links = getattr(self, "_cache", None)
        if isinstance(links, dict):  # another Textual's insides may differ: then only its own clear
            for link in links.values():
                if isinstance(link, list):
                    link.clear()  # [previous, next, key, value]: no link refers to another any more
        clear(self)

    LRUCache.clear = clear_freeing_links
