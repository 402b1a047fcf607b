"""A realistic, deterministic sample store for ``memtui demo`` and ``memtui --demo``.

Seeded random over fixed vocabularies: a few senders, conversations open and
closed across the last 90 days with messages, pending memories with varied
importance, confidence and access patterns, long-term memories of varied ages
(some pinned, some about to decay), facts, outcomes beyond the per-sender cap,
and profile attributes with duplicates and contradictions — so every job has
real work on its first run. Times are relative to ``now``, so the same seed and
the same ``now`` give the same store.
"""
from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass
from datetime import datetime

from peewee import chunked

from memtui.models import Store
from memtui.models.text import content_key

SENDERS = ("alice", "bob", "carol", "dev-agent")
CHANNELS = ("chat", "email", "slack", "cli")
TOPICS = (
    ("travel", ["booked a flight to Lisbon", "prefers aisle seats", "hotel near the old town",
                "the conference is in May", "needs a visa for the trip"]),
    ("food", ["is vegetarian", "likes green tea in the morning", "allergic to peanuts",
              "favourite restaurant is Sora", "drinks coffee black"]),
    ("work", ["is migrating the billing service", "standup is at 09:30", "prefers short answers",
              "the deploy freeze starts Friday", "owns the search team roadmap"]),
    ("health", ["runs three times a week", "training for a half marathon", "sleeps badly before deadlines"]),
    ("family", ["has a daughter called Mia", "sister lives in Porto", "cat is called Miso"]),
)
LESSONS = (
    "summaries work better with bullet points", "ask before booking anything paid",
    "double-check time zones for meetings", "short answers get better feedback",
    "cite the source when quoting numbers", "confirm the recipient before sending email",
)
PROFILE = {
    "alice": [("location", "city", "Berlin", 80), ("location", "city", "Munich", 3),
              ("preference", "favorite drink", "green tea", 40), ("preference", "Favorite Drink", "Green tea", 10),
              ("identity", "name", "Alice Moreau", 60), ("identity", "name", "alice moreau", 20),
              ("work", "employer", "Acme GmbH", 30)],
    "bob": [("preference", "diet", "vegetarian", 50), ("preference", "diet", "vegan", 2),
            ("contact", "email", "bob@example.com", 70), ("contact", "e-mail", "bob@example.com ", 15),
            ("work", "role", "SRE", 25)],
    "carol": [("location", "timezone", "Europe/Lisbon", 45), ("location", "time zone", "Europe/Lisbon", 5),
              ("preference", "meeting time", "mornings", 12)],
}


@dataclass(frozen=True)
class DemoSummary:
    conversations: int
    messages: int
    pending: int
    long_term: int
    facts: int
    outcomes: int
    profile_attributes: int
    replaced: int = 0  # rows of an earlier demo sample this fill replaced


def demo_rows(store: Store) -> int:
    """How many rows carry the demo mark: an earlier sample, which a fill replaces."""
    return sum(model.select().where(model.demo == True).count()  # noqa: E712 (a SQL comparison)
               for model in _models(store, MEMORY_TABLES))


class DemoRefused(Exception):
    """The database holds data that is not demo data; the message says what to do."""


# Every table whose rows carry the ``demo`` mark (migration 0002), in delete order.
MEMORY_TABLES = ("message", "conversation", "pending_memory", "long_term_memory", "memory_history", "fact", "outcome",
                 "profile_attribute", "profile_attribute_history", "summary")
HISTORY_TABLES = ("run", "audit_log")  # what --reset also deletes
# The order the engine and the jobs take these tables in, so locking them all cannot deadlock with a
# run: the engine's transactions take job_state, then run, then audit_log; promote's move inserts into
# long_term_memory while it locks pending_memory rows, then memory_history (expiry, decay, dedupe); profile locks attributes, then writes history;
# rollup writes a summary, then its checkpoint.
LOCK_ORDER = ("long_term_memory", "pending_memory", "memory_history", "message", "conversation", "fact", "outcome",
              "profile_attribute", "profile_attribute_history", "summary", "job_checkpoint")
SYSTEM_SENDER = "__system__"  # engine state kept as facts (consolidate's last run): not the agent's data
BATCH = 100  # rows per multi-row INSERT: well under SQLite's limit of bound parameters


def _models(store: Store, tables) -> list:
    """The store's bound models of ``tables`` (table names), in that order."""
    by_table = {model._meta.table_name: model for model in vars(store.m).values()}
    return [by_table[table] for table in tables]


