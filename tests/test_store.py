"""Opening the store, on SQLite and on PostgreSQL: paths and URLs, messages that never show a password,
the file's mode and pragmas (SQLite), migrations applied once (also by processes starting together) and
refused when newer, the models against the migrated tables, a 0.1 database migrating without loss, and
maintenance and the write probe against a real server.

Tests that take ``store`` or ``db_target`` run once per backend (``both_backends``); those about SQLite
files and pragmas take ``db_path`` or are marked ``sqlite_only``; those about PostgreSQL itself take
``pg_url`` (a fresh, empty database; tests/postgres.py says when they skip).
"""
from __future__ import annotations

import os
import sqlite3
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from memtui.models import Store, StoreError, schema
from memtui.models.db import DB_ERRORS, MIGRATIONS_DIR
from memtui.models.postgres import MIGRATION_LOCK
from tests import catalog, postgres
from tests.targets import with_password

pytestmark = pytest.mark.both_backends

PASSWORD = "s3cret%40x"  # percent-encoded in the URL: the driver gets "s3cret@x"; neither may be shown


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def files_in(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def known_migrations() -> list[str]:
    return sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9]*.py"))


def applied(store) -> list[str]:
    return [r[0] for r in store.execute("SELECT name FROM schema_migration ORDER BY id")]


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def pg_tables(url: str) -> list[str]:
    """The tables in a PostgreSQL database, read behind memtui's back (opening it could create some)."""
    with postgres.connect(database_name(url)) as conn:
        return [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables"
                                           " WHERE table_schema = 'public' ORDER BY 1")]


def assert_hidden(message: str) -> None:
    assert PASSWORD not in message and "s3cret" not in message, message
    assert "\n" not in message


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


@pytest.mark.sqlite_only
def test_every_connection_gets_the_pragmas(store):
    assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    assert store.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000  # the engine checkpoints
    assert store.execute("PRAGMA cache_size").fetchone()[0] == -16_384  # 16 MiB, models/sqlite.py says why
    seen = []

    def in_another_thread():  # a connection of its own (Peewee's are per thread), with the same settings
        seen.append(store.execute("PRAGMA cache_size").fetchone()[0])
        store.close()

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    thread.join()
    assert seen == [-16_384]


def wal_backlog(path) -> int:
    """Frames in the WAL not yet copied back into the database: mxFrame (byte 16 of the -shm file's
    wal-index header) less nBackfill (byte 96, the checkpoint info after the header's two copies),
    in the machine's byte order (sqlite.org/walformat.html)."""
    data = Path(f"{path}-shm").read_bytes()[:100]
    return int.from_bytes(data[16:20], sys.byteorder) - int.from_bytes(data[96:100], sys.byteorder)


@pytest.mark.sqlite_only
def test_a_jobs_commits_leave_the_wal_to_the_engines_sync_loop_which_copies_it_back(store, db_path, clock):
    """A commit past SQLite's default 1,000 pages no longer copies the WAL back inside it (the job or
    key press that made it would pay for every writer's pages); a started engine's sync does, PASSIVE."""
    from memtui.engine import Config, Engine

    Run = store.m.Run
    with store.atomic():  # ~1,500 pages of run rows, in one commit
        Run.insert_many([{"job": "promote", "reason": "scheduled", "started_at": float(i), "status": "success",
                          "result": "x" * 4000} for i in range(1500)]).execute()
    assert wal_backlog(db_path) > 1000
    engine = Engine(store, Config(), clock)
    engine.sync()  # not started (a CLI's engine): leaves it
    assert wal_backlog(db_path) > 1000
    engine.start()  # its first sync, in start(): the sync loop's next is a poll interval away
    try:
        assert wal_backlog(db_path) == 0
    finally:
        engine.stop(timeout=5)


def test_foreign_keys_are_enforced(store):
    with pytest.raises(Exception) as err:
        with store.atomic():
            store.execute("INSERT INTO job_state (name) VALUES ('no-such-definition')")
    assert "FOREIGN KEY" in str(err.value).upper()


@pytest.mark.sqlite_only
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


