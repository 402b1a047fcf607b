"""0.2: demo rows are marked, durations keep sub-millisecond precision, summaries record where they end.

- ``demo``: 1 on rows written by ``memtui demo`` and on rows the jobs derive only
  from such rows (a promoted demo memory, a summary of demo messages). ``demo``
  refills a store only when every memory row carries it, so it can never delete
  an agent's data. Rows of 0.1 stores stay 0: an old demo store must be reset.
- ``run.duration_ms`` and ``job_state.last_duration_ms`` become REAL milliseconds
  (most runs take well under one).
- ``run`` and ``audit_log`` ids become AUTOINCREMENT: after ``memtui demo --reset``
  empties them, a new row must not take an id that an engine or a dashboard has
  already seen (they read "rows after the last id I saw").
- ``summary.period_end``: the end of the summarized period (exclusive). A period
  is not always a calendar day, week or month: the first one after a time zone
  change starts where the previous one ended. NULL on summaries written by 0.1.
- Indexes on the memories' ``sender``: recall and the dashboard ask per sender.

On PostgreSQL (0001's identity ids are never reused) only the column types change.
"""
from peewee import FloatField, PostgresqlDatabase

DEMO_TABLES = ("conversation", "message", "pending_memory", "long_term_memory", "fact", "outcome",
               "profile_attribute", "profile_attribute_history", "summary")

RUN = """CREATE TABLE run (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('scheduled', 'manual', 'catch-up')),
        scheduled_for REAL,
        started_at REAL NOT NULL,
        finished_at REAL,
        duration_ms REAL,
        status TEXT NOT NULL CHECK (status IN
            ('running', 'success', 'failed', 'skipped', 'missed', 'interrupted')),
        result TEXT,
        error TEXT,
        traceback TEXT,
        owner TEXT NOT NULL DEFAULT '')"""
RUN_INDEXES = ("CREATE INDEX run_job_id ON run (job, id)", "CREATE INDEX run_status ON run (status)",
               "CREATE INDEX run_started ON run (started_at)")
AUDIT_LOG = """CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        action TEXT NOT NULL,
        job TEXT,
        old_value TEXT,
        new_value TEXT,
        source TEXT NOT NULL CHECK (source IN ('cli', 'ui', 'api')))"""


def _rebuild(db, table: str, create: str, indexes=()) -> None:
    """SQLite's documented way to change a table's definition: new table, copy, drop, rename."""
    db.execute_sql(create.replace(f"CREATE TABLE {table} (", f"CREATE TABLE {table}_new (", 1))
    db.execute_sql(f"INSERT INTO {table}_new SELECT * FROM {table}")
    db.execute_sql(f"DROP TABLE {table}")
    db.execute_sql(f"ALTER TABLE {table}_new RENAME TO {table}")
    for index in indexes:
        db.execute_sql(index)


def up(migrator, db):
    postgres = isinstance(db, PostgresqlDatabase)
    flag = "BOOLEAN NOT NULL DEFAULT false" if postgres else "INTEGER NOT NULL DEFAULT 0"
    for table in DEMO_TABLES:
        # A constant default lets SQLite add a NOT NULL column without rewriting the table.
        db.execute_sql(f"ALTER TABLE {table} ADD COLUMN demo {flag}")
    db.execute_sql(f"ALTER TABLE summary ADD COLUMN period_end {'DOUBLE PRECISION' if postgres else 'REAL'}")
    db.execute_sql("CREATE INDEX pending_memory_sender ON pending_memory (sender)")
    db.execute_sql("CREATE INDEX long_term_memory_sender ON long_term_memory (sender)")
    if postgres:  # identity ids are never reused already; only the type changes
        db.execute_sql("ALTER TABLE run ALTER COLUMN duration_ms TYPE DOUBLE PRECISION")
        db.execute_sql("ALTER TABLE job_state ALTER COLUMN last_duration_ms TYPE DOUBLE PRECISION")
        return
    _rebuild(db, "run", RUN, RUN_INDEXES)  # same columns in the same order: SELECT * copies them
    _rebuild(db, "audit_log", AUDIT_LOG)
    migrator.migrate(migrator.alter_column_type("job_state", "last_duration_ms", FloatField(null=True)))