def foreign_rows(store: Store) -> dict[str, int]:
    """Rows that are not the demo's, by table: what a refill would destroy. Read the marks, never
    guess from counts: a row is the demo's only when it says so."""
    counts = {}
    for model in _models(store, MEMORY_TABLES):
        query = model.select().where(model.demo == False)  # noqa: E712 (a SQL comparison, not Python's)
        if model is store.m.Fact:
            query = query.where(model.sender != SYSTEM_SENDER)
        n = query.count()
        if n:
            counts[model._meta.table_name] = n
    return counts


def replaced_by_reset(store: Store) -> dict[str, int]:
    """What ``--reset`` deletes, by table (for the confirmation question)."""
    counts = {}
    for model in _models(store, MEMORY_TABLES + ("job_checkpoint",) + HISTORY_TABLES):
        n = model.select().count()
        if n:
            counts[model._meta.table_name] = n
    return counts


def describe_counts(counts: dict[str, int]) -> str:
    """'3 pending memory rows, 1 fact row' — table names as a person reads them."""
    return ", ".join(f"{n:,} {table.replace('_', ' ')} row{'s' if n != 1 else ''}" for table, n in counts.items())


def _clear_memory(store: Store) -> None:
    for model in _models(store, MEMORY_TABLES + ("job_checkpoint",)):  # checkpoints describe the data they came from
        model.delete().execute()


def _clear_history(store: Store) -> None:
    for model in _models(store, HISTORY_TABLES):
        model.delete().execute()
    State = store.m.JobState
    State.update(last_run_at=None, last_status=None, last_duration_ms=None, runs=0, errors=0, consecutive_failures=0,
                 backoff_until=None, totals="{}").execute()


def fill(store: Store, now: datetime, *, seed: int = 7, scale: int = 1, reset: bool = False) -> DemoSummary:
    """Write the demo sample into ``store``, in one transaction.

    Without ``reset`` it fills an empty store, or refills one that holds nothing but demo rows
    (run history and the audit log stay); anything else raises DemoRefused and changes nothing.
    With ``reset`` it first deletes every memory row, job checkpoint, run and audit entry and
    zeroes the job counters; job definitions (schedules, on/off) stay. The check and the writes
    share the transaction, and the tables they rewrite are locked against other writers first
    (SQLite's write transaction locks the file anyway), so an agent writing meanwhile waits
    and cannot lose a row to the refill."""
    rewritten = ((("job_state",) + HISTORY_TABLES) if reset else ()) + LOCK_ORDER
    with store.atomic():
        store.lock_for_rewrite(*_models(store, rewritten))
        if not reset:
            foreign = foreign_rows(store)
            if foreign:
                total = sum(foreign.values())
                raise DemoRefused(
                    f"{store.label} holds {total:,} {'rows that are' if total != 1 else 'row that is'} not demo data "
                    f"({describe_counts(foreign)}); nothing was changed. Use --reset to replace everything, "
                    "or --db to pick another database")
        replaced = 0 if reset else demo_rows(store)  # --reset said what it deletes before it asked
        _clear_memory(store)
        if reset:
            _clear_history(store)
        return dataclasses.replace(_write_sample(store, now, seed, scale), replaced=replaced)


