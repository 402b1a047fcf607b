"""The agent-facing memory operations: remember, set a fact, record an access, reinforce, promotion stats.

Small, validated writes, each one short transaction, so an agent can call them
while the jobs run. The Engine exposes them as methods; they take a Store and a
time so tests and other processes can use them directly too. Queries are
Peewee's on the store's bound models, so they run alike on SQLite and PostgreSQL.
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
    last_pass: str | None = None  # the last run scored "incremental"-ly (what changed) or "full" (every row)
    last_scored: int | None = None  # how many memories the last run scored


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
        return store.m.PendingMemory.insert(
            # 9 decimal places: a subnormal float (5e-324) would make PostgreSQL's arithmetic on it fail
            content=content, kind=kind, sender=sender, session=session, importance=round(float(importance), 9),
            confidence=round(float(confidence), 9), access_count=0, last_access_at=ts, remember=bool(keep), created_at=ts,
        ).execute()


def set_fact(store: Store, when: float, sender: str, key: str, value: str) -> None:
    """Insert or replace the fact ``key`` of ``sender`` (one per sender and key)."""
    Fact = store.m.Fact
    with store.atomic():
        Fact.insert(sender=sender, key=key, value=value, updated_at=when).on_conflict(
            conflict_target=[Fact.sender, Fact.key], preserve=[Fact.value, Fact.updated_at],
            # demo = false: a value the agent wrote over a demo fact is the agent's now (memtui demo must keep it)
            update={Fact.demo: False},
        ).execute()


def record_access(store: Store, now: datetime, memory_id: int) -> str:
    """Note that the agent used pending memory ``memory_id``.

    If it was promoted meanwhile, the access reinforces its long-term successor
    instead, as ``reinforce`` does, so an agent holding an old id never loses the
    signal: a successor that decay soft-deleted is restored. Returns 'pending' or
    'long_term'; raises MemoryInputError if the memory is gone (expired unpromoted,
    or hard-deleted by decay)."""
    ts = now.timestamp()
    Pending, LongTerm = store.m.PendingMemory, store.m.LongTermMemory
    with store.atomic():
        if Pending.update(access_count=Pending.access_count + 1, last_access_at=ts).where(
                Pending.id == memory_id).execute():
            return "pending"
        # Soft-deleted rows too: being used is what shows the memory is still wanted.
        if LongTerm.update(recall_count=LongTerm.recall_count + 1, last_reinforced_at=ts, deleted_at=None).where(
                LongTerm.source_pending_id == memory_id).execute():
            return "long_term"
    raise MemoryInputError(f"no memory with id {memory_id}")


def reinforce(store: Store, now: datetime, long_term_id: int) -> None:
    """Recall long-term memory ``long_term_id``: recall count + 1, last reinforced = now.

    Recalling a soft-deleted memory brings it back (it was still wanted)."""
    LongTerm = store.m.LongTermMemory
    with store.atomic():
        if not LongTerm.update(recall_count=LongTerm.recall_count + 1, last_reinforced_at=now.timestamp(),
                               deleted_at=None).where(LongTerm.id == long_term_id).execute():
            raise MemoryInputError(f"no long-term memory with id {long_term_id}")


def recent_results(store: Store, job: str, recent: int):
    """The results of ``job``'s last ``recent`` successful runs, newest first (a query, not run yet).

    The status is compared as ``status || ''``: an expression no index covers, so SQLite walks the
    job's own runs newest first (index run_job_id) and stops after ``recent``, instead of taking
    the run_status index and reading every success of every job."""
    Run = store.m.Run
    return (Run.select(Run.result)
            .where((Run.job == job) & (Run.status.concat("") == "success"))
            .order_by(Run.id.desc()).limit(recent))


def promotion_stats(store: Store, recent: int = 20, job: str = "promote") -> PromotionStats:
    """Promotion figures that survive restarts: kept in job_state and the run rows."""
    State, Definition = store.m.JobState, store.m.JobDefinition
    state = (State.select(State.runs, State.totals, State.last_run_at, Definition.enabled, Definition.schedule,
                          Definition.timezone, Definition.jitter_s)
             .join(Definition, on=(Definition.name == State.name))
             .where(State.name == job).tuples().first())
    results = [json.loads(result or "{}") for (result,) in recent_results(store, job, recent).tuples()]
    counts = [result.get("promoted", 0) for result in reversed(results)]
    last = results[0] if results else {}
    pending = store.m.PendingMemory.select().count()
    LongTerm = store.m.LongTermMemory
    long_term = LongTerm.select().where(LongTerm.deleted_at.is_null()).count()
    if state is None:
        return PromotionStats(0, 0, 0, None, None, False, "-", pending, long_term, counts)
    runs, totals_json, last_run_at, enabled, schedule, zone, jitter_s = state
    totals = json.loads(totals_json or "{}")
    try:
        text = Schedule.parse(schedule, zone, jitter_s).describe()
    except ScheduleError:
        text = schedule
    return PromotionStats(
        runs=runs, total_promoted=int(totals.get("promoted", 0)), total_expired=int(totals.get("expired", 0)),
        last_run=from_ts(last_run_at), last_promoted=counts[-1] if counts else None, enabled=bool(enabled),
        schedule_text=text, pending=pending, long_term=long_term, recent=counts,
        last_pass=last.get("pass"), last_scored=last.get("scored"),
    )
