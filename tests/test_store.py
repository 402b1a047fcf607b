"""Opening the store: file mode, pragmas, migrations, refusing foreign or newer files, schema vs models."""
from __future__ import annotations

import os
import stat

import pytest

from memtui.models import Store, StoreError, schema
from memtui.models.db import MIGRATIONS_DIR


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def files_in(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def known_migrations() -> list[str]:
    return sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9]*.py"))


def test_new_file_is_owner_only_with_its_wal_and_shm(tmp_path):
    path = tmp_path / "memtui.db"
    old_umask = os.umask(0o022)  # a typical permissive umask must not widen the mode
    try:
        store = Store.open(path)
        try:
            with store.atomic():
                store.set_setting("k", "v")  # make sure -wal and -shm exist
            assert mode(path) == 0o600
            assert mode(f"{path}-wal") == 0o600
            assert mode(f"{path}-shm") == 0o600
        finally:
            store.close()
    finally:
        os.umask(old_umask)


def test_missing_parent_directories_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "c" / "memtui.db"
    store = Store.open(path)
    try:
        assert path.is_file()
        assert store.path == path
        assert stat.S_IMODE(os.stat(tmp_path / "a" / "b" / "c").st_mode) & 0o077 == 0
    finally:
        store.close()


def test_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    store = Store.open("~/data/memtui.db")
    try:
        assert (tmp_path / "home" / "data" / "memtui.db").is_file()
    finally:
        store.close()


def test_every_connection_gets_the_pragmas(store):
    assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_foreign_keys_are_enforced(store):
    with pytest.raises(Exception) as err:
        with store.atomic():
            store.execute("INSERT INTO job_state (name) VALUES ('no-such-definition')")
    assert "FOREIGN KEY" in str(err.value).upper()


