"""``memtui why ID`` / ``Engine.story``: one memory's story, computed with the jobs' own formulas — a pending
memory's score term by term and its expiry, a long-term memory's retention and the day it retires."""
from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest

from memtui.engine import Config, Engine
from memtui.engine.jobs.decay import DecayConfig
from memtui.engine.memory import MemoryInputError
from memtui.engine.story import describe
from tests.factories import add_long_term, add_pending, assert_one_line_error, ts

pytestmark = pytest.mark.both_backends


def text(story) -> str:
    return "\n".join(describe(story, when=lambda d: d.isoformat()))


def test_a_pending_memory_shows_its_score_term_by_term_and_its_expiry(engine, store, clock):
    now = clock()
    mid = add_pending(store, now, content="Émile likes tea", importance=8, confidence=0.5, accesses=2,
                      last_access=now - timedelta(hours=10))
    told = engine.story(mid)
    assert told.tier == "pending" and told.uses == 2
    assert told.terms == pytest.approx({"recency": 0.995 ** 10, "frequency": 0.2, "confidence": 0.5,
                                        "importance": 0.8})
    expected = 0.2 * 0.995 ** 10 + 0.3 * 0.2 + 0.25 * 0.5 + 0.25 * 0.8
    assert told.score == pytest.approx(expected)
    assert told.expires == now + timedelta(days=7)
    words = text(told)
    assert f"#{mid} short-term" in words and "Émile likes tea" in words
    assert f"below the threshold 0.6 by {0.6 - expected:.3f}" in words
    assert f"expires on {(now + timedelta(days=7)).isoformat()}" in words
    assert "(the next run scores it again)" in words  # new: no promote run has scored it yet
    engine.run_job("promote")
    assert "the next run scores it again" not in text(engine.story(mid))  # scored, below, left alone


def test_the_score_is_the_one_promote_acts_on(engine, store, clock):
    """A memory ``why`` says qualifies is promoted by the next run; one it says is below stays."""
    now = clock()
    high = add_pending(store, now, importance=10, confidence=1, accesses=10)
    low = add_pending(store, now, importance=1, confidence=0.1)
    assert "qualifies" in text(engine.story(high)) and "below the threshold" in text(engine.story(low))
    engine.run_job("promote")
    assert engine.story(high).tier == "long_term" and engine.story(low).tier == "pending"


def test_a_score_just_below_the_threshold_does_not_read_as_the_threshold(engine, store, clock):
    # 0.2 (recency 1) + 0.25 * 0.7992 + 0.25 * 0.8 = 0.5998: to three decimals 0.600, which promotes
    mid = add_pending(store, clock(), importance=8, confidence=0.7992)
    words = text(engine.story(mid))
    assert "score now 0.5998 = " in words and "below the threshold 0.6 by 0.0002;" in words


def test_a_kept_memory_says_it_promotes_whatever_its_score(engine, store, clock):
    mid = add_pending(store, clock(), importance=0, confidence=0, remember=True)
    assert "marked keep: promotes at the next promote run" in text(engine.story(mid))
    engine.run_job("promote")
    told = text(engine.story(mid))  # promoted with 0.200 against 0.6: the story says why
    assert "with score 0.200 (threshold 0.6; marked keep, so promoted below it)" in told
    assert "pinned: never retires" in told


