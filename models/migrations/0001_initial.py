"""Initial schema: the memory store and the job tables.

Frozen DDL, independent of the Peewee models in models/schema.py (a test checks
the two agree). Every time is REAL unix seconds, UTC, so agents written in any
language can read and write it with plain SQL. Tables whose ids an agent holds
on to use AUTOINCREMENT: SQLite would otherwise hand a deleted row's id to the
next insert, and an old id would then name a different memory.
"""

STATEMENTS = [
    # -- memory store -------------------------------------------------------
    """CREATE TABLE conversation (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL DEFAULT '',
        sender TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL)""",
    "CREATE INDEX conversation_status_updated ON conversation (status, updated_at)",
    "CREATE INDEX conversation_started ON conversation (started_at)",
    """CREATE TABLE message (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversation (id) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'user',
        content TEXT NOT NULL,
        created_at REAL NOT NULL)""",
    "CREATE INDEX message_conversation ON message (conversation_id)",
    "CREATE INDEX message_created ON message (created_at)",
    """CREATE TABLE pending_memory (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        content TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'note',
        sender TEXT NOT NULL DEFAULT '',
        session TEXT NOT NULL DEFAULT '',
        importance REAL NOT NULL DEFAULT 5 CHECK (importance BETWEEN 0 AND 10),
        confidence REAL NOT NULL DEFAULT 0.5 CHECK (confidence BETWEEN 0 AND 1),
        access_count INTEGER NOT NULL DEFAULT 0 CHECK (access_count >= 0),
        last_access_at REAL,
        remember INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL)""",
    "CREATE INDEX pending_memory_created ON pending_memory (created_at)",
    """CREATE TABLE long_term_memory (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        content TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'note',
        sender TEXT NOT NULL DEFAULT '',
        importance REAL NOT NULL DEFAULT 5 CHECK (importance BETWEEN 0 AND 10),
        confidence REAL NOT NULL DEFAULT 0.5,
        created_at REAL NOT NULL,
        promoted_at REAL,
        last_reinforced_at REAL NOT NULL,
        recall_count INTEGER NOT NULL DEFAULT 0,
        pinned INTEGER NOT NULL DEFAULT 0,
        source_pending_id INTEGER UNIQUE,
        deleted_at REAL)""",
    "CREATE INDEX long_term_memory_deleted ON long_term_memory (deleted_at)",
    """CREATE TABLE fact (
        id INTEGER PRIMARY KEY,
        sender TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (sender, key))""",
    """CREATE TABLE outcome (
        id INTEGER PRIMARY KEY,
        sender TEXT NOT NULL,
        domain TEXT NOT NULL DEFAULT '',
        score REAL NOT NULL DEFAULT 0,
        lesson TEXT NOT NULL,
        created_at REAL NOT NULL)""",
    "CREATE INDEX outcome_sender_created ON outcome (sender, created_at)",
    """CREATE TABLE profile_attribute (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        entity TEXT NOT NULL,
        category TEXT NOT NULL DEFAULT 'other',
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        confidence REAL NOT NULL DEFAULT 0.5,
        source TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL)""",
    "CREATE INDEX profile_attribute_entity ON profile_attribute (entity, updated_at)",
    """CREATE TABLE profile_attribute_history (
        id INTEGER PRIMARY KEY,
        attribute_id INTEGER NOT NULL,
        entity TEXT NOT NULL,
        category TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        confidence REAL NOT NULL,
        source TEXT NOT NULL,
        updated_at REAL NOT NULL,
        replaced_at REAL NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        run_id INTEGER)""",
    "CREATE INDEX profile_attribute_history_entity ON profile_attribute_history (entity)",
    """CREATE TABLE summary (
        id INTEGER PRIMARY KEY,
        level TEXT NOT NULL CHECK (level IN ('day', 'week', 'month')),
        period_start REAL NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        source_count INTEGER NOT NULL,
        model TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (level, period_start, sender))""",
    """CREATE TABLE job_checkpoint (
        job TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL)""",
    # -- jobs ---------------------------------------------------------------
    """CREATE TABLE job_definition (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        schedule TEXT NOT NULL,
        timezone TEXT,
        jitter_s INTEGER NOT NULL DEFAULT 0 CHECK (jitter_s >= 0),
        config TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL)""",
    # Engine-owned state, kept apart from the definition so a CLI edit and an
    # engine's bookkeeping never write the same row.
    """CREATE TABLE job_state (
        name TEXT PRIMARY KEY REFERENCES job_definition (name) ON DELETE CASCADE,
        next_run_at REAL,
        last_run_at REAL,
        last_status TEXT,
        last_duration_ms INTEGER,
        runs INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        backoff_until REAL,
        totals TEXT NOT NULL DEFAULT '{}',
        lease_owner TEXT,
        lease_run_id INTEGER,
        lease_expires_at REAL)""",
    """CREATE TABLE run (
        id INTEGER PRIMARY KEY,
        job TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('scheduled', 'manual', 'catch-up')),
        scheduled_for REAL,
        started_at REAL NOT NULL,
        finished_at REAL,
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
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        action TEXT NOT NULL,
        job TEXT,
        old_value TEXT,
        new_value TEXT,
        source TEXT NOT NULL CHECK (source IN ('cli', 'ui', 'api')))""",
    """CREATE TABLE setting (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
]


def up(migrator, db):
    for statement in STATEMENTS:
        db.execute_sql(statement)
