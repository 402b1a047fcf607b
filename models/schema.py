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

from peewee import BooleanField, FloatField, IntegerField, Model, TextField


class _Base(Model):
    class Meta:
        database = None
        legacy_table_names = False


# -- memory store ------------------------------------------------------------

class Conversation(_Base):
    channel = TextField(default="")
    sender = TextField()
    status = TextField(default="active")
    started_at = FloatField()
    updated_at = FloatField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class Message(_Base):
    conversation_id = IntegerField()
    sender = TextField()
    role = TextField(default="user")
    content = TextField()
    created_at = FloatField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class PendingMemory(_Base):
    content = TextField()
    kind = TextField(default="note")
    sender = TextField(default="")
    session = TextField(default="")
    importance = FloatField(default=5.0)
    confidence = FloatField(default=0.5)
    access_count = IntegerField(default=0)
    last_access_at = FloatField(null=True)
    remember = BooleanField(default=False)
    created_at = FloatField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class LongTermMemory(_Base):
    content = TextField()
    kind = TextField(default="note")
    sender = TextField(default="")
    importance = FloatField(default=5.0)
    confidence = FloatField(default=0.5)
    created_at = FloatField()
    promoted_at = FloatField(null=True)
    last_reinforced_at = FloatField()
    recall_count = IntegerField(default=0)
    pinned = BooleanField(default=False)
    source_pending_id = IntegerField(null=True, unique=True)
    deleted_at = FloatField(null=True)
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class Fact(_Base):
    sender = TextField()
    key = TextField()
    value = TextField()
    updated_at = FloatField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class Outcome(_Base):
    sender = TextField()
    domain = TextField(default="")
    score = FloatField(default=0.0)
    lesson = TextField()
    created_at = FloatField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class ProfileAttribute(_Base):
    entity = TextField()
    category = TextField(default="other")
    key = TextField()
    value = TextField()
    confidence = FloatField(default=0.5)
    source = TextField(default="")
    updated_at = FloatField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class ProfileAttributeHistory(_Base):
    attribute_id = IntegerField()
    entity = TextField()
    category = TextField()
    key = TextField()
    value = TextField()
    confidence = FloatField()
    source = TextField()
    updated_at = FloatField()
    replaced_at = FloatField()
    reason = TextField(default="")
    run_id = IntegerField(null=True)
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class Summary(_Base):
    level = TextField()
    period_start = FloatField()
    sender = TextField()
    text = TextField()
    source_count = IntegerField()
    period_end = FloatField(null=True)  # exclusive; NULL on summaries written by 0.1
    model = TextField()
    created_at = FloatField()
    demo = BooleanField(default=False)  # written by `memtui demo`, or derived only from such rows


class JobCheckpoint(_Base):
    job = TextField(primary_key=True)
    value = TextField()
    updated_at = FloatField()


# -- jobs --------------------------------------------------------------------

class JobDefinition(_Base):
    name = TextField(primary_key=True)
    kind = TextField()
    enabled = BooleanField(default=True)
    schedule = TextField()
    timezone = TextField(null=True)
    jitter_s = IntegerField(default=0)
    config = TextField(default="{}")
    created_at = FloatField()
    updated_at = FloatField()


class JobState(_Base):
    name = TextField(primary_key=True)
    next_run_at = FloatField(null=True)
    last_run_at = FloatField(null=True)
    last_status = TextField(null=True)
    last_duration_ms = FloatField(null=True)
    runs = IntegerField(default=0)
    errors = IntegerField(default=0)
    consecutive_failures = IntegerField(default=0)
    backoff_until = FloatField(null=True)
    totals = TextField(default="{}")
    lease_owner = TextField(null=True)
    lease_run_id = IntegerField(null=True)
    lease_expires_at = FloatField(null=True)


class Run(_Base):
    job = TextField()
    reason = TextField()
    scheduled_for = FloatField(null=True)
    started_at = FloatField()
    finished_at = FloatField(null=True)
    duration_ms = FloatField(null=True)  # fractional milliseconds
    status = TextField()
    result = TextField(null=True)
    error = TextField(null=True)
    traceback = TextField(null=True)
    owner = TextField(default="")


class AuditLog(_Base):
    at = FloatField()
    action = TextField()
    job = TextField(null=True)
    old_value = TextField(null=True)
    new_value = TextField(null=True)
    source = TextField()


class Setting(_Base):
    key = TextField(primary_key=True)
    value = TextField()


ALL_MODELS = (
    Conversation, Message, PendingMemory, LongTermMemory, Fact, Outcome,
    ProfileAttribute, ProfileAttributeHistory, Summary, JobCheckpoint,
    JobDefinition, JobState, Run, AuditLog, Setting,
)


def bind(database) -> SimpleNamespace:
    """Return subclasses of every model bound to ``database``, by class name."""
    bound = {}
    for model in ALL_MODELS:
        meta = type("Meta", (), {"database": database, "table_name": model._meta.table_name})
        bound[model.__name__] = type(model.__name__, (model,), {"Meta": meta, "__module__": __name__})
    return SimpleNamespace(**bound)