def test_migration_applied_once_and_reopening_is_idempotent(db_target):
    store = Store.open(db_target)
    try:
        assert applied(store) == known_migrations()
        assert applied(store)[0] == "0001_initial"
        assert {"job_definition", "job_state", "run", "audit_log", "setting", "pending_memory",
                "engine_instance"} <= set(catalog.tables(store))
        with store.atomic():
            store.set_setting("marker", "kept")
    finally:
        store.close()

    for _ in range(2):
        store = Store.open(db_target)
        try:
            assert applied(store) == known_migrations()  # not applied again
            assert store.setting("marker") == "kept"
        finally:
            store.close()


def test_two_stores_on_one_database_see_each_other(db_target):
    a = Store.open(db_target)
    b = Store.open(db_target)
    try:
        with a.atomic():
            a.set_setting("x", "1")
        assert b.setting("x") == "1"
        assert b.setting("missing", "default") == "default"
    finally:
        a.close()
        b.close()


def test_open_without_migrate_creates_no_tables(db_target):
    store = Store.open(db_target, migrate=False)
    try:
        assert catalog.tables(store) == {}
        assert not store.db.table_exists("schema_migration")
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
    """The column type ``field`` declares on ``store``'s backend, as that backend's catalog spells it."""
    ctx = store.db.get_sql_context()
    declared = ctx.sql(field.ddl_datatype(ctx)).query()[0].upper()
    return {"BIGSERIAL": "BIGINT", "SERIAL": "INTEGER"}.get(declared, declared)  # PostgreSQL: an identity


def _model_default(field):
    if field.default is None or callable(field.default):
        return None
    if isinstance(field.default, (bool, int, float)):
        return float(field.default)
    return field.default


def test_models_match_the_migrated_tables(store):
    tables = catalog.tables(store)
    assert set(tables) == {m._meta.table_name for m in schema.ALL_MODELS}

    mismatches = []
    for model in schema.ALL_MODELS:
        bound = getattr(store.m, model.__name__)
        name = bound._meta.table_name
        assert name == model._meta.table_name
        table = tables[name]
        fields = {f.column_name: f for f in bound._meta.sorted_fields}
        if {c.name for c in table.columns} != set(fields):
            mismatches.append((name, "columns", sorted({c.name for c in table.columns} ^ set(fields))))
            continue
        for column in table.columns:
            f = fields[column.name]
            checks = (
                ("type", _sql_type(store, f), column.type),
                ("primary key", bool(f.primary_key), column.name in table.primary_key),
                ("identity", f.field_type == "AUTO" or f.field_type == "BIGAUTO", column.identity),
                ("not null", not f.null or bool(f.primary_key), column.notnull),
                ("default", _model_default(f), column.default),  # an agent's plain INSERT gets what Peewee's does
                ("unique", bool(f.unique), (column.name,) in table.uniques),
            )
            mismatches += [(name, column.name, what, model_says, db_says)
                           for what, model_says, db_says in checks if model_says != db_says]
    assert mismatches == []


def test_bound_models_query_the_store_they_belong_to(tmp_path):
    a = Store.open(tmp_path / "a.db")
    b = Store.open(tmp_path / "b.db")
    try:
        with a.atomic():
            a.m.Setting.create(key="where", value="a")
        assert a.m.Setting.get(a.m.Setting.key == "where").value == "a"
        assert b.m.Setting.get_or_none(b.m.Setting.key == "where") is None
    finally:
        a.close()
        b.close()


MIGRATE_IN_ANOTHER_PROCESS = "import sys; from memtui.models import Store; Store.open(sys.argv[1]).close()"


