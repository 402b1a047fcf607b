"""0.2: demo rows are marked, durations keep sub-millisecond precision, summaries record where they end.

- ``demo``: 1 on rows written by ``memtui demo`` and on rows the jobs derive only
  from such rows (a promoted demo memory, a summary of demo messages). ``demo``
  refills a store only when every memory row carries it, so it can never delete
  an agent's data. Rows of 0.1 stores stay 0: an old demo store must be reset.
- ``run.duration_ms`` and ``job_state.last_duration_ms`` become REAL milliseconds
  (most runs take well under one).
- ``summary.period_end``: the end of the summarized period (exclusive). A period
  is not always a calendar day, week or month: the first one after a time zone
  change starts where the previous one ended. NULL on summaries written by 0.1.
"""
from peewee import FloatField

DEMO_TABLES = ("conversation", "message", "pending_memory", "long_term_memory", "fact", "outcome",
               "profile_attribute", "profile_attribute_history", "summary")


def up(migrator, db):
    for table in DEMO_TABLES:
        # A constant default lets SQLite add a NOT NULL column without rewriting the table.
        db.execute_sql(f"ALTER TABLE {table} ADD COLUMN demo INTEGER NOT NULL DEFAULT 0")
    db.execute_sql("ALTER TABLE summary ADD COLUMN period_end REAL")
    # REAL instead of INTEGER: SQLite rebuilds these two tables (indexes and checks are kept).
    migrator.migrate(
        migrator.alter_column_type("run", "duration_ms", FloatField(null=True)),
        migrator.alter_column_type("job_state", "last_duration_ms", FloatField(null=True)),
    )
