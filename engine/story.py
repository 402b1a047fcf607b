"""One memory's story: where it is, why it is there, and what the jobs will do with it next.

``story(store, now, id, …)`` reads one memory and computes, with the same
formulas the jobs use (promote's score terms as SQL on the row, decay's
retention), what ``memtui why`` prints: a pending memory's score term by term
against the threshold and when it expires; a long-term memory's retention now
and the day it retires (``retire_at``, kept by the store). ``describe`` turns it
into lines a person reads. Plain data, no Textual.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from memtui.engine.clock import from_ts
from memtui.engine.jobs.decay import DecayConfig, retention
from memtui.engine.jobs.promote import PromoteConfig, score_terms
from memtui.engine.memory import MemoryInputError
from memtui.engine.report import fmt_number
from memtui.models import Store


@dataclass(frozen=True)
class MemoryStory:
    id: int
    tier: str  # "pending" or "long_term"
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
                              Pending.last_access_at, Pending.remember, Pending.rescore,
                              *(term.alias(f"term_{name}") for name, term in terms.items()))
               .where(Pending.id == memory_id).dicts().first())
        if row is not None:
            return _pending(row, promote)
        found = LongTerm.get_or_none(LongTerm.source_pending_id == memory_id)
        if found is None:
            raise MemoryInputError(f"no memory with id {memory_id} (expired before promotion, or deleted "
                                   "for good by decay); a long-term id: --long-term")
    else:
        found = LongTerm.get_or_none(LongTerm.id == memory_id)
        if found is None:
            raise MemoryInputError(f"no long-term memory with id {memory_id}")
    return _long_term(found, now_ts, decay)


def _pending(row: dict, cfg: PromoteConfig) -> MemoryStory:
    terms = {name: float(row[f"term_{name}"]) for name in ("recency", "frequency", "confidence", "importance")}
    weights = {"recency": cfg.w_recency, "frequency": cfg.w_frequency, "confidence": cfg.w_confidence,
               "importance": cfg.w_importance}
    score = round(sum(weights[name] * terms[name] for name in terms), 9)
    return MemoryStory(
        id=row["id"], tier="pending", content=row["content"], sender=row["sender"], kind=row["kind"],
        importance=row["importance"], confidence=row["confidence"], created=from_ts(row["created_at"]),
        uses=row["access_count"], last_used=from_ts(row["last_access_at"]), keep=bool(row["remember"]),
        terms=terms, weights=weights, score=score, threshold=cfg.threshold, rescore=bool(row["rescore"]),
        expires=from_ts(row["created_at"] + cfg.ttl_days * 86400),
    )


def _long_term(row, now_ts: float, cfg: DecayConfig) -> MemoryStory:
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
        lines.append(f"score now {s.score:.3f} = {terms}")
        gap = s.score - s.threshold
        if s.keep:
            lines.append("marked keep: promotes at the next promote run, pinned, whatever its score")
        elif gap >= 0:
            lines.append(f"qualifies (threshold {fmt_number(s.threshold)}, {gap:.3f} above): "
                         "promotes at the next promote run")
        else:
            lines.append(f"below the threshold {fmt_number(s.threshold)} by {-gap:.3f}; its score only falls "
                         "until it is used or edited" + (" (the next run scores it again)" if s.rescore else ""))
            lines.append(f"expires on {when(s.expires)} unless it qualifies before")
        return lines
    origin = f" from #{s.from_pending}" if s.from_pending is not None else ""
    lines[0] = f"#{s.id} long-term{origin}: {s.content}"
    if s.promoted:
        lines.append(f"promoted {when(s.promoted)}")
    lines.append(f"recalled {s.recalls} time{'s' if s.recalls != 1 else ''}, last reinforced {when(s.last_reinforced)}")
    if s.deleted is not None:
        lines.append(f"faded: soft-deleted by decay on {when(s.deleted)}; deleted for good on {when(s.purged)} "
                     "unless it is used or recalled before (which restores it)")
    elif s.pinned:
        lines.append("pinned: never retires")
    else:
        lines.append(f"retention now {s.retention:.2f} (decay retires it below {fmt_number(s.floor)})")
        if s.retires is not None:
            lines.append(f"retires on {when(s.retires)} unless it is recalled or used before")
    return lines


__all__ = ["MemoryStory", "describe", "story"]
