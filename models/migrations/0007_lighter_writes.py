"""0.6: what a write to a memory costs the database — only the index entries and derived values it changes.

- ``long_term_memory_deleted`` holds only the soft-deleted rows (``WHERE deleted_at
  IS NOT NULL``), and ``long_term_memory_superseded_by`` only the superseded ones:
  every query that uses them asks for a time or a memory (``deleted_at < ?``,
  ``superseded_by = ?``), never for NULL, which most rows are. A soft delete then
  no longer takes its row's entry out of the NULL part of the index, a random page
  of it among millions of entries (SQLite: decay's 1,000 soft deletes wrote 1,270
  pages instead of 1,900 at a million memories, and the saving grows with the
  store); on PostgreSQL, where an UPDATE that changes an indexed column adds the
  new row version to every index, a live row's new version is no longer added to
  either.
- PostgreSQL: ``search`` (migration 0005) is no longer a generated column but an
  ordinary one that a trigger computes from ``content``, on insert and on any
  UPDATE that writes ``content`` (or ``search``), with the same expression.
  PostgreSQL recomputes every stored generated column on every UPDATE of a table
  that has a BEFORE UPDATE row trigger (it cannot know what the trigger changes),
  and both memory tables have one (``rescore``, ``retire_at``: 0004): each
  UPDATE of a memory — an access, a recall, promote clearing a flag, decay's soft
  delete — folded and parsed the memory's text again, about 40 µs a row (44 ms of
  the 80-95 that decay's 1,000 soft deletes took at a million memories). The
  values stay as they were.
- PostgreSQL: ``memtui_long_term_retire_at()`` (0005) tests "pinned, superseded
  or soft-deleted" first, as a simple expression, and reads the horizon (a
  subquery, run through the executor at each call) only for a row that can
  retire: the same value; 3 ms instead of 10 for 1,000 soft deletes.
"""
from importlib import import_module

from peewee import PostgresqlDatabase

TABLES = ("pending_memory", "long_term_memory")

PARTIAL_INDEXES = (
    ("long_term_memory_deleted", "deleted_at"),
    ("long_term_memory_superseded_by", "superseded_by"),
)


def _live_retire_at(row: str, horizon: str) -> str:
    """0004's retire_at for a row that can retire (the ELSE of its CASE): the formula stays written once."""
    case = import_module("memtui.models.migrations.0004_incremental").retire_at(row, horizon)
    head, sep, tail = case.partition(" ELSE ")
    if not sep or not tail.endswith(" END"):
        raise RuntimeError("0004's retire_at is not the CASE this migration expects")
    return tail[: -len(" END")]


def up(migrator, db):
    postgres = isinstance(db, PostgresqlDatabase)
    for index, column in PARTIAL_INDEXES:
        db.execute_sql(f"DROP INDEX {index}")
        db.execute_sql(f"CREATE INDEX {index} ON long_term_memory ({column}) WHERE {column} IS NOT NULL")
    if not postgres:
        return
    incremental = import_module("memtui.models.migrations.0004_incremental")
    live = _live_retire_at("NEW", incremental.horizon("DOUBLE PRECISION"))
    db.execute_sql(f"""CREATE OR REPLACE FUNCTION memtui_long_term_retire_at() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN
        IF NEW.pinned OR NEW.superseded_by IS NOT NULL OR NEW.deleted_at IS NOT NULL THEN
            NEW.retire_at := NULL;
        ELSE
            NEW.retire_at := {live};
        END IF;
        RETURN NEW; END $$""")
    db.execute_sql("""CREATE FUNCTION memtui_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.search := to_tsvector('simple', memtui_fold(NEW.content)); RETURN NEW; END $$""")
    for table in TABLES:
        db.execute_sql(f"ALTER TABLE {table} ALTER COLUMN search DROP EXPRESSION")
        db.execute_sql(f"""CREATE TRIGGER {table}_search_vector BEFORE INSERT OR UPDATE OF content, search
            ON {table} FOR EACH ROW EXECUTE FUNCTION memtui_search_vector()""")
