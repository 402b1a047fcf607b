"""consolidate: prune old messages and excess outcomes, behind three gates (every 10 min).

From kernex-memory's Consolidator. The schedule only asks; the gates decide:
- time gate: at least ``min_hours_between`` since the last consolidation,
- session gate: at least ``min_new_conversations`` conversations started since then,
- lock gate: never two at once — this is the engine's job lease, which also
  holds across processes; a run that finds it taken is recorded as skipped.
A gate that says no makes the run ``skipped`` with the gate and its reason.

When all pass: delete the messages of *closed* conversations last updated more
than ``message_retention_days`` ago, keep the newest ``outcomes_per_sender``
outcomes per sender, then store the consolidation time as the fact
``last_consolidation`` under sender ``__system__``. That fact is written last,
so a run cut short is simply redone. A clock before 1970 writes no timestamp
(kernex-memory's guard against poisoning the time gate) and logs why.

Deletes go in batches of bounded size, in id order. Each message DELETE tests
its conversation again, in the same statement: on PostgreSQL, as on SQLite, a
conversation reopened before the batch keeps its messages, and one reopened
while the batch runs is ordered after it (nothing the agent wrote is deleted:
its new messages were never listed). Outcomes are never updated, only added;
a batch deletes exactly the ids it listed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from peewee import SQL, fn

from memtui.engine.config import setting
from memtui.engine.jobs.base import JobContext, JobKind, SkipRun, count_rows, in_batches, raw_ids
from memtui.engine.memory import set_fact

SYSTEM_SENDER = "__system__"
MESSAGES_PER_CONVERSATION = 10  # a rough mean, to turn batch_size (messages) into conversations
LAST_KEY = "last_consolidation"


@dataclass(frozen=True)
class ConsolidateConfig:
    min_hours_between: float = setting(24.0, min=0.0, doc="time gate")
    min_new_conversations: int = setting(5, min=0, doc="session gate")
    message_retention_days: float = setting(30.0, min=0.0, doc="messages of closed conversations older than this go")
    outcomes_per_sender: int = setting(100, min=0, doc="newest outcomes kept per sender")
    batch_size: int = setting(5000, min=1, max=30_000,
                                    doc="rows deleted per transaction (SQLite binds at most 32,766 values)")


def last_consolidation(ctx: JobContext) -> datetime | None:
    Fact = ctx.store.m.Fact
    value = Fact.select(Fact.value).where((Fact.sender == SYSTEM_SENDER) & (Fact.key == LAST_KEY)).scalar()
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        ctx.log.warning("ignoring unreadable %s fact %r", LAST_KEY, value)
        return None


def check_gates(ctx: JobContext, cfg: ConsolidateConfig, now: datetime) -> None:
    """Raise SkipRun naming the first gate that rejects."""
    last = last_consolidation(ctx)
    if last is not None:
        hours = (now - last).total_seconds() / 3600
        if hours < cfg.min_hours_between:
            raise SkipRun(
                f"time gate: last consolidation {hours:.1f} h ago, needs {cfg.min_hours_between:g} h",
                {"gate": "time", "hours_since_last": round(hours, 2)},
            )
    since = last.timestamp() if last else float("-inf")
    Conversation = ctx.store.m.Conversation
    new = count_rows(Conversation, Conversation.started_at > since)
    if new < cfg.min_new_conversations:
        raise SkipRun(
            f"session gate: {new} new conversation(s) since the last consolidation, needs {cfg.min_new_conversations}",
            {"gate": "session", "new_conversations": new},
        )


def prune_messages(ctx: JobContext, cfg: ConsolidateConfig, now_ts: float) -> int:
    Message, Conversation = ctx.store.m.Message, ctx.store.m.Conversation
    cutoff = now_ts - cfg.message_retention_days * 86400
    closed_and_old = (Conversation.status == "closed") & (Conversation.updated_at < cutoff)
    # The condition is checked again in the write: a conversation that came back to life meanwhile keeps its messages.
    still_closed = fn.EXISTS(Conversation.select(SQL("1")).where(
        (Conversation.id == Message.conversation_id) & closed_and_old))
    if ctx.store.kind == "sqlite":
        # By message id: a page holds messages of many conversations, and deleting in id order
        # rewrites each page once (SQLite's cost is the pages it writes).
        messages = raw_ids(ctx, Message.select(Message.id)
                           .join(Conversation, on=(Conversation.id == Message.conversation_id))
                           .where(closed_and_old))
        return in_batches(ctx, messages, cfg.batch_size,
                          lambda chunk: Message.delete().where(still_closed & Message.id.in_(chunk)))
    # By conversation: PostgreSQL's cost is the index lookups, and a conversation's messages are one
    # range of the conversation_id index (bench/: 1.2x raw SQL this way, 2.1x by message id).
    conversations = raw_ids(ctx, Conversation.select(Conversation.id).where(closed_and_old))
    per_batch = max(1, cfg.batch_size // MESSAGES_PER_CONVERSATION)
    # The re-check is one semi-join over the chunk's conversations, not an EXISTS per message.
    return in_batches(ctx, conversations, per_batch, lambda chunk: Message.delete().where(
        Message.conversation_id.in_(Conversation.select(Conversation.id).where(
            Conversation.id.in_(chunk) & closed_and_old))))


def prune_outcomes(ctx: JobContext, cfg: ConsolidateConfig) -> int:
    Outcome = ctx.store.m.Outcome
    ranked = Outcome.select(Outcome.id, fn.ROW_NUMBER().over(
        partition_by=[Outcome.sender], order_by=[Outcome.created_at.desc(), Outcome.id.desc()]).alias("rank"),
    ).alias("ranked")
    ids = raw_ids(ctx, Outcome.select(ranked.c.id).from_(ranked).where(ranked.c.rank > cfg.outcomes_per_sender))
    return in_batches(ctx, ids, cfg.batch_size, lambda chunk: Outcome.delete().where(Outcome.id.in_(chunk)))


def run(ctx: JobContext) -> dict:
    cfg: ConsolidateConfig = ctx.config
    now = ctx.now()
    check_gates(ctx, cfg, now)
    messages = prune_messages(ctx, cfg, now.timestamp())
    outcomes = prune_outcomes(ctx, cfg)
    written = now >= datetime(1970, 1, 1, tzinfo=timezone.utc)
    if written:
        set_fact(ctx.store, now.timestamp(), SYSTEM_SENDER, LAST_KEY, now.isoformat())
    else:
        ctx.log.warning("system clock reads %s, before 1970: consolidation time not stored", now.isoformat())
    return {"messages_pruned": messages, "outcomes_pruned": outcomes, "timestamp_written": written}


KIND = JobKind(
    name="consolidate",
    run=run,
    config=ConsolidateConfig,
    summary="prune old messages and excess outcomes once enough has happened",
    counters=("messages_pruned", "outcomes_pruned"),
)
