"""0.3: the store keeps what promote and decay need to look at only what changed.

- ``pending_memory.rescore``: true when the row is new or one of its scoring
  inputs (importance, confidence, access_count, last_access_at, remember,
  created_at) was written since promote last scored it. Promote clears it on the
  rows it scored below the threshold: such a row's score can only fall until one
  of those inputs is written again (recency decays, the rest is unchanged), so
  it need not be scored again before then. A trigger sets it, so a write that
  bypasses memtui (an agent's plain ``UPDATE … SET importance``) is seen too. A
  partial index holds only the flagged rows: a run reads those, not the table.
- ``long_term_memory.retire_at``: when the memory's retention falls below decay's
  floor, ``last_reinforced_at + horizon·(0.5 + importance/10)·(1 + recall_count)``
  (R = exp(−Δt/S) < floor exactly when Δt > S·ln(1/floor)); NULL while pinned or
  soft-deleted (it cannot retire then). A trigger computes it on every insert and
  on every write to those inputs; the horizon, ``S0·ln(1/floor)`` in seconds,
  depends on decay's config and is the setting ``decay.horizon_s``, which decay
  rewrites (and recomputes every row) when its config changes. A decay run is then
  an index range scan over ``retire_at < now``.

Existing pending rows are all flagged (the first promote run scores them once);
existing long-term rows get their ``retire_at`` here.
"""
from peewee import PostgresqlDatabase

HORIZON_KEY = "decay.horizon_s"
# Decay's default horizon: ln(1/0.05) · (30 days / ln 2), in seconds. Written as the setting here; the trigger's
# fallback if that row is deleted. Decay rewrites the setting when its config gives another horizon.
DEFAULT_HORIZON_S = 11202437.621948043

# The inputs of each derived column: a write to any of them (even of the same value) recomputes it.
SCORING_INPUTS = ("importance", "confidence", "access_count", "last_access_at", "remember", "created_at")
RETENTION_INPUTS = ("last_reinforced_at", "importance", "recall_count", "pinned", "deleted_at")


def retire_at(row: str, horizon: str) -> str:
    """The SQL expression of ``retire_at`` for ``row`` (NEW in a trigger, the table in the backfill)."""
    return (f"CASE WHEN {row}.pinned OR {row}.deleted_at IS NOT NULL THEN NULL ELSE "
            f"{row}.last_reinforced_at + {horizon} * (0.5 + {row}.importance / 10.0) * (1 + {row}.recall_count) END")


def horizon(cast: str) -> str:
    return (f"COALESCE((SELECT CAST(value AS {cast}) FROM setting WHERE key = '{HORIZON_KEY}'), "
            f"{DEFAULT_HORIZON_S!r})")


SQLITE = [
    "ALTER TABLE pending_memory ADD COLUMN rescore INTEGER NOT NULL DEFAULT 1",
    # Only the rows that are set: a run's scan is as long as what changed, and the index costs nothing
    # for the millions of rows scored already. Queries must say ``WHERE rescore`` to use it.
    "CREATE INDEX pending_memory_rescore ON pending_memory (id) WHERE rescore",
    # A row inserted with rescore = 0 is still new to promote.
    """CREATE TRIGGER pending_memory_rescore_insert AFTER INSERT ON pending_memory WHEN NOT NEW.rescore
       BEGIN UPDATE pending_memory SET rescore = 1 WHERE id = NEW.id; END""",
    f"""CREATE TRIGGER pending_memory_rescore_update AFTER UPDATE OF {", ".join(SCORING_INPUTS)}
       ON pending_memory WHEN NOT NEW.rescore
       BEGIN UPDATE pending_memory SET rescore = 1 WHERE id = NEW.id; END""",
    "ALTER TABLE long_term_memory ADD COLUMN retire_at REAL",
    "CREATE INDEX long_term_memory_retire ON long_term_memory (retire_at)",
    # SQLite has no BEFORE trigger that can change NEW: an AFTER trigger writes the row again, unless the
    # statement already wrote the right value (decay's soft delete sets retire_at = NULL with deleted_at:
    # one write a row, not two).
    f"""CREATE TRIGGER long_term_memory_retire_insert AFTER INSERT ON long_term_memory
       WHEN NEW.retire_at IS NOT {retire_at("NEW", horizon("REAL"))}
       BEGIN UPDATE long_term_memory SET retire_at = {retire_at("NEW", horizon("REAL"))} WHERE id = NEW.id; END""",
    f"""CREATE TRIGGER long_term_memory_retire_update AFTER UPDATE OF {", ".join(RETENTION_INPUTS)}
       ON long_term_memory WHEN NEW.retire_at IS NOT {retire_at("NEW", horizon("REAL"))}
       BEGIN UPDATE long_term_memory SET retire_at = {retire_at("NEW", horizon("REAL"))} WHERE id = NEW.id; END""",
]

POSTGRES = [
    "ALTER TABLE pending_memory ADD COLUMN rescore BOOLEAN NOT NULL DEFAULT true",
    "CREATE INDEX pending_memory_rescore ON pending_memory (id) WHERE rescore",
    """CREATE FUNCTION memtui_pending_rescore() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN NEW.rescore := true; RETURN NEW; END $$""",
    f"""CREATE TRIGGER pending_memory_rescore BEFORE INSERT OR UPDATE OF {", ".join(SCORING_INPUTS)}
       ON pending_memory FOR EACH ROW EXECUTE FUNCTION memtui_pending_rescore()""",
    "ALTER TABLE long_term_memory ADD COLUMN retire_at DOUBLE PRECISION",
    "CREATE INDEX long_term_memory_retire ON long_term_memory (retire_at)",
    f"""CREATE FUNCTION memtui_long_term_retire_at() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN NEW.retire_at := {retire_at("NEW", horizon("DOUBLE PRECISION"))}; RETURN NEW; END $$""",
    f"""CREATE TRIGGER long_term_memory_retire_at BEFORE INSERT OR UPDATE OF {", ".join(RETENTION_INPUTS)}
       ON long_term_memory FOR EACH ROW EXECUTE FUNCTION memtui_long_term_retire_at()""",
]


def up(migrator, db):
    postgres = isinstance(db, PostgresqlDatabase)
    for statement in POSTGRES if postgres else SQLITE:
        db.execute_sql(statement)
    db.execute_sql(f"INSERT INTO setting (key, value) VALUES ('{HORIZON_KEY}', '{DEFAULT_HORIZON_S!r}')")
    db.execute_sql(f"UPDATE long_term_memory SET retire_at = "
                   f"{retire_at('long_term_memory', horizon('DOUBLE PRECISION' if postgres else 'REAL'))}")
