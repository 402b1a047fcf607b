"""Peewee models of the memory store and the job tables.

The tables themselves are created by the migrations in models/migrations/;
these classes describe them for queries. They are declared unbound and each
open Store gets its own bound subclasses (see ``bind``), so two databases can
be open in one process (tests, benchmarks, a demo beside a real store) without
one rebinding the other's models. For the same reason no model uses a Peewee
ForeignKeyField: the constraints live in the DDL and joins name their columns.
"""
from __future__ import annotations

from types import SimpleNamespace

from peewee import BigAutoField, BigIntegerField, BooleanField, DoubleField, IntegerField, Model, TextField


class _Base(Model):
    class Meta:
        database = None
        legacy_table_names = False


class _Rows(_Base):
    """A table whose rows have an integer id: SQLite INTEGER PRIMARY KEY, PostgreSQL a BIGINT identity."""

    id = BigAutoField()


# -- memory store ------------------------------------------------------------

class Conversation(_Rows):
    channel = TextField(default="")
    sender = TextField()
    status = TextField(default="active")
    started_at = DoubleField()
    updated_at = DoubleField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class Message(_Rows):
    conversation_id = BigIntegerField()
    sender = TextField()
    role = TextField(default="user")
    content = TextField()
    created_at = DoubleField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class PendingMemory(_Rows):
    content = TextField()
    kind = TextField(default="note")
    sender = TextField(default="")
    session = TextField(default="")
    importance = DoubleField(default=5.0)
    confidence = DoubleField(default=0.5)
    access_count = IntegerField(default=0)
    last_access_at = DoubleField(null=True)
    remember = BooleanField(default=False)
    created_at = DoubleField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows
    # A qualifier the per-run cap left behind: promote sets it and the next run scores the row again
    # (migration 0008; until then it flagged every changed row). The insert trigger makes it false on every
    # new row, whatever this default (the column's, which SQLite cannot change in place) says.
    rescore = BooleanField(default=True)
    # The normalised text (models/text.py content_key) a repeat is recognised by; NULL on a row written with
    # plain SQL until the dedupe job fills it (migration 0005).
    content_key = TextField(null=True)
    # The score at the row's last use (recency 1), an upper bound on the score now: computed by the database
    # (trigger) on every write to a scoring input; promote's full pass lowers it where it drifted (0006, 0008).
    last_score = DoubleField(null=True)
    # Where the row's last write to a scoring input stands in the store's order of changes: kept by the
    # database (trigger); promote scores the rows above the mark of its last run (migration 0008).
    changed = BigIntegerField(default=0)


class LongTermMemory(_Rows):
    content = TextField()
    kind = TextField(default="note")
    sender = TextField(default="")
    importance = DoubleField(default=5.0)
    confidence = DoubleField(default=0.5)
    created_at = DoubleField()
    promoted_at = DoubleField(null=True)
    last_reinforced_at = DoubleField()
    recall_count = IntegerField(default=0)
    pinned = BooleanField(default=False)
    source_pending_id = BigIntegerField(null=True, unique=True)
    deleted_at = DoubleField(null=True)
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows
    # When retention falls below decay's floor; NULL while pinned or soft-deleted. Computed by the
    # database (trigger) from last_reinforced_at, importance, recall_count (migration 0004).
    retire_at = DoubleField(null=True)
    content_key = TextField(null=True)  # as PendingMemory.content_key
    # Retired by the dedupe job: merged into (a duplicate) or replaced by (a contradiction) that memory.
    superseded_by = BigIntegerField(null=True)
    superseded_at = DoubleField(null=True)
    # The score, its four terms and the threshold when promote moved it here (NULL: imported, or before 0.4).
    promotion_score = DoubleField(null=True)
    promotion_recency = DoubleField(null=True)
    promotion_frequency = DoubleField(null=True)
    promotion_confidence = DoubleField(null=True)
    promotion_importance = DoubleField(null=True)
    promotion_threshold = DoubleField(null=True)


