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
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime

from peewee import SQL, Entity, Value, fn

from memtui.engine import memory as ops
from memtui.engine.clock import Clock, from_ts, system_clock
from memtui.engine.config import resolve_db_path
from memtui.engine.definitions import read_definitions
from memtui.engine.jobs import config_of_kind
from memtui.engine.story import MemoryStory, story
from memtui.models import Store


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
    superseded: bool = False  # merged into or replaced by another memory (only with recall(history=True))


def recall_order(row: tuple) -> tuple:
    """Recall's order of a hit row (id, content, kind, sender, importance, tier, last_used, decayed,
    superseded, rank): current before decayed and superseded, then the most relevant (weighted by
    importance), then the most recently used, a memory never used last. Each tier's query orders by the
    same, in SQL."""
    last_used = row[6]
    return (bool(row[8]), bool(row[7]), -row[9], last_used is None, -(last_used or 0.0))


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
                 importance: float = 5.0, confidence: float = 0.5, keep: bool = False) -> ops.Remembered:
        """Add a pending memory; ``keep=True`` promotes it whatever its score. Returns its id (an int).

        The same words again (case, spacing, punctuation aside) from the same sender are not stored twice:
        they count as a use of the memory already kept, whose id comes back with ``.repeat`` true, so
        recall → store the recalled text → recall… cannot grow the store."""
        return ops.remember(self.store, self.clock(), content, sender=sender, kind=kind, session=session,
                            importance=importance, confidence=confidence, keep=keep)

    def record_access(self, memory_id: int) -> str:
        """The agent used memory ``memory_id`` (a long-term one that decayed is restored); returns which tier
        it was found in."""
        return ops.record_access(self.store, self.clock(), memory_id)

    def recall(self, query: str, *, sender: str | None = None, limit: int = 10,
               reinforce: bool = True, history: bool = False, beside: Executor | None = None) -> list[Recalled]:
        """Memories whose text holds every word of ``query`` (each also as a prefix: "aisle" finds
        "aisles"), most relevant first: full-text relevance (BM25 on SQLite, ``ts_rank`` on PostgreSQL)
        weighted by importance, ×(0.5 + importance/10), so a memory of importance 10 ranks as one of
        importance 0 three times as relevant. Any that decay soft-deleted come after the rest
        (``decayed``; recalling one restores it). Memories merged into another or replaced by a newer one
        (the dedupe job) are left out unless ``history`` (then ``superseded`` is set, and they are not
        reinforced: the memory that replaced them is the one in use). Among equals, the most recently
        used first, one never used last.

        Each tier is ranked by a query of its own; ``beside`` (an executor of one thread) ranks the
        pending tier there while this thread ranks the long-term one: both databases rank without holding
        the GIL, so a search then takes the longer tier's time instead of both (the memory view's). The
        tiers are then read in two transactions: a memory promoted between the two reads shows in both
        tiers or in neither, until the next search (an agent's recall, which reinforces, passes none).

        Matching ignores case and accents (models/text.py ``fold``: "emile" finds "Émile", "STRASSE"
        finds "Straße"). Returned long-term memories are reinforced and pending ones get an access,
        because being recalled is what keeps a memory alive; a hit deleted between the search and that
        write is left out."""
        store = self.store
        LongTerm, Pending, History = store.m.LongTermMemory, store.m.PendingMemory, store.m.MemoryHistory
        store.sync_search()
        tiers = []
        for model, tier in ((LongTerm, "long_term"), (Pending, "pending")):
            long_term = model is LongTerm
            last_used = model.last_reinforced_at if long_term else model.last_access_at
            matched = store.matching(model.select(
                model.id, model.content, model.kind, model.sender, model.importance, Value(tier).alias("tier"),
                last_used.alias("last_used"),
                (model.deleted_at.is_null(False) if long_term else Value(False)).alias("decayed"),
                (model.superseded_by.is_null(False) if long_term else Value(False)).alias("superseded"),
            ), model, query)
            if matched is None:
                return []
            select, relevance = matched
            select = select.select_extend((relevance * (0.5 + model.importance / 10.0)).alias("rank"))
            if sender is not None:
                select = select.where(model.sender == sender)
            if long_term and not history:
                select = select.where(model.superseded_by.is_null())
            if long_term:  # faded ones are offered (and restored), but not one forgotten on request
                select = select.where(model.deleted_at.is_null() | ~fn.EXISTS(
                    History.select(SQL("1")).where((History.memory_id == model.id) & (History.tier == "long_term")
                                                   & (History.action == "forget")
                                                   & (History.at >= model.deleted_at))))
            # recall_order, in SQL: the best ``limit`` of both tiers are among each tier's best ``limit``.
            tiers.append(select.order_by(
                Entity("superseded"), Entity("decayed"), Entity("rank").desc(),
                last_used.desc(nulls="LAST")).limit(limit).tuples())
        if beside is None:
            ranked = [list(tier) for tier in tiers]
        else:
            pending = beside.submit(lambda: list(tiers[1]))
            ranked = [list(tiers[0]), pending.result()]
        rows = sorted(ranked[0] + ranked[1], key=recall_order)[:limit]
        hits = [Recalled(r[0], r[1], r[2], r[3], r[4], r[5], from_ts(r[6]), bool(r[7]), bool(r[8])) for r in rows]
        if not reinforce:
            return hits
        recalled = []
        for hit in hits:
            try:
                if hit.superseded:
                    pass
                elif hit.tier == "long_term":
                    ops.reinforce(self.store, self.clock(), hit.id)
                else:
                    ops.record_access(self.store, self.clock(), hit.id)
            except ops.MemoryInputError:
                continue  # deleted since the search (e.g. promote expired it meanwhile): not an error, not a hit
            recalled.append(hit)
        return recalled

    def forget(self, memory_id: int, *, long_term: bool = False) -> ops.Forgot:
        """Forget a memory on request: a pending one is deleted before it is ever promoted; a long-term one
        is soft-deleted and no longer recalled, restorable by a use of its id until decay deletes it for
        good. Each leaves a memory_history row (``why`` still tells it)."""
        return ops.forget(self.store, self.clock(), memory_id, long_term=long_term)

    def why(self, memory_id: int, *, long_term: bool = False) -> MemoryStory:
        """Where memory ``memory_id`` is and how it got there (``memtui why``): its tier, its score at
        promotion term by term, what was merged into it or superseded it, its retention now and when decay
        will retire it under the store's job configs. ``long_term``: the id is a long-term memory's own."""
        definitions = read_definitions(self.store).values()
        return story(self.store, self.clock(), memory_id, long_term=long_term,
                     promote=config_of_kind(definitions, "promote"), decay=config_of_kind(definitions, "decay"))

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
