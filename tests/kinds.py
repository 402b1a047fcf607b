"""Test-only job kinds shared by the engine and dashboard tests."""
from __future__ import annotations

import threading

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
