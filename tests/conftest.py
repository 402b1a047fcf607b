"""Shared fixtures: a fake clock, a temporary database, an engine that is not started."""
from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Never touch the real user data/config dirs, never reach the network from litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from memtui.engine import Engine, FakeClock  # noqa: E402
from memtui.engine.config import Config  # noqa: E402
from memtui.models import Store  # noqa: E402
from tests import postgres  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "both_backends: run the module's store-using tests on SQLite and PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: this test is about SQLite itself (files, pragmas)")
    config.addinivalue_line("markers", "postgres_only: this test is about a database server (connections, NOTIFY)")


def pytest_generate_tests(metafunc):
    if "db_target" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("postgres_only") is not None:
        metafunc.parametrize("db_target", ["postgresql"], indirect=True, ids=["pg"])
        return
    both = (metafunc.definition.get_closest_marker("both_backends") is not None
            and metafunc.definition.get_closest_marker("sqlite_only") is None
            and "db_path" not in metafunc.fixturenames)  # a test about a SQLite file is SQLite's only
    if both:  # otherwise db_target is SQLite, and the test keeps its plain id (snapshots are named by it)
        metafunc.parametrize("db_target", ["sqlite", "postgresql"], indirect=True, ids=["sqlite", "pg"])

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("MEMTUI_DB", raising=False)
    monkeypatch.delenv("MEMTUI_CONFIG", raising=False)
    monkeypatch.delenv("MEMTUI_MODEL", raising=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db_path(tmp_path) -> Path:
    """A SQLite file path: a test asking for it is about SQLite files, and runs on SQLite only."""
    return tmp_path / "memtui.db"


@pytest.fixture
def db_target(request, tmp_path) -> str:
    """Where the test's store is: a SQLite path, or the URL of a fresh PostgreSQL database that is
    dropped after the test. Tests in modules marked ``both_backends`` run once per backend."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield str(tmp_path / "memtui.db")
        return
    with postgres.fresh_database(request.node.name) as url:
        yield url


@pytest.fixture
def pg_url(request) -> str:
    """The URL of a fresh, empty PostgreSQL database (no memtui tables), dropped after the test:
    for tests about PostgreSQL itself. Skips (fails under MEMTUI_TEST_POSTGRES=require) without a server."""
    with postgres.fresh_database(request.node.name) as url:
        yield url


@pytest.fixture
def store(db_target):
    s = Store.open(db_target)
    yield s
    s.close()


@pytest.fixture
def engine(store, clock):
    e = Engine(store, Config(), clock)
    yield e
    e.stop(timeout=5)


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``memtui`` in-process: ``cli(*argv, stdin=..., tty=...)`` -> (code, out, err). Every store
    the command opened is closed after it, so the files settle (WAL checkpointed) before the test reads."""
    import io
    from types import SimpleNamespace

    from memtui.tui.cli import main
    from tests.factories import track_store_opens

    opened = track_store_opens(monkeypatch)

    def run(*argv, stdin: str | None = None, tty: bool = False):
        if stdin is not None or tty:
            fake = io.StringIO(stdin or "")
            fake.isatty = lambda: tty  # type: ignore[method-assign]
            monkeypatch.setattr("sys.stdin", fake)
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        finally:
            for store in opened:
                store.close()
            opened.clear()
        out, err = capsys.readouterr()
        return SimpleNamespace(code=code, out=out, err=err)

    return run


ROLLUP_SCHEDULES = {"rollup-day": "0 1 * * *", "rollup-week": "0 2 * * 0", "rollup-month": "0 3 1 * *"}


@pytest.fixture
def make_engine(store, clock):
    """``make_engine(config=None, tz="UTC")``: an engine over ``store`` whose rollup jobs keep their
    default schedules, in time zone ``tz``; stopped after the test."""
    made = []

    def make(config: Config | None = None, tz: str = "UTC") -> Engine:
        engine = Engine(store, config or Config(), clock)
        for job, schedule in ROLLUP_SCHEDULES.items():
            engine.retime(job, schedule, tz=tz)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.stop(timeout=5)



@pytest.fixture
def engine_on(request, db_target, kinds, clock):
    """``engine_on(owner, clock=None, settings=None)``: an engine with a store of its own (as another
    process would have), stopped and closed after the test. Uses the test module's ``kinds`` fixture
    and, by default, its ``SETTINGS``."""
    made: list[Engine] = []

    def make(owner: str, own_clock=None, settings=None) -> Engine:
        settings = settings or request.module.SETTINGS
        engine = Engine(Store.open(db_target), Config(engine=settings), own_clock or clock, owner=owner)
        made.append(engine)
        return engine

    yield make
    kinds.blocker.release.set()
    for engine in made:
        engine.stop(timeout=5)
        engine.close()


@pytest.fixture
def utc(monkeypatch):
    """Local time is UTC: for the C library (times in the tables) and for tzlocal (the retime
    preview, the NEXT column), which caches the zone it found first, so it is replaced rather than
    re-read. Widths and snapshots are then the same on every machine."""
    import time
    from zoneinfo import ZoneInfo

    from memtui.engine import schedule

    monkeypatch.setattr(schedule, "local_zone", lambda: ZoneInfo("UTC"))
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()
