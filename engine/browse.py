"""The memory view's side of the Engine: memories a page at a time, search, and the keys that change one.

A mixin of the Engine (uses ``store``, ``clock``, ``_lock``, ``_kind_config``, ``_audit``,
``_apply_changes``), so the dashboard reads and changes memories only through
the engine's API and gets plain frozen dataclasses back, never ORM rows.

Pages are read by key (keyset pagination), never by OFFSET and never by
counting or scoring the whole table, so a page costs the same on the first
screen of a million rows as on the last:

- Pending memories by the score stored with each (``last_score`` DESC, id
  DESC: the index ``pending_memory_last_score``), which the database computes on
  every write to a scoring input: the score at the memory's last use (migration
  0008). A score only falls until the memory is used or edited, so the stored
  score is an upper bound on the score now; promote's full pass writes it again
  where it drifted. The terms and the score a page shows are computed now, at the
  engine's clock, with the formula ``memtui why`` uses (engine/story.py);
  ``changed`` says the next promote run scores it (new, used or edited since the
  last run, or left behind by the cap). A memory with no stored score (a store
  from before migration 0006 that promote has not run on since) comes first,
  newest first by id.
- Long-term memories by when decay will retire them, soonest first
  (``retire_at``, the index ``long_term_memory_retire``), then those that never
  retire (pinned, the index ``long_term_memory_pinned``) by id; with
  ``retired``, the memories that left recall follow: faded or forgotten
  (soft-deleted, restorable) the latest first (the index on ``deleted_at``),
  then merged or replaced by another (superseded), by the memory that stands for
  them (the index on ``superseded_by``). Each run of the order is read through
  its own index (migration 0009: a soft delete no longer moves an entry of the
  ``retire_at`` index to a random page).

Each change (pin, unpin, forget, keep) is one transaction with its
``audit_log`` row (``job`` NULL, ``new_value`` naming the memory:
``long_term:123``, ``pending:45``), announced to the other processes like any
change made with the control API.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from peewee import Tuple

from memtui.engine import memory
from memtui.engine.agent import Memory
from memtui.engine.clock import from_ts
from memtui.engine.jobs.decay import DecayConfig, retention
from memtui.engine.jobs.promote import PromoteConfig, awaits_scoring, score_terms
from memtui.engine.types import EngineError

PAGE = 100
MAX_PAGE = 1000  # more rows than a screen can show many times over: a request beyond it is cut to it
MAX_HITS = 200
TERMS = ("recency", "frequency", "confidence", "importance")


@dataclass(frozen=True)
class Cursor:
    """Where a page ended, to read the next one from: opaque to the view (it only hands it back)."""

    # Which run of the order (pending: 0 no stored score, 1 the others; long-term: 0 retiring, 1 pinned,
    # 2 faded or forgotten, 3 merged or replaced).
    segment: int
    # The order's value at the last row (last_score, retire_at, deleted_at, superseded_by), None where it has none.
    key: float | None
    id: int


@dataclass(frozen=True)
class PendingRow:
    """A pending memory as the view shows it: its score now, term by term, against the threshold."""

    id: int
    content: str
    sender: str
    kind: str
    importance: float
    confidence: float
    uses: int
    created: datetime
    last_used: datetime | None
    keep: bool  # marked "remember": promotes at the next run, pinned
    terms: dict[str, float]  # recency, frequency, confidence, importance, each in [0, 1], now
    weights: dict[str, float]
    score: float  # now, at the engine's clock (as `memtui why` computes it)
    stored_score: float | None  # as of the promote run that last scored it; None: not scored yet
    changed: bool  # used or edited since it was last scored (or new): the next run scores it again
    threshold: float
    expires: datetime | None  # when it expires unless it qualifies first; None when kept

    @property
    def gap(self) -> float:
        """How far the score is from the threshold: at or above 0 it qualifies."""
        return round(self.score - self.threshold, 9)

    @property
    def qualifies(self) -> bool:
        return self.keep or self.gap >= 0


@dataclass(frozen=True)
class LongTermRow:
    """A long-term memory as the view shows it: its retention now and when decay retires it."""

    id: int
    content: str
    sender: str
    kind: str
    importance: float
    recalls: int
    pinned: bool
    retention: float  # now, at the engine's clock
    floor: float  # decay retires it below this
    retires: datetime | None  # None while pinned or retired (as `memtui why` says it)
    last_reinforced: datetime
    created: datetime
    from_pending: int | None
    status: str  # "current", "faded" (decay), "forgotten" (on request), "merged", "replaced"
    superseded_by: int | None = None
    deleted: datetime | None = None


@dataclass(frozen=True)
class Page:
    """One page of a listing, and where the next begins (None: this was the last)."""

    rows: tuple
    next: Cursor | None


@dataclass(frozen=True)
class SearchHit:
    """A memory found by the search box, in recall's order (relevance weighted by importance)."""

    id: int  # a pending id or a long-term memory's own id, as ``tier`` says
    tier: str  # "pending" or "long_term"
    content: str
    sender: str
    kind: str
    importance: float
    last_used: datetime | None
    decayed: bool  # soft-deleted by decay (recall would restore it)
    superseded: bool  # merged into or replaced by another (only when retired ones are asked for)


