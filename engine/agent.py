"""The agent's Python API: a small, stable surface over the memory store.

    from memtui.engine.agent import Memory

    with Memory.open() as memory:                 # or Memory.open("/path/to/memtui.db"),
                                                  # Memory.open("postgresql://user@host:5432/memtui")
        mid = memory.remember("Alice prefers aisle seats", sender="alice", importance=7)
        memory.record_access(mid)                 # the agent used it: it scores higher
        for hit in memory.recall("aisle seats", sender="alice"):
            print(hit.content)                    # recall reinforces what it returns

Everything here is a short transaction, safe beside a running memtui engine in
another process. The engine's jobs take it from there: promotion, decay,
consolidation, rollups and profile clean-up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from peewee import Entity, Value

from memtui.engine import memory as ops
from memtui.engine.clock import Clock, from_ts, system_clock
from memtui.engine.config import resolve_db_path
from memtui.models import Store
from memtui.models.text import fold


@dataclass(frozen=True)
class Recalled:
    id: int
    content: str
    kind: str
    sender: str
    importance: float
    tier: str  # "long_term" or "pending"
    last_used: datetime | None
    decayed: bool = False  # decay had soft-deleted it; recalling it (reinforce=True) restored it


class Memory:
    """An agent's handle on a memtui store."""

    def __init__(self, store: Store, clock: Clock = system_clock):
        self.store = store
        self.clock = clock

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, clock: Clock = system_clock) -> "Memory":
        """Open (creating if needed) the store at ``path`` (a SQLite path, ``sqlite:///path`` or
        ``postgresql://user:password@host:5432/name``), $MEMTUI_DB, or the default location."""
        # "" is refused by resolve_db_path, not read as "no path": it must not open the default store.
        return cls(Store.open(resolve_db_path(None if path is None else os.fspath(path))), clock)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Memory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- short-term memories -----------------------------------------------------

    def remember(self, content: str, *, sender: str = "", kind: str = "note", session: str = "",
                 importance: float = 5.0, confidence: float = 0.5, keep: bool = False) -> int:
        """Add a pending memory; ``keep=True`` promotes it whatever its score. Returns its id."""
        return ops.remember(self.store, self.clock(), content, sender=sender, kind=kind, session=session,
                            importance=importance, confidence=confidence, keep=keep)

    def record_access(self, memory_id: int) -> str:
        """The agent used memory ``memory_id`` (a long-term one that decayed is restored); returns which tier
        it was found in."""
        return ops.record_access(self.store, self.clock(), memory_id)

    def recall(self, query: str, *, sender: str | None = None, limit: int = 10,
               reinforce: bool = True) -> list[Recalled]:
        """Memories whose text holds every word of ``query``: long-term first, most important first,
        then any that decay soft-deleted (``decayed``; recalling one restores it).

        Matching ignores case and accents (models/text.py ``fold``: "emile" finds
        "Émile", "STRASSE" finds "Straße"). Returned long-term memories are
        reinforced and pending ones get an access, because being recalled is what
        keeps a memory alive; a hit deleted between the search and that write is
        left out."""
        # The same fold on both sides: in Python for the query, in SQL (memtui_contains, one call per row
        # for all the words) for the stored text; SQLite's own lower() knows only ASCII, so "Émile" could
        # not even find itself.
        words = fold(query).split()
        if not words:
            return []
        LongTerm, Pending = self.store.m.LongTermMemory, self.store.m.PendingMemory

        def matching(model):
            found = self.store.contains_words(model.content, words)
            if sender is not None:  # tested first: other senders' rows then cost no fold (a Python call)
                found = (model.sender == sender) & found
            return found

        # Memories that decay soft-deleted are still found (after the live ones): being recalled is the
        # evidence that they are still wanted, and reinforcing restores them (README, decay.py).
        long_term = LongTerm.select(
            LongTerm.id, LongTerm.content, LongTerm.kind, LongTerm.sender, LongTerm.importance,
            Value("long_term").alias("tier"), LongTerm.last_reinforced_at.alias("last_used"),
            LongTerm.deleted_at.is_null(False).alias("decayed"),
        ).where(matching(LongTerm))
        pending = Pending.select(
            Pending.id, Pending.content, Pending.kind, Pending.sender, Pending.importance,
            Value("pending"), Pending.last_access_at, Value(False),
        ).where(matching(Pending))
        # A compound query is ordered by its output columns: live before decayed, long-term before
        # pending, then the most important and the most recently used first.
        rows = ((long_term + pending)  # UNION ALL
                .order_by(Entity("decayed"), Entity("tier"), Entity("importance").desc(), Entity("last_used").desc())
                .limit(limit).tuples())
        hits = [Recalled(r[0], r[1], r[2], r[3], r[4], r[5], from_ts(r[6]), bool(r[7])) for r in rows]
        if not reinforce:
            return hits
        recalled = []
        for hit in hits:
            try:
                if hit.tier == "long_term":
                    ops.reinforce(self.store, self.clock(), hit.id)
                else:
                    ops.record_access(self.store, self.clock(), hit.id)
            except ops.MemoryInputError:
                continue  # deleted since the search (e.g. promote expired it meanwhile): not an error, not a hit
            recalled.append(hit)
        return recalled

    # -- conversations, facts, outcomes, profile -----------------------------------

    def start_conversation(self, sender: str, channel: str = "chat") -> int:
        ts = self.clock().timestamp()
        with self.store.atomic():
            return self.store.m.Conversation.insert(channel=channel, sender=sender, status="active", started_at=ts,
                                                    updated_at=ts).execute()

    def add_message(self, conversation_id: int, sender: str, content: str, role: str = "user") -> int:
        ts = self.clock().timestamp()
        Conversation = self.store.m.Conversation
        with self.store.atomic():
            mid = self.store.m.Message.insert(conversation_id=conversation_id, sender=sender, role=role,
                                              content=content, created_at=ts).execute()
            Conversation.update(updated_at=ts).where(Conversation.id == conversation_id).execute()
        return mid

    def close_conversation(self, conversation_id: int) -> None:
        Conversation = self.store.m.Conversation
        with self.store.atomic():
            Conversation.update(status="closed", updated_at=self.clock().timestamp()).where(
                Conversation.id == conversation_id).execute()

    def set_fact(self, sender: str, key: str, value: str) -> None:
        ops.set_fact(self.store, self.clock().timestamp(), sender, key, value)

    def add_outcome(self, sender: str, lesson: str, *, domain: str = "", score: float = 0.0) -> int:
        with self.store.atomic():
            return self.store.m.Outcome.insert(sender=sender, domain=domain, score=score, lesson=lesson,
                                               created_at=self.clock().timestamp()).execute()

    def set_profile(self, entity: str, key: str, value: str, *, category: str = "other",
                    confidence: float = 0.5, source: str = "agent") -> int:
        """Record an attribute; duplicates and contradictions are the profile job's to resolve."""
        with self.store.atomic():
            return self.store.m.ProfileAttribute.insert(
                entity=entity, category=category, key=key, value=value, confidence=confidence, source=source,
                updated_at=self.clock().timestamp()).execute()
