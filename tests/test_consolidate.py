"""The consolidate job: each gate rejecting and passing, pruning rules, the 1970 guard; on SQLite and on
PostgreSQL."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from memtui.engine import Engine
from memtui.engine.config import Config
from memtui.engine.jobs.consolidate import LAST_KEY, SYSTEM_SENDER
from tests.factories import add_conversation, add_outcome, count

pytestmark = pytest.mark.both_backends


def conversations(store, now, n, *, status="active", age_days=0, messages=2):
    for _ in range(n):
        when = now - timedelta(days=age_days)
        add_conversation(store, status=status, started=when, updated=when, messages=messages)


def last_fact(store):
    row = store.execute("SELECT value FROM fact WHERE sender = ? AND key = ?", (SYSTEM_SENDER, LAST_KEY)).fetchone()
    return row[0] if row else None


def test_session_gate_rejects_until_enough_new_conversations(engine, store, clock):
    conversations(store, clock(), 4)
    run = engine.run_job("consolidate")
    assert run.status == "skipped"
    assert run.result == {"gate": "session", "new_conversations": 4}
    assert "session gate" in run.error and "needs 5" in run.error
    assert last_fact(store) is None
    conversations(store, clock(), 1)
    assert engine.run_job("consolidate").status == "success"
    assert last_fact(store) == clock().isoformat()


def test_time_gate_rejects_within_24_hours_then_passes(engine, store, clock):
    conversations(store, clock(), 5)
    assert engine.run_job("consolidate").status == "success"
    clock.advance(hours=23)
    conversations(store, clock(), 10)
    run = engine.run_job("consolidate")
    assert run.status == "skipped"
    assert run.result["gate"] == "time"
    assert "time gate" in run.error
    clock.advance(hours=1, seconds=1)
    assert engine.run_job("consolidate").status == "success"


def test_session_gate_counts_only_conversations_since_the_last_consolidation(engine, store, clock):
    conversations(store, clock(), 5)
    assert engine.run_job("consolidate").status == "success"
    clock.advance(days=2)
    conversations(store, clock(), 3)
    run = engine.run_job("consolidate")
    assert run.status == "skipped" and run.result == {"gate": "session", "new_conversations": 3}


def test_lock_gate_is_the_job_lease(engine, store, clock):
    conversations(store, clock(), 5)
    store.execute("UPDATE job_state SET lease_owner = 'otherhost:1:abc', lease_expires_at = ? WHERE name = ?",
                  (clock().timestamp() + 60, "consolidate"))
    run = engine.run_job("consolidate")
    assert run.status == "skipped"
    assert run.result["busy"] is True
    assert "already running in otherhost:1:abc" in run.error
    assert last_fact(store) is None


def test_prunes_only_messages_of_closed_conversations_older_than_30_days(engine, store, clock):
    now = clock()
    old_closed = add_conversation(store, status="closed", started=now - timedelta(days=60),
                                  updated=now - timedelta(days=31), messages=4)
    old_active = add_conversation(store, status="active", started=now - timedelta(days=60),
                                  updated=now - timedelta(days=31), messages=4)
    young_closed = add_conversation(store, status="closed", started=now - timedelta(days=40),
                                    updated=now - timedelta(days=29), messages=4)
    conversations(store, now, 5, messages=1)
    run = engine.run_job("consolidate")
    assert run.status == "success"
    assert run.result["messages_pruned"] == 4
    assert count(store, "message", "conversation_id = ?", (old_closed,)) == 0
    assert count(store, "message", "conversation_id = ?", (old_active,)) == 4
    assert count(store, "message", "conversation_id = ?", (young_closed,)) == 4
    assert count(store, "conversation", "id = ?", (old_closed,)) == 1  # the conversation row stays


def test_keeps_the_newest_100_outcomes_per_sender(engine, store, clock):
    now = clock()
    conversations(store, now, 5)
    oldest = [add_outcome(store, sender="alice", created=now - timedelta(hours=200 - i)) for i in range(30)]
    newest = [add_outcome(store, sender="alice", created=now - timedelta(hours=100 - i)) for i in range(100)]
    bob = [add_outcome(store, sender="bob", created=now - timedelta(days=i)) for i in range(40)]
    run = engine.run_job("consolidate")
    assert run.result["outcomes_pruned"] == 30
    remaining = {r[0] for r in store.execute("SELECT id FROM outcome")}
    assert remaining == set(newest) | set(bob)
    assert not remaining & set(oldest)


def test_batches_do_not_change_the_outcome(store, clock):
    now = clock()
    conversations(store, now, 5)
    for c in range(30):
        add_conversation(store, status="closed", started=now - timedelta(days=90),
                         updated=now - timedelta(days=45), messages=7)
    for i in range(250):
        add_outcome(store, sender=f"s{i % 2}", created=now - timedelta(minutes=i))
    engine = Engine(store, Config(jobs={"consolidate": {"batch_size": 11}}), clock)
    run = engine.run_job("consolidate")
    assert run.result["messages_pruned"] == 210
    assert run.result["outcomes_pruned"] == 50
    assert count(store, "outcome") == 200


def test_clock_before_1970_writes_no_timestamp(store, caplog):
    from memtui.engine import FakeClock

    clock = FakeClock(datetime(1969, 7, 20, 20, 17, tzinfo=timezone.utc))
    engine = Engine(store, Config(), clock)
    conversations(store, clock(), 5)
    with caplog.at_level("WARNING"):
        run = engine.run_job("consolidate")
    assert run.status == "success"
    assert run.result["timestamp_written"] is False
    assert last_fact(store) is None
    assert "before 1970" in caplog.text


def test_result_is_stored_on_the_run_row(engine, store, clock):
    conversations(store, clock(), 5)
    run = engine.run_job("consolidate")
    stored = store.execute("SELECT result FROM run WHERE id = ?", (run.id,)).fetchone()[0]
    assert json.loads(stored) == {"messages_pruned": 0, "outcomes_pruned": 0, "timestamp_written": True}


@pytest.mark.parametrize("key", ["min_hours_between", "min_new_conversations", "message_retention_days",
                                 "outcomes_per_sender"])
def test_negative_settings_are_rejected(key):
    from memtui.engine.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=rf"\[jobs.consolidate\] {key}: must be at least 0"):
        parse_config({"jobs": {"consolidate": {key: -1}}})
