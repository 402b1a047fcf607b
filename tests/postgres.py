"""The PostgreSQL server the tests use: a fresh database per test, dropped after it.

The server is ``$MEMTUI_TEST_PG`` (default postgresql://postgres@127.0.0.1:5432/postgres,
trust authentication, as on this project's machines). Where it cannot be reached
the PostgreSQL cases skip and say why, unless ``MEMTUI_TEST_POSTGRES=require``
(set by .ci/run), when they fail: CI must never go green by skipping them.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import re
from urllib.parse import urlsplit, urlunsplit

import pytest

SERVER = os.environ.get("MEMTUI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
_counter = itertools.count()
_reachable: str | None = None  # "" when reachable, else why not


def connect(database: str):
    """A psycopg connection (autocommit) to ``database`` on the test server, for looking behind the store."""
    import psycopg

    parts = urlsplit(SERVER)
    return psycopg.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                           user=parts.username or "postgres", password=parts.password, dbname=database,
                           autocommit=True, connect_timeout=5)


def url_of(name: str) -> str:
    parts = urlsplit(SERVER)
    return urlunsplit(parts._replace(path=f"/{name}"))


def require_server() -> None:
    """Skip (or, in CI, fail) when there is no PostgreSQL server to test against."""
    global _reachable
    if _reachable is None:
        try:
            connect(_maintenance_database()).close()
            _reachable = ""
        except ImportError:
            _reachable = "psycopg is not installed (pip install '.[test]')"
        except Exception as exc:  # noqa: BLE001 - any reason the server can't be used
            _reachable = f"no PostgreSQL server at {_shown(SERVER)}: {' '.join(str(exc).split())[:200]}"
    if _reachable:
        if os.environ.get("MEMTUI_TEST_POSTGRES") == "require":
            pytest.fail(f"PostgreSQL is required here (MEMTUI_TEST_POSTGRES=require): {_reachable}")
        pytest.skip(_reachable)


def _shown(url: str) -> str:
    from memtui.models.postgres import redact_url

    return redact_url(url)


def _maintenance_database() -> str:
    return urlsplit(SERVER).path.lstrip("/") or "postgres"


def create_database(hint: str = "t", options: str = "") -> str:
    """A new, empty database; ``options`` are CREATE DATABASE's (e.g. another locale)."""
    require_server()
    name = f"memtui_test_{os.getpid()}_{next(_counter)}_{re.sub(r'[^a-z0-9]+', '_', hint.lower())[:20]}"
    with connect(_maintenance_database()) as conn:
        conn.execute(f'CREATE DATABASE "{name}" {options}')
    return name


def drop_database(name: str) -> None:
    with connect(_maintenance_database()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database(hint: str = "t", options: str = ""):
    """The URL of a new, empty database, dropped afterwards (its connections closed by force)."""
    name = create_database(hint, options)
    try:
        yield url_of(name)
    finally:
        drop_database(name)
