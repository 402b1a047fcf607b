"""Textual's repeating timers, late by one tick no more: a missed tick is skipped to the next one due.

A Textual ``Timer`` made with ``skip=True`` (every ``set_interval``, and each
screen's update timer, which draws its frames) keeps its ticks on a grid,
``start + n·interval``. When a tick comes late, Textual 8 works out how many
ticks were missed as ``int((now - start) / interval + 1)`` and then waits for
the tick after *that* one: one whole interval more than the missed ticks. The
screen's update timer pauses after each frame and resumes when a widget asks
for a repaint, so a frame is usually drawn late on its grid (at the resume),
and the next frame then waited between one and two intervals (17-33 ms at
60 Hz) instead of at most one. In ``python -m bench.ui`` that was what the
longest gaps between frames were: after a run ended, the frame that drew it
waited 32 ms with the screen thread idle, then took 10-16 ms to draw, and the
gap was 43-50 ms (issue 13 asks for none over 50).

``install()`` gives ``Timer`` the same loop with the count of missed ticks
right: the next tick is the first one on the grid after now. It patches only a
Textual whose loop has the line it corrects (``MISCOUNT``); one that differs is
left as it is (``tests/test_ticks.py`` says which).
"""
from __future__ import annotations

import inspect
from functools import wraps

from textual import _time
from textual.timer import EventTargetGone, Timer

MISCOUNT = "count = int((now - start) / _interval + 1)"


def textual_miscounts() -> bool:
    """Whether this Textual's ``Timer._run`` has the line ``install`` corrects."""
    run = getattr(Timer._run, "__wrapped__", Timer._run)
    try:
        return MISCOUNT in inspect.getsource(run)
    except (OSError, TypeError):
        return False


def install() -> bool:
    """Patch ``Timer._run`` once per process (idempotent); True when it is (or was already) patched."""
    if getattr(Timer._run, "next_tick_due", False):
        return True
    if not textual_miscounts():
        return False
    run = Timer._run

    @wraps(run)
    async def run_skipping_to_next_tick(self: Timer) -> None:
        # Textual's Timer._run (8.x) line for line, but for the count of missed ticks.
        count = 0
        _repeat = self._repeat
        _interval = self._interval
        self._active  # Force instantiation in same thread
        await self._active.wait()
        start = _time.get_time()

        while _repeat is None or count <= _repeat:
            next_timer = start + ((count + 1) * _interval)
            now = _time.get_time()
            if self._skip and next_timer < now:
                count = int((now - start) / _interval)  # the tick after it, start + (count + 1)·interval, is due next
                continue
            now = _time.get_time()
            wait_time = max(0, next_timer - now)
            await _time.sleep(wait_time)
            count += 1
            await self._active.wait()
            if self._reset:
                start = _time.get_time()
                count = 0
                self._reset = False
                continue
            try:
                await self._tick(next_timer=next_timer, count=count)
            except EventTargetGone:
                break

    run_skipping_to_next_tick.next_tick_due = True
    Timer._run = run_skipping_to_next_tick
    return True
