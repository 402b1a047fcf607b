"""Shared pieces of the fault-injection tests: child processes, kill-at-progress, data builders.

Data is written with plain sqlite3 (fast ``executemany``) after ``Store.open`` has
created the schema, the way an agent in another language would write it.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from memtui.models import Store

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
DAY = 86400.0
WAIT = 60  # seconds; a deadline only ever reached when something is broken


# -- processes -----------------------------------------------------------------------

class Children:
    """Start child processes; any still alive at the end are killed by their own pid."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, *argv, name: str = "child", **kwargs) -> subprocess.Popen:
        # Append mode: the child shares the file offset, and reading here must never move its writes.
        out = open(self.tmp_path / f"{name}-{len(self.procs)}.out", "a+")
        err = open(self.tmp_path / f"{name}-{len(self.procs)}.err", "a+")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=err, cwd=ROOT, env=env, **kwargs)
        proc.out_file, proc.err_file = out, err  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def memtui(self, *args, name: str = "memtui") -> subprocess.Popen:
        return self.start(PYTHON, "-m", "memtui", *args, name=name)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(WAIT)
            proc.out_file.close()
            proc.err_file.close()


def output(proc: subprocess.Popen) -> str:
    """A child's stdout and stderr so far (for assertion messages)."""
    texts = []
    for fh in (proc.out_file, proc.err_file):
        fh.flush()
        fh.seek(0)
        texts.append(fh.read())
    return "stdout:\n" + texts[0] + "\nstderr:\n" + texts[1]


def kill_at(proc: subprocess.Popen, db_path: Path, progress: Callable[[sqlite3.Connection], bool],
            timeout: float = WAIT) -> None:
    """Poll the database until ``progress(conn)`` holds, then SIGKILL ``proc`` and reap it.

    Fails if the child exits by itself first (the kill would not land mid-way)."""
    reader = sqlite3.connect(db_path, timeout=30)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if progress(reader):
                break
            assert proc.poll() is None, f"the child ended before the kill point\n{output(proc)}"
            assert time.monotonic() < deadline, f"no progress within {timeout} s\n{output(proc)}"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(WAIT)  # reap it: a zombie still answers kill(pid, 0)
    finally:
        reader.close()
    assert proc.returncode == -signal.SIGKILL, f"the child was not killed mid-way\n{output(proc)}"


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.01)


# -- reading the database ------------------------------------------------------------

def connect(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(db_path, timeout=30)


def scalar(conn, sql: str, params=()):
    return conn.execute(sql, params).fetchone()[0]


def rows(conn, sql: str, params=()) -> list[tuple]:
    return conn.execute(sql, params).fetchall()


def run_rows(conn, job: str | None = None) -> list[dict]:
    cur = conn.execute(
        "SELECT * FROM run" + (" WHERE job = ?" if job else "") + " ORDER BY id", (job,) if job else ())
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def job_state(conn, name: str) -> dict:
    cur = conn.execute("SELECT * FROM job_state WHERE name = ?", (name,))
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone()))


def checkpoint(conn, job: str) -> dict:
    row = conn.execute("SELECT value FROM job_checkpoint WHERE job = ?", (job,)).fetchone()
    return json.loads(row[0]) if row else {}


def integrity_ok(conn) -> bool:
    return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- building data ---------------------------------------------------------------------

def new_db(db_path: Path) -> None:
    """Create the schema (migrations) and nothing else; the first engine seeds the jobs."""
    Store.open(db_path).close()


def bulk(db_path: Path, sql: str, values) -> None:
    conn = sqlite3.connect(db_path, timeout=30)
    with conn:
        conn.executemany(sql, values)
    conn.close()


def add_conversations(db_path: Path, specs) -> None:
    """``specs``: iterable of (sender, status, started_ts, updated_ts, n_messages)."""
    conn = sqlite3.connect(db_path, timeout=30)
    with conn:
        for sender, status, started, updated, n in specs:
            cid = conn.execute(
                "INSERT INTO conversation (channel, sender, status, started_at, updated_at)"
                " VALUES ('chat', ?, ?, ?, ?)",
                (sender, status, started, updated)).lastrowid
            conn.executemany(
                "INSERT INTO message (conversation_id, sender, role, content, created_at) VALUES (?, ?, 'user', ?, ?)",
                ((cid, sender, f"{sender} said thing {i} in {cid}", started + i) for i in range(n)))
    conn.close()


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
