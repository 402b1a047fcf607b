"""The promote job: scoring, threshold and cap edges, remember, TTL and deferral, demo marks, stats,
atomicity; on SQLite and on PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

import pytest

from memtui.engine import Engine
from memtui.engine.config import Config, ConfigError, parse_config
from memtui.engine.jobs import promote
from memtui.engine.jobs.base import JobContext
from memtui.engine.jobs.promote import PromoteConfig
from memtui.engine.memory import record_access
from tests.factories import add_pending, count
from tests.triggers import refuse

pytestmark = pytest.mark.both_backends


def make_engine(store, clock, **params) -> Engine:
    return Engine(store, Config(jobs={"promote": params} if params else {}), clock)


def exactly_threshold(store, now, **kw) -> int:
    # 0.20·1 (accessed now) + 0.30·1 (10 accesses) + 0.25·0 + 0.25·0.4 = 0.6
    return add_pending(store, now, importance=4.0, confidence=0.0, accesses=10, last_access=now, **kw)


def test_score_exactly_at_threshold_promotes_and_just_below_does_not(store, clock):
    now = clock()
    at = exactly_threshold(store, now)
    below = add_pending(store, now, importance=3.99, confidence=0.0, accesses=10, last_access=now)
    run = make_engine(store, clock).run_job("promote")
    assert run.status == "success"
    assert run.result["promoted"] == 1
    assert count(store, "long_term_memory", "source_pending_id = ?", (at,)) == 1
    assert count(store, "pending_memory", "id = ?", (below,)) == 1


def test_recency_decays_with_hours_since_last_access(store, clock):
    now = clock()
    # Same memory as exactly_threshold but accessed 10 h ago: recency 0.995^10 < 1, score < 0.6.
    stale = add_pending(store, now, importance=4.0, confidence=0.0, accesses=10, last_access=now - timedelta(hours=10))
    # Never accessed: recency counts from creation.
    fresh = add_pending(store, now, importance=4.0, confidence=0.0, accesses=10, last_access=None, created=now)
    make_engine(store, clock).run_job("promote")
    assert count(store, "pending_memory", "id = ?", (stale,)) == 1
    assert count(store, "long_term_memory", "source_pending_id = ?", (fresh,)) == 1


def test_remember_always_promotes_even_with_a_low_score(store, clock):
    now = clock()
    kept = add_pending(store, now, importance=0, confidence=0, accesses=0, remember=True,
                       last_access=now - timedelta(days=3))
    make_engine(store, clock).run_job("promote")
    row = store.execute("SELECT pinned FROM long_term_memory WHERE source_pending_id = ?", (kept,)).fetchone()
    assert row is not None
    assert row[0]  # an explicit "remember" arrives pinned, so decay never drops it


def test_cap_promotes_highest_scores_first_with_remember_ahead(store, clock):
    now = clock()
    low = exactly_threshold(store, now)
    mid = add_pending(store, now, importance=8, confidence=0.8, accesses=10, last_access=now)
    high = add_pending(store, now, importance=10, confidence=1.0, accesses=10, last_access=now)
    kept = add_pending(store, now, importance=0, confidence=0, remember=True)
    run = make_engine(store, clock, cap=2).run_job("promote")
    assert run.result["promoted"] == 2
    promoted = {r[0] for r in store.execute("SELECT source_pending_id FROM long_term_memory")}
    assert promoted == {kept, high}
    assert count(store, "pending_memory", "id IN (?, ?)", (low, mid)) == 2
    run = make_engine(store, clock, cap=2).run_job("promote")
    assert {r[0] for r in store.execute("SELECT source_pending_id FROM long_term_memory")} == {kept, high, mid, low}


def test_cap_zero_means_no_cap(store, clock):
    now = clock()
    for _ in range(30):
        exactly_threshold(store, now)
    run = make_engine(store, clock, cap=0, batch_size=7).run_job("promote")
    assert run.result["promoted"] == 30
    assert count(store, "pending_memory") == 0


def test_promoted_memory_carries_its_fields_and_leaves_pending(store, clock):
    now = clock()
    pid = store.execute(
        "INSERT INTO pending_memory (content, kind, sender, importance, confidence, access_count, last_access_at,"
        " remember, created_at) VALUES ('likes tea', 'preference', 'bob', 9, 0.9, 10, ?, FALSE, ?) RETURNING id",
        (now.timestamp(), (now - timedelta(hours=1)).timestamp()),
    ).fetchone()[0]
    make_engine(store, clock).run_job("promote")
    row = store.execute(
        "SELECT content, kind, sender, importance, confidence, created_at, promoted_at, source_pending_id"
        " FROM long_term_memory").fetchone()
    assert row == ("likes tea", "preference", "bob", 9.0, 0.9, (now - timedelta(hours=1)).timestamp(),
                   now.timestamp(), pid)
    assert count(store, "pending_memory") == 0


def test_ttl_expires_old_unpromoted_memories_only(store, clock):
    now = clock()
    old_low = add_pending(store, now, importance=1, created=now - timedelta(days=8), last_access=None)
    young_low = add_pending(store, now, importance=1, created=now - timedelta(days=6), last_access=None)
    old_kept = add_pending(store, now, importance=1, created=now - timedelta(days=30), remember=True)
    old_high = add_pending(store, now, importance=10, confidence=1, accesses=10, last_access=now,
                           created=now - timedelta(days=9))
    run = make_engine(store, clock).run_job("promote")
    assert run.result == {"promoted": 2, "expired": 1, "deferred": 0, "top_score": pytest.approx(1.0),
                          "pass": "full", "full_because": "first run", "scored": 4}
    assert count(store, "pending_memory", "id = ?", (old_low,)) == 0
    assert count(store, "pending_memory", "id = ?", (young_low,)) == 1
    assert count(store, "long_term_memory", "source_pending_id IN (?, ?)", (old_kept, old_high)) == 2


def scores_one(store, now, **kw) -> int:
    # 0.20·1 (used now) + 0.30·1 (10 uses) + 0.25·1 + 0.25·1 = 1.0
    return add_pending(store, now, importance=10, confidence=1.0, accesses=10, last_access=now, **kw)


def test_qualifiers_the_cap_defers_wait_for_the_next_run_even_past_the_ttl(store, clock):
    """Issue 16.2: 600 qualifiers older than the TTL, cap 500: 100 were expired instead of deferred."""
    now = clock()
    week_old = now - timedelta(days=8)
    qualifiers = {scores_one(store, now, created=week_old, content=f"q{i}") for i in range(600)}
    stale_low = add_pending(store, now, importance=1, created=week_old)
    run = make_engine(store, clock).run_job("promote")
    assert run.result == {"promoted": 500, "expired": 1, "deferred": 100, "top_score": 1.0,
                          "pass": "full", "full_because": "first run", "scored": 601}
    assert count(store, "pending_memory", "id = ?", (stale_low,)) == 0
    assert count(store, "pending_memory") == 100
    clock.advance(seconds=30)
    run = make_engine(store, clock).run_job("promote")
    assert run.result == {"promoted": 100, "expired": 0, "deferred": 0, "top_score": 1.0,
                          "pass": "incremental", "scored": 100}  # only the deferred ones are scored again
    assert {r[0] for r in store.execute("SELECT source_pending_id FROM long_term_memory")} == qualifiers


def test_expiry_tests_the_score_again_in_the_delete(store, clock):
    """A stale memory the agent uses after the expiry listed it, and so qualifies now, is not deleted."""
    now = clock()
    week_old = now - timedelta(days=8)
    # 0.20·0.995^192 + 0.30·0.9 + 0 + 0.25·0.6 = 0.50; one use now: 0.20 + 0.30 + 0.15 = 0.65
    used = add_pending(store, now, importance=6, confidence=0.0, accesses=9, last_access=week_old, created=week_old)
    unused = add_pending(store, now, importance=1, created=week_old)
    ctx = JobContext(store=store, clock=clock, config=PromoteConfig(), job="promote")
    uses = []

    def agent_uses_it_before_the_delete():  # in_batches calls check() before each chunk's transaction
        if not uses:
            uses.append(record_access(store, clock(), used))

    ctx.check = agent_uses_it_before_the_delete
    result = promote.run(ctx)
    assert uses == ["pending"]
    assert {k: result[k] for k in ("promoted", "expired", "deferred")} == {"promoted": 0, "expired": 1, "deferred": 0}
    assert count(store, "pending_memory", "id = ?", (used,)) == 1
    assert count(store, "pending_memory", "id = ?", (unused,)) == 0
    assert make_engine(store, clock).run_job("promote").result["promoted"] == 1  # it qualifies: next run takes it


@pytest.mark.parametrize("rows", ["none", "stale only"])
def test_a_run_that_scored_nothing_has_no_null_in_its_result(store, clock, rows):
    # The result is shown to people: a top_score of None read "top_score=None".
    if rows == "stale only":
        add_pending(store, clock(), importance=1, created=clock() - timedelta(days=8))
    run = make_engine(store, clock).run_job("promote")
    expired = 1 if rows == "stale only" else 0
    assert {k: v for k, v in run.result.items() if k not in ("pass", "full_because", "scored")} == \
        {"promoted": 0, "expired": expired, "deferred": 0}


def test_a_promoted_demo_memory_stays_a_demo_memory(store, clock):
    now = clock()
    demo = add_pending(store, now, remember=True, content="demo")
    own = add_pending(store, now, remember=True, content="own")
    store.execute("UPDATE pending_memory SET demo = TRUE WHERE id = ?", (demo,))
    make_engine(store, clock).run_job("promote")
    marks = dict(store.execute("SELECT source_pending_id, demo FROM long_term_memory").fetchall())
    assert marks == {demo: 1, own: 0}


def test_stats_survive_a_restart(db_target, clock):
    engine = Engine(db_target, Config(), clock)
    now = clock()
    for _ in range(3):
        exactly_threshold(engine.store, now)
    engine.run_job("promote")
    clock.advance(seconds=30)
    exactly_threshold(engine.store, clock())
    add_pending(engine.store, clock(), importance=1)
    engine.run_job("promote")
    engine.close()

    again = Engine(db_target, Config(), clock)
    stats = again.promotion_stats()
    assert stats.runs == 2
    assert stats.total_promoted == 4
    assert stats.last_promoted == 1
    assert stats.last_run == clock()
    assert stats.pending == 1
    assert stats.long_term == 4
    assert stats.recent == [3, 1]
    assert stats.enabled is True
    assert stats.schedule_text == "every 30 s"
    again.close()


def test_record_access_bumps_count_and_time_then_follows_promotion(engine, clock):
    mid = engine.remember("the user's cat is called Miso", importance=4, confidence=0.0)
    clock.advance(hours=2)
    for _ in range(10):
        assert engine.record_access(mid) == "pending"
    row = engine.store.execute("SELECT access_count, last_access_at FROM pending_memory WHERE id = ?",
                               (mid,)).fetchone()
    assert row == (10, clock().timestamp())
    assert engine.run_job("promote").result["promoted"] == 1  # 0.2 + 0.3 + 0 + 0.1 = 0.6
    clock.advance(hours=1)
    assert engine.record_access(mid) == "long_term"
    row = engine.store.execute("SELECT recall_count, last_reinforced_at FROM long_term_memory").fetchone()
    assert row == (1, clock().timestamp())


def test_a_failing_batch_rolls_back_whole_and_the_run_says_why(store, clock):
    now = clock()
    ids = [exactly_threshold(store, now, content=f"m{i}") for i in range(6)]
    store.execute("UPDATE pending_memory SET content = 'poison' WHERE id = ?", (ids[3],))
    refuse(store, "refuse_poison", "INSERT", "long_term_memory", "NEW.content = 'poison'", "poisoned row")
    run = make_engine(store, clock, batch_size=2).run_job("promote")
    assert run.status == "failed"
    assert "poisoned row" in run.error
    assert run.traceback and "Traceback" in run.traceback
    # Batches before the failing one committed; the failing batch left no trace.
    assert count(store, "long_term_memory") == 2
    assert count(store, "pending_memory") == 4
    pending = {r[0] for r in store.execute("SELECT id FROM pending_memory")}
    moved = {r[0] for r in store.execute("SELECT source_pending_id FROM long_term_memory")}
    assert pending | moved == set(ids) and not pending & moved


@pytest.mark.parametrize("key, value", [
    ("w_recency", -0.1), ("w_importance", 1.5), ("threshold", 1.2), ("threshold", -0.01),
    ("cap", -1), ("ttl_days", -3), ("batch_size", 0),
])
def test_out_of_range_config_is_rejected_naming_the_key(key, value):
    with pytest.raises(ConfigError) as err:
        parse_config({"jobs": {"promote": {key: value}}})
    assert f"[jobs.promote] {key}" in str(err.value)
    assert "\n" not in str(err.value)


def test_config_file_parameters_apply_on_every_run(store, clock):
    config = parse_config({"jobs": {"promote": {"threshold": 0.2, "schedule": "45s"}}})
    engine = Engine(store, config, clock)
    add_pending(store, clock(), importance=5, confidence=0.5, accesses=0, last_access=clock())
    assert engine.run_job("promote").result["promoted"] == 1
    assert engine.job("promote").schedule == "45s"
    assert engine.job("promote").config["threshold"] == 0.2
    assert PromoteConfig().threshold == 0.6


@pytest.mark.parametrize("decay, days", [(0.9, 300), (0.5, 50), (0.995, 365 * 20)])
def test_a_long_unused_memory_scores_0_recency_rather_than_failing_the_run(store, clock, decay, days):
    """PostgreSQL's pow() raises 'underflow' below the smallest double (0.9 ** 7200 hours); SQLite gives 0.
    Both must score such a memory with recency 0 and go on (the TTL expiry scores it: it expires)."""
    stale = add_pending(store, clock(), importance=1, confidence=0.1, last_access=clock() - timedelta(days=days),
                        created=clock() - timedelta(days=days))
    engine = Engine(store, Config(jobs={"promote": {"recency_decay": decay}}), clock)
    run = engine.run_job("promote")
    assert run.status == "success", run.error
    assert run.result["expired"] == 1
    assert count(store, "pending_memory", "id = ?", (stale,)) == 0


def test_a_subnormal_importance_or_confidence_is_stored_as_0(store, clock):
    """5e-324 passes the range check; PostgreSQL's arithmetic on it would fail every promote run."""
    engine = Engine(store, Config(), clock)
    low = engine.remember("x", confidence=5e-324, importance=5e-324, keep=True)
    assert store.execute("SELECT importance, confidence FROM pending_memory WHERE id = ?", (low,)).fetchone() == (0, 0)
    assert engine.run_job("promote").result["promoted"] == 1
