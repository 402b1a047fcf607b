"""0.4: what keeps memory clean — repeat keys, supersession, the history of every move, full-text search.

- ``content_key`` on both memory tables: the text with case, spacing,
  punctuation and Unicode form normalised away (engine/similar.py), written by
  memtui on every insert (NULL on a row an agent wrote with plain SQL: the
  dedupe job fills it). ``remember`` looks it up (index on sender, key) and
  counts a repeat as a use of the memory it repeats.
- ``long_term_memory.superseded_by`` / ``superseded_at``: a memory merged into
  another (a duplicate) or replaced by a newer one (a contradiction) keeps its
  row, retired: recall leaves it out unless asked for history, decay never
  retires it again (``retire_at`` NULL: the trigger of 0004 is rewritten here).
- ``long_term_memory.promotion_*``: the score, its four terms and the threshold
  when the memory was promoted (``memtui why``).
- ``memory_history``: one row for every merge, supersession, soft delete (by
  decay, or ``forget`` on request), restore, hard delete and expiry — memory, action, old and new text, reason,
  run, time. Nothing leaves the store without a row here.
- Full-text search over both memory tables, kept in step by the database
  itself. PostgreSQL: a generated column ``search`` =
  ``to_tsvector('simple', memtui_fold(content))`` with a GIN index, and
  ``memtui_search_query(text, op)``, which turns words into a prefix tsquery. SQLite: an FTS5 table per memory table holding the folded text
  (``memtui_search_text``: recall's fold, marks of other scripts recomposed), rowid = the memory's id. The
  fold is a Python function only memtui's connections have, and an agent's
  plain-SQL insert must not fail for lack of it, so the triggers only queue the
  changed ids (``search_queue``, plain SQL); memtui folds and indexes them
  before each search (``Store.sync_search``).
"""
from importlib import import_module

from peewee import PostgresqlDatabase

TIERS = {"pending": "pending_memory", "long_term": "long_term_memory"}
HISTORY_ACTIONS = ("merge", "supersede", "soft_delete", "forget", "restore", "hard_delete", "expire")
PROMOTION_COLUMNS = ("promotion_score", "promotion_recency", "promotion_frequency", "promotion_confidence",
                     "promotion_importance", "promotion_threshold")

HISTORY = """CREATE TABLE memory_history (
        id {pk_ai},
        memory_id {bigint} NOT NULL,
        tier TEXT NOT NULL CHECK (tier IN ('pending', 'long_term')),
        action TEXT NOT NULL CHECK (action IN ({actions})),
        other_id {bigint},
        old_text TEXT,
        new_text TEXT,
        reason TEXT NOT NULL DEFAULT '',
        run_id {bigint},
        at {real} NOT NULL,
        demo {bool} NOT NULL DEFAULT {false})"""


def _retire_at(row: str, horizon: str) -> str:
    """0004's retire_at, NULL also once the memory is superseded (merged or replaced)."""
    incremental = import_module("memtui.models.migrations.0004_incremental")
    return incremental.retire_at(row, horizon).replace(
        f"WHEN {row}.pinned OR", f"WHEN {row}.pinned OR {row}.superseded_by IS NOT NULL OR", 1)


