"""A store's tables as its database's own catalog describes them, in one shape for SQLite and PostgreSQL.

tests/test_backends.py compares the two backends' migrated schemas with it, and
tests/test_store.py compares each against the models. Types stay as the backend
spells them (upper case); defaults are normalized (``''::text`` -> '', ``false``
-> 0.0, ``5`` -> 5.0), so that equal intent compares equal.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# playhouse.migrations' own bookkeeping, created by peewee's model DDL on each backend: not memtui's schema.
MIGRATION_TABLE = "schema_migration"
# Full-text search is each backend's own (migration 0005): FTS5 tables, their shadow tables and the queue of
# ids to index on SQLite, a generated tsvector column and its GIN index on PostgreSQL. Left out here; tests/test_search.py shows
# that both find the same rows.
SEARCH_COLUMN = "search"  # PostgreSQL's generated tsvector on each memory table
SEARCH = re.compile(r"^(pending_memory|long_term_memory)_search(_\w+)?$|^search_queue$")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as the backend spells it: INTEGER, REAL, TEXT; BIGINT, DOUBLE PRECISION, BOOLEAN
    notnull: bool  # a primary key's columns count as NOT NULL (PostgreSQL makes them so)
    default: object  # normalized_default() of the declared default; None when there is none
    identity: bool  # the database hands out its values (SQLite INTEGER PRIMARY KEY, PostgreSQL identity)


@dataclass
class Table:
    columns: list[Column] = field(default_factory=list)
    primary_key: tuple[str, ...] = ()
    uniques: set[tuple[str, ...]] = field(default_factory=set)  # UNIQUE constraints, not the primary key
    indexes: dict[str, tuple[tuple[str, ...], bool]] = field(default_factory=dict)  # CREATE INDEX: columns, unique
    checks: int = 0  # CHECK constraints
    foreign_keys: set[tuple[tuple[str, ...], str, tuple[str, ...], str]] = field(default_factory=set)
    # ^ (columns, referenced table, referenced columns, ON DELETE action)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def normalized_default(text: str | None):
    """A declared default as a value: '' and 'note' as str, 0/false as 0.0, 1/true as 1.0, 0.5 as 0.5."""
    if text is None:
        return None
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    text = re.sub(r"::[a-z ]+$", "", text)  # PostgreSQL's cast: ''::text, 5::double precision
    if text.lower() in ("false", "true"):
        return float(text.lower() == "true")
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    try:
        return float(text)
    except ValueError:
        return text  # an expression: compared as written


def tables(store) -> dict[str, Table]:
    """Every table of ``store`` but the migration runner's, by name."""
    read = {"sqlite": _sqlite_tables, "postgresql": _postgres_tables}[store.kind]
    tables = {name: table for name, table in read(store).items() if name != MIGRATION_TABLE and not SEARCH.match(name)}
    for table in tables.values():
        table.indexes = {name: index for name, index in table.indexes.items() if not SEARCH.match(name)}
        table.columns = [column for column in table.columns if column.name != SEARCH_COLUMN]
    return tables


def _sqlite_tables(store) -> dict[str, Table]:
    result = {}
    for name, sql in store.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                                   " AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall():
        table = Table()
        info = store.execute(f'PRAGMA table_info("{name}")').fetchall()
        pk = [row[1] for row in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        for _cid, column, type_, notnull, default, in_pk in info:
            table.columns.append(Column(
                name=column, type=type_.upper(), notnull=bool(notnull or in_pk),
                default=normalized_default(default),
                identity=pk == [column] and type_.upper() == "INTEGER"))  # an alias of the rowid
        table.primary_key = tuple(pk)
        for _seq, index, unique, origin, _partial in store.execute(f'PRAGMA index_list("{name}")').fetchall():
            columns = tuple(r[2] for r in store.execute(f'PRAGMA index_info("{index}")').fetchall())
            if origin == "u":
                table.uniques.add(columns)
            elif origin == "c":
                table.indexes[index] = (columns, bool(unique))
        table.checks = len(re.findall(r"\bCHECK\s*\(", sql, flags=re.I))
        keys: dict[int, list] = {}
        for key_id, _seq, target, column, ref_column, _on_update, on_delete, _match in store.execute(
                f'PRAGMA foreign_key_list("{name}")').fetchall():
            keys.setdefault(key_id, []).append((column, target, ref_column, on_delete.upper()))
        for parts in keys.values():
            table.foreign_keys.add((tuple(p[0] for p in parts), parts[0][1], tuple(p[2] for p in parts),
                                    parts[0][3]))
        result[name] = table
    return result


ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def _postgres_tables(store) -> dict[str, Table]:
    result = {}
    names = [r[0] for r in store.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' ORDER BY table_name").fetchall()]
    for name in names:
        table = Table()
        for column, type_, nullable, default, identity in store.execute(
                "SELECT column_name, data_type, is_nullable, column_default, is_identity"
                " FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?"
                " ORDER BY ordinal_position", (name,)).fetchall():
            table.columns.append(Column(name=column, type=type_.upper(), notnull=nullable == "NO",
                                        default=normalized_default(default), identity=identity == "YES"))
        constraints = store.execute(
            "SELECT c.contype,"
            " array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
            "       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),"
            " c.confrelid::regclass::text,"
            " array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)"
            "       JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),"
            " c.confdeltype"
            " FROM pg_constraint c WHERE c.conrelid = ?::regclass", (name,)).fetchall()
        for kind, columns, target, ref_columns, on_delete in constraints:
            if kind == "p":
                table.primary_key = tuple(columns)
            elif kind == "u":
                table.uniques.add(tuple(columns))
            elif kind == "c":
                table.checks += 1
            elif kind == "f":
                table.foreign_keys.add((tuple(columns), target, tuple(ref_columns), ON_DELETE[on_delete]))
        for index, columns, unique in store.execute(
                "SELECT ic.relname,"
                " array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)"
                "       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),"
                " i.indisunique"
                " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
                " WHERE i.indrelid = ?::regclass"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = i.indrelid"
                "                 AND c.conindid = i.indexrelid)",  # those back a PRIMARY KEY or UNIQUE
                (name,)).fetchall():
            table.indexes[index] = (tuple(columns), unique)
        result[name] = table
    return result