def test_a_0_1_database_migrates_without_loss(tmp_path):
    """A store written by memtui 0.1 (only 0001 applied) opens, migrates to the newest schema, and keeps
    every row and value; a job whose time zone was NULL ("local to whoever reads it") gets the zone of
    the process that migrated it."""
    from peewee import SqliteDatabase
    from playhouse.migrations import Runner

    path = tmp_path / "old.db"
    old = SqliteDatabase(str(path))
    Runner(old, directory=str(MIGRATIONS_DIR)).up(target="0001_initial")
    old.execute_sql("INSERT INTO pending_memory (content, created_at) VALUES ('Émile likes trains', 1)")
    old.execute_sql("INSERT INTO run (job, reason, started_at, finished_at, duration_ms, status, owner)"
                    " VALUES ('promote', 'manual', 10, 10.037, 37, 'success', 'h:1:x')")
    old.execute_sql("INSERT INTO job_definition (name, kind, schedule, created_at, updated_at)"
                    " VALUES ('promote', 'promote', '30s', 0, 0)")
    old.execute_sql("INSERT INTO job_definition (name, kind, schedule, timezone, created_at, updated_at)"
                    " VALUES ('rollup-day', 'rollup-day', '0 1 * * *', 'Europe/Berlin', 0, 0),"
                    " ('decay', 'decay', '1h', '', 0, 0)")
    old.execute_sql("INSERT INTO job_state (name, last_duration_ms, runs) VALUES ('promote', 37, 1)")
    old.execute_sql("INSERT INTO summary (level, period_start, sender, text, source_count, model, created_at)"
                    " VALUES ('day', 0, 'alice', 'a day', 3, 'extractive', 5)")
    old.close()

    # Migrated by a process in a zone of its own (and without DST), as `memtui` started under TZ would.
    migrate = subprocess.run([sys.executable, "-c", MIGRATE_IN_ANOTHER_PROCESS, str(path)], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "TZ": "Asia/Kolkata"})
    assert migrate.returncode == 0, migrate.stderr
    store = Store.open(path)
    try:
        assert applied(store) == known_migrations()
        assert known_migrations()[-1] == "0009_lighter_soft_delete"
        zones = dict(store.execute("SELECT name, timezone FROM job_definition").fetchall())
        assert zones == {"promote": "Asia/Kolkata", "decay": "Asia/Kolkata", "rollup-day": "Europe/Berlin"}
        assert "engine_instance" in catalog.tables(store)
        assert store.m.EngineInstance.select().count() == 0
        Definition = store.m.JobDefinition
        assert [(d.name, d.enabled, d.config) for d in Definition.select().order_by(Definition.name)] == [
            ("decay", True, "{}"), ("promote", True, "{}"), ("rollup-day", True, "{}")]
        assert store.execute("SELECT memtui_fold(content) FROM pending_memory").fetchone() == ("emile likes trains",)
        assert store.execute("SELECT content, demo FROM pending_memory").fetchall() == [("Émile likes trains", 0)]
        # 0005: the repeat key of every memory, and the search index over the folded text
        assert store.execute("SELECT content_key FROM pending_memory").fetchall() == [("émile likes trains",)]
        assert store.execute("SELECT rowid FROM pending_memory_search WHERE pending_memory_search MATCH 'emile'"
                             ).fetchall() == [(1,)]
        assert store.execute("SELECT job, duration_ms, status FROM run").fetchall() == [("promote", 37.0, "success")]
        assert store.execute("SELECT runs, last_duration_ms FROM job_state").fetchall() == [(1, 37.0)]
        assert store.execute("SELECT text, period_end, demo FROM summary").fetchall() == [("a day", None, 0)]
        indexes = {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                               " AND tbl_name = 'run' AND sql IS NOT NULL")}
        assert indexes == {"run_job_id", "run_status", "run_started"}, "the rebuilt run table keeps its indexes"
        with pytest.raises(Exception, match="CHECK"):
            store.execute("INSERT INTO run (job, reason, started_at, status) VALUES ('x', 'bogus', 0, 'success')")
        with pytest.raises(Exception, match="CHECK"):  # 0006 widened the status CHECK, and kept it
            store.execute("INSERT INTO run (job, reason, started_at, status) VALUES ('x', 'manual', 0, 'bogus')")
        store.execute("INSERT INTO run (job, reason, started_at, status) VALUES ('x', 'manual', 0, 'cancelled')")
        store.execute("DELETE FROM run WHERE job = 'x'")
        # ids never come back once deleted (an engine reads "rows after the last id I saw")
        store.execute("DELETE FROM run")
        new_id = store.execute("INSERT INTO run (job, reason, started_at, status) VALUES"
                               " ('promote', 'manual', 0, 'success')").lastrowid
        assert new_id == 3  # 1 migrated, 2 the cancelled row just deleted
        assert store.execute("PRAGMA foreign_key_check").fetchall() == []
        assert store.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        fresh = Store.open(tmp_path / "fresh.db")
        try:  # an upgraded store and a new one have the same tables, checks and indexes
            assert catalog.tables(store) == catalog.tables(fresh)
        finally:
            fresh.close()
    finally:
        store.close()


def test_probe_write_leaves_no_row(store):
    store.probe_write()
    store.probe_write()
    assert store.m.Run.select().count() == 0


