"""0.2: engines register themselves, every job has a concrete time zone, search folds in SQL on PostgreSQL.

- ``engine_instance``: one row per engine process (its lease owner string as id,
  host, pid, version, start, heartbeat). Several engines may share one database;
  a dead one is known by its stale heartbeat, never by a PID (a PID means
  nothing on another host).
- ``job_definition.timezone`` NULL meant "local to whichever process reads it":
  engines in different zones would each compute another cursor and "repair" each
  other's. NULLs become the zone of the process that migrates (its IANA name).
- On PostgreSQL, ``memtui_fold(text)`` and ``memtui_contains(text, words)``: the
  same folding as models/text.py (which SQLite calls as a Python function), so
  recall matches alike on both backends and a plain-SQL client can use them;
  lower-cased under a Unicode-aware collation even in a database created with LC_CTYPE C.
"""
from peewee import DatabaseError, PostgresqlDatabase
from tzlocal import get_localzone_name

ENGINE_INSTANCE = """CREATE TABLE engine_instance (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        version TEXT NOT NULL,
        started_at {real} NOT NULL,
        heartbeat_at {real} NOT NULL,
        stopped_at {real})"""

# NFKD first, as models/text.py (compatibility forms come apart into letters that may be capitals:
# "ℂ" -> "C", "ϒ" -> "Υ"), lower-cased (under a Unicode-aware collation: see _unicode_collation), the
# accents of Latin/Greek/Cyrillic dropped (not U+0345, the iota subscript, which becomes ι), then what
# Python's casefold() does beyond lower() for the letters a person types (ß, final ς) and the letters
# with a stroke, as models/text.py.
PG_FOLD = r"""CREATE FUNCTION memtui_fold(t text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT translate(
        replace(replace(replace(replace(
            regexp_replace(lower(normalize(t, NFKD)),
                '[\u0300-\u0344\u0346-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]',
                '', 'g'),
            'ß', 'ss'), 'æ', 'ae'), 'œ', 'oe'), 'þ', 'th'),
        'ςıøłđðħŧƀɨ' || chr(837), 'σiolddhtbiι')
    $$"""
# As models/text.py contains_all: false for NULL text, else every word (none: vacuously) inside the
# folded text. The text is folded once per call, not once per word.
PG_CONTAINS = r"""CREATE FUNCTION memtui_contains(t text, words text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT folded IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM unnest(string_to_array(words, chr(31))) AS w WHERE strpos(folded, w) = 0)
    FROM memtui_fold(t) AS folded
    $$"""
# lower() knows only as many capitals as the collation it runs under: in a database created with
# LC_CTYPE C it lower-cases ASCII only ("É" stays "É", so "Émile" would not find "émile").
UNICODE_COLLATIONS = ("und-x-icu", "C.utf8", "C.UTF-8", "en_US.utf8")  # ICU's root, glibc's
LOWER_PROBE = ("ÉΣЁ", "éσё")


def up(migrator, db):
    postgres = isinstance(db, PostgresqlDatabase)
    db.execute_sql(ENGINE_INSTANCE.format(real="DOUBLE PRECISION" if postgres else "REAL"))
    db.execute_sql("CREATE INDEX engine_instance_heartbeat ON engine_instance (heartbeat_at)")
    db.execute_sql("UPDATE job_definition SET timezone = %s WHERE timezone IS NULL OR timezone = ''"
                   % _quote(get_localzone_name() or "UTC"))
    if postgres:
        collation = _unicode_collation(db)
        db.execute_sql(PG_FOLD if collation is None else
                       PG_FOLD.replace("lower(normalize(t, NFKD))",
                                       f'lower(normalize(t, NFKD) COLLATE "{collation}")'))
        db.execute_sql(PG_CONTAINS)


def _unicode_collation(db) -> str | None:
    """A collation whose lower() knows every script's capitals: None when the database's own does
    (C.UTF-8, en_US.UTF-8, ICU), else an installed ICU or glibc one."""
    if db.execute_sql("SELECT lower(%s) = %s", LOWER_PROBE).fetchone()[0]:
        return None
    installed = {row[0] for row in db.execute_sql(
        "SELECT collname FROM pg_collation WHERE collname = ANY(%s)"
        " AND collencoding IN (-1, pg_char_to_encoding(getdatabaseencoding()))", (list(UNICODE_COLLATIONS),))}
    for name in UNICODE_COLLATIONS:  # only installed ones: a missing collation would abort the transaction
        if name in installed and db.execute_sql(f'SELECT lower(%s COLLATE "{name}") = %s',
                                                LOWER_PROBE).fetchone()[0]:
            return name
    raise DatabaseError("lower() in this database knows ASCII letters only (LC_CTYPE C) and no Unicode "
                        "collation (ICU or C.UTF-8) is installed; create it with LC_CTYPE 'C.UTF-8' "
                        "(left untouched)")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
