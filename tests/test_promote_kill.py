"""A promotion killed with SIGKILL part-way leaves every memory in exactly one table."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from memtui.engine import Engine
from memtui.engine.config import Config
from memtui.models import Store

N = 60_000


def build(db_path, now_ts: float) -> None:
    Store.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.executemany(
        "INSERT INTO pending_memory (content, importance, confidence, access_count, last_access_at, created_at)"
        " VALUES (?, 9, 0.9, 10, ?, ?)", ((f"memory {i}", now_ts, now_ts) for i in range(N)))
    conn.commit()
    conn.close()


def test_sigkill_mid_promotion_loses_and_duplicates_nothing(tmp_path):
    db_path = tmp_path / "kill.db"
    build(db_path, time.time())
    config = tmp_path / "config.toml"
    config.write_text("[jobs.promote]\ncap = 0\nbatch_size = 200\n")
    child = subprocess.Popen(
        [sys.executable, "-m", "memtui", "run", "promote", "--db", str(db_path), "--config", str(config)],
        cwd=os.path.dirname(os.path.dirname(__file__)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    reader = sqlite3.connect(db_path, timeout=30)
    deadline = time.monotonic() + 60
    moved = 0
    try:
        while time.monotonic() < deadline:
            moved = reader.execute("SELECT count(*) FROM long_term_memory").fetchone()[0]
            if moved >= 2000:
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    pending = {r[0] for r in reader.execute("SELECT id FROM pending_memory")}
    sources = [r[0] for r in reader.execute("SELECT source_pending_id FROM long_term_memory")]
    reader.close()
    assert 0 < len(sources) < N, "the kill should land part-way through"
    assert len(sources) == len(set(sources)), "a memory was promoted twice"
    assert not pending & set(sources), "a memory is in both tables"
    assert len(pending) + len(sources) == N, "a memory was lost"

    # The next start marks the cut run interrupted and carries on.
    engine = Engine(Store.open(db_path), Config(jobs={"promote": {"cap": 0}}))
    engine.recover_interrupted()
    status = engine.history("promote", 1)[0]
    assert status.status == "interrupted"
    assert engine.run_job("promote").status == "success"
    assert engine.store.execute("SELECT count(*) FROM pending_memory").fetchone()[0] == 0
    assert engine.store.execute("SELECT count(DISTINCT source_pending_id) FROM long_term_memory").fetchone()[0] == N
