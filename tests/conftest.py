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
    return tmp_path / "memtui.db"


@pytest.fixture
def store(db_path):
    s = Store.open(db_path)
    yield s
    s.close()


@pytest.fixture
def engine(store, clock):
    e = Engine(store, Config(), clock)
    yield e
    e.stop(timeout=5)
