"""The database as a URL (``--db``, ``MEMTUI_DB``, ``Memory.open``): ``sqlite:///PATH`` is the file at PATH,
``postgresql://USER:PASSWORD@HOST:PORT/NAME`` a server; the password is never shown, stored or logged, and
PostgreSQL without its driver is a one-line error saying what to install.

The PostgreSQL cases use a fresh database of their own on the test server (skipped where there is none,
see tests/postgres.py); the server trusts local logins, so any password opens it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from memtui.engine.config import ConfigError, resolve_db_path
from memtui.models import Store, StoreError
from tests import postgres
from tests import factories
from tests.factories import snapshot
from tests.targets import with_password

PASSWORD = "Sup3r-s3cret.pw"
MEMTUI = os.path.join(os.path.dirname(sys.executable), "memtui")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database's URL, with a password in it."""
    with postgres.fresh_database("password") as url:
        yield with_password(url, PASSWORD)


def assert_one_line_error(result, *fragments):
    factories.assert_one_line_error(result, *fragments)
    assert PASSWORD not in result.err and PASSWORD not in result.out


# -- where a URL points ----------------------------------------------------------------------------

def test_a_url_is_kept_as_given_and_a_path_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for url in ("postgresql://me:p%40ss~@db.example:5432/memtui", "sqlite:///~/m.db", "sqlite:////srv/m.db"):
        assert resolve_db_path(url) == url  # a Path would fold "//" and mangle it
        monkeypatch.setenv("MEMTUI_DB", url)
        assert resolve_db_path(None) == url
    assert resolve_db_path("~/m.db") == tmp_path / "m.db"
    with pytest.raises(ConfigError, match="empty database path"):
        resolve_db_path(" ")


def test_a_sqlite_url_is_the_file_at_its_path(cli, tmp_path, monkeypatch):
    path = tmp_path / "m.db"
    assert cli("remember", "via the URL", "--db", f"sqlite:///{path}").code == 0
    assert cli("disable", "compact", "--db", path).code == 0
    store = Store.open(f"sqlite:///{path}", create=False)
    try:
        assert store.path == path
        assert [m.content for m in store.m.PendingMemory.select()] == ["via the URL"]
    finally:
        store.close()
    monkeypatch.setenv("HOME", str(tmp_path))
    listed = cli("jobs", "--db", "sqlite:///~/m.db").out  # ~ expands inside a SQLite URL too
    assert next(line for line in listed.splitlines() if line.startswith("compact ")).split()[1] == "no"
    assert_one_line_error(cli("jobs", "--db", "sqlite://m.db"), "three slashes")
    assert_one_line_error(cli("jobs", "--db", "mysql://me@db/memtui"), "unknown kind of database")


