"""Test-only job kinds shared by the engine and dashboard tests, and an event recorder."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from memtui.engine.jobs import DEFAULT_JOBS, KINDS
from memtui.engine.jobs.base import JobKind, JobSpec

WAIT = 10  # seconds; only ever reached when something is broken


class Blocker:
    """Blocks until released; tells the test when it has started."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def run(self, ctx):
        self.calls += 1
        self.started.set()
        if not self.release.wait(WAIT):
            raise RuntimeError("the test never released the blocker")
        return {"blocked": 1}


def register(monkeypatch, flaky, blocker: Blocker, config: type) -> SimpleNamespace:
    """Make the test kinds "flaky" (every 10 s) and "block" (hourly) known before an Engine seeds."""
    monkeypatch.setitem(KINDS, "flaky", JobKind("flaky", flaky.run, config, "fails on demand", ("done",)))
    monkeypatch.setitem(KINDS, "block", JobKind("block", blocker.run, config, "blocks until released"))
    monkeypatch.setitem(DEFAULT_JOBS, "flaky", JobSpec("flaky", "flaky", "10s"))
    monkeypatch.setitem(DEFAULT_JOBS, "block", JobSpec("block", "block", "1h"))
    return SimpleNamespace(flaky=flaky, blocker=blocker)


class Recorder:
    """Collects events; ``wait_for`` blocks until a matching one arrived."""

    def __init__(self):
        self.events = []
        self._cond = threading.Condition()

    def __call__(self, event):
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event in {timeout} s; got {self.kinds()}")
                self._cond.wait(left)

    def kinds(self, job=None):
        with self._cond:
            return [e.kind for e in self.events if job is None or e.job == job]


def fire(engine, name: str, due_ts: float) -> None:
    """Let ``engine``'s alarm for ``name`` at ``due_ts`` go off now, and wait until whatever it started is done.

    ``_fire`` claims the due time synchronously and runs the job on a thread of its own;
    joining the threads it started keeps these tests free of sleeps."""
    before = set(threading.enumerate())
    engine._fire(name, due_ts)
    for thread in set(threading.enumerate()) - before:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                thread.join(max(0.0, deadline - time.monotonic()))
                break
            except RuntimeError:  # listed but not started yet
                assert time.monotonic() < deadline, f"{thread.name} never started"
                time.sleep(0.001)
        assert not thread.is_alive(), f"{thread.name} still running after {WAIT} s"