# -- URLs --------------------------------------------------------------------------------------------

def test_a_sqlite_url_opens_the_file_at_its_path(tmp_path, monkeypatch):
    absolute = tmp_path / "abs" / "memtui.db"
    store = Store.open(f"sqlite:///{absolute}")  # sqlite:/// + /tmp/…: four slashes for an absolute path
    try:
        assert store.kind == "sqlite" and store.path == absolute and absolute.is_file()
        assert store.label == str(absolute)
    finally:
        store.close()
    monkeypatch.chdir(tmp_path)
    store = Store.open("sqlite:///relative.db")
    try:
        assert store.path == tmp_path.joinpath("relative.db").relative_to(tmp_path)
        assert (tmp_path / "relative.db").is_file()
    finally:
        store.close()


def test_a_sqlite_url_without_three_slashes_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="three slashes"):
        Store.open("sqlite://memtui.db")
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_kind_of_url_is_refused():
    with pytest.raises(StoreError, match=r"^mysql://…: unknown kind of database"):
        Store.open(f"mysql://root:{PASSWORD}@127.0.0.1/memtui")


def test_a_postgresql_url_opens_a_store_on_the_server(pg_url):
    for url in (pg_url, pg_url.replace("postgresql://", "postgres://", 1)):
        store = Store.open(url)
        try:
            assert store.kind == "postgresql" and store.path is None
            assert store.label == url
            assert applied(store) == known_migrations()
        finally:
            store.close()


def test_the_label_hides_the_password(pg_url):
    # The test server trusts local logins, so the password is ignored and the store opens.
    store = Store.open(with_password(pg_url, PASSWORD))
    try:
        assert store.label == with_password(pg_url, "***")
    finally:
        store.close()
    in_query = f"{pg_url}?password={PASSWORD}&sslmode=disable&application_name=memtui-test"
    store = Store.open(in_query)  # libpq's parameters reach the driver
    try:
        assert store.label == f"{pg_url}?password=***&sslmode=disable&application_name=memtui-test"
        assert store.execute("SELECT current_setting('application_name')").fetchone() == ("memtui-test",)
    finally:
        store.close()