def test_a_promoted_memory_is_found_by_the_id_remember_gave_and_says_when_it_retires(engine, store, clock):
    now = clock()
    mid = engine.remember("Alice's flight is at 9am", importance=10, confidence=1)
    engine.record_access(mid)
    for _ in range(9):
        engine.record_access(mid)
    engine.run_job("promote")
    told = engine.story(mid)
    assert told.tier == "long_term" and told.from_pending == mid
    assert engine.story(told.id, long_term=True) == told
    # retire_at, kept by the store, is the instant R = exp(-Δt/S) reaches the floor
    cfg = DecayConfig()
    strength_s = cfg.s0_days * 86400 * (0.5 + 10 / 10) * (1 + 0)
    assert told.retires.timestamp() == pytest.approx(ts(now) + strength_s * math.log(1 / cfg.floor), abs=0.01)
    assert told.retention == pytest.approx(1.0)
    words = text(told)
    assert f"#{told.id} long-term from #{mid}" in words
    assert f"retires on {told.retires.isoformat()}" in words
    # decay agrees: not a second before, and at that time it goes
    clock.set(told.retires - timedelta(seconds=1))
    assert engine.run_job("decay").result["soft_deleted"] == 0
    clock.set(told.retires + timedelta(seconds=1))
    assert engine.run_job("decay").result["soft_deleted"] == 1
    faded = engine.story(mid)
    assert faded.deleted is not None and faded.retires is None
    assert faded.purged == faded.deleted + timedelta(days=cfg.grace_days)
    assert "faded: soft-deleted by decay" in text(faded)


def test_pinned_and_young_memories(engine, store, clock):
    now = clock()
    pinned = add_long_term(store, created=now, pinned=True)
    assert "pinned: never retires" in text(engine.story(pinned, long_term=True))
    # its retention crossed the floor already (at importance 0 after 64.8 days), but decay leaves a memory
    # younger than min_age_days alone (an import can bring in a memory last reinforced long ago)
    weak = add_long_term(store, created=now, reinforced=now - timedelta(days=70), importance=0)
    told = engine.story(weak, long_term=True)
    assert told.retires == now + timedelta(days=DecayConfig().min_age_days)


def test_a_date_already_past_is_told_as_overdue_and_what_the_next_run_does(engine, store, clock):
    """A story read after an expiry, a retirement or a grace period ended, before the job ran, says the
    next run acts: not a date in the past as if it were ahead."""
    now = clock()
    pending = add_pending(store, now - timedelta(days=8), importance=0, confidence=0)  # TTL 7 days
    words = text(engine.story(pending))
    assert f"expired by age on {(now - timedelta(days=1)).isoformat()}: the next promote run deletes it" in words
    assert "expires on" not in words
    due = add_long_term(store, created=now - timedelta(days=100), importance=0)  # floor crossed at 64.8 days
    words = text(engine.story(due, long_term=True))
    assert "due to retire since " in words and "the next decay run soft-deletes it" in words
    assert "retires on" not in words
    faded = add_long_term(store, created=now - timedelta(days=200), importance=0, deleted=now - timedelta(days=31))
    words = text(engine.story(faded, long_term=True))
    assert f"its grace ended on {(now - timedelta(days=1)).isoformat()}: the next decay run deletes it for good" \
        in words
    assert "deleted for good on" not in words
    clock.set(now - timedelta(days=2))  # read before those dates: told as ahead
    assert f"expires on {(now - timedelta(days=1)).isoformat()}" in text(engine.story(pending))
    assert f"deleted for good on {(now - timedelta(days=1)).isoformat()}" in text(engine.story(faded, long_term=True))


def test_the_story_uses_this_database_s_job_config(store, clock):
    engine = Engine(store, Config(jobs={"promote": {"threshold": 0.3}}), clock)
    try:
        mid = add_pending(store, clock(), importance=5, confidence=0.5)
        assert engine.story(mid).threshold == 0.3
        assert "qualifies (threshold 0.3" in text(engine.story(mid))
    finally:
        engine.stop(timeout=5)


def test_an_unknown_id_is_a_clear_error(engine):
    with pytest.raises(MemoryInputError, match="no memory with id 99"):
        engine.story(99)
    with pytest.raises(MemoryInputError, match="no long-term memory with id 99"):
        engine.story(99, long_term=True)


def test_cli_why(cli, db_target):
    made = cli("remember", "Bob's train leaves at 3pm", "--importance", "2", "--db", db_target)
    assert made.code == 0, made.err
    mid = int(made.out)
    result = cli("why", mid, "--db", db_target)
    assert result.code == 0 and result.err == ""
    assert result.out.startswith(f"#{mid} short-term (pending promotion): Bob's train leaves at 3pm\n")
    assert "score now" in result.out and "expires on" in result.out
    told = json.loads(cli("why", mid, "--json", "--db", db_target).out)
    assert told["tier"] == "pending" and told["terms"]["importance"] == pytest.approx(0.2)
    assert_one_line_error(cli("why", 4242, "--db", db_target),
                          "no memory with id 4242; for a long-term memory's own id, add --long-term")
    assert_one_line_error(cli("why", 1, "--long-term", "--db", db_target), "no long-term memory with id 1")
    assert cli("why", "x", "--db", db_target).code == 2