def test_postgresql_without_its_driver_is_one_line_saying_what_to_install(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed: import fails
    url = f"postgresql://me:{PASSWORD}@127.0.0.1:5432/memtui"
    for argv in (["jobs", "--db", url], ["remember", "x", "--db", url]):
        assert_one_line_error(cli(*argv), "pip install 'memtui[postgres]'", "postgresql://me:***@127.0.0.1")
    monkeypatch.setenv("MEMTUI_DB", url)
    assert_one_line_error(cli("jobs"), "pip install 'memtui[postgres]'")
    from memtui import Memory

    with pytest.raises(StoreError, match=r"pip install 'memtui\[postgres\]'") as raised:
        Memory.open(url)
    assert PASSWORD not in str(raised.value)


# -- a password is never shown ---------------------------------------------------------------------

def test_no_command_prints_the_password(cli, pg_url, tmp_path):
    outputs = [cli("remember", "Émile likes tea", "--db", pg_url), cli("jobs", "--db", pg_url),
               cli("run", "compact", "--db", pg_url), cli("history", "--json", "--db", pg_url),
               cli("engines", "--all", "--db", pg_url)]
    assert all(r.code == 0 for r in outputs), [r.err for r in outputs]
    refused = cli("demo", "--db", pg_url)  # names the database it refuses to fill
    assert_one_line_error(refused, "postgresql://postgres:***@", "not demo data")
    filled = cli("demo", "--reset", "--yes", "--db", pg_url)
    assert filled.code == 0 and "demo data in postgresql://postgres:***@" in filled.out
    for result in (*outputs, refused, filled):
        assert PASSWORD not in result.out + result.err


def test_the_password_is_never_written_to_the_database(cli, pg_url, monkeypatch):
    """Run rows (a failed run's error and traceback too), the audit log, the engines' rows."""
    from dataclasses import dataclass

    from memtui.engine.jobs import DEFAULT_JOBS, KINDS
    from memtui.engine.jobs.base import JobKind, JobSpec

    @dataclass(frozen=True)
    class NoConfig:
        pass

    def failing(ctx):  # a library error quoting the URL it was given, password and all
        raise RuntimeError(f"could not reach {pg_url}")

    monkeypatch.setitem(KINDS, "failing", JobKind("failing", failing, NoConfig, "always fails"))
    monkeypatch.setitem(DEFAULT_JOBS, "failing", JobSpec("failing", "failing", "6h"))
    assert cli("run", "failing", "--db", pg_url).code == 1
    for argv in (["run", "compact"], ["disable", "decay"], ["retime", "promote", "2h"], ["pause"], ["resume"]):
        assert cli(*argv, "--db", pg_url).code == 0
    store = Store.open(pg_url, create=False)
    try:
        from memtui.engine import Config, Engine

        engine = Engine(store, Config())
        engine.start()  # registers in engine_instance
        engine.stop(timeout=5)
        rows = snapshot(store)
    finally:
        store.close()
    assert rows["run"] and rows["audit_log"] and rows["engine_instance"]
    assert PASSWORD not in repr(rows)


def test_connection_errors_hide_the_password(cli, pg_url):
    server = pg_url.rsplit("/", 1)[0]
    assert_one_line_error(cli("jobs", "--db", f"{server}/no_such_database_here"),
                          "postgresql://postgres:***@", "no_such_database_here")
    user_and_host = server.split("://", 1)[1].split("@", 1)[1]
    assert_one_line_error(cli("jobs", "--db", f"postgresql://nobody:{PASSWORD}@{user_and_host}/postgres"),
                          "postgresql://nobody:***@", "nobody")
    assert_one_line_error(cli("jobs", "--db", f"postgresql://me:{PASSWORD}@127.0.0.1:1/memtui"),
                          "postgresql://me:***@127.0.0.1:1/memtui")  # nothing listens on port 1


def test_a_driver_error_that_echoes_the_password_is_scrubbed(cli, monkeypatch):
    """The test server trusts every login, so a wrong password cannot be refused for real: a driver
    that refuses it and quotes what it was given stands in, the worst case for a message."""
    import psycopg
    from peewee import PostgresqlDatabase

    def refuse(self, *args, **kwargs):
        raise psycopg.OperationalError(
            f'password authentication failed for user "me" (password={PASSWORD}, dsn=me:{PASSWORD}@db)')

    monkeypatch.setattr(PostgresqlDatabase, "_connect", refuse)
    for argv in (["--db", f"postgresql://me:{PASSWORD}@db.example:5432/memtui"],
                 ["--db", f"postgresql://me@db.example:5432/memtui?password={PASSWORD}"]):
        assert_one_line_error(cli("jobs", *argv), "password authentication failed")
    monkeypatch.setenv("MEMTUI_DB", f"postgresql://me:{PASSWORD}@db.example:5432/memtui")
    assert_one_line_error(cli("remember", "x"), "password authentication failed")


def test_an_unexpected_error_and_a_misplaced_url_hide_the_password(cli, pg_url, monkeypatch):
    from memtui.engine import Engine

    def broken(self):
        raise RuntimeError(f"lost {pg_url} and {PASSWORD}")

    assert cli("remember", "x", "--db", pg_url).code == 0
    monkeypatch.setattr(Engine, "jobs", broken)
    result = cli("jobs", "--db", pg_url)
    assert result.code == 1 and "unexpected error" in result.err and "postgresql://postgres:***@" in result.err
    assert PASSWORD not in result.err
    assert_one_line_error(cli("jobs", pg_url), "unrecognized arguments", "postgresql://postgres:***@")


def test_the_dashboard_title_hides_the_password(pg_url):
    from memtui.engine import Config, Engine
    from memtui.tui.app import MemtuiApp

    store = Store.open(pg_url)
    try:
        app = MemtuiApp(Engine(store, Config()))
        assert app.db_label.startswith("postgresql://postgres:***@") and PASSWORD not in app.db_label
    finally:
        store.close()


def test_the_headless_log_line_hides_the_password(pg_url):
    env = {**os.environ, "MEMTUI_DB": pg_url}
    proc = subprocess.Popen([MEMTUI, "--no-ui"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)
    try:
        line = proc.stderr.readline()  # the first line: where it runs
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert "engine running on postgresql://postgres:***@" in line, (line, rest)
    assert proc.returncode == 0
    assert PASSWORD not in line + rest[0] + rest[1]