def up(migrator, db):
    postgres = isinstance(db, PostgresqlDatabase)
    words = import_module("memtui.models.migrations.0001_initial").dialect(db)
    incremental = import_module("memtui.models.migrations.0004_incremental")
    for table in TIERS.values():
        db.execute_sql(f"ALTER TABLE {table} ADD COLUMN content_key TEXT")
        db.execute_sql(f"CREATE INDEX {table}_key ON {table} (sender, content_key)")
    backfill_keys(db)
    db.execute_sql("ALTER TABLE long_term_memory ADD COLUMN superseded_by {bigint}".format(**words))
    db.execute_sql("ALTER TABLE long_term_memory ADD COLUMN superseded_at {real}".format(**words))
    db.execute_sql("CREATE INDEX long_term_memory_superseded_by ON long_term_memory (superseded_by)")
    for column in PROMOTION_COLUMNS:
        db.execute_sql(f"ALTER TABLE long_term_memory ADD COLUMN {column} {words['real']}")
    db.execute_sql(HISTORY.format(actions=", ".join(f"'{a}'" for a in HISTORY_ACTIONS), **words))
    db.execute_sql("CREATE INDEX memory_history_memory ON memory_history (memory_id)")
    db.execute_sql("CREATE INDEX memory_history_other ON memory_history (other_id)")
    inputs = ", ".join((*incremental.RETENTION_INPUTS, "superseded_by"))
    if postgres:
        cast = "DOUBLE PRECISION"
        db.execute_sql(f"""CREATE OR REPLACE FUNCTION memtui_long_term_retire_at() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN NEW.retire_at := {_retire_at("NEW", incremental.horizon(cast))};
            RETURN NEW; END $$""")
        db.execute_sql("DROP TRIGGER long_term_memory_retire_at ON long_term_memory")
        db.execute_sql(f"""CREATE TRIGGER long_term_memory_retire_at BEFORE INSERT OR UPDATE OF {inputs}
            ON long_term_memory FOR EACH ROW EXECUTE FUNCTION memtui_long_term_retire_at()""")
        for table in TIERS.values():
            # Stored, not an expression index: a search that the planner runs from another index (the
            # sender's memories, say) tests each row's vector as it is, instead of folding its text again.
            db.execute_sql(f"ALTER TABLE {table} ADD COLUMN search tsvector "
                           f"GENERATED ALWAYS AS (to_tsvector('simple', memtui_fold(content))) STORED")
            db.execute_sql(f"CREATE INDEX {table}_search ON {table} USING gin (search)")
        # The words of q, folded and split by the same parser as the index, each a prefix, joined by op
        # ('&' every word, '|' any). NULL when q has no word (matches nothing).
        db.execute_sql("""CREATE FUNCTION memtui_search_query(q text, op text) RETURNS tsquery
            LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
            SELECT to_tsquery('simple', string_agg(quote_literal(word) || ':*', ' ' || op || ' '))
            FROM unnest(tsvector_to_array(to_tsvector('simple', memtui_fold(q)))) AS word
            $$""")
        return
    expression = _retire_at("NEW", incremental.horizon("REAL"))
    for name, what in (("insert", "INSERT"), ("update", f"UPDATE OF {inputs}")):
        db.execute_sql(f"DROP TRIGGER long_term_memory_retire_{name}")
        db.execute_sql(f"""CREATE TRIGGER long_term_memory_retire_{name} AFTER {what} ON long_term_memory
            WHEN NEW.retire_at IS NOT {expression}
            BEGIN UPDATE long_term_memory SET retire_at = {expression} WHERE id = NEW.id; END""")
    db.execute_sql("""CREATE TABLE search_queue (
        tier TEXT NOT NULL, memory_id INTEGER NOT NULL, PRIMARY KEY (tier, memory_id)) WITHOUT ROWID""")
    for tier, table in TIERS.items():
        # remove_diacritics 0: the text is folded already; the tokenizer only splits it. Marks (M*) are part
        # of a word: those fold keeps make another letter in their script (ไก่ is not ไก).
        db.execute_sql(f"CREATE VIRTUAL TABLE {table}_search USING fts5("
                       f"content, tokenize = \"unicode61 remove_diacritics 0 categories 'L* N* Co M*'\")")
        for name, event, row in (("insert", "INSERT", "NEW"), ("update", "UPDATE OF content", "NEW"),
                                 ("delete", "DELETE", "OLD")):
            db.execute_sql(f"""CREATE TRIGGER {table}_search_{name} AFTER {event} ON {table}
                BEGIN INSERT OR IGNORE INTO search_queue (tier, memory_id) VALUES ('{tier}', {row}.id); END""")
        # memtui's own connection has memtui_search_text (models/sqlite.py registers it before migrating).
        db.execute_sql(f"INSERT INTO {table}_search (rowid, content) "
                       f"SELECT id, memtui_search_text(content) FROM {table}")


def backfill_keys(db) -> None:
    """Every existing memory's content_key, computed by the same function memtui writes it with,
    a batch of ids at a time."""
    from memtui.models.text import content_key

    param = "%s" if isinstance(db, PostgresqlDatabase) else "?"
    for table in TIERS.values():
        after = 0
        while True:
            rows = db.execute_sql(f"SELECT id, content FROM {table} WHERE id > {param} ORDER BY id LIMIT 5000",
                                  (after,)).fetchall()
            if not rows:
                break
            db.cursor().executemany(f"UPDATE {table} SET content_key = {param} WHERE id = {param}",
                                    [(content_key(str(content)), id_) for id_, content in rows])
            after = rows[-1][0]
