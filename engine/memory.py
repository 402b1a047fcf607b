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
from memtui.models.text import content_key


MAX_SUCCESSION = 50  # merged into a memory merged into another…: followed this far (a cycle can only be hand-made)


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
    merged: int = 0  # duplicates merged into another memory by the dedupe job, all runs
    superseded: int = 0  # memories a newer one replaced (dedupe), all runs


class Remembered(int):
    """What ``remember`` returns: the memory's id (an int, as before), and whether the text was a repeat.

    A repeat is text whose normalised words (models/text.py ``content_key``) equal those of a memory of
    the same sender that is still kept: pending, or long-term (restored if decay had faded it). It is
    not stored again; it counts as a use of that memory. ``tier`` says which table the id is of: a
    long-term memory is named by the pending id it came from when it has one (so ``record_access`` and
    ``why`` follow it), else by its own long-term id."""

    repeat: bool
    tier: str

    def __new__(cls, memory_id: int, repeat: bool = False, tier: str = "pending"):
        value = super().__new__(cls, memory_id)
        value.repeat, value.tier = repeat, tier
        return value

    def __repr__(self) -> str:
        return f"Remembered({int(self)}, repeat={self.repeat}, tier={self.tier!r})"

    __str__ = int.__repr__  # printed and formatted as the plain id


