"""The engine's notion of now: a callable returning an aware UTC datetime.

Everything that decides or records time (run rows, leases, backoff, missed-run
detection, the memory jobs' ages) reads this clock, so tests inject a
``FakeClock`` and move it by hand instead of sleeping.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Callable

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


class FakeClock:
    """A clock that only moves when told to; thread-safe."""

    def __init__(self, start: datetime | None = None):
        start = start or datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs) -> datetime:
        with self._lock:
            self._now += delta if delta is not None else timedelta(**kwargs)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


def from_ts(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)
