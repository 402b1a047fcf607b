"""tui/ticks.py: a repeating timer whose tick came late ticks next at the first tick due on its grid, not the one
after it (Textual 8 waits one interval more: the screen's next frame waited up to two). On a fake clock."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from textual import _time
from textual._context import active_app
from textual.timer import Timer

from memtui.tui import ticks


class FakeClock:
    """Textual's time source and sleep, moved on by hand: a sleep returns at once, the clock advanced by it."""

    def __init__(self, now: float = 100.0):
        self.now = now

    def get_time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class Target:  # a timer holds its target weakly; with a callback it never posts to it
    pass


def tick_times(monkeypatch, run, *, busy: dict[int, float], ticks_wanted: int = 4, resume_at: float | None = None):
    """The clock's time at each tick of a 1 s timer started at 100 (``skip=True``, as ``set_interval``);
    tick n's callback keeps the clock busy for ``busy[n]`` s. With ``resume_at``, the first tick pauses the
    timer and it is resumed at that time: the screen's update timer, paused by each frame it draws and
    resumed when a widget asks for a repaint."""
    clock = FakeClock()
    monkeypatch.setattr(_time, "get_time", clock.get_time)
    monkeypatch.setattr(_time, "sleep", clock.sleep)
    monkeypatch.setattr("textual.timer.sleep", clock.sleep)  # Textual's own loop calls the name it imported
    monkeypatch.setattr(Timer, "_run", run)
    times: list[float] = []

    async def main() -> list[float]:
        done, errors = asyncio.Event(), []
        active_app.set(SimpleNamespace(_exit=False, features=frozenset(), _handle_exception=errors.append))

        def callback() -> None:
            if done.is_set():  # sleeps take no time here: the timer may tick again before it is stopped
                return
            times.append(clock.now)
            clock.now += busy.get(len(times), 0.0)
            if resume_at is not None and len(times) == 1:
                timer.pause()
            if len(times) == ticks_wanted:
                done.set()

        target = Target()
        timer = Timer(target, 1.0, callback=callback, skip=True)
        timer._start()
        if resume_at is not None:
            for _ in range(1000):  # until the paused timer has slept to its next tick and waits to be resumed
                if times and clock.now >= 102.0:
                    break
                await asyncio.sleep(0)
            assert times == [101.0] and clock.now == 102.0
            clock.now = resume_at
            timer.resume()
        await asyncio.wait_for(done.wait(), 5)
        timer.stop()
        assert not errors
        return times

    return asyncio.run(main())


def ours():
    assert ticks.install()
    return Timer._run


def textuals():
    return getattr(Timer._run, "__wrapped__", Timer._run)


def test_this_textual_has_the_loop_the_patch_corrects():
    """A Textual that counts missed ticks right needs no patch: then this fails, and tui/ticks.py can go."""
    assert ticks.textual_miscounts()
    assert ticks.install() and Timer._run.next_tick_due
    patched = Timer._run
    assert ticks.install() and Timer._run is patched  # once per process


def test_ticks_on_time_stay_on_the_grid(monkeypatch):
    assert tick_times(monkeypatch, ours(), busy={}) == [101.0, 102.0, 103.0, 104.0]


def test_a_late_tick_is_followed_by_the_next_tick_due(monkeypatch):
    # the first tick keeps the clock busy until 102.5: 102 was missed, 103 is the next due
    assert tick_times(monkeypatch, ours(), busy={1: 1.5}) == [101.0, 103.0, 104.0, 105.0]


def test_textuals_own_loop_skips_one_tick_more(monkeypatch):
    """Why the patch: Textual's own loop ticks at 104 there, a whole interval after the tick due."""
    if not ticks.textual_miscounts():
        pytest.skip("this Textual counts missed ticks right")
    assert tick_times(monkeypatch, textuals(), busy={1: 1.5}) == [101.0, 104.0, 105.0, 106.0]


def test_a_timer_resumed_late_ticks_at_once_then_at_the_next_tick_due(monkeypatch):
    """The screen's update timer: paused by its frame at 101 until a repaint is asked at 103.25, it draws then;
    the next frame at 104, not 105 (Textual's own: 105, 1.75 intervals after the one before)."""
    assert tick_times(monkeypatch, ours(), busy={}, resume_at=103.25) == [101.0, 103.25, 104.0, 105.0]
    if ticks.textual_miscounts():
        assert tick_times(monkeypatch, textuals(), busy={}, resume_at=103.25) == [101.0, 103.25, 105.0, 106.0]
