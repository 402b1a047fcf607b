"""0.5: the dashboard as a control room — requests any process can leave for the engine that acts on them.

- ``run.status`` may be ``cancelled``: a run stopped at a check point because
  someone asked (``x`` in the dashboard, ``memtui cancel``).
- ``run.cancel_requested_at`` / ``cancel_requested_by``: a request to stop this
  run, written by any process (``by`` is the source, cli/ui/api). The engine that
  owns the run (``run.owner``) sees it at its next sync — woken at once by the
  change announcement — and tells the run to stop.
- ``job_state.run_requested_at`` / ``run_requested_by``: a run-now asked of
  whichever live engine serves this database (a dashboard attached to a headless
  engine has no scheduler of its own). The first engine to see it takes it with a
  compare-and-set UPDATE that clears it, so one engine runs the job, once.
- ``pending_memory.last_score``: the score promote computed when it last scored
  the row, written by the statement that clears ``rescore``; NULL until then.
  Recency only falls, so it is an upper bound on the score now. The memory view
  pages pending memories by it (index on ``last_score, id``), never scoring the
  whole table to sort it.
"""
from peewee import PostgresqlDatabase

STATUSES = ("running", "success", "failed", "skipped", "missed", "interrupted", "cancelled")
OLD_CHECK = "'interrupted')"
NEW_CHECK = "'interrupted', 'cancelled')"


def up(migrator, db):
    postgres = isinstance(db, PostgresqlDatabase)
    real, text = ("DOUBLE PRECISION" if postgres else "REAL"), "TEXT"
    if postgres:
        db.execute_sql("ALTER TABLE run DROP CONSTRAINT run_status_check")
        db.execute_sql("ALTER TABLE run ADD CONSTRAINT run_status_check CHECK (status IN ({}))".format(
            ", ".join(f"'{s}'" for s in STATUSES)))
    else:
        _widen_sqlite_status_check(db)
    for table, column, kind in (("run", "cancel_requested_at", real), ("run", "cancel_requested_by", text),
                                ("job_state", "run_requested_at", real), ("job_state", "run_requested_by", text),
                                ("pending_memory", "last_score", real)):
        db.execute_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    db.execute_sql("CREATE INDEX pending_memory_last_score ON pending_memory (last_score, id)")


def _widen_sqlite_status_check(db) -> None:
    """SQLite cannot alter a CHECK: the documented rebuild (new table, copy, drop, rename), from the
    table's own stored definition so every column and index comes back as it was."""
    create = db.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'run'").fetchone()[0]
    if OLD_CHECK not in create:
        raise RuntimeError("run.status CHECK is not the one 0002 wrote; refusing to guess")
    indexes = [sql for (sql,) in db.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'run' AND sql IS NOT NULL").fetchall()]
    new = create.replace(OLD_CHECK, NEW_CHECK, 1).replace('CREATE TABLE "run" (', "CREATE TABLE run_new (", 1)
    if new.startswith('CREATE TABLE "run"') or "run_new" not in new:
        new = new.replace("CREATE TABLE run (", "CREATE TABLE run_new (", 1)
    # AUTOINCREMENT's high mark: a run id is never used twice, even one whose row was pruned.
    seq = db.execute_sql("SELECT seq FROM sqlite_sequence WHERE name = 'run'").fetchone()
    db.execute_sql(new)
    db.execute_sql("INSERT INTO run_new SELECT * FROM run")
    db.execute_sql("DROP TABLE run")
    db.execute_sql("ALTER TABLE run_new RENAME TO run")
    for index in indexes:
        db.execute_sql(index)
    if seq is not None:
        db.execute_sql("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'run'", (seq[0],))