class Fact(_Rows):
    sender = TextField()
    key = TextField()
    value = TextField()
    updated_at = DoubleField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class Outcome(_Rows):
    sender = TextField()
    domain = TextField(default="")
    score = DoubleField(default=0.0)
    lesson = TextField()
    created_at = DoubleField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class ProfileAttribute(_Rows):
    entity = TextField()
    category = TextField(default="other")
    key = TextField()
    value = TextField()
    confidence = DoubleField(default=0.5)
    source = TextField(default="")
    updated_at = DoubleField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class ProfileAttributeHistory(_Rows):
    attribute_id = BigIntegerField()
    entity = TextField()
    category = TextField()
    key = TextField()
    value = TextField()
    confidence = DoubleField()
    source = TextField()
    updated_at = DoubleField()
    replaced_at = DoubleField()
    reason = TextField(default="")
    run_id = BigIntegerField(null=True)
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class MemoryHistory(_Rows):
    """Every move of a memory but promotion: merge, supersede, soft_delete, forget, restore, hard_delete, expire."""

    memory_id = BigIntegerField()
    tier = TextField()  # "pending" or "long_term": which table memory_id is an id of
    action = TextField()
    other_id = BigIntegerField(null=True)  # the long-term memory it was merged into or superseded by
    old_text = TextField(null=True)
    new_text = TextField(null=True)
    reason = TextField(default="")
    run_id = BigIntegerField(null=True)
    at = DoubleField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class Summary(_Rows):
    level = TextField()
    period_start = DoubleField()
    sender = TextField()
    text = TextField()
    source_count = IntegerField()
    period_end = DoubleField(null=True)  # exclusive; NULL on summaries written by 0.1
    model = TextField()
    created_at = DoubleField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class JobCheckpoint(_Base):
    job = TextField(primary_key=True)
    value = TextField()
    updated_at = DoubleField()


# -- jobs --------------------------------------------------------------------

class JobDefinition(_Base):
    name = TextField(primary_key=True)
    kind = TextField()
    enabled = BooleanField(default=True)
    schedule = TextField()
    timezone = TextField(null=True)
    jitter_s = IntegerField(default=0)
    config = TextField(default="{}")
    created_at = DoubleField()
    updated_at = DoubleField()


class JobState(_Base):
    name = TextField(primary_key=True)
    next_run_at = DoubleField(null=True)
    last_run_at = DoubleField(null=True)
    last_status = TextField(null=True)
    last_duration_ms = DoubleField(null=True)
    runs = IntegerField(default=0)
    errors = IntegerField(default=0)
    consecutive_failures = IntegerField(default=0)
    backoff_until = DoubleField(null=True)
    totals = TextField(default="{}")
    lease_owner = TextField(null=True)
    lease_run_id = BigIntegerField(null=True)
    lease_expires_at = DoubleField(null=True)
    run_requested_at = DoubleField(null=True)  # a run-now for whichever live engine sees it first (0006)
    run_requested_by = TextField(null=True)


class Run(_Rows):
    job = TextField()
    reason = TextField()
    scheduled_for = DoubleField(null=True)
    started_at = DoubleField()
    finished_at = DoubleField(null=True)
    duration_ms = DoubleField(null=True)  # fractional milliseconds
    status = TextField()
    result = TextField(null=True)
    error = TextField(null=True)
    traceback = TextField(null=True)
    owner = TextField(default="")
    cancel_requested_at = DoubleField(null=True)  # someone asked the owner to stop this run (0006)
    cancel_requested_by = TextField(null=True)


class AuditLog(_Rows):
    at = DoubleField()
    action = TextField()
    job = TextField(null=True)
    old_value = TextField(null=True)
    new_value = TextField(null=True)
    source = TextField()


class Setting(_Base):
    key = TextField(primary_key=True)
    value = TextField()


class EngineInstance(_Base):
    """An engine process serving this database; stale heartbeat = gone (migration 0003)."""

    id = TextField(primary_key=True)  # the engine's lease owner string: host:pid:token
    host = TextField()
    pid = IntegerField()
    version = TextField()
    started_at = DoubleField()
    heartbeat_at = DoubleField()
    stopped_at = DoubleField(null=True)


ALL_MODELS = (
    Conversation, Message, PendingMemory, LongTermMemory, Fact, Outcome,
    ProfileAttribute, ProfileAttributeHistory, MemoryHistory, Summary, JobCheckpoint,
    JobDefinition, JobState, Run, AuditLog, Setting, EngineInstance,
)


def bind(database) -> SimpleNamespace:
    """Return subclasses of every model bound to ``database``, by class name."""
    bound = {}
    for model in ALL_MODELS:
        meta = type("Meta", (), {"database": database, "table_name": model._meta.table_name})
        bound[model.__name__] = type(model.__name__, (model,), {"Meta": meta, "__module__": __name__})
    return SimpleNamespace(**bound)