@pytest.fixture
def closed_port():
    """A local port that refuses connections: bound (so nothing else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_connection_failure_never_shows_the_password(closed_port):
    url = f"postgresql://memtui:{PASSWORD}@127.0.0.1:{closed_port}/memtui"
    with pytest.raises(StoreError) as err:
        Store.open(url)
    message = str(err.value)
    assert message.startswith(f"postgresql://memtui:***@127.0.0.1:{closed_port}/memtui: ")
    assert "refused" in message.lower()
    assert_hidden(message)


def test_a_missing_database_is_one_line_without_the_password():
    postgres.require_server()
    url = with_password(postgres.url_of(f"memtui_no_such_database_{os.getpid()}"), PASSWORD)
    with pytest.raises(StoreError) as err:
        Store.open(url)
    message = str(err.value)
    name = f"memtui_no_such_database_{os.getpid()}"
    assert message.startswith(with_password(postgres.url_of(name), "***"))
    assert "does not exist" in message
    assert_hidden(message)
    # and what to do: the command that makes it, for the same server and user (no password in it)
    command = message.rsplit("; create it first: ", 1)[1]
    assert command.startswith("createdb -h ") and command.endswith(f" {name}") and " -U " in command
    subprocess.run(command.split(), check=True, capture_output=True, timeout=60)
    try:
        Store.open(url).close()  # now it opens, and memtui makes its tables there
    finally:
        postgres.drop_database(name)


@pytest.mark.parametrize("url, why", [
    (f"postgresql://memtui:{PASSWORD}@127.0.0.1:5432", "no database name"),
    (f"postgresql://memtui:{PASSWORD}@127.0.0.1:5432/", "no database name"),
    (f"postgresql://memtui:{PASSWORD}@127.0.0.1:port/memtui", "the port is not a number"),
    (f"postgresql://memtui:{PASSWORD}@[::1/memtui", "not a valid URL"),
])
def test_a_malformed_postgresql_url_is_one_line_without_the_password(url, why):
    with pytest.raises(StoreError) as err:
        Store.open(url)
    assert why in str(err.value)
    assert_hidden(str(err.value))


BLOCK_PSYCOPG = "import sys; sys.modules['psycopg'] = None  # `import psycopg` now raises ImportError\n"


def test_without_psycopg_postgresql_is_a_one_line_error_naming_the_extra(tmp_path):
    url = f"postgresql://memtui:{PASSWORD}@127.0.0.1:5432/memtui"
    api = BLOCK_PSYCOPG + textwrap.dedent("""
        from memtui.models import Store, StoreError
        try:
            Store.open(sys.argv[1])
        except StoreError as exc:
            print(exc)
    """)
    cli = BLOCK_PSYCOPG + "import runpy; sys.argv[0] = 'memtui'; runpy.run_module('memtui', run_name='__main__')\n"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    from_api = subprocess.run([sys.executable, "-c", api, url], capture_output=True, text=True, timeout=60, env=env)
    from_cli = subprocess.run([sys.executable, "-c", cli, "jobs", "--db", url], capture_output=True, text=True,
                              timeout=60, env=env)
    expected = ("postgresql://memtui:***@127.0.0.1:5432/memtui: PostgreSQL needs the psycopg driver:"
                " pip install 'memtui[postgres]'")
    assert from_api.stdout == expected + "\n", from_api.stderr
    assert from_cli.returncode == 2
    assert from_cli.stdout == ""
    assert from_cli.stderr.count("\n") == 1 and expected in from_cli.stderr, from_cli.stderr
    assert_hidden(from_api.stdout.strip())
    assert_hidden(from_cli.stderr.strip())


# -- PostgreSQL: creating, migrating, refusing -------------------------------------------------------------

def test_create_false_refuses_a_database_without_memtui_tables_and_creates_nothing(pg_url):
    url = with_password(pg_url, PASSWORD)
    with pytest.raises(StoreError) as err:
        Store.open(url, create=False)
    assert str(err.value).startswith(f"no memtui database at {with_password(pg_url, '***')}")
    assert_hidden(str(err.value))
    assert pg_tables(pg_url) == []
    Store.open(pg_url).close()  # once memtui's tables are there, a reader opens it
    Store.open(url, create=False).close()


MIGRATE_AND_SAY = ("import sys; from memtui.models import Store; s = Store.open(sys.argv[1]);"
                   " print(','.join(r[0] for r in s.execute('SELECT name FROM schema_migration ORDER BY id')))")


def test_processes_opening_a_fresh_database_together_migrate_it_once(pg_url):
    # The test holds the migration lock while two processes open the database, so both are certainly
    # inside Store.open at once, queued on the lock, before either has created anything.
    with postgres.connect(database_name(pg_url)) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        children = [subprocess.Popen([sys.executable, "-c", MIGRATE_AND_SAY, pg_url], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            deadline = time.monotonic() + 60
            while holder.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                 " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                                 ).fetchone()[0] < 2:
                assert all(child.poll() is None for child in children), [c.communicate() for c in children]
                assert time.monotonic() < deadline, "the two processes never both waited for the migration lock"
                time.sleep(0.05)
            assert pg_tables(pg_url) == []
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
            outputs = [child.communicate(timeout=60) for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.communicate()
    assert [child.returncode for child in children] == [0, 0], outputs
    assert [out for out, _ in outputs] == [",".join(known_migrations()) + "\n"] * 2
    with postgres.connect(database_name(pg_url)) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT name) FROM schema_migration").fetchone() == (
            len(known_migrations()), len(known_migrations()))


def _pg_snapshot(url: str):
    with postgres.connect(database_name(url)) as conn:
        return (pg_tables(url), conn.execute("SELECT name FROM schema_migration ORDER BY name").fetchall(),
                conn.execute("SELECT key, value FROM setting ORDER BY key").fetchall(),
                conn.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'memtui%' ORDER BY 1").fetchall())


def test_a_newer_schema_on_postgresql_is_refused_and_left_untouched(pg_url):
    store = Store.open(pg_url)
    with store.atomic():
        store.execute("INSERT INTO schema_migration (name, applied) VALUES ('9999_from_the_future', '2030-01-01')")
        # One of our own migrations pending too: it must not be applied before the refusal.
        store.execute("DELETE FROM schema_migration WHERE name = '0003_engines_zones_search'")
        store.execute("DROP TABLE engine_instance")
        store.set_setting("marker", "kept")
    store.close()
    before = _pg_snapshot(pg_url)

    with pytest.raises(StoreError) as err:
        Store.open(with_password(pg_url, PASSWORD))
    message = str(err.value)
    assert message.startswith(with_password(pg_url, "***"))
    assert "newer" in message and "9999_from_the_future" in message and "left untouched" in message
    assert_hidden(message)
    assert _pg_snapshot(pg_url) == before


# -- PostgreSQL: maintenance and the write probe against the server ---------------------------------------

def _row_estimates(store) -> dict[str, float]:
    """pg_class.reltuples per memtui table: -1 until VACUUM or ANALYZE has looked at the table."""
    names = [m._meta.table_name for m in schema.ALL_MODELS]
    return dict(store.execute("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'"
                              " AND relname = ANY(?)", (names,)).fetchall())


def test_maintain_on_postgresql_vacuums_and_analyzes_every_table(pg_url):
    store = Store.open(pg_url)
    try:
        with store.atomic():
            for i in range(25):
                store.set_setting(f"key-{i}", "value")
            store.execute("DELETE FROM setting WHERE key LIKE 'key-1%'")  # 11 dead rows for VACUUM
        result = store.maintain(vacuum_free_ratio=0.25)
        assert result == {"vacuumed": True, "tables_vacuumed": len(schema.ALL_MODELS)}
        estimates = _row_estimates(store)
        assert set(estimates) == {m._meta.table_name for m in schema.ALL_MODELS}
        assert all(rows >= 0 for rows in estimates.values()), estimates  # every table was analyzed
        assert estimates["setting"] == 15  # 14 of the test's and decay.horizon_s (migration 0004)
        assert store.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'setting'").fetchone() == (0,)
        store.set_setting("after", "maintenance")  # the store's own connection is not left in autocommit oddities
        assert store.setting("after") == "maintenance"
    finally:
        store.close()


def test_probe_write_on_postgresql_fails_while_the_database_refuses_writes(pg_url):
    store = Store.open(pg_url)
    try:
        store.probe_write()
        with postgres.connect(database_name(pg_url)) as admin:
            admin.execute(f'ALTER DATABASE "{database_name(pg_url)}" SET default_transaction_read_only = on')
        with pytest.raises(DB_ERRORS, match="read-only"):
            store.probe_write()  # a fresh connection, as a run would get: it cannot write
        with postgres.connect(database_name(pg_url)) as admin:
            admin.execute("SET default_transaction_read_only = off")  # this session got the read-only default too
            admin.execute(f'ALTER DATABASE "{database_name(pg_url)}" RESET default_transaction_read_only')
        store.probe_write()
        assert store.m.Run.select().count() == 0
    finally:
        store.close()


@pytest.mark.sqlite_only
def test_after_a_restored_file_is_adopted_the_first_transaction_writes_to_it(db_path):
    """The reconnect to a restored file must happen before BEGIN: once the transaction is open it is
    too late, and its rows would go to the deleted file."""
    import shutil

    store = Store.open(db_path)
    try:
        store.set_setting("k", "before")
        store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy(db_path, f"{db_path}.bak")
        os.remove(db_path)
        with pytest.raises(StoreError, match="deleted or moved"):
            store.check()
        shutil.copy(f"{db_path}.bak", db_path)
        store.check()  # adopts the restored file
        with store.atomic():  # this thread's first statement since then opens a transaction
            store.m.Setting.insert(key="x", value="written in a transaction").execute()
    finally:
        store.close()
    con = sqlite3.connect(db_path)
    try:
        assert dict(con.execute("SELECT key, value FROM setting WHERE key IN ('k', 'x')")) == \
            {"k": "before", "x": "written in a transaction"}
    finally:
        con.close()


@pytest.mark.parametrize("encoding", ["LATIN1", "SQL_ASCII"])
def test_a_postgresql_database_that_is_not_utf8_is_refused_in_one_line(encoding):
    from tests import postgres

    name = postgres.create_database(f"enc_{encoding}", options=f"ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C'"
                                    " TEMPLATE template0")
    try:
        with pytest.raises(StoreError) as raised:
            Store.open(postgres.url_of(name))
        message = str(raised.value)
        assert f"encoding is {encoding}; memtui needs UTF8" in message and "\n" not in message
    finally:
        postgres.drop_database(name)
