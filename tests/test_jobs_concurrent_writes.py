"""On PostgreSQL an agent's write does not wait for a whole-database lock, as it does on SQLite: it can
land between a job's read and its write. These tests put it exactly there and show it is not lost.

Each test holds the job at the moment in question (a wrapper around the job's own
next step), lets the agent write from another connection, and goes on once the
agent's statement either finished or waits for a row lock (pg_stat_activity says
which; the wait is a poll with a deadline, not a fixed sleep).
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from memtui.engine.jobs import decay, profile, promote
from memtui.engine.jobs.base import JobContext
from memtui.engine.jobs.decay import DecayConfig
from memtui.engine.jobs.profile import ProfileConfig
from memtui.engine.jobs.promote import PromoteConfig
from memtui.engine.memory import record_access
from memtui.models import Store
from tests import postgres
from tests.factories import add_long_term, add_pending


@pytest.fixture
def stores(pg_url):
    """The job's store, the agent's and an observer's: three connections to one fresh database."""
    opened = [Store.open(pg_url) for _ in range(3)]
    yield opened
    for store in opened:
        store.close()


def blocked_or_done(observer: Store, thread: threading.Thread) -> str:
    """Wait until ``thread`` has finished ("done") or its statement waits for a lock ("blocked")."""
    deadline = time.monotonic() + 30
    while thread.is_alive():
        waiting = observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()[0]
        if waiting:
            return "blocked"
        assert time.monotonic() < deadline, "the agent neither finished nor waited for a lock"
        thread.join(0.005)
    return "done"


def in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_an_access_recorded_while_its_batch_moves_the_memory_reinforces_the_long_term_copy(stores, clock,
                                                                                          monkeypatch):
    """The batch has copied the memory to long-term and not yet deleted it from pending: the agent's
    access must not bump the pending row that is about to go (the signal would be lost)."""
    store, agent, observer = stores
    mid = add_pending(store, clock(), importance=10, confidence=1.0, accesses=10, last_access=clock())
    real_execute_sql = store.db.execute_sql
    seen = {}

    def agent_accesses_it_after_the_copy(sql, *args, **kwargs):  # between the batch's INSERT … SELECT and DELETE
        cursor = real_execute_sql(sql, *args, **kwargs)
        if sql.startswith('INSERT INTO "long_term_memory"') and not seen:
            seen["thread"] = in_thread(lambda: seen.setdefault("where", record_access(agent, clock(), mid)))
            seen["agent"] = blocked_or_done(observer, seen["thread"])
        return cursor

    monkeypatch.setattr(store.db, "execute_sql", agent_accesses_it_after_the_copy)
    result = promote.run(JobContext(store=store, clock=clock, config=PromoteConfig(), job="promote"))
    seen["thread"].join(30)

    assert result["promoted"] == 1
    assert seen["agent"] == "blocked"  # the copied row was locked until the batch committed
    assert seen["where"] == "long_term"
    assert store.execute("SELECT recall_count FROM long_term_memory WHERE source_pending_id = ?",
                         (mid,)).fetchone() == (1,)


def test_an_agents_change_while_profile_applies_a_plan_is_applied_after_it_not_overwritten(stores, clock,
                                                                                          monkeypatch):
    store, agent, observer = stores
    now = clock()
    store.execute("INSERT INTO profile_attribute (entity, key, value, source, updated_at) VALUES"
                  " ('alice', 'drink', 'tea', 'agent', ?), ('alice', 'Drink', 'Tea', 'agent', ?)",
                  ((now - timedelta(days=2)).timestamp(), (now - timedelta(days=1)).timestamp()))
    survivor = store.execute("SELECT max(id) FROM profile_attribute").fetchone()[0]  # the newer row
    real_history = profile._history
    seen = {}

    def agent_writes(*args, **kwargs):  # after apply() checked the entity is unchanged, before it writes
        if not seen:
            def write():
                with agent.atomic():
                    agent.execute("UPDATE profile_attribute SET value = 'green tea' WHERE id = ?", (survivor,))
            seen["thread"] = in_thread(write)
            seen["agent"] = blocked_or_done(observer, seen["thread"])
        return real_history(*args, **kwargs)

    monkeypatch.setattr(profile, "_history", agent_writes)
    ctx = JobContext(store=store, clock=clock, config=ProfileConfig(), job="profile")
    result = profile.run(ctx)
    seen["thread"].join(30)

    assert result["merged"] == 1
    assert seen["agent"] == "blocked"
    assert store.execute("SELECT id, value FROM profile_attribute WHERE entity = 'alice'").fetchall() == \
        [(survivor, "green tea")]
    monkeypatch.setattr(profile, "_history", real_history)
    assert profile.run(ctx)["entities_checked"] == 1  # changed after the clean-up: due again


def test_a_memory_recalled_while_decay_soft_deletes_it_is_left_alone(stores, pg_url, clock):
    """The agent's recall holds the row when decay's UPDATE reaches it: PostgreSQL waits, then tests
    decay's WHERE again on the recalled row, which no longer fades."""
    store, _, observer = stores
    old = clock() - timedelta(days=500)
    mid = add_long_term(store, created=old, reinforced=old)
    recall = postgres.connect(urlsplit(pg_url).path.lstrip("/"))
    recall.autocommit = False
    try:
        recall.execute("UPDATE long_term_memory SET recall_count = recall_count + 1, last_reinforced_at = %s"
                       " WHERE id = %s", (clock().timestamp(), mid))
        seen = {}
        job = in_thread(lambda: seen.setdefault("result", decay.run(
            JobContext(store=store, clock=clock, config=DecayConfig(), job="decay"))))
        assert blocked_or_done(observer, job) == "blocked"
        recall.commit()
        job.join(30)
    finally:
        recall.close()
    assert seen["result"]["soft_deleted"] == 0
    assert store.execute("SELECT deleted_at, recall_count FROM long_term_memory WHERE id = ?",
                         (mid,)).fetchone() == (None, 1)