def test_write_transactions_begin_immediate(store):
    assert store.db._lock_type == "IMMEDIATE"
    # A second connection cannot start writing while the first holds the write lock.
    import sqlite3

    with store.atomic():
        store.set_setting("holder", "1")
        other = sqlite3.connect(store.path, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


def test_migration_applied_once_and_reopening_is_idempotent(db_path):
    store = Store.open(db_path)
    try:
        applied = [r[0] for r in store.execute("SELECT name FROM schema_migration ORDER BY id")]
        assert applied == known_migrations()
        assert applied[0] == "0001_initial"
        tables = {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"job_definition", "job_state", "run", "audit_log", "setting", "pending_memory"} <= tables
        with store.atomic():
            store.set_setting("marker", "kept")
    finally:
        store.close()

    for _ in range(2):
        store = Store.open(db_path)
        try:
            rows = store.execute("SELECT name FROM schema_migration ORDER BY id").fetchall()
            assert [r[0] for r in rows] == known_migrations()  # not applied again
            assert store.setting("marker") == "kept"
        finally:
            store.close()


def test_two_stores_on_one_file_see_each_other(db_path):
    a = Store.open(db_path)
    b = Store.open(db_path)
    try:
        with a.atomic():
            a.set_setting("x", "1")
        assert b.setting("x") == "1"
        assert b.setting("missing", "default") == "default"
    finally:
        a.close()
        b.close()


def test_open_without_migrate_creates_no_tables(db_path):
    store = Store.open(db_path, migrate=False)
    try:
        assert store.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    finally:
        store.close()


@pytest.mark.parametrize("content", [
    b"hello, this is a plain text file and certainly not a database\n" * 20,
    b"PK\x03\x04" + b"\x00" * 200,  # a zip file
    b"SQLite format 2\x00" + b"\x00" * 200,  # close, but not it
])
def test_non_sqlite_file_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    os.chmod(path, 0o644)
    before = files_in(tmp_path)
    with pytest.raises(StoreError) as err:
        Store.open(path)
    message = str(err.value)
    assert message == f"{path}: not a SQLite database (left untouched)"
    assert files_in(tmp_path) == before  # same bytes, no -wal/-shm/-journal appeared
    assert mode(path) == 0o644


def test_corrupt_sqlite_file_is_refused_with_one_line(tmp_path):
    path = tmp_path / "broken.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    before = path.read_bytes()
    with pytest.raises(StoreError) as err:
        Store.open(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "\n" not in str(err.value)
    assert path.read_bytes() == before


def test_newer_schema_is_refused_and_left_untouched(db_path):
    store = Store.open(db_path)
    with store.atomic():
        store.execute("INSERT INTO schema_migration (name, applied) VALUES ('9999_from_the_future', '2030-01-01')")
        store.set_setting("marker", "kept")
    store.close()
    before = files_in(db_path.parent)
    assert list(before) == [db_path.name]  # closed cleanly: the WAL was checkpointed away

    with pytest.raises(StoreError) as err:
        Store.open(db_path)
    message = str(err.value)
    assert "newer" in message
    assert "9999_from_the_future" in message
    assert "left untouched" in message
    assert "\n" not in message
    assert files_in(db_path.parent) == before


def test_newer_schema_check_does_not_depend_on_pending_known_migrations(db_path):
    # Even a file that also lacks one of our own migrations is refused, not half-migrated.
    store = Store.open(db_path)
    with store.atomic():
        store.execute("DELETE FROM schema_migration")
        store.execute("INSERT INTO schema_migration (name, applied) VALUES ('9999_from_the_future', '2030-01-01')")
    store.close()
    before = files_in(db_path.parent)
    with pytest.raises(StoreError):
        Store.open(db_path)
    assert files_in(db_path.parent) == before


def test_directory_path_is_refused(tmp_path):
    target = tmp_path / "somedir"
    target.mkdir()
    with pytest.raises(StoreError) as err:
        Store.open(target)
    assert str(err.value) == f"{target}: is a directory, not a database file"
    assert list(target.iterdir()) == []


def test_path_under_a_regular_file_is_refused(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(StoreError) as err:
        Store.open(blocker / "memtui.db")
    assert str(err.value).startswith(f"{blocker / 'memtui.db'}: ")
    assert blocker.read_text() == "x"


def _sql_type(store, field) -> str:
    ctx = store.db.get_sql_context()
    return ctx.sql(field.ddl_datatype(ctx)).query()[0].upper()


def test_models_match_the_migrated_tables(store):
    tables = {r[0] for r in store.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    modelled = {m._meta.table_name for m in schema.ALL_MODELS}
    assert tables - {"schema_migration"} == modelled

    mismatches = []
    for model in schema.ALL_MODELS:
        bound = getattr(store.m, model.__name__)
        table = bound._meta.table_name
        assert table == model._meta.table_name
        ddl = {r[1]: {"type": r[2].upper(), "notnull": bool(r[3]), "pk": bool(r[5])}
               for r in store.execute(f"PRAGMA table_info({table})")}
        fields = {f.column_name: f for f in bound._meta.sorted_fields}
        if set(ddl) != set(fields):
            mismatches.append((table, "columns", sorted(set(ddl) ^ set(fields))))
            continue
        for column, f in fields.items():
            col = ddl[column]
            if _sql_type(store, f) != col["type"]:
                mismatches.append((table, column, "type", _sql_type(store, f), col["type"]))
            if bool(f.primary_key) != col["pk"]:
                mismatches.append((table, column, "primary key"))
            if not f.primary_key and (not f.null) != col["notnull"]:
                mismatches.append((table, column, "null", f.null, col["notnull"]))
    assert mismatches == []


def test_bound_models_query_the_store_they_belong_to(tmp_path):
    a = Store.open(tmp_path / "a.db")
    b = Store.open(tmp_path / "b.db")
    try:
        with a.atomic():
            a.m.Setting.create(key="where", value="a")
        assert a.m.Setting.get(a.m.Setting.key == "where").value == "a"
        assert b.m.Setting.select().count() == 0
    finally:
        a.close()
        b.close()


def test_a_0_1_database_migrates_to_0_2_without_loss(tmp_path):
    """A store written by memtui 0.1 (only 0001 applied) opens, migrates, and keeps every row and value."""
    from peewee import SqliteDatabase
    from playhouse.migrations import Runner

    from memtui.models.db import MIGRATIONS_DIR

    path = tmp_path / "old.db"
    old = SqliteDatabase(str(path))
    Runner(old, directory=str(MIGRATIONS_DIR)).up(target="0001_initial")
    old.execute_sql("INSERT INTO pending_memory (content, created_at) VALUES ('Émile likes trains', 1)")
    old.execute_sql("INSERT INTO run (job, reason, started_at, finished_at, duration_ms, status, owner)"
                    " VALUES ('promote', 'manual', 10, 10.037, 37, 'success', 'h:1:x')")
    old.execute_sql("INSERT INTO job_definition (name, kind, schedule, created_at, updated_at)"
                    " VALUES ('promote', 'promote', '30s', 0, 0)")
    old.execute_sql("INSERT INTO job_state (name, last_duration_ms, runs) VALUES ('promote', 37, 1)")
    old.execute_sql("INSERT INTO summary (level, period_start, sender, text, source_count, model, created_at)"
                    " VALUES ('day', 0, 'alice', 'a day', 3, 'extractive', 5)")
    old.close()

    store = Store.open(path)
    try:
        applied = [r[0] for r in store.execute("SELECT name FROM schema_migration ORDER BY id")]
        assert applied == sorted(p.stem for p in MIGRATIONS_DIR.glob("0*.py"))
        assert store.execute("SELECT content, demo FROM pending_memory").fetchall() == [("Émile likes trains", 0)]
        assert store.execute("SELECT job, duration_ms, status FROM run").fetchall() == [("promote", 37.0, "success")]
        assert store.execute("SELECT runs, last_duration_ms FROM job_state").fetchall() == [(1, 37.0)]
        assert store.execute("SELECT text, period_end, demo FROM summary").fetchall() == [("a day", None, 0)]
        indexes = {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                               " AND tbl_name = 'run' AND sql IS NOT NULL")}
        assert indexes == {"run_job_id", "run_status", "run_started"}, "the rebuilt run table keeps its indexes"
        with pytest.raises(Exception, match="CHECK"):
            store.execute("INSERT INTO run (job, reason, started_at, status) VALUES ('x', 'bogus', 0, 'success')")
        # ids never come back once deleted (an engine reads "rows after the last id I saw")
        store.execute("DELETE FROM run")
        new_id = store.execute("INSERT INTO run (job, reason, started_at, status) VALUES"
                               " ('promote', 'manual', 0, 'success')").lastrowid
        assert new_id == 2
        assert store.execute("PRAGMA foreign_key_check").fetchall() == []
        assert store.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        store.close()
