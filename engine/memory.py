"""The agent-facing memory operations: remember, record an access, recall (reinforce), stats.

Small, validated writes, each one short transaction, so an agent can call them
while the jobs run. The Engine exposes them as methods; they take a Store and a
time so tests and other processes can use them directly too.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from memtui.engine.clock import from_ts
from memtui.engine.schedule import Schedule, ScheduleError
from memtui.models import Store


class MemoryInputError(ValueError):
    """Invalid memory input; the message is one line."""


@dataclass(frozen=True)
class PromotionStats:
    runs: int
    total_promoted: int
    total_expired: int
    last_run: datetime | None
    last_promoted: int | None
    enabled: bool
    schedule_text: str
    pending: int
    long_term: int
    recent: list[int]  # promoted per run, oldest first (for a sparkline)


def remember(store: Store, now: datetime, content: str, *, sender: str = "", kind: str = "note",
             session: str = "", importance: float = 5.0, confidence: float = 0.5, keep: bool = False) -> int:
    """Add a pending (short-term) memory and return its id."""
    if not isinstance(content, str) or not content.strip():
        raise MemoryInputError("memory content must be non-empty text")
    for name, value, low, high in (("importance", importance, 0, 10), ("confidence", confidence, 0, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise MemoryInputError(f"{name} must be a number from {low} to {high} (got {value!r})")
    ts = now.timestamp()
    with store.atomic():
        return store.execute(
            "INSERT INTO pending_memory (content, kind, sender, session, importance, confidence, access_count,"
            " last_access_at, remember, created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            (content, kind, sender, session, float(importance), float(confidence), ts, bool(keep), ts),
        ).lastrowid


def set_fact(store: Store, when: float, sender: str, key: str, value: str) -> None:
    """Insert or replace the fact ``key`` of ``sender`` (one per sender and key)."""
    with store.atomic():
        store.execute(
            "INSERT INTO fact (sender, key, value, updated_at) VALUES (?, ?, ?, ?)"
            # demo = 0: a value the agent wrote over a demo fact is the agent's now (memtui demo must keep it)
            " ON CONFLICT (sender, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,"
            " demo = 0",
            (sender, key, value, when))


def record_access(store: Store, now: datetime, memory_id: int) -> str:
    """Note that the agent used pending memory ``memory_id``.

    If it was promoted meanwhile, the access reinforces its long-term successor
    instead, as ``reinforce`` does, so an agent holding an old id never loses the
    signal: a successor that decay soft-deleted is restored. Returns 'pending' or
    'long_term'; raises MemoryInputError if the memory is gone (expired unpromoted,
    or hard-deleted by decay)."""
    ts = now.timestamp()
    with store.atomic():
        if store.execute(
            "UPDATE pending_memory SET access_count = access_count + 1, last_access_at = ? WHERE id = ?",
            (ts, memory_id),
        ).rowcount:
            return "pending"
        # Soft-deleted rows too: being used is what shows the memory is still wanted.
        if store.execute(
            "UPDATE long_term_memory SET recall_count = recall_count + 1, last_reinforced_at = ?,"
            " deleted_at = NULL WHERE source_pending_id = ?", (ts, memory_id),
        ).rowcount:
            return "long_term"
    raise MemoryInputError(f"no memory with id {memory_id}")


def reinforce(store: Store, now: datetime, long_term_id: int) -> None:
    """Recall long-term memory ``long_term_id``: recall count + 1, last reinforced = now.

    Recalling a soft-deleted memory brings it back (it was still wanted)."""
    with store.atomic():
        if not store.execute(
            "UPDATE long_term_memory SET recall_count = recall_count + 1, last_reinforced_at = ?,"
            " deleted_at = NULL WHERE id = ?", (now.timestamp(), long_term_id),
        ).rowcount:
            raise MemoryInputError(f"no long-term memory with id {long_term_id}")


def promotion_stats(store: Store, recent: int = 20, job: str = "promote") -> PromotionStats:
    """Promotion figures that survive restarts: kept in job_state and the run rows."""
    state = store.execute(
        "SELECT s.runs, s.totals, s.last_run_at, d.enabled, d.schedule, d.timezone, d.jitter_s"
        " FROM job_state s JOIN job_definition d ON d.name = s.name WHERE s.name = ?", (job,)
    ).fetchone()
    # "+status": walk the job's own runs newest first (run_job_id), not every success of every job.
    rows = store.execute(
        "SELECT result FROM run WHERE job = ? AND +status = 'success' ORDER BY id DESC LIMIT ?", (job, recent)
    ).fetchall()
    counts = [json.loads(r[0] or "{}").get("promoted", 0) for r in reversed(rows)]
    pending = store.execute("SELECT count(*) FROM pending_memory").fetchone()[0]
    long_term = store.execute("SELECT count(*) FROM long_term_memory WHERE deleted_at IS NULL").fetchone()[0]
    if state is None:
        return PromotionStats(0, 0, 0, None, None, False, "-", pending, long_term, counts)
    totals = json.loads(state[1] or "{}")
    try:
        text = Schedule.parse(state[4], state[5], state[6]).describe()
    except ScheduleError:
        text = state[4]
    return PromotionStats(
        runs=state[0], total_promoted=int(totals.get("promoted", 0)), total_expired=int(totals.get("expired", 0)),
        last_run=from_ts(state[2]), last_promoted=counts[-1] if counts else None, enabled=bool(state[3]),
        schedule_text=text, pending=pending, long_term=long_term, recent=counts,
    )
