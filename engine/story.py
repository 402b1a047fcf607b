"""One memory's story: where it is, why it is there, and what the jobs will do with it next.

``story(store, now, id, …)`` reads one memory and computes, with the same
formulas the jobs use (promote's score terms as SQL on the row, decay's
retention), what ``memtui why`` prints: a pending memory's score term by term
against the threshold and when it expires; a long-term memory's retention now
and the day it retires (``retire_at``, kept by the store). ``describe`` turns it
into lines a person reads. Plain data, no Textual.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from memtui.engine.clock import from_ts
from memtui.engine.jobs.decay import DecayConfig, retention
from memtui.engine.jobs.promote import PromoteConfig, awaits_scoring, score_terms
from memtui.engine.memory import MemoryInputError
from memtui.engine.report import fmt_near, fmt_number
from memtui.models import Store


@dataclass(frozen=True)
class HistoryEntry:
    """One memory_history row as the story tells it."""

    at: datetime
    action: str  # merge, supersede, soft_delete, forget, restore, hard_delete, expire
    memory_id: int  # the memory it happened to
    other_id: int | None  # the memory it was merged into or superseded by
    reason: str
    old_text: str | None
    new_text: str | None


@dataclass(frozen=True)
class MemoryStory:
    id: int
    tier: str  # "pending", "long_term", or "gone" (expired or deleted for good: told from its history)
    content: str
    sender: str
    kind: str
    importance: float
    confidence: float
    created: datetime
    # pending
    uses: int = 0
    last_used: datetime | None = None
    keep: bool = False
    terms: dict[str, float] = field(default_factory=dict)  # recency, frequency, confidence, importance in [0, 1]
    weights: dict[str, float] = field(default_factory=dict)
    score: float | None = None
    threshold: float | None = None
    rescore: bool = False  # the next promote run scores it again
    expires: datetime | None = None  # when it expires unless it qualifies first
    # long-term
    from_pending: int | None = None  # the id the agent got from remember()
    promoted: datetime | None = None
    recalls: int = 0
    last_reinforced: datetime | None = None
    pinned: bool = False
    retention: float | None = None
    floor: float | None = None
    retires: datetime | None = None
    deleted: datetime | None = None  # soft-deleted by decay (restorable by a use or a recall)
    purged: datetime | None = None  # when decay deletes it for good unless it is used first
    # at promotion: the score, its four terms and the threshold then (None: imported, or promoted before 0.4)
    promotion_score: float | None = None
    promotion_terms: dict[str, float] = field(default_factory=dict)
    promotion_threshold: float | None = None
    superseded_by: int | None = None  # merged into, or replaced by, that long-term memory
    superseded: datetime | None = None
    history: tuple[HistoryEntry, ...] = ()  # what happened to it, and what was merged into or retired by it
    as_of: datetime | None = None  # when the story was read: a date before it is overdue, not ahead


def story(store: Store, now: datetime, memory_id: int, *, long_term: bool = False,
          promote: PromoteConfig | None = None, decay: DecayConfig | None = None) -> MemoryStory:
    """The story of memory ``memory_id``: a pending id as ``remember`` returned it (followed into
    long-term memory once promoted), or with ``long_term`` a long-term memory's own id."""
    promote, decay = promote or PromoteConfig(), decay or DecayConfig()
    Pending, LongTerm = store.m.PendingMemory, store.m.LongTermMemory
    now_ts = now.timestamp()
    if not long_term:
        terms = score_terms(store, promote, now_ts)
        row = (Pending.select(Pending.id, Pending.content, Pending.sender, Pending.kind, Pending.importance,
                              Pending.confidence, Pending.created_at, Pending.access_count,
                              Pending.last_access_at, Pending.remember,
                              awaits_scoring(store).alias("awaits_scoring"),
                              *(term.alias(f"term_{name}") for name, term in terms.items()))
               .where(Pending.id == memory_id).dicts().first())
        if row is not None:
            return replace(_pending(row, promote), as_of=now)
        found = LongTerm.get_or_none(LongTerm.source_pending_id == memory_id)
        tier, missing = "pending", f"no memory with id {memory_id}; for a long-term memory's own id, add --long-term"
    else:
        found = LongTerm.get_or_none(LongTerm.id == memory_id)
        tier, missing = "long_term", f"no long-term memory with id {memory_id}"
    if found is None:  # left the store: told from its history, if it left a row there
        gone = _gone(store, memory_id, tier)
        if gone is None:
            raise MemoryInputError(missing)
        return gone
    return replace(_long_term(found, now_ts, decay, _history(store, found.id)), as_of=now)


