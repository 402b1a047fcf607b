"""``memtui run promote`` in a child process, killed with SIGKILL once it has moved some memories: what the
promotion fault tests (test_promote_kill.py, test_incremental.py) share."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from memtui.models import Store


@dataclass(frozen=True)
class Killed:
    pending: set[int]  # the pending ids left
    sources: list[int]  # source_pending_id of every long-term memory (a duplicate would show twice)
    checkpoint: str | None  # promote's checkpoint as the killed run left it


def kill_promote_part_way(db_target: str, config: Path, *, moved: int) -> Killed:
    """Start ``memtui run promote`` on ``db_target`` with ``config``, SIGKILL it once ``moved`` memories are
    in long-term memory, and read what it left."""
    child = subprocess.Popen(
        [sys.executable, "-m", "memtui", "run", "promote", "--db", db_target, "--config", str(config)],
        cwd=os.path.dirname(os.path.dirname(__file__)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    reader = Store.open(db_target)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if reader.execute("SELECT count(*) FROM long_term_memory").fetchone()[0] >= moved:
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
        with contextlib.suppress(Exception):
            child.communicate(timeout=5)
    try:
        assert child.returncode == -signal.SIGKILL
        checkpoint = reader.execute("SELECT value FROM job_checkpoint WHERE job = 'promote'").fetchone()
        return Killed(pending={r[0] for r in reader.execute("SELECT id FROM pending_memory")},
                      sources=[r[0] for r in reader.execute("SELECT source_pending_id FROM long_term_memory")],
                      checkpoint=checkpoint[0] if checkpoint else None)
    finally:
        reader.close()