def check_scores(importance, confidence) -> None:
    for name, value, low, high in (("importance", importance, 0, 10), ("confidence", confidence, 0, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise MemoryInputError(f"{name} must be a number from {low} to {high} (got {value!r})")


def remember(store: Store, now: datetime, content: str, *, sender: str = "", kind: str = "note",
             session: str = "", importance: float = 5.0, confidence: float = 0.5, keep: bool = False) -> Remembered:
    """Add a pending (short-term) memory and return its id, or count a repeat as a use (see Remembered)."""
    if not isinstance(content, str) or not content.strip():
        raise MemoryInputError("memory content must be non-empty text")
    check_scores(importance, confidence)
    with store.atomic():
        return store_memory(store, now.timestamp(), content, sender=sender, kind=kind, session=session,
                            importance=importance, confidence=confidence, keep=keep, created_at=now.timestamp())


def store_memory(store: Store, ts: float, content: str, *, sender: str, kind: str, session: str,
                 importance: float, confidence: float, keep: bool, created_at: float) -> Remembered:
    """Inside a write transaction: insert a pending memory, or make a repeat a use of the memory it repeats.

    A repeat raises the kept memory's importance and confidence to the higher of the two and, with
    ``keep``, marks it kept (pending) or pins it (long-term). Writers of the same text are serialized
    (``store.serialize``), so two agents storing it at once still leave one memory."""
    Pending, LongTerm = store.m.PendingMemory, store.m.LongTermMemory
    key = content_key(content)
    # 9 decimal places: a subnormal float (5e-324) would make PostgreSQL's arithmetic on it fail
    importance, confidence = round(float(importance), 9), round(float(confidence), 9)
    store.serialize(f"memtui.remember:{sender}\x1f{key}")
    same = (Pending.sender == sender) & (Pending.content_key == key)
    found = Pending.select(Pending.id).where(same).order_by(Pending.id).limit(1).scalar()
    if found is not None:
        Pending.update(access_count=Pending.access_count + 1, last_access_at=ts,
                       importance=store.greatest(Pending.importance, importance),
                       confidence=store.greatest(Pending.confidence, confidence),
                       **({"remember": True} if keep else {})).where(Pending.id == found).execute()
        return Remembered(found, repeat=True, tier="pending")
    # A live memory first, else one decay faded (being said again shows it is still wanted: restored).
    row = (LongTerm.select(LongTerm.id, LongTerm.source_pending_id, LongTerm.deleted_at, LongTerm.content,
                           LongTerm.demo)
           .where((LongTerm.sender == sender) & (LongTerm.content_key == key) & LongTerm.superseded_by.is_null())
           .order_by(LongTerm.deleted_at.is_null(False), LongTerm.id).limit(1).first())
    if row is not None:
        LongTerm.update(recall_count=LongTerm.recall_count + 1, last_reinforced_at=ts, deleted_at=None,
                        importance=store.greatest(LongTerm.importance, importance),
                        confidence=store.greatest(LongTerm.confidence, confidence),
                        **({"pinned": True} if keep else {})).where(LongTerm.id == row.id).execute()
        if row.deleted_at is not None:
            record(store, ts, row.id, "restore", old_text=row.content, reason="stored again", demo=row.demo)
        if row.source_pending_id is not None:
            return Remembered(row.source_pending_id, repeat=True, tier="long_term")
        return Remembered(row.id, repeat=True, tier="long_term")
    return Remembered(Pending.insert(
        content=content, kind=kind, sender=sender, session=session, importance=importance,
        confidence=confidence, access_count=0, last_access_at=created_at, remember=bool(keep),
        created_at=created_at, content_key=key).execute())


@dataclass(frozen=True)
class Forgot:
    """What ``forget`` did."""

    tier: str  # "pending" (deleted: never promoted) or "long_term" (soft-deleted)
    memory_id: int  # the row: the pending id, or the long-term memory's own id
    done: bool  # False: it was soft-deleted already, nothing changed
    unpinned: bool = False  # it had been kept (pinned); forgetting lifts that


def forget(store: Store, now: datetime, memory_id: int, *, long_term: bool = False,
           reason: str = "forgotten on request", run_id: int | None = None) -> Forgot:
    """Forget a memory on request, in one transaction, with a memory_history row.

    A pending memory (``memory_id`` as remember returned it) is deleted before promote ever moves it
    (history action ``expire``, so ``why`` can still tell it). A long-term one (followed from its pending
    id, or its own id with ``long_term``) is soft-deleted as decay does, and unpinned (history action
    ``forget``): recall no longer offers it, even among the faded ones, but it is restorable — a use by
    id (``record_access``/``reinforce``) or the same words stored again bring it back — until decay
    deletes it for good after its grace period. A memory merged into or replaced by another is refused:
    what stands for it now may say more than it did."""
    Pending, LongTerm = store.m.PendingMemory, store.m.LongTermMemory
    ts = now.timestamp()
    with store.atomic():
        if not long_term:
            # Locked: promote (which locks the rows it copies on PostgreSQL) moves it first, or never.
            row = store.for_update(Pending.select(Pending.id, Pending.content, Pending.demo)
                                   .where(Pending.id == memory_id)).first()
            if row is not None:
                Pending.delete().where(Pending.id == memory_id).execute()
                record(store, ts, memory_id, "expire", tier="pending", old_text=row.content, reason=reason,
                       run_id=run_id, demo=row.demo)
                return Forgot("pending", memory_id, True)
            which, missing = LongTerm.source_pending_id == memory_id, f"no memory with id {memory_id}"
        else:
            which, missing = LongTerm.id == memory_id, f"no long-term memory with id {memory_id}"
        row = store.for_update(LongTerm.select(
            LongTerm.id, LongTerm.content, LongTerm.demo, LongTerm.deleted_at, LongTerm.pinned,
            LongTerm.superseded_by).where(which)).first()
        if row is None:
            raise MemoryInputError(missing)
        if row.superseded_by is not None:
            raise MemoryInputError(f"long-term memory #{row.id} was merged into or replaced by "
                                   f"#{row.superseded_by}, which recall gives instead: forget that one")
        if row.deleted_at is not None:
            return Forgot("long_term", row.id, False)
        LongTerm.update(deleted_at=ts, retire_at=None, pinned=False).where(LongTerm.id == row.id).execute()
        record(store, ts, row.id, "forget", old_text=row.content, reason=reason, run_id=run_id, demo=row.demo)
        return Forgot("long_term", row.id, True, unpinned=bool(row.pinned))


def record(store: Store, ts: float, memory_id: int, action: str, *, tier: str = "long_term",
           other_id: int | None = None, old_text: str | None = None, new_text: str | None = None,
           reason: str = "", run_id: int | None = None, demo: bool = False) -> None:
    """One memory_history row (inside the transaction that made the move)."""
    store.m.MemoryHistory.insert(memory_id=memory_id, tier=tier, action=action, other_id=other_id,
                                 old_text=old_text, new_text=new_text, reason=reason, run_id=run_id, at=ts,
                                 demo=demo).execute()


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
        if reinforce_where(store, ts, LongTerm.source_pending_id == memory_id, "used"):
            return "long_term"
    raise MemoryInputError(f"no memory with id {memory_id}")


def reinforce(store: Store, now: datetime, long_term_id: int) -> None:
    """Recall long-term memory ``long_term_id``: recall count + 1, last reinforced = now.

    Recalling a soft-deleted memory brings it back (it was still wanted)."""
    with store.atomic():
        if not reinforce_where(store, now.timestamp(), store.m.LongTermMemory.id == long_term_id, "recalled"):
            raise MemoryInputError(f"no long-term memory with id {long_term_id}")


def reinforce_where(store: Store, ts: float, which, why: str) -> bool:
    """Inside a transaction: one more recall of the long-term memory ``which`` selects, restoring it
    (with a history row) if decay had faded it. A memory merged into another (or replaced by a newer
    one) passes the recall on to that one. False when there is no such memory."""
    LongTerm = store.m.LongTermMemory
    for _ in range(MAX_SUCCESSION):
        row = store.for_update(LongTerm.select(LongTerm.id, LongTerm.deleted_at, LongTerm.content, LongTerm.demo,
                                               LongTerm.superseded_by).where(which)).first()
        if row is None:
            return False
        if row.superseded_by is None:
            break
        which = LongTerm.id == row.superseded_by
    LongTerm.update(recall_count=LongTerm.recall_count + 1, last_reinforced_at=ts, deleted_at=None).where(
        LongTerm.id == row.id).execute()
    if row.deleted_at is not None:
        record(store, ts, row.id, "restore", old_text=row.content, reason=f"{why} again", demo=row.demo)
    return True


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
    long_term = LongTerm.select().where(LongTerm.deleted_at.is_null() & LongTerm.superseded_by.is_null()).count()
    hygiene = json.loads(State.select(State.totals).where(State.name == "dedupe").scalar() or "{}")
    merged, superseded = int(hygiene.get("merged", 0)), int(hygiene.get("superseded", 0))
    if state is None:
        return PromotionStats(0, 0, 0, None, None, False, "-", pending, long_term, counts, merged=merged,
                              superseded=superseded)
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
        last_pass=last.get("pass"), last_scored=last.get("scored"), merged=merged, superseded=superseded,
    )
