"""Initial schema: the memory store and the job tables.

Frozen DDL, independent of the Peewee models in models/schema.py (a test checks
the two agree). Every time is {real} unix seconds, UTC, so agents written in any
language can read and write it with plain SQL. Tables whose ids an agent holds
on to use AUTOINCREMENT: SQLite would otherwise hand a deleted row's id to the
next insert, and an old id would then name a different memory.

Written once for both backends: the words in braces are the types each one
spells differently (``DIALECTS``); everything else is the same SQL. On SQLite
the result is exactly memtui 0.1's schema. On PostgreSQL times are DOUBLE
PRECISION (its {real} is a 4-byte float: a second's precision lost), ids are
identity columns (never reused, like AUTOINCREMENT) and flags are BOOLEAN.
"""
from peewee import PostgresqlDatabase


STATEMENTS = [
    # -- memory store -------------------------------------------------------
    """CREATE TABLE conversation (
        id {pk_ai},
        channel TEXT NOT NULL DEFAULT '',
        sender TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
        started_at {real} NOT NULL,
        updated_at {real} NOT NULL)""",
    "CREATE INDEX conversation_status_updated ON conversation (status, updated_at)",
    "CREATE INDEX conversation_started ON conversation (started_at)",
    """CREATE TABLE message (
        id {pk},
        conversation_id {bigint} NOT NULL REFERENCES conversation (id) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'user',
        content TEXT NOT NULL,
        created_at {real} NOT NULL)""",
    "CREATE INDEX message_conversation ON message (conversation_id)",
    "CREATE INDEX message_created ON message (created_at)",
    """CREATE TABLE pending_memory (
        id {pk_ai},
        content TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'note',
        sender TEXT NOT NULL DEFAULT '',
        session TEXT NOT NULL DEFAULT '',
        importance {real} NOT NULL DEFAULT 5 CHECK (importance BETWEEN 0 AND 10),
        confidence {real} NOT NULL DEFAULT 0.5 CHECK (confidence BETWEEN 0 AND 1),
        access_count INTEGER NOT NULL DEFAULT 0 CHECK (access_count >= 0),
        last_access_at {real},
        remember {bool} NOT NULL DEFAULT {false},
        created_at {real} NOT NULL)""",
    "CREATE INDEX pending_memory_created ON pending_memory (created_at)",
    """CREATE TABLE long_term_memory (
        id {pk_ai},
        content TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'note',
        sender TEXT NOT NULL DEFAULT '',
        importance {real} NOT NULL DEFAULT 5 CHECK (importance BETWEEN 0 AND 10),
        confidence {real} NOT NULL DEFAULT 0.5,
        created_at {real} NOT NULL,
        promoted_at {real},
        last_reinforced_at {real} NOT NULL,
        recall_count INTEGER NOT NULL DEFAULT 0,
        pinned {bool} NOT NULL DEFAULT {false},
        source_pending_id {bigint} UNIQUE,
        deleted_at {real})""",
    "CREATE INDEX long_term_memory_deleted ON long_term_memory (deleted_at)",
    """CREATE TABLE fact (
        id {pk},
        sender TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at {real} NOT NULL,
        UNIQUE (sender, key))""",
    """CREATE TABLE outcome (
        id {pk},
        sender TEXT NOT NULL,
        domain TEXT NOT NULL DEFAULT '',
        score {real} NOT NULL DEFAULT 0,
        lesson TEXT NOT NULL,
        created_at {real} NOT NULL)""",
    "CREATE INDEX outcome_sender_created ON outcome (sender, created_at)",
    """CREATE TABLE profile_attribute (
        id {pk_ai},
        entity TEXT NOT NULL,
        category TEXT NOT NULL DEFAULT 'other',
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        confidence {real} NOT NULL DEFAULT 0.5,
        source TEXT NOT NULL DEFAULT '',
        updated_at {real} NOT NULL)""",
    "CREATE INDEX profile_attribute_entity ON profile_attribute (entity, updated_at)",
    """CREATE TABLE profile_attribute_history (
        id {pk},
        attribute_id {bigint} NOT NULL,
        entity TEXT NOT NULL,
        category TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        confidence {real} NOT NULL,
        source TEXT NOT NULL,
        updated_at {real} NOT NULL,
        replaced_at {real} NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        run_id {bigint})""",
    "CREATE INDEX profile_attribute_history_entity ON profile_attribute_history (entity)",
    """CREATE TABLE summary (
        id {pk},
        level TEXT NOT NULL CHECK (level IN ('day', 'week', 'month')),
        period_start {real} NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        source_count INTEGER NOT NULL,
        model TEXT NOT NULL,
        created_at {real} NOT NULL,
        UNIQUE (level, period_start, sender))""",
    """CREATE TABLE job_checkpoint (
        job TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at {real} NOT NULL)""",
    # -- jobs ---------------------------------------------------------------
    """CREATE TABLE job_definition (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        enabled {bool} NOT NULL DEFAULT {true},
        schedule TEXT NOT NULL,
        timezone TEXT,
        jitter_s INTEGER NOT NULL DEFAULT 0 CHECK (jitter_s >= 0),
        config TEXT NOT NULL DEFAULT '{{}}',
        created_at {real} NOT NULL,
        updated_at {real} NOT NULL)""",
    # Engine-owned state, kept apart from the definition so a CLI edit and an
    # engine's bookkeeping never write the same row.
    """CREATE TABLE job_state (
        name TEXT PRIMARY KEY REFERENCES job_definition (name) ON DELETE CASCADE,
        next_run_at {real},
        last_run_at {real},
        last_status TEXT,
        last_duration_ms INTEGER,
        runs INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        backoff_until {real},
        totals TEXT NOT NULL DEFAULT '{{}}',
        lease_owner TEXT,
        lease_run_id {bigint},
        lease_expires_at {real})""",
    """CREATE TABLE run (
        id {pk},
        job TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('scheduled', 'manual', 'catch-up')),
        scheduled_for {real},
        started_at {real} NOT NULL,
        finished_at {real},
        duration_ms INTEGER,
        status TEXT NOT NULL CHECK (status IN
            ('running', 'success', 'failed', 'skipped', 'missed', 'interrupted')),
        result TEXT,
        error TEXT,
        traceback TEXT,
        owner TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX run_job_id ON run (job, id)",
    "CREATE INDEX run_status ON run (status)",
    "CREATE INDEX run_started ON run (started_at)",
    """CREATE TABLE audit_log (
        id {pk},
        at {real} NOT NULL,
        action TEXT NOT NULL,
        job TEXT,
        old_value TEXT,
        new_value TEXT,
        source TEXT NOT NULL CHECK (source IN ('cli', 'ui', 'api')))""",
    """CREATE TABLE setting (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
]


DIALECTS = {
    "sqlite": {"pk_ai": "INTEGER PRIMARY KEY AUTOINCREMENT", "pk": "INTEGER PRIMARY KEY", "real": "REAL",
               "bigint": "INTEGER", "bool": "INTEGER", "false": "0", "true": "1"},
    "postgresql": {"pk_ai": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                   "pk": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "real": "DOUBLE PRECISION",
                   "bigint": "BIGINT", "bool": "BOOLEAN", "false": "false", "true": "true"},
}


def dialect(db) -> dict[str, str]:
    return DIALECTS["postgresql" if isinstance(db, PostgresqlDatabase) else "sqlite"]


def up(migrator, db):
    words = dialect(db)
    for statement in STATEMENTS:
        db.execute_sql(statement.format(**words))