def _write_sample(store: Store, now: datetime, seed: int, scale: int) -> DemoSummary:
    """The sample rows, drawn from ``Random(seed)`` in a fixed order: rows are gathered, then written
    in batches (a conversation alone, as its messages need its id)."""
    m = store.m
    rng = random.Random(seed)
    ts = now.timestamp()
    day = 86400.0
    messages, pending, long_term, facts, outcomes, profile = [], [], [], [], [], []

    def facts_of(topic_index: int) -> list[str]:
        return TOPICS[topic_index % len(TOPICS)][1]

    conversations = 120 * scale
    for i in range(conversations):
        sender = rng.choice(SENDERS)
        started = ts - rng.uniform(0, 90) * day
        updated = min(ts, started + rng.uniform(0.01, 2) * day)
        closed = ts - updated > 2 * day or rng.random() < 0.3
        cid = m.Conversation.insert(channel=rng.choice(CHANNELS), sender=sender,
                                    status="closed" if closed else "active", started_at=started, updated_at=updated,
                                    demo=True).execute()
        topic, lines = TOPICS[rng.randrange(len(TOPICS))]
        for n in range(rng.randint(3, 12)):
            role = "user" if n % 2 == 0 else "assistant"
            text = (f"About {topic}: {sender} {rng.choice(lines)}." if role == "user"
                    else f"Noted — I'll remember that {sender} {rng.choice(lines)}.")
            messages.append({"conversation_id": cid, "sender": sender, "role": role, "content": text,
                             "created_at": started + (updated - started) * n / 12, "demo": True})
    for i in range(300 * scale):
        sender = rng.choice(SENDERS)
        created = ts - rng.uniform(0, 9) * day
        accesses = min(int(rng.expovariate(0.35)), 40)
        last = None if accesses == 0 else min(ts, created + rng.uniform(0, 3) * day)
        content = f"{sender} {rng.choice(facts_of(i))}"
        pending.append({
            "content": content, "content_key": content_key(content),
            "kind": rng.choice(("note", "preference", "fact", "plan")), "sender": sender,
            "session": f"s{rng.randint(1, 40)}", "importance": round(min(10, max(0, rng.gauss(5, 2.5))), 1),
            "confidence": round(rng.betavariate(4, 2), 2), "access_count": accesses, "last_access_at": last,
            "remember": rng.random() < 0.02, "created_at": created, "demo": True})
    for i in range(200 * scale):
        sender = rng.choice(SENDERS)
        created = ts - rng.uniform(1, 240) * day
        reinforced = min(ts, created + rng.uniform(0, 30) * day)
        content = f"{sender} {rng.choice(facts_of(i + 2))}"
        long_term.append({
            "content": content, "content_key": content_key(content), "kind": "note", "sender": sender,
            "importance": round(rng.uniform(0, 10), 1), "confidence": round(rng.uniform(0.4, 1), 2),
            "created_at": created, "promoted_at": created, "last_reinforced_at": reinforced,
            "recall_count": int(rng.expovariate(0.8)), "pinned": rng.random() < 0.08, "demo": True})
    for sender in SENDERS:
        for key, value in (("language", rng.choice(("en", "de", "pt"))), ("verbosity", "short"),
                           ("timezone", rng.choice(("Europe/Berlin", "Europe/Lisbon", "UTC")))):
            facts.append({"sender": sender, "key": key, "value": value, "updated_at": ts - rng.uniform(0, 30) * day,
                          "demo": True})
        for _ in range(rng.randint(110, 160) * scale):
            outcomes.append({
                "sender": sender, "domain": rng.choice(("email", "travel", "code", "search")),
                "score": round(rng.uniform(-1, 1), 2), "lesson": rng.choice(LESSONS),
                "created_at": ts - rng.uniform(0, 90) * day, "demo": True})
    for entity, attributes in PROFILE.items():
        for category, key, value, age_days in attributes:
            profile.append({"entity": entity, "category": category, "key": key, "value": value,
                            "confidence": round(rng.uniform(0.5, 0.95), 2), "source": "demo",
                            "updated_at": ts - age_days * day, "demo": True})
    for model, rows in ((m.Message, messages), (m.PendingMemory, pending), (m.LongTermMemory, long_term),
                        (m.Fact, facts), (m.Outcome, outcomes), (m.ProfileAttribute, profile)):
        for batch in chunked(rows, BATCH):
            model.insert_many(batch).execute()
    return DemoSummary(conversations=conversations, messages=len(messages), pending=len(pending),
                       long_term=len(long_term), facts=len(facts), outcomes=len(outcomes),
                       profile_attributes=len(profile))


class DemoAgent:
    """A pretend agent for ``memtui --demo``: every few seconds it remembers something and uses
    some earlier memories, so promotion has fresh work and the dashboard keeps moving."""

    def __init__(self, remember, record_access, every_s: float = 3.0, seed: int = 11):
        self._remember, self._record_access = remember, record_access
        self._every_s = every_s
        self._rng = random.Random(seed)
        self._ids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memtui-demo-agent", daemon=True)

    def start(self) -> "DemoAgent":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.step()
            except Exception:  # the demo must never take the dashboard down
                pass

    def step(self) -> None:
        rng = self._rng
        for _ in range(rng.randint(1, 4)):
            sender = rng.choice(SENDERS)
            topic, lines = TOPICS[rng.randrange(len(TOPICS))]
            self._ids.append(self._remember(
                f"{sender} {rng.choice(lines)}", sender=sender, kind=topic,
                importance=round(rng.uniform(2, 10), 1), confidence=round(rng.uniform(0.3, 1), 2)))
        for mid in rng.sample(self._ids, k=min(len(self._ids), rng.randint(0, 6))):
            try:
                for _ in range(rng.randint(1, 5)):
                    self._record_access(mid)
            except ValueError:  # promoted and decayed away, or expired
                self._ids.remove(mid)
