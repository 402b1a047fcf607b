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
  recall matches alike on both backends and a plain-SQL client can use them.
"""
from tzlocal import get_localzone_name

ENGINE_INSTANCE = """CREATE TABLE engine_instance (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        version TEXT NOT NULL,
        started_at {real} NOT NULL,
        heartbeat_at {real} NOT NULL,
        stopped_at {real})"""

# NFKD, the accents of Latin/Greek/Cyrillic dropped (not U+0345, the iota subscript, which becomes ι),
# lower-cased (C.UTF-8 and ICU lower() are Unicode-aware), then what Python's casefold() does beyond
# lower() for the letters a person types (ß, final ς) and the letters with a stroke, as models/text.py.
PG_FOLD = r"""CREATE FUNCTION memtui_fold(t text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT translate(
        replace(replace(replace(replace(
            regexp_replace(normalize(lower(t), NFKD),
                '[\u0300-\u0344\u0346-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]',
                '', 'g'),
            'ß', 'ss'), 'æ', 'ae'), 'œ', 'oe'), 'þ', 'th'),
        'ςıøłđðħŧƀɨ' || chr(837), 'σiolddhtbiι')
    $$"""
PG_CONTAINS = r"""CREATE FUNCTION memtui_contains(t text, words text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(bool_and(strpos(memtui_fold(t), w) > 0), false)
    FROM unnest(string_to_array(words, chr(31))) AS w
    $$"""


def up(migrator, db):
    postgres = "postgres" in type(db).__name__.lower()
    db.execute_sql(ENGINE_INSTANCE.format(real="DOUBLE PRECISION" if postgres else "REAL"))
    db.execute_sql("CREATE INDEX engine_instance_heartbeat ON engine_instance (heartbeat_at)")
    db.execute_sql("UPDATE job_definition SET timezone = %s WHERE timezone IS NULL OR timezone = ''"
                   % _quote(get_localzone_name() or "UTC"))
    if postgres:
        db.execute_sql(PG_FOLD)
        db.execute_sql(PG_CONTAINS)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
