"""A promotion killed with SIGKILL part-way leaves every memory in exactly one table, on SQLite and on
PostgreSQL (where the server rolls back the dead client's open batch)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from peewee import chunked

from memtui.engine import Engine, FakeClock
from memtui.engine.config import Config
from memtui.models import Store
from tests.kill import kill_promote_part_way

pytestmark = pytest.mark.both_backends

N = 60_000


def build(target: str, now_ts: float) -> None:
    store = Store.open(target)
    Pending = store.m.PendingMemory
    rows = ({"content": f"memory {i}", "importance": 9, "confidence": 0.9, "access_count": 10,
             "last_access_at": now_ts, "created_at": now_ts} for i in range(N))
    with store.atomic():
        for batch in chunked(rows, 2000):
            Pending.insert_many(batch).as_rowcount().execute()
    store.close()


def test_sigkill_mid_promotion_loses_and_duplicates_nothing(db_target, tmp_path):
    build(db_target, time.time())
    config = tmp_path / "config.toml"
    config.write_text("[jobs.promote]\ncap = 0\nbatch_size = 200\n")
    killed = kill_promote_part_way(db_target, config, moved=2000)
    pending, sources = killed.pending, killed.sources
    assert 0 < len(sources) < N, "the kill should land part-way through"
    assert len(sources) == len(set(sources)), "a memory was promoted twice"
    assert not pending & set(sources), "a memory is in both tables"
    assert len(pending) + len(sources) == N, "a memory was lost"

    # The next engine, once the dead one's lease has run out, marks the cut run interrupted and carries on.
    config = Config(jobs={"promote": {"cap": 0}})
    later = FakeClock(datetime.now(timezone.utc) + timedelta(seconds=config.engine.lease_ttl_s + 1))
    engine = Engine(Store.open(db_target), config, later)
    try:
        engine.recover_interrupted()
        status = engine.history("promote", 1)[0]
        assert status.status == "interrupted"
        assert engine.run_job("promote").status == "success"
        assert engine.store.execute("SELECT count(*) FROM pending_memory").fetchone()[0] == 0
        assert engine.store.execute(
            "SELECT count(DISTINCT source_pending_id) FROM long_term_memory").fetchone()[0] == N
    finally:
        engine.close()