def _history(store: Store, long_term_id: int) -> tuple[HistoryEntry, ...]:
    """The long-term memory's own history rows and those of memories merged into or retired by it."""
    History = store.m.MemoryHistory
    rows = (History.select().where((History.tier == "long_term")
                                   & ((History.memory_id == long_term_id) | (History.other_id == long_term_id)))
            .order_by(History.at, History.id))
    return tuple(_entry(r) for r in rows)


def _entry(row) -> HistoryEntry:
    return HistoryEntry(from_ts(row.at), row.action, row.memory_id, row.other_id, row.reason, row.old_text,
                        row.new_text)


def _gone(store: Store, memory_id: int, tier: str) -> MemoryStory | None:
    """The story of a memory that left the store (expired unpromoted, or deleted for good), from the
    history row its leaving wrote; None when there is none (no such memory ever, or gone before 0.4)."""
    History = store.m.MemoryHistory
    rows = list(History.select().where((History.tier == tier) & (History.memory_id == memory_id))
                .order_by(History.at, History.id))
    if not rows or rows[-1].action not in ("expire", "hard_delete"):
        return None
    last = rows[-1]
    return MemoryStory(
        id=memory_id, tier="gone", content=last.old_text or "", sender="", kind="", importance=0.0,
        confidence=0.0, created=from_ts(last.at), deleted=from_ts(last.at),
        history=tuple(_entry(r) for r in rows))


def _pending(row: dict, cfg: PromoteConfig) -> MemoryStory:
    terms = {name: float(row[f"term_{name}"]) for name in ("recency", "frequency", "confidence", "importance")}
    weights = {"recency": cfg.w_recency, "frequency": cfg.w_frequency, "confidence": cfg.w_confidence,
               "importance": cfg.w_importance}
    score = round(sum(weights[name] * terms[name] for name in terms), 9)
    return MemoryStory(
        id=row["id"], tier="pending", content=row["content"], sender=row["sender"], kind=row["kind"],
        importance=row["importance"], confidence=row["confidence"], created=from_ts(row["created_at"]),
        uses=row["access_count"], last_used=from_ts(row["last_access_at"]), keep=bool(row["remember"]),
        terms=terms, weights=weights, score=score, threshold=cfg.threshold,
        rescore=bool(row["awaits_scoring"]),
        expires=from_ts(row["created_at"] + cfg.ttl_days * 86400),
    )


def _long_term(row, now_ts: float, cfg: DecayConfig, history: tuple[HistoryEntry, ...] = ()) -> MemoryStory:
    terms = {name: getattr(row, f"promotion_{name}") for name in ("recency", "frequency", "confidence", "importance")}
    return MemoryStory(
        id=row.id, tier="long_term", content=row.content, sender=row.sender, kind=row.kind,
        importance=row.importance, confidence=row.confidence, created=from_ts(row.created_at),
        from_pending=row.source_pending_id, promoted=from_ts(row.promoted_at), recalls=row.recall_count,
        last_reinforced=from_ts(row.last_reinforced_at), pinned=bool(row.pinned),
        retention=retention((now_ts - row.last_reinforced_at) / 86400, row.importance, row.recall_count, cfg),
        # decay leaves a memory younger than min_age_days alone, whatever its retention
        floor=cfg.floor, retires=None if row.retire_at is None else from_ts(
            max(row.retire_at, row.created_at + cfg.min_age_days * 86400)), deleted=from_ts(row.deleted_at),
        purged=from_ts(row.deleted_at + cfg.grace_days * 86400) if row.deleted_at is not None else None,
        promotion_score=row.promotion_score, promotion_threshold=row.promotion_threshold,
        promotion_terms={} if None in terms.values() else terms,
        superseded_by=row.superseded_by, superseded=from_ts(row.superseded_at), history=history,
    )


