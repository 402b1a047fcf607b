"""The decay job: retention math, soft then hard delete, pinned, reinforcement; on SQLite and on PostgreSQL."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest

from memtui.engine import Engine
from memtui.engine.config import Config
from memtui.engine.jobs.decay import DecayConfig, retention
from tests.factories import add_long_term, count

pytestmark = pytest.mark.both_backends


def test_default_memory_halves_in_30_days():
    cfg = DecayConfig()
    assert retention(30, 5, 0, cfg) == pytest.approx(0.5)
    assert retention(0, 5, 0, cfg) == 1.0
    # Importance and recalls stretch the curve: S grows with (0.5 + i/10)·(1 + recalls).
    assert retention(60, 10, 0, cfg) == pytest.approx(math.exp(-60 / (cfg.s0_days * 1.5)))
    assert retention(30, 5, 1, cfg) == pytest.approx(math.sqrt(0.5))
    assert cfg.s0_days == pytest.approx(43.28, abs=0.01)


def days_to_floor(importance=5.0, recalls=0, cfg=DecayConfig()):
    return -math.log(cfg.floor) * cfg.s0_days * (0.5 + importance / 10) * (1 + recalls)


def test_soft_deletes_exactly_when_retention_falls_below_the_floor(engine, store, clock):
    now = clock()
    limit = days_to_floor()  # about 129.7 days for a default memory
    above = add_long_term(store, created=now - timedelta(days=200), reinforced=now - timedelta(days=limit - 0.01))
    below = add_long_term(store, created=now - timedelta(days=200), reinforced=now - timedelta(days=limit + 0.01))
    run = engine.run_job("decay")
    assert run.result == {"soft_deleted": 1, "hard_deleted": 0, "pass": "full"}
    deleted = dict(store.execute("SELECT id, deleted_at FROM long_term_memory"))
    assert deleted[above] is None
    assert deleted[below] == now.timestamp()


def test_importance_and_recalls_protect_a_memory(engine, store, clock):
    now = clock()
    age = timedelta(days=days_to_floor() + 5)
    plain = add_long_term(store, created=now - age, reinforced=now - age)
    important = add_long_term(store, created=now - age, reinforced=now - age, importance=9)
    recalled = add_long_term(store, created=now - age, reinforced=now - age, recalls=1)
    engine.run_job("decay")
    alive = {r[0] for r in store.execute("SELECT id FROM long_term_memory WHERE deleted_at IS NULL")}
    assert alive == {important, recalled}
    assert plain not in alive


def test_young_and_pinned_memories_never_decay(engine, store, clock):
    now = clock()
    # Retention can't fall below the floor in under 7 days unless importance is 0:
    young = add_long_term(store, created=now - timedelta(days=6), reinforced=now - timedelta(days=400), importance=0)
    pinned = add_long_term(store, created=now - timedelta(days=900), reinforced=now - timedelta(days=900),
                           importance=0, pinned=True)
    run = engine.run_job("decay")
    assert run.result["soft_deleted"] == 0
    assert count(store, "long_term_memory", "deleted_at IS NULL") == 2
    clock.advance(days=400)
    engine.run_job("decay")
    assert {r[0] for r in store.execute("SELECT id FROM long_term_memory WHERE deleted_at IS NULL")} == {pinned}
    assert young in {r[0] for r in store.execute("SELECT id FROM long_term_memory")}


def test_soft_deleted_memories_are_hard_deleted_after_the_grace_period(engine, store, clock):
    now = clock()
    old = now - timedelta(days=500)
    mid = add_long_term(store, created=old, reinforced=old)
    assert engine.run_job("decay").result["soft_deleted"] == 1
    clock.advance(days=29)
    assert engine.run_job("decay").result == {"soft_deleted": 0, "hard_deleted": 0, "pass": "full"}  # a day passed
    clock.advance(days=1, seconds=1)
    assert engine.run_job("decay").result == {"soft_deleted": 0, "hard_deleted": 1, "pass": "full"}
    assert count(store, "long_term_memory", "id = ?", (mid,)) == 0


def test_reinforcement_resets_the_clock_and_restores_a_soft_deleted_memory(engine, store, clock):
    now = clock()
    old = now - timedelta(days=500)
    mid = add_long_term(store, created=old, reinforced=old)
    engine.run_job("decay")
    engine.reinforce(mid)
    row = store.execute("SELECT recall_count, last_reinforced_at, deleted_at FROM long_term_memory WHERE id = ?",
                        (mid,)).fetchone()
    assert row == (1, now.timestamp(), None)
    clock.advance(days=100)
    assert engine.run_job("decay").result["soft_deleted"] == 0  # S doubled by the recall


def test_reinforcing_an_unknown_memory_is_an_error(engine):
    from memtui.engine.memory import MemoryInputError

    with pytest.raises(MemoryInputError, match="no long-term memory with id 999"):
        engine.reinforce(999)


def test_batches_do_not_change_the_outcome(store, clock):
    now = clock()
    old = now - timedelta(days=500)
    for _ in range(23):
        add_long_term(store, created=old, reinforced=old)
    engine = Engine(store, Config(jobs={"decay": {"batch_size": 5}}), clock)
    assert engine.run_job("decay").result["soft_deleted"] == 23


def test_a_memory_soft_deleted_anew_while_the_run_lists_is_not_hard_deleted(store, clock):
    """Between the listing and the delete, the agent recalled the memory and it was soft-deleted
    again: its grace period starts over, so the delete must re-check it."""
    from memtui.engine.jobs import decay
    from memtui.engine.jobs.base import JobContext

    now = clock()
    mid = add_long_term(store, created=now - timedelta(days=500), deleted=now - timedelta(days=40))

    class Interleaved(JobContext):
        def check(self):  # called before each batch: the moment another writer may slip in
            with store.atomic():
                store.execute("UPDATE long_term_memory SET deleted_at = ? WHERE id = ?", (now.timestamp(), mid))

    result = decay.run(Interleaved(store=store, clock=clock, config=DecayConfig(), job="decay"))
    assert result["hard_deleted"] == 0
    assert count(store, "long_term_memory", "id = ?", (mid,)) == 1
