"""Each pending memory's stored score (``pending_memory.last_score``, migrations 0006 and 0008), for the memory view.

The database computes it (a trigger) on every write to a scoring input: the
score at the memory's last use, recency 1, from the weights promote keeps in
``setting``. After a use, or for a new memory, that is the score then; after a
plain-SQL edit of another input it is an upper bound. A run writes nothing to a
memory it scores below the threshold. A full pass fills the scores a store from
before 0006 lacks and writes again those more than ``SCORE_DRIFT`` off the score
now (recency decayed, or the weights changed). A stored score is an upper bound
on the score now while the memory is not written to.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from memtui.engine.jobs.promote import SCORE_DRIFT
from tests.factories import add_pending

pytestmark = pytest.mark.both_backends


def stored(store, memory_id: int) -> tuple[float | None, bool]:
    """(last_score, rescore) of a pending memory."""
    score, flag = store.execute("SELECT last_score, rescore FROM pending_memory WHERE id = ?",
                                (memory_id,)).fetchone()
    return score, bool(flag)


def score_now(engine, memory_id: int) -> float:
    return engine.story(memory_id).score


def run(engine) -> dict:
    info = engine.run_job("promote")
    assert info.status == "success", info.error
    return info.result


def test_a_new_memory_has_its_score_stored_at_once_and_a_run_below_the_threshold_writes_nothing(engine, store, clock):
    low = engine.remember("a passing remark", importance=1, confidence=0.2)
    mid = engine.remember("alice flies on tuesdays", importance=6, confidence=0.6)
    high = engine.remember("alice is allergic to peanuts", importance=10, confidence=1.0)
    for memory_id in (low, mid, high):  # the score now, before any run: recency is 1 at creation
        assert stored(store, memory_id) == (pytest.approx(score_now(engine, memory_id), abs=1e-9), False)
    assert stored(store, mid)[0] > stored(store, low)[0]
    before = {memory_id: stored(store, memory_id) for memory_id in (low, mid)}
    clock.advance(minutes=5)
    assert run(engine)["promoted"] == 1  # the high one: gone to long-term
    assert store.execute("SELECT count(*) FROM pending_memory WHERE id = ?", (high,)).fetchone()[0] == 0
    # Five minutes of recency is under SCORE_DRIFT: not written again, even by the first run's full pass.
    assert {memory_id: stored(store, memory_id) for memory_id in (low, mid)} == before


def test_a_use_stores_the_score_of_that_use_and_plain_sql_an_upper_bound(store, clock):
    from memtui.engine import Engine
    from memtui.engine.config import Config

    engine = Engine(store, Config(jobs={"promote": {"full_pass_every_h": 100.0}}), clock)
    memory_id = engine.remember("alice likes window seats", importance=4, confidence=0.5)
    run(engine)
    before = stored(store, memory_id)[0]
    clock.advance(hours=30)
    engine.record_access(memory_id)
    after = stored(store, memory_id)
    assert after == (pytest.approx(score_now(engine, memory_id), abs=1e-9), False)  # exact, with no run
    assert after[0] > before  # a use raised the frequency term
    clock.advance(hours=30)
    # An agent's plain SQL: the score at the last use with the new importance, above the score now.
    store.execute("UPDATE pending_memory SET importance = ? WHERE id = ?", (5.0, memory_id))
    bound = stored(store, memory_id)[0]
    assert bound == pytest.approx(after[0] + 0.25 * 0.1, abs=1e-9)
    assert bound - score_now(engine, memory_id) > SCORE_DRIFT
    result = run(engine)
    assert (result["pass"], result["scored"]) == ("incremental", 1)
    assert stored(store, memory_id)[0] == bound  # an incremental run writes nothing to it
    clock.advance(hours=41)
    assert run(engine)["full_because"] == "safety net"
    assert stored(store, memory_id) == (pytest.approx(score_now(engine, memory_id), abs=1e-9), False)


def test_new_weights_reach_the_trigger_and_the_scores_stored_before(store, clock):
    from memtui.engine import Engine
    from memtui.engine.config import Config

    def engine(**weights):
        return Engine(store, Config(jobs={"promote": weights} if weights else {}), clock)

    first = engine().remember("alice reads on trains", importance=2, confidence=0.3)
    run(engine())
    clock.advance(minutes=1)
    heavy = engine(w_recency=0.5, w_importance=0.1)
    assert run(heavy)["full_because"] == "scoring settings changed"
    assert stored(store, first)[0] == pytest.approx(score_now(heavy, first), abs=1e-9)  # corrected upwards
    second = heavy.remember("alice hates queues", importance=2, confidence=0.3)
    assert stored(store, second)[0] == pytest.approx(0.5 + 0.25 * 0.3 + 0.1 * 0.2, abs=1e-9)


def test_the_first_run_after_the_upgrade_is_a_full_pass_that_fills_every_missing_score(engine, store, clock):
    ids = [add_pending(store, clock(), content=f"note {i}", importance=i, confidence=0.3) for i in range(5)]
    run(engine)
    # As migration 0006 leaves a store promote ran on before: every flag clear, no score stored, and a
    # checkpoint written by a version that did not store them.
    with store.atomic():
        store.execute("UPDATE pending_memory SET last_score = NULL")
        value = json.loads(store.execute("SELECT value FROM job_checkpoint WHERE job = 'promote'").fetchone()[0])
        value.pop("scores_stored")
        store.execute("UPDATE job_checkpoint SET value = ? WHERE job = 'promote'", (json.dumps(value),))
    clock.advance(minutes=1)
    result = run(engine)
    assert (result["pass"], result["full_because"]) == ("full", "scores not stored yet")
    for memory_id in ids:
        assert stored(store, memory_id) == (pytest.approx(score_now(engine, memory_id), abs=1e-9), False)
    clock.advance(minutes=1)
    assert run(engine)["pass"] == "incremental"  # once filled, never again for that reason


def test_a_full_pass_writes_again_only_the_scores_that_drifted(engine, store, clock):
    fresh = engine.remember("used a moment ago", importance=5, confidence=0.5)  # recency 1.0: it will drift
    # Last used 60 days ago: its recency is already ~0, so time no longer moves its score.
    old = add_pending(store, clock(), content="used long ago", importance=8, confidence=0.9,
                      last_access=clock() - timedelta(days=60), created=clock() - timedelta(days=1))
    run(engine)
    first = {memory_id: stored(store, memory_id)[0] for memory_id in (fresh, old)}
    clock.advance(hours=24)  # past the hourly safety net: the next run is a full pass
    result = run(engine)
    assert (result["pass"], result["full_because"]) == ("full", "safety net")
    fresh_now = score_now(engine, fresh)
    assert first[fresh] - fresh_now > SCORE_DRIFT  # recency lost 0.2·(1 − 0.995^24) ≈ 0.023 in a day
    assert stored(store, fresh) == (pytest.approx(fresh_now, abs=1e-9), False)
    assert first[old] - score_now(engine, old) < SCORE_DRIFT
    assert stored(store, old) == (first[old], False)  # close enough still: not written again


def test_a_stored_score_is_an_upper_bound_on_the_score_now(engine, store, clock):
    ids = [engine.remember(f"memory {i}", importance=i, confidence=0.1 * i) for i in range(8)]
    run(engine)
    for hours in (1, 5, 30, 100):
        clock.advance(hours=hours)
        for memory_id in ids:
            score, flagged = stored(store, memory_id) if store.execute(
                "SELECT 1 FROM pending_memory WHERE id = ?", (memory_id,)).fetchone() else (None, True)
            if not flagged:
                assert score >= score_now(engine, memory_id) - 1e-9
        run(engine)