def describe(s: MemoryStory, when=lambda d: d.astimezone().strftime("%Y-%m-%d %H:%M")) -> list[str]:
    """The story in lines a person reads, for ``memtui why``."""
    who = f" · sender {s.sender}" if s.sender else ""
    lines = [f"{s.content}", f"kind {s.kind}{who} · importance {fmt_number(s.importance)}/10 · "
                             f"confidence {fmt_number(s.confidence)} · created {when(s.created)}"]
    if s.tier == "pending":
        lines[0] = f"#{s.id} short-term (pending promotion): {s.content}"
        lines.append(f"used {s.uses} time{'s' if s.uses != 1 else ''}, last {when(s.last_used)}"
                     if s.uses and s.last_used else "not used yet")
        terms = " + ".join(f"{fmt_number(s.weights[n])}·{n} {s.terms[n]:.2f}" for n in s.terms)
        lines.append(f"score now {fmt_near(s.score, s.threshold)} = {terms}")
        gap = s.score - s.threshold
        if s.keep:
            lines.append("marked keep: promotes at the next promote run, pinned, whatever its score")
        elif gap >= 0:
            lines.append(f"qualifies (threshold {fmt_number(s.threshold)}, {gap:.3f} above): "
                         "promotes at the next promote run")
        else:
            lines.append(f"below the threshold {fmt_number(s.threshold)} by {fmt_near(-gap)}; its score only falls "
                         "until it is used or edited" + (" (the next run scores it again)" if s.rescore else ""))
            lines.append(f"expired by age on {when(s.expires)}: the next promote run deletes it unless it "
                         "qualifies by then" if _past(s, s.expires) else
                         f"expires on {when(s.expires)} unless it qualifies before")
        return lines
    if s.tier == "gone":
        last = s.history[-1]
        what = "expired before promotion" if last.action == "expire" else "deleted for good by decay"
        lines = [f"#{s.id} gone: {s.content}", f"{what} on {when(last.at)} ({last.reason})"]
        return lines + [_told(entry, s.id, when) for entry in s.history[:-1]]
    origin = f" from #{s.from_pending}" if s.from_pending is not None else ""
    lines[0] = f"#{s.id} long-term{origin}: {s.content}"
    if s.promoted:
        # Only a memory marked keep is promoted below the threshold (promote's qualifies): say so, or the
        # line reads as a broken rule.
        kept = (s.promotion_score is not None and s.promotion_threshold is not None
                and s.promotion_score < s.promotion_threshold)
        lines.append(f"promoted {when(s.promoted)}" + (
            f" with score {fmt_near(s.promotion_score, s.promotion_threshold or 0.0)} (threshold "
            f"{fmt_number(s.promotion_threshold)}{'; marked keep, so promoted below it' if kept else ''}): "
            + ", ".join(f"{name} {value:.2f}" for name, value in s.promotion_terms.items())
            if s.promotion_score is not None and s.promotion_terms else ""))
    lines.extend(_told(entry, s.id, when) for entry in s.history)
    if s.superseded_by is not None:
        lines.append(f"retired on {when(s.superseded)}: #{s.superseded_by} stands for it now "
                     "(recall shows it only when asked for history)")
        return lines
    lines.append(f"recalled {s.recalls} time{'s' if s.recalls != 1 else ''}, last reinforced {when(s.last_reinforced)}")
    if s.deleted is not None:
        forgotten = any(e.action == "forget" and e.memory_id == s.id and e.at == s.deleted for e in s.history)
        purge = (f"its grace ended on {when(s.purged)}: the next decay run deletes it for good" if _past(s, s.purged)
                 else f"deleted for good on {when(s.purged)}")
        lines.append((f"forgotten on request on {when(s.deleted)}; recall no longer offers it; {purge} "
                      "unless it is used before (which restores it)") if forgotten else
                     (f"faded: soft-deleted by decay on {when(s.deleted)}; {purge} "
                      "unless it is used or recalled before (which restores it)"))
    elif s.pinned:
        lines.append("pinned: never retires")
    else:
        lines.append(f"retention now {s.retention:.2f} (decay retires it below {fmt_number(s.floor)})")
        if s.retires is not None and _past(s, s.retires):
            lines.append(f"due to retire since {when(s.retires)}: the next decay run soft-deletes it unless it "
                         "is recalled or used before")
        elif s.retires is not None:
            lines.append(f"retires on {when(s.retires)} unless it is recalled or used before")
    return lines


def _past(s: MemoryStory, moment: datetime | None) -> bool:
    """True when ``moment`` had passed when the story was read: what was due then waits for the next run."""
    return moment is not None and s.as_of is not None and moment <= s.as_of


def _told(entry: HistoryEntry, memory_id: int, when) -> str:
    """One history row in words, from the point of view of memory ``memory_id``."""
    at = when(entry.at)
    own = entry.memory_id == memory_id
    if entry.action == "merge" and entry.other_id == entry.memory_id:
        return f"{at}: reworded on merging to {entry.new_text!r} ({entry.reason})"
    if entry.action == "merge":
        return (f"{at}: merged into #{entry.other_id} ({entry.reason})" if own
                else f"{at}: #{entry.memory_id} {entry.old_text!r} merged into it ({entry.reason})")
    if entry.action == "supersede":
        return (f"{at}: superseded by #{entry.other_id} {entry.new_text!r} ({entry.reason})" if own
                else f"{at}: it superseded #{entry.memory_id} {entry.old_text!r} ({entry.reason})")
    words = {"soft_delete": "faded (soft-deleted by decay)", "forget": "forgotten on request", "restore": "restored",
             "hard_delete": "deleted for good", "expire": "expired"}.get(entry.action, entry.action)
    return f"{at}: {words} ({entry.reason})"


__all__ = ["HistoryEntry", "MemoryStory", "describe", "story"]