@dataclass(frozen=True)
class MemoryChange:
    """What a key in the memory view did."""

    action: str  # pin, unpin, forget, keep
    tier: str  # "pending" or "long_term"
    memory_id: int
    changed: bool  # False: it was so already; nothing written, nothing audited
    words: str  # for a person: "long-term #12 pinned: it never retires"

    @property
    def name(self) -> str:
        """The memory as the audit log names it: ``long_term:12``."""
        return f"{self.tier}:{self.memory_id}"


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise EngineError(f"a page holds at least one row (got {limit!r})")
    return min(limit, MAX_PAGE)


class MemoryViewMixin:
    """The Engine's methods for the dashboard's memory view."""

    _search_beside: ThreadPoolExecutor | None = None  # made at the first search (_search_helper)

    # -- pending ------------------------------------------------------------------------------

    def pending_page(self, after: Cursor | None = None, limit: int = PAGE) -> Page:
        """Pending memories, any with no stored score first (newest first), then by stored score (see the
        module docstring), ``limit`` of them after ``after`` (a page's ``next``), each scored now."""
        limit = _limit(limit)
        cfg: PromoteConfig = self._kind_config("promote")
        Pending = self.store.m.PendingMemory
        terms = score_terms(self.store, cfg, self.clock().timestamp())
        columns = (Pending.id, Pending.content, Pending.sender, Pending.kind, Pending.importance, Pending.confidence,
                   Pending.access_count, Pending.created_at, Pending.last_access_at, Pending.remember,
                   awaits_scoring(self.store).alias("awaits_scoring"), Pending.last_score,
                   *(terms[name].alias(f"term_{name}") for name in TERMS))
        rows: list[dict] = []
        segment = after.segment if after is not None else 0
        while segment < 2 and len(rows) < limit:
            query = Pending.select(*columns)
            if segment == 0:
                query = query.where(Pending.last_score.is_null())
                if after is not None and after.segment == 0:
                    query = query.where(Pending.id < after.id)
            else:
                query = query.where(Pending.last_score.is_null(False))
                if after is not None and after.segment == 1:
                    # The plain bound beside the row comparison gives every planner an index range to start from.
                    query = query.where((Pending.last_score <= after.key)
                                        & (Tuple(Pending.last_score, Pending.id) < Tuple(after.key, after.id)))
            # One order for both runs: within each, the index (last_score, id) read backwards, NULLs or not.
            got = list(query.order_by(Pending.last_score.desc(), Pending.id.desc()).limit(limit - len(rows)).dicts())
            rows.extend({**row, "segment": segment} for row in got)
            if len(rows) < limit:
                segment += 1
        weights = {"recency": cfg.w_recency, "frequency": cfg.w_frequency, "confidence": cfg.w_confidence,
                   "importance": cfg.w_importance}
        shown = tuple(self._pending_row(row, cfg, weights) for row in rows)
        last = rows[-1] if len(rows) == limit else None
        return Page(shown, None if last is None else Cursor(last["segment"], last["last_score"], last["id"]))

    @staticmethod
    def _pending_row(row: dict, cfg: PromoteConfig, weights: dict[str, float]) -> PendingRow:
        terms = {name: float(row[f"term_{name}"] or 0.0) for name in TERMS}
        keep = bool(row["remember"])
        return PendingRow(
            id=row["id"], content=row["content"], sender=row["sender"], kind=row["kind"],
            importance=row["importance"], confidence=row["confidence"], uses=row["access_count"],
            created=from_ts(row["created_at"]), last_used=from_ts(row["last_access_at"]), keep=keep,
            terms=terms, weights=weights, score=round(sum(weights[n] * terms[n] for n in TERMS), 9),
            stored_score=row["last_score"], changed=bool(row["awaits_scoring"]), threshold=cfg.threshold,
            expires=None if keep else from_ts(row["created_at"] + cfg.ttl_days * 86400),
        )

    # -- long-term ----------------------------------------------------------------------------

    def long_term_page(self, after: Cursor | None = None, limit: int = PAGE, retired: bool = False) -> Page:
        """Long-term memories, soonest to retire first, then those that never retire (pinned) by id; with
        ``retired``, then the faded and forgotten ones, the latest first, and the merged and replaced ones
        by the memory that stands for them: ``limit`` of them after ``after``, each with its retention now."""
        limit = _limit(limit)
        cfg: DecayConfig = self._kind_config("decay")
        LongTerm = self.store.m.LongTermMemory
        columns = (LongTerm.id, LongTerm.content, LongTerm.sender, LongTerm.kind, LongTerm.importance,
                   LongTerm.recall_count, LongTerm.pinned, LongTerm.last_reinforced_at, LongTerm.created_at,
                   LongTerm.source_pending_id, LongTerm.retire_at, LongTerm.deleted_at, LongTerm.superseded_by)
        rows: list[dict] = []
        segment = after.segment if after is not None else 0
        segments = 4 if retired else 2
        while segment < segments and len(rows) < limit:
            query = LongTerm.select(*columns)
            at = after if after is not None and after.segment == segment else None
            if segment == 0:  # retire_at is set only on current, unpinned memories (a trigger keeps it)
                query = query.where(LongTerm.retire_at.is_null(False))
                if at is not None:
                    query = query.where((LongTerm.retire_at >= at.key)
                                        & (Tuple(LongTerm.retire_at, LongTerm.id) > Tuple(at.key, at.id)))
                query = query.order_by(LongTerm.retire_at, LongTerm.id)
            elif segment == 1:  # current and pinned: they never retire (the index long_term_memory_pinned)
                query = query.where(LongTerm.pinned & LongTerm.deleted_at.is_null() & LongTerm.superseded_by.is_null())
                if at is not None:
                    query = query.where(LongTerm.id > at.id)
                query = query.order_by(LongTerm.id)
            elif segment == 2:  # faded or forgotten, the latest first (the index on deleted_at)
                query = query.where(LongTerm.deleted_at.is_null(False))
                if at is not None:
                    query = query.where((LongTerm.deleted_at <= at.key)
                                        & (Tuple(LongTerm.deleted_at, LongTerm.id) < Tuple(at.key, at.id)))
                query = query.order_by(LongTerm.deleted_at.desc(), LongTerm.id.desc())
            else:  # merged or replaced, by the memory that stands for them now (the index on superseded_by)
                query = query.where(LongTerm.superseded_by.is_null(False) & LongTerm.deleted_at.is_null())
                if at is not None:
                    query = query.where((LongTerm.superseded_by >= at.key)
                                        & (Tuple(LongTerm.superseded_by, LongTerm.id) > Tuple(at.key, at.id)))
                query = query.order_by(LongTerm.superseded_by, LongTerm.id)
            got = list(query.limit(limit - len(rows)).dicts())
            rows.extend({**row, "segment": segment} for row in got)
            if len(rows) < limit:
                segment += 1
        statuses = self._retired_statuses([row["id"] for row in rows if row["deleted_at"] is not None
                                           or row["superseded_by"] is not None])
        now_ts = self.clock().timestamp()
        shown = tuple(self._long_term_row(row, cfg, now_ts, statuses) for row in rows)
        last = rows[-1] if len(rows) == limit else None
        if last is None:
            return Page(shown, None)
        key = {0: last["retire_at"], 1: None, 2: last["deleted_at"], 3: last["superseded_by"]}[last["segment"]]
        return Page(shown, Cursor(last["segment"], key, last["id"]))

    def _retired_statuses(self, ids: list[int]) -> dict[int, str]:
        """Why each of these long-term memories left recall, from its last memory_history row that says:
        forgotten (on request), faded (decay), merged or replaced (dedupe)."""
        if not ids:
            return {}
        History = self.store.m.MemoryHistory
        words = {"forget": "forgotten", "soft_delete": "faded", "merge": "merged", "supersede": "replaced"}
        rows = (History.select(History.memory_id, History.action)
                .where((History.tier == "long_term") & History.memory_id.in_(ids)
                       & History.action.in_(list(words)))
                .order_by(History.at, History.id).tuples())
        return {memory_id: words[action] for memory_id, action in rows}  # the latest of each wins

    @staticmethod
    def _long_term_row(row: dict, cfg: DecayConfig, now_ts: float, statuses: dict[int, str]) -> LongTermRow:
        if row["superseded_by"] is not None:
            status = statuses.get(row["id"]) if statuses.get(row["id"]) in ("merged", "replaced") else "merged"
        elif row["deleted_at"] is not None:
            status = statuses.get(row["id"]) if statuses.get(row["id"]) in ("faded", "forgotten") else "faded"
        else:
            status = "current"
        retire_at = row["retire_at"]
        return LongTermRow(
            id=row["id"], content=row["content"], sender=row["sender"], kind=row["kind"],
            importance=row["importance"], recalls=row["recall_count"], pinned=bool(row["pinned"]),
            retention=retention((now_ts - row["last_reinforced_at"]) / 86400, row["importance"],
                                row["recall_count"], cfg),
            floor=cfg.floor,
            # decay leaves a memory younger than min_age_days alone, whatever its retention (as `why` says)
            retires=None if retire_at is None else from_ts(
                max(retire_at, row["created_at"] + cfg.min_age_days * 86400)),
            last_reinforced=from_ts(row["last_reinforced_at"]), created=from_ts(row["created_at"]),
            from_pending=row["source_pending_id"], status=status, superseded_by=row["superseded_by"],
            deleted=from_ts(row["deleted_at"]),
        )

    # -- search -------------------------------------------------------------------------------

    def search_memories(self, query: str, limit: int = MAX_HITS, retired: bool = False) -> list[SearchHit]:
        """Memories holding every word of ``query`` (each also as a prefix), ranked exactly as ``recall``
        ranks them (it is recall's own query), but only read: nothing is reinforced or counted as a use.
        ``retired``: merged and replaced memories too, as ``recall(history=True)`` gives them."""
        if not isinstance(query, str):
            raise EngineError("a search is text")
        limit = min(_limit(limit), MAX_HITS)
        hits = Memory(self.store, self.clock).recall(query, limit=limit, reinforce=False, history=retired,
                                                     beside=self._search_helper())
        return [SearchHit(h.id, h.tier, h.content, h.sender, h.kind, h.importance, h.last_used, h.decayed,
                          h.superseded) for h in hits]

    def _search_helper(self) -> ThreadPoolExecutor:
        """The thread a search ranks its pending tier in, beside the caller's ranking the long-term one: a
        common name's search at 1,000,000 + 1,000,000 memories took 38 ms warm one tier after the other,
        23 ms both at once (SQLite; PostgreSQL ranks in two server processes)."""
        with self._lock:
            if self._search_beside is None:
                self._search_beside = ThreadPoolExecutor(1, thread_name_prefix="memtui-search-tier")
            return self._search_beside

    def release_thread(self) -> None:
        """Close the calling thread's database connection: a thread the view searched in is done (the
        store keeps one connection per thread); and the search's helper thread's, which then ends."""
        self.store.close()
        with self._lock:
            helper, self._search_beside = self._search_beside, None
        if helper is not None:
            helper.submit(self.store.close)
            helper.shutdown(wait=False)

    # -- changes ------------------------------------------------------------------------------

    def pin(self, memory_id: int, pinned: bool = True, source: str = "api") -> MemoryChange:
        """Pin long-term memory ``memory_id`` (decay never retires it) or unpin it (it retires again at
        its retention's pace). A faded, forgotten, merged or replaced memory is refused: a use or a
        recall restores a faded one; what replaced a merged one is the one to pin."""
        LongTerm = self.store.m.LongTermMemory
        action = "pin" if pinned else "unpin"
        with self.store.atomic():
            row = self.store.for_update(LongTerm.select(
                LongTerm.id, LongTerm.pinned, LongTerm.deleted_at, LongTerm.superseded_by
            ).where(LongTerm.id == _id(memory_id))).first()
            if row is None:
                raise EngineError(f"no long-term memory with id {memory_id}")
            if row.superseded_by is not None:
                raise EngineError(f"long-term #{row.id} was merged into or replaced by #{row.superseded_by}: "
                                  "pin that one")
            if row.deleted_at is not None:
                raise EngineError(f"long-term #{row.id} was forgotten or faded: a use or a recall restores it")
            change = MemoryChange(action, "long_term", row.id, bool(row.pinned) != pinned,
                                  f"long-term #{row.id} " + ("pinned: it never retires" if pinned
                                                             else "unpinned: it retires when its retention fades"))
            if change.changed:
                LongTerm.update(pinned=pinned).where(LongTerm.id == row.id).execute()
                self._memory_audit(change, source)
        return self._told(change)

    def forget_memory(self, memory_id: int, long_term: bool = False, source: str = "api") -> MemoryChange:
        """Forget a memory on request, as ``Memory.forget`` does: a pending one is deleted (it was never
        promoted; ``why`` still tells it), a long-term one soft-deleted and unpinned, restorable by a use
        or a recall until decay deletes it for good."""
        memory_id = _id(memory_id)
        with self.store.atomic():
            try:
                forgot = memory.forget(self.store, self.clock(), memory_id, long_term=long_term,
                                       reason=f"forgotten on request ({source})")
            except memory.MemoryInputError as exc:
                raise EngineError(str(exc)) from None
            tier = forgot.tier
            name = "pending" if tier == "pending" else "long-term"
            if tier == "pending":
                words = f"pending #{forgot.memory_id} forgotten: deleted before promotion"
            elif forgot.done:
                words = (f"long-term #{forgot.memory_id} forgotten" + (" and unpinned" if forgot.unpinned else "")
                         + ": recall no longer offers it; a use or a recall restores it")
            else:
                words = f"{name} #{forgot.memory_id} was forgotten or faded already"
            change = MemoryChange("forget", tier, forgot.memory_id, forgot.done, words)
            if change.changed:
                self._memory_audit(change, source)
        return self._told(change)

    def keep(self, memory_id: int, source: str = "api") -> MemoryChange:
        """Mark pending memory ``memory_id`` to keep (the ``remember`` flag): promote moves it at its next
        run, pinned, whatever its score. There is no taking it back: the next run (every 30 s by default)
        promotes it, and unpinning it there is the way back."""
        Pending, LongTerm = self.store.m.PendingMemory, self.store.m.LongTermMemory
        memory_id = _id(memory_id)
        with self.store.atomic():
            row = self.store.for_update(Pending.select(Pending.id, Pending.remember)
                                        .where(Pending.id == memory_id)).first()
            if row is None:
                promoted = LongTerm.select(LongTerm.id).where(LongTerm.source_pending_id == memory_id).scalar()
                raise EngineError(f"pending #{memory_id} was promoted to long-term #{promoted}: pin it there"
                                  if promoted is not None else f"no pending memory with id {memory_id}")
            change = MemoryChange("keep", "pending", memory_id, not row.remember,
                                  f"pending #{memory_id} kept: the next promote run promotes it, pinned")
            if change.changed:
                # A write to remember flags the row (the trigger): the next run scores it, and promotes it.
                Pending.update(remember=True).where(Pending.id == memory_id).execute()
                self._memory_audit(change, source)
        return self._told(change)

    def _memory_audit(self, change: MemoryChange, source: str) -> None:
        """Inside the change's transaction: its audit row, and the announcement to other processes."""
        self._audit(change.action, None, None, change.name, source)
        self.store.notify_change()

    def _told(self, change: MemoryChange) -> MemoryChange:
        if change.changed:
            self._apply_changes()  # this process's subscribers hear of it now, not at the next poll
        return change


def _id(memory_id) -> int:
    if isinstance(memory_id, bool) or not isinstance(memory_id, int) or memory_id < 1:
        raise EngineError(f"a memory id is a whole number from 1 (got {memory_id!r})")
    return memory_id


__all__ = ["Cursor", "LongTermRow", "MemoryChange", "MemoryViewMixin", "Page", "PendingRow", "SearchHit"]
