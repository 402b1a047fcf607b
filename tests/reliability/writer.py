"""A second process writing to the memtui database the way an agent does, until told to stop.

Run as a script: ``python writer.py DB OUT STOP CONVERSATION_ID``. Plain sqlite3, busy
timeout 30 s, every write its own short BEGIN IMMEDIATE transaction. It cycles
through four writes: a pending memory that will score high (promote moves it), one
that scores low (stays pending), a message in its own active conversation, and a
record_access-style UPDATE of one of its earlier memories (the pending row, or its
long-term successor once promoted). It writes what it did to OUT as JSON when the
file STOP appears (or after two minutes): every id it inserted, every access hit,
every commit time and every error, so the parent can check that nothing failed and nothing was lost.
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import time


def main(db: str, out: str, stop: str, conversation: int) -> None:
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    live = open(os.path.join(os.path.dirname(out), "commits"), "a", buffering=1)
    conn.execute("PRAGMA busy_timeout = 30000")
    rng = random.Random(7)
    done = {"high": [], "low": [], "messages": [], "access": {}, "missing_access": [], "errors": [],
            "writes": 0, "max_latency_s": 0.0, "commit_times": []}

    def tx(work):
        started = time.monotonic()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            done["errors"].append(f"{type(exc).__name__}: {exc}")
            return None
        done["writes"] += 1
        done["commit_times"].append(time.time())
        live.write(f"{done['commit_times'][-1]}\n")  # the parent watches these while it runs jobs
        done["max_latency_s"] = max(done["max_latency_s"], time.monotonic() - started)
        return result

    def insert_pending(high: bool) -> int:
        now = time.time()
        return conn.execute(
            "INSERT INTO pending_memory (content, kind, sender, importance, confidence, access_count,"
            " last_access_at, remember, created_at) VALUES (?, 'note', 'writer', ?, ?, ?, ?, 0, ?)",
            (f"writer memory {'high' if high else 'low'} {done['writes']}", 9.0 if high else 0.0,
             0.9 if high else 0.0, 10 if high else 0, now if high else None, now),
        ).lastrowid

    def insert_message() -> int:
        now = time.time()
        mid = conn.execute(
            "INSERT INTO message (conversation_id, sender, role, content, created_at)"
            " VALUES (?, 'writer', 'user', ?, ?)",
            (conversation, f"writer message {done['writes']}", now)).lastrowid
        conn.execute("UPDATE conversation SET updated_at = ? WHERE id = ?", (now, conversation))
        return mid

    def access(memory_id: int) -> str:
        now = time.time()
        if conn.execute("UPDATE pending_memory SET access_count = access_count + 1, last_access_at = ? WHERE id = ?",
                        (now, memory_id)).rowcount:
            return "pending"
        if conn.execute("UPDATE long_term_memory SET recall_count = recall_count + 1, last_reinforced_at = ?"
                        " WHERE source_pending_id = ? AND deleted_at IS NULL", (now, memory_id)).rowcount:
            return "long_term"
        return "missing"

    deadline = time.monotonic() + 120
    step = 0
    while not os.path.exists(stop) and time.monotonic() < deadline:
        kind = step % 4
        step += 1
        if kind == 0 or kind == 1:
            mid = tx(lambda: insert_pending(kind == 0))
            if mid is not None:
                done["high" if kind == 0 else "low"].append(mid)
        elif kind == 2:
            mid = tx(insert_message)
            if mid is not None:
                done["messages"].append(mid)
        else:
            known = done["high"] + done["low"]
            if known:
                target = rng.choice(known)
                where = tx(lambda: access(target))
                if where == "missing":
                    done["missing_access"].append(target)
                elif where is not None:
                    hits = done["access"].setdefault(str(target), {"pending": 0, "long_term": 0})
                    hits[where] += 1
        time.sleep(0.001)
    conn.close()
    with open(out + ".tmp", "w") as fh:
        json.dump(done, fh)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