# -- issue 12: the promotion score kept, merges and supersessions, memories that left the store --------------

def test_a_promoted_memory_keeps_the_score_term_by_term_it_was_promoted_with(engine, store, clock):
    mid = engine.remember("Alice's flight is at 9am", sender="alice", importance=10, confidence=1)
    for _ in range(10):
        engine.record_access(mid)
    terms_then = engine.story(mid).terms
    score_then = engine.story(mid).score
    engine.run_job("promote")
    clock.advance(timedelta(days=3))  # the score now would be lower: recency fell
    told = engine.story(mid)
    assert told.tier == "long_term"
    assert told.promotion_terms == pytest.approx(terms_then)
    assert told.promotion_score == pytest.approx(score_then) and told.promotion_threshold == 0.6
    assert f"with score {score_then:.3f} (threshold 0.6): recency 1.00, frequency 1.00" in text(told)


def test_the_story_tells_what_was_merged_into_a_memory_and_what_replaced_one(engine, store, clock):
    now = clock()
    kept = add_long_term(store, created=now - timedelta(days=2), content="Alice likes aisle seats")
    copy = add_long_term(store, created=now - timedelta(days=1), content="Note: alice likes aisle seats.")
    older = add_long_term(store, created=now - timedelta(days=2), content="meeting with the design team at 2pm Friday")
    newer = add_long_term(store, created=now - timedelta(days=1),
                          content="correction: the design team meeting moved to 3pm Friday")
    run = engine.run_job("dedupe")
    assert (run.result["merged"], run.result["superseded"]) == (1, 1)
    survivor = text(engine.story(kept, long_term=True))
    assert f"#{copy} 'Note: alice likes aisle seats.' merged into it" in survivor
    merged = engine.story(copy, long_term=True)
    assert merged.superseded_by == kept
    assert f"merged into #{kept}" in text(merged) and f"#{kept} stands for it now" in text(merged)
    replaced = text(engine.story(older, long_term=True))
    assert f"superseded by #{newer} 'correction: the design team meeting moved to 3pm Friday'" in replaced
    assert "cue 'correction'" in replaced
    assert f"it superseded #{older}" in text(engine.story(newer, long_term=True))


def test_a_memory_that_left_the_store_is_told_from_its_history(engine, store, clock, cli, db_target):
    expired = engine.remember("a passing thought", importance=0, confidence=0)
    clock.advance(timedelta(days=8))
    assert engine.run_job("promote").result["expired"] == 1
    told = engine.story(expired)
    assert told.tier == "gone"
    assert told.history[-1].action == "expire" and told.history[-1].old_text == "a passing thought"
    assert text(told).startswith(f"#{expired} gone: a passing thought\nexpired before promotion on ")
    assert "not promoted within 7 days" in text(told)
    faded = add_long_term(store, created=clock() - timedelta(days=400), content="an old plan")
    decay = engine.run_job("decay")
    clock.advance(timedelta(days=31))
    engine.run_job("decay")
    assert decay.result["soft_deleted"] == 1
    gone = text(engine.story(faded, long_term=True))
    assert "deleted for good by decay" in gone and "faded (soft-deleted by decay)" in gone


def test_memory_why_is_the_story_as_data(store, clock):
    from memtui.engine.agent import Memory

    memory = Memory(store, clock)
    mid = memory.remember("Alice prefers aisle seats", sender="alice", importance=7)
    told = memory.why(mid)
    assert (told.tier, told.content, told.threshold) == ("pending", "Alice prefers aisle seats", 0.6)
    with pytest.raises(MemoryInputError, match="no memory with id 999"):
        memory.why(999)
