"""tui/reader.py: the dashboard's reader thread reads only the newest request, never on the caller's
thread, and closes its connection (the ``close`` callable) on its own thread when stopped."""
from __future__ import annotations

import threading
import time

from memtui.tui.reader import LatestReader


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_asks_made_while_a_read_runs_collapse_into_the_newest():
    reading, release = threading.Event(), threading.Event()
    read, closed = [], []

    def do_read(ask: int) -> None:
        read.append((ask, threading.current_thread().name))
        if ask == 1:
            reading.set()
            release.wait(5)

    reader = LatestReader(do_read, lambda: closed.append(threading.current_thread().name))
    reader.ask(1)
    assert reading.wait(5)
    for ask in (2, 3, 4):  # a burst while the first read runs: only the newest is read next
        reader.ask(ask)
    release.set()
    wait_for(lambda: len(read) == 2)
    reader.stop()
    assert read == [(1, "memtui-view-reader"), (4, "memtui-view-reader")]
    assert closed == ["memtui-view-reader"]


def test_after_stop_nothing_is_read_and_the_thread_is_gone():
    read, closed = [], []
    reader = LatestReader(read.append, lambda: closed.append(1))
    reader.stop()  # joins the thread: it closed its connection and ended
    assert closed == [1]
    reader.ask(1)
    assert read == [] and not any(t.name == "memtui-view-reader" for t in threading.enumerate())
