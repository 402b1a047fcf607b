"""One background thread that runs the newest asked read, so the screen thread never waits on the store.

``ask(request)`` never blocks: it leaves the request for the thread and returns.
Requests made while a read is under way collapse into one: only the newest is
read next (a burst of engine updates becomes at most two reads). The thread
keeps its own database connection between reads and closes it when stopped.
It takes plain callables and knows nothing of Textual; the app turns what it
reads into messages.
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

Ask = TypeVar("Ask")


class LatestReader(Generic[Ask]):
    def __init__(self, read: Callable[[Ask], None], close: Callable[[], None], name: str = "memtui-view-reader"):
        self._read, self._close = read, close
        self._wake = threading.Condition()
        self._next: Ask | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def ask(self, request: Ask) -> None:
        """Read ``request`` soon, on the thread; replaces a request not yet taken up."""
        with self._wake:
            self._next = request
            self._wake.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Take no more requests; wait (up to ``timeout``) for a read under way to end."""
        with self._wake:
            self._stopping = True
            self._next = None
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while self._next is None and not self._stopping:
                        self._wake.wait()
                    if self._stopping:
                        return
                    request, self._next = self._next, None
                self._read(request)  # its own errors are its to report: see MemtuiApp._read_in_background
        finally:
            self._close()
