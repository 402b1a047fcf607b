"""0.7: promote finds what changed by a mark, not a flag it must clear, and the database stores each score.

Until now a trigger set ``pending_memory.rescore`` on every write to a scoring
input, and promote cleared it, storing the score (``last_score``), on each row
it then scored below the threshold: a run wrote every row that changed, about
three scattered pages a memory (the row, the old and the new entry of the
``last_score`` index) — most of an incremental run's cost at 10 M memories. Now:

- ``pending_memory.changed``: where the row's last write stands in the store's
  order of changes, kept by a trigger on insert and on every write to a scoring
  input (so an agent's plain-SQL UPDATE is seen, as before). SQLite: one more
  than the highest ``changed`` of the table, or than the mark of promote's last
  run (``setting`` ``promote.seen``, which the run writes in the transaction that
  takes it: the highest row may be deleted since, by a promotion or a forget);
  writers are serialized, so a change committed after a run took its mark is
  above it. Only read, never written, by an agent's write. PostgreSQL: the
  writing transaction's id (``pg_current_xact_id()``, 64 bits, no wraparound);
  a run's mark is one below every transaction of this database still open at
  its snapshot (models/postgres.py), so a change that commits later is above it
  too (a counter row would make every writer wait for the one before it to
  commit). Promote scores the rows above the mark of its last committed run (an index
  range scan) and writes nothing to those it finds below the threshold.
- ``pending_memory.last_score`` is computed by the same trigger: the score at the
  row's last use, recency 1 (``w_r + w_f·frequency + w_c·confidence +
  w_i·importance``, without pow(), which not every SQLite has), from the weights
  promote keeps in ``setting`` (``promote.w_*``; the defaults if absent). A use
  sets ``last_access_at`` to now, so after a use or a new memory it is the score
  then; after a plain-SQL edit of another input it is an upper bound. Recency
  only falls, so it stays an upper bound; promote's full pass writes it again
  where it has drifted (engine/jobs/promote.py).
- ``pending_memory.rescore`` now means only "a qualifier the cap left behind":
  set by promote; the insert trigger makes it false on every new row (a new
  row is changed: the next run scores it anyway), whatever the INSERT or the
  column's default (still true: SQLite cannot change a default in place) say.

The rows that were flagged are marked changed (``changed`` 1, above the mark
0 of a checkpoint from before) with their score at their last use stored.
"""
from peewee import PostgresqlDatabase

SEEN_KEY = "promote.seen"  # SQLite: the mark of promote's last run, written by the run (Store.pending_change_mark)
# The trigger's weights (promote rewrites them when its config changes); the defaults while absent.
WEIGHT_KEYS = {"w_recency": 0.20, "w_frequency": 0.30, "w_confidence": 0.25, "w_importance": 0.25}
SCORING_INPUTS = ("importance", "confidence", "access_count", "last_access_at", "remember", "created_at")


def peak_score(row: str, postgres: bool) -> str:
    """The score of ``row`` at its last use (recency 1), rounded to 9 places, in the order of promote's
    ``score_of`` (so the same floating-point sum)."""
    cast = "DOUBLE PRECISION" if postgres else "REAL"
    least, greatest = ("LEAST", "GREATEST") if postgres else ("MIN", "MAX")
    w = {name: f"COALESCE((SELECT CAST(value AS {cast}) FROM setting WHERE key = 'promote.{name}'), {default!r})"
         for name, default in WEIGHT_KEYS.items()}
    total = (f"((({w['w_recency']} * 1.0) + ({w['w_frequency']} * {least}(CAST({row}.access_count AS {cast}) / 10.0,"
             f" 1.0))) + ({w['w_confidence']} * {least}({greatest}({row}.confidence, 0.0), 1.0)))"
             f" + ({w['w_importance']} * ({least}({greatest}({row}.importance, 0.0), 10.0) / 10.0))")
    # (The three inputs are NOT NULL, so PostgreSQL's LEAST skipping NULLs where SQLite's MIN gives NULL cannot differ.)
    return f"CAST(ROUND(CAST({total} AS NUMERIC), 9) AS DOUBLE PRECISION)" if postgres else f"ROUND({total}, 9)"


# SQLite: the next number in the order of changes (the index on changed gives its highest at once).
NEXT = (f"MAX(COALESCE((SELECT MAX(changed) FROM pending_memory), 0),"
        f" COALESCE((SELECT CAST(value AS INTEGER) FROM setting WHERE key = '{SEEN_KEY}'), 0)) + 1")

SQLITE = [
    "DROP TRIGGER pending_memory_rescore_insert",
    "DROP TRIGGER pending_memory_rescore_update",
    "ALTER TABLE pending_memory ADD COLUMN changed INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX pending_memory_changed ON pending_memory (changed)",
    f"UPDATE pending_memory SET changed = 1, rescore = 0, last_score = {peak_score('pending_memory', False)}"
    " WHERE rescore",
    # SQLite has no BEFORE trigger that can change NEW: the AFTER trigger writes the row again (its page is
    # the one just written). rescore: see above.
    f"""CREATE TRIGGER pending_memory_changed_insert AFTER INSERT ON pending_memory BEGIN
        UPDATE pending_memory SET changed = {NEXT}, rescore = 0, last_score = {peak_score("NEW", False)}
        WHERE id = NEW.id; END""",
    f"""CREATE TRIGGER pending_memory_changed_update AFTER UPDATE OF {", ".join(SCORING_INPUTS)} ON pending_memory
        BEGIN UPDATE pending_memory SET changed = {NEXT}, last_score = {peak_score("NEW", False)}
        WHERE id = NEW.id; END""",
]

POSTGRES = [
    "DROP TRIGGER pending_memory_rescore ON pending_memory",
    "DROP FUNCTION memtui_pending_rescore()",
    # A constant default: PostgreSQL 11+ adds the column without rewriting the table.
    "ALTER TABLE pending_memory ADD COLUMN changed BIGINT NOT NULL DEFAULT 0",
    "CREATE INDEX pending_memory_changed ON pending_memory (changed)",
    f"UPDATE pending_memory SET changed = 1, rescore = false, last_score = {peak_score('pending_memory', True)}"
    " WHERE rescore",
    f"""CREATE FUNCTION memtui_pending_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        NEW.changed := pg_current_xact_id()::text::bigint;
        NEW.last_score := {peak_score("NEW", True)};
        IF TG_OP = 'INSERT' THEN NEW.rescore := false; END IF;
        RETURN NEW; END $$""",
    f"""CREATE TRIGGER pending_memory_changed BEFORE INSERT OR UPDATE OF {", ".join(SCORING_INPUTS)}
        ON pending_memory FOR EACH ROW EXECUTE FUNCTION memtui_pending_changed()""",
]


def up(migrator, db):
    for statement in POSTGRES if isinstance(db, PostgresqlDatabase) else SQLITE:
        db.execute_sql(statement)
