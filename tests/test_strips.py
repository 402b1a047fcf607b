"""tui/strips.py: Strip.divide keeps no pieces (nor itself) and cuts the same strips as Textual's own; a strip
makes its caches when it first uses each, and draws the same as one made by Textual's own __init__."""
from __future__ import annotations

import gc
import sys

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual.cache import FIFOCache
from textual.color import Color
from textual.filter import Monochrome
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


def test_strip_is_the_one_the_patch_was_written_for():
    """A Textual upgrade that changes Strip's slots turns the lazy caches off: this says so loudly."""
    strips.install()
    assert Strip.__init__.__code__.co_name == "init_without_caches" and Strip.__getattr__.__name__ == "make_cache"


def test_a_new_strip_holds_no_cache_until_it_uses_one():
    strips.install()
    strip = make_strip()
    for name in strips.CACHE_SIZES:  # the slot descriptor itself: unset, so no object was made for it
        try:
            getattr(Strip, name).__get__(strip)
        except AttributeError:
            continue
        raise AssertionError(f"{name} was made with the strip")
    assert not [o for o in gc.get_referents(strip) if isinstance(o, FIFOCache)]
    strip.crop(0, 3)
    made = [o for o in gc.get_referents(strip) if isinstance(o, FIFOCache)]
    assert made == [strip._crop_cache] and strip._crop_cache._maxsize == strips.CACHE_SIZES["_crop_cache"]
    assert strip.crop(0, 3) is strip.crop(0, 3)  # and caches as Textual's own does


def test_other_attributes_still_raise():
    strips.install()
    strip = make_strip()
    try:
        strip._no_such_cache
    except AttributeError as exc:
        assert "_no_such_cache" in str(exc)
    else:
        raise AssertionError("an unknown attribute was answered")
    assert not hasattr(strip, "whatever")


def test_lazy_strips_draw_the_same_as_textuals_own():
    strips.install()

    def textuals_strip() -> Strip:
        strip = Strip.__new__(Strip)
        Strip.__init__.__wrapped__(strip, list(make_strip()))
        return strip

    def draw(strip: Strip) -> list:
        return [
            list(strip.crop(2, 9)), list(strip.crop(2, 9)),
            list(strip.apply_style(Style(bgcolor="blue"))),
            list(strip.apply_filter(Monochrome(), Color(0, 0, 0))),
            list(strip.adjust_cell_length(30, Style(italic=True))),
            list(strip.crop_extend(1, 25, Style(underline=True))),
            list(strip.apply_offsets(3, 4)), strip.render(Console()),
            [list(p) for p in strip.divide([4, strip.cell_length])], strip.cell_length, strip.text,
        ]

    assert draw(make_strip()) == draw(textuals_strip())


def test_a_cleared_lru_cache_leaves_nothing_for_the_collector():
    """DataTable clears its render caches at every update: what they held must go by reference counting."""
    from textual.cache import LRUCache

    strips.install()
    assert LRUCache.clear is not LRUCache.clear.__wrapped__
    cache: LRUCache[int, list] = LRUCache(8)
    for key in range(12):  # some evicted too
        cache[key] = [Segment(f"row {key}", Style(bold=True))]
    cache.discard(5)
    assert cache.get(9) is not None and len(cache) == 7
    gc.collect()
    gc.disable()
    try:
        cache.clear()
        assert len(cache) == 0 and cache.get(9) is None
        assert gc.collect() == 0  # no ring of links left behind
        cache[1] = ["again"]  # still a working cache after it
        cache[2] = ["and again"]
        assert cache.get(1) == ["again"] and len(cache) == 2
    finally:
        gc.enable()
