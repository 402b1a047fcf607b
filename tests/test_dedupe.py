"""Memory that stays clean (issue 12): a repeat is a use, not a new row; the dedupe job merges near-duplicates
into the oldest, never merges look-alikes that differ in meaning, retires a memory a newer one corrects
(offline only on an explicit correction cue; otherwise as the model says, after validating its whole answer),
plans exactly what it does in a dry run, loses nothing when killed part-way, and compares only what is new.
On SQLite and on PostgreSQL.

Every check reads the database. The model is litellm itself answering from ``mock_response``
(tests/llm_mock.py): nothing of memtui is mocked. The SIGKILL test pauses a child process inside a merge's
open transaction (a wrapper that calls the real history writer, then waits to be killed), so the kill
lands at a known point, with no sleep and no race.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from memtui.engine import Engine, FakeClock
from memtui.engine.agent import Memory
from memtui.engine.config import Config
from memtui.models.text import content_key
from tests.factories import count, snapshot
from tests.llm_mock import model  # noqa: F401  (a fixture)

pytestmark = pytest.mark.both_backends

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)  # the conftest clock
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

AISLE = "Alice prefers aisle seats on flights"
AISLE_NOTE = "Note: alice prefers aisle seats on flights."
AISLE_REMEMBER = "Remember that Alice prefers an aisle seat on flights"
DESIGN = "meeting with the design team at 2pm Friday"
DESIGN_CORRECTION = "correction: the design team meeting moved to 3pm Friday"
DESIGN_NO_CUE = "the design team meeting is at 3pm Friday"


# -- helpers ------------------------------------------------------------------------------

def add_memory(store, content: str, *, days_ago: float = 1.0, sender: str = "alice", importance: float = 5.0,
               confidence: float = 0.5, recalls: int = 0, pinned: bool = False, keyed: bool = True) -> int:
    """A long-term memory written with plain SQL (``keyed``: with the content_key memtui writes on insert;
    without, as an agent's own INSERT leaves it)."""
    when = (NOW - timedelta(days=days_ago)).timestamp()
    return store.execute(
        "INSERT INTO long_term_memory (content, kind, sender, importance, confidence, created_at,"
        " last_reinforced_at, recall_count, pinned, content_key) VALUES (?, 'note', ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (content, sender, importance, confidence, when, when, recalls, bool(pinned),
         content_key(content) if keyed else None)).fetchone()[0]


def rows(store) -> dict[int, tuple]:
    """id -> (content, superseded_by, superseded_at, deleted_at, importance, confidence, recall_count, pinned,
    last_reinforced_at) of every long-term memory."""
    return {r[0]: tuple(r[1:]) for r in store.execute(
        "SELECT id, content, superseded_by, superseded_at, deleted_at, importance, confidence, recall_count,"
        " pinned, last_reinforced_at FROM long_term_memory ORDER BY id")}


def live_ids(store) -> set[int]:
    return {r[0] for r in store.execute(
        "SELECT id FROM long_term_memory WHERE superseded_by IS NULL AND deleted_at IS NULL")}


def history(store) -> list[tuple]:
    """(memory_id, tier, action, other_id, old_text, new_text, run_id) of every memory_history row, in order."""
    return [tuple(r) for r in store.execute(
        "SELECT memory_id, tier, action, other_id, old_text, new_text, run_id FROM memory_history ORDER BY id")]


def memory_tables(store) -> dict:
    return {table: store.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            for table in ("long_term_memory", "memory_history")}


def ok(run):
    assert run.status == "success", (run.error, run.traceback)
    return run.result


# -- 1. a repeat is a use of the memory it repeats ------------------------------------------------

def feedback_loop(memory: Memory, sender: str, reinforce: bool, times: int = 100) -> list:
    """recall → remember the hit's text, ``times`` times; returns what each remember returned."""
    returned = []
    for _ in range(times):
        hits = memory.recall("aisle seats", sender=sender, reinforce=reinforce)
        assert len(hits) == 1, hits
        returned.append(memory.remember(hits[0].content, sender=sender))
    return returned


def test_recall_then_store_the_recalled_text_100_times_leaves_one_pending_memory(store, clock):
    """One remember, then 100 × (recall → remember the hit's text): one row per sender. Its access count
    is 100 for the 100 repeats, plus 100 for the 100 recalls when recall reinforces (the default)."""
    memory = Memory(store, clock)
    first = {sender: memory.remember(AISLE, sender=sender) for sender in ("alice", "bob")}
    assert not any(f.repeat for f in first.values())
    for sender, reinforce in (("alice", True), ("bob", False)):
        returned = feedback_loop(memory, sender, reinforce)
        assert {(int(r), r.repeat, r.tier) for r in returned} == {(first[sender], True, "pending")}
    assert store.execute("SELECT id, sender, content, access_count FROM pending_memory ORDER BY id").fetchall() == [
        (first["alice"], "alice", AISLE, 200), (first["bob"], "bob", AISLE, 100)]
    assert count(store, "long_term_memory") == 0


def test_after_promotion_the_loop_counts_recalls_on_the_long_term_memory(store, clock, engine):
    """Promoted, the same loop still adds no row: each repeat is recall_count + 1 on the long-term memory
    (as is each reinforcing recall), and remember names it by the pending id it came from."""
    memory = Memory(store, clock)
    first = {sender: memory.remember(AISLE, sender=sender, keep=True) for sender in ("alice", "bob")}
    assert ok(engine.run_job("promote"))["promoted"] == 2
    long_ids = dict(store.execute("SELECT source_pending_id, id FROM long_term_memory WHERE recall_count = 0"))
    assert set(long_ids) == set(first.values())
    for sender, reinforce in (("alice", True), ("bob", False)):
        returned = feedback_loop(memory, sender, reinforce)
        assert {(int(r), r.repeat, r.tier) for r in returned} == {(first[sender], True, "long_term")}
    assert count(store, "pending_memory") == 0
    assert store.execute("SELECT id, sender, recall_count FROM long_term_memory ORDER BY id").fetchall() == sorted([
        (long_ids[first["alice"]], "alice", 200), (long_ids[first["bob"]], "bob", 100)])


def test_case_punctuation_spacing_and_width_variants_are_repeats_another_sender_is_not(store, clock):
    memory = Memory(store, clock)
    first = memory.remember(AISLE + ".", sender="alice")
    variants = ["alice prefers aisle seats on flights", "  ALICE   prefers aisle-seats, on flights!!",
                "Alice\tprefers\naisle seats on flights…", "Ａｌｉｃｅ prefers aisle seats on flights",
                "“Alice” prefers (aisle) seats on flights?"]
    for text in variants:
        again = memory.remember(text, sender="alice", importance=8 if text == variants[0] else 1)
        assert (int(again), again.repeat) == (first, True), text
    bob = memory.remember(AISLE, sender="bob")
    nobody = memory.remember(AISLE, sender="")
    reworded = memory.remember(AISLE_REMEMBER, sender="alice")  # other words: the dedupe job's, not a repeat
    assert not (bob.repeat or nobody.repeat or reworded.repeat)
    assert len({first, bob, nobody, reworded}) == 4
    got = {r[0]: r[1:] for r in store.execute("SELECT id, sender, access_count, importance FROM pending_memory")}
    assert got == {first: ("alice", len(variants), 8.0), bob: ("bob", 0, 5.0), nobody: ("", 0, 5.0),
                   reworded: ("alice", 0, 5.0)}


def test_a_repeat_restores_a_long_term_memory_decay_had_faded(store, clock, engine):
    memory = Memory(store, clock)
    first = memory.remember(AISLE, sender="alice", keep=True)
    ok(engine.run_job("promote"))
    store.execute("UPDATE long_term_memory SET deleted_at = ?", ((NOW - timedelta(days=1)).timestamp(),))
    again = memory.remember("alice prefers AISLE seats on flights!", sender="alice")
    assert (int(again), again.repeat, again.tier) == (first, True, "long_term")
    (lt_id, deleted, recalls), = store.execute(
        "SELECT id, deleted_at, recall_count FROM long_term_memory").fetchall()
    assert (deleted, recalls) == (None, 1)
    assert [h[:3] for h in history(store)] == [(lt_id, "long_term", "restore")]


def test_an_import_counts_repeats_too(store, clock, engine, cli, db_target, tmp_path):
    memory = Memory(store, clock)
    memory.remember(AISLE, sender="alice")  # scores too low to promote: stays pending
    kept = memory.remember("Alice lives in Berlin", sender="alice", keep=True)
    assert ok(engine.run_job("promote"))["promoted"] == 1
    lines = [{"type": "memory", "content": "ALICE prefers aisle-seats on flights!", "sender": "alice"},
             {"type": "memory", "content": "alice lives in berlin.", "sender": "alice"},
             {"type": "memory", "content": "Alice's dog is called Rex", "sender": "alice"},
             {"type": "memory", "content": "alice's dog is called rex!", "sender": "alice"},  # repeats the line above
             {"type": "memory", "content": AISLE, "sender": "bob"}]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    path = tmp_path / "memories.jsonl"
    path.write_text(text, encoding="utf-8")
    result = cli("import", path, "--db", db_target)  # engine.importer.import_lines, in one transaction
    assert result.code == 0, result.err
    assert "3 memories repeated one already kept" in result.out, result.out
    assert store.execute("SELECT content, sender, access_count FROM pending_memory ORDER BY id").fetchall() == [
        (AISLE, "alice", 1), ("Alice's dog is called Rex", "alice", 1), (AISLE, "bob", 0)]
    assert store.execute("SELECT source_pending_id, recall_count FROM long_term_memory").fetchall() == [(kept, 1)]


# -- 2. near-duplicates merge into the oldest -----------------------------------------------------

def test_paraphrases_merge_into_the_oldest_with_the_best_scores_and_a_history_row_each(engine, store, clock):
    # Written newest first, so the oldest has the highest id: it is chosen by age, not by id.
    newest = add_memory(store, AISLE_REMEMBER, days_ago=1, importance=6, confidence=0.4, recalls=5)
    middle = add_memory(store, AISLE_NOTE, days_ago=2, importance=8, confidence=0.9, recalls=3, pinned=True)
    oldest = add_memory(store, AISLE, days_ago=3, importance=4, confidence=0.2, recalls=2)
    other = add_memory(store, "Bob's favourite colour is green", days_ago=2)
    bobs = add_memory(store, AISLE, days_ago=1, sender="bob")  # the same words, another sender: not merged
    before = rows(store)

    run = engine.run_job("dedupe")
    result = ok(run)
    assert (result["merged"], result["superseded"]) == (2, 0)

    after = rows(store)
    content, by, at, deleted, importance, confidence, recalls, pinned, reinforced = after[oldest]
    assert (content, by, at, deleted) == (AISLE, None, None, None)
    assert (importance, confidence, recalls, bool(pinned)) == (8.0, 0.9, 10, True)
    assert reinforced == before[newest][8]  # the latest reinforcement of the group
    for retired in (middle, newest):
        assert after[retired][1:3] == (oldest, NOW.timestamp())
        assert after[retired][0] == before[retired][0]  # the row is kept, word for word
    assert after[other] == before[other] and after[bobs] == before[bobs]
    assert live_ids(store) == {oldest, other, bobs}
    assert sorted(history(store)) == sorted([
        (middle, "long_term", "merge", oldest, AISLE_NOTE, AISLE, run.id),
        (newest, "long_term", "merge", oldest, AISLE_REMEMBER, AISLE, run.id)])

    memory = Memory(store, clock)
    assert [h.id for h in memory.recall("aisle seat", sender="alice")] == [oldest]
    everything = memory.recall("aisle seat", sender="alice", history=True)
    assert {(h.id, h.superseded) for h in everything} == {(oldest, False), (middle, True), (newest, True)}
    assert everything[0].id == oldest  # the current memory first
    # a retired memory found in history is not reinforced: the survivor is the one in use
    assert {i: r[6] for i, r in rows(store).items() if i in (middle, newest)} == {middle: 3, newest: 5}


def test_a_second_run_finds_nothing_more_to_merge(engine, store):
    add_memory(store, AISLE, days_ago=3)
    add_memory(store, AISLE_NOTE, days_ago=2)
    assert ok(engine.run_job("dedupe"))["merged"] == 1
    before = memory_tables(store)
    engine.clock.advance(hours=25)  # a full pass again
    result = ok(engine.run_job("dedupe"))
    assert (result["pass"], result["merged"], result["superseded"]) == ("full", 0, 0)
    assert memory_tables(store) == before


# -- 3. look-alikes are different facts ----------------------------------------------------------

LOOK_ALIKES = {
    "negation": ("Alice likes tea", "Alice does not like tea"),
    "negation, contracted": ("Alice likes green tea", "Alice doesn't like green tea"),
    "never": ("Alice is allergic to peanuts", "Alice is never allergic to peanuts"),
    "cannot": ("Alice can swim", "Alice cannot swim"),
    "different person": ("Alice's flight is at 9am", "Bob's flight is at 9am"),
    "different city": ("Alice lives in Berlin", "Alice lives in Paris"),
    "different employer": ("Alice works at Google", "Alice works at Amazon"),
    "time": ("meeting at 2pm", "meeting at 3pm"),
    "am / pm": ("The meeting is at 2 pm", "The meeting is at 2 am"),
    "minutes": ("Stand-up at 9:30 every day", "Stand-up at 9:45 every day"),
    "weekday": ("The design review is on Friday", "The design review is on Monday"),
    "month": ("Alice is in Berlin until June", "Alice is in Berlin until July"),
    "today / tomorrow": ("Call Alice's landlord today", "Call Alice's landlord tomorrow"),
    "date": ("Dentist appointment on 2026-06-03", "Dentist appointment on 2026-06-04"),
    "ordinal day": ("Pay the rent on the 1st", "Pay the rent on the 15th"),
    "amount": ("The budget is $500", "The budget is $5000"),
    "dose": ("Alice takes 5 mg of melatonin", "Alice takes 50 mg of melatonin"),
    "sign": ("The freezer is set to -5 degrees", "The freezer is set to 5 degrees"),
    "year": ("Alice was born in 1990", "Alice was born in 1991"),
    "port": ("The staging server listens on port 8080", "The staging server listens on port 8081"),
    "password": ("The wifi password is hunter2", "The wifi password is hunter3"),
    "morning / evening": ("Alice runs in the morning", "Alice runs in the evening"),
}
# Look-alikes that no guard word marks (no negation, capitalised name, number, date or time differs): one
# content word in a long sentence, the roles of two names swapped, a name written in lower case.
UNMARKED_LOOK_ALIKES = {
    "window / aisle": ("Alice prefers window seats on long flights to Asia",
                       "Alice prefers aisle seats on long flights to Asia"),
    "allergen": ("Alice is allergic to peanuts and shellfish since childhood",
                 "Alice is allergic to peanuts and walnuts since childhood"),
    "roles swapped": ("Alice owes Bob 20 dollars", "Bob owes Alice 20 dollars"),
    "preference reversed": ("Alice prefers tea over coffee", "Alice prefers coffee over tea"),
    "person in lower case": ("alice flight to London leaves at 9am from gate 12",
                             "bob flight to London leaves at 9am from gate 12"),
}


def plant_pairs(store, pairs: dict) -> dict[str, tuple[int, int]]:
    """Each pair from a sender of its own (dedupe compares a sender's memories with each other only)."""
    return {name: (add_memory(store, a, days_ago=2, sender=f"s{n}"), add_memory(store, b, days_ago=1, sender=f"s{n}"))
            for n, (name, (a, b)) in enumerate(pairs.items())}


def retired_pairs(store, planted: dict) -> dict[str, list]:
    live = live_ids(store)
    return {name: [rows(store)[i][0] for i in ids if i not in live] for name, ids in planted.items()
            if not set(ids) <= live}


def test_look_alikes_that_differ_in_meaning_are_never_merged_nor_superseded(engine, store):
    planted = plant_pairs(store, LOOK_ALIKES)
    before = memory_tables(store)
    result = ok(engine.run_job("dedupe"))
    assert retired_pairs(store, planted) == {}
    assert (result["compared"], result["merged"], result["superseded"]) == (2 * len(LOOK_ALIKES), 0, 0)
    assert memory_tables(store) == before


def test_look_alikes_differing_in_an_unmarked_word_are_never_merged(engine, store):
    planted = plant_pairs(store, UNMARKED_LOOK_ALIKES)
    ok(engine.run_job("dedupe"))
    assert retired_pairs(store, planted) == {}
    assert history(store) == []


# -- 4. contradictions without a model: only an explicit correction -------------------------------

def test_an_explicit_correction_supersedes_the_older_memory(engine, store, clock):
    older = add_memory(store, DESIGN, days_ago=2)
    newer = add_memory(store, DESIGN_CORRECTION, days_ago=1)
    run = engine.run_job("dedupe")
    assert (ok(run)["superseded"], run.result["merged"]) == (1, 0)
    after = rows(store)
    assert after[older][1:3] == (newer, NOW.timestamp())
    assert after[newer][1] is None
    assert history(store) == [(older, "long_term", "supersede", newer, DESIGN, DESIGN_CORRECTION, run.id)]
    memory = Memory(store, clock)
    assert [h.content for h in memory.recall("design team", sender="alice")] == [DESIGN_CORRECTION]
    assert [(h.content, h.superseded) for h in memory.recall("design team", sender="alice", history=True)] == [
        (DESIGN_CORRECTION, False), (DESIGN, True)]


NOT_CORRECTIONS = {
    "no cue": (DESIGN, DESIGN_NO_CUE),  # a change, but without a cue it is the model's judgement, not the rules'
    "cue in the older one": (DESIGN_CORRECTION, DESIGN),
    "cue about another person": ("Alice lives in Berlin", "Bob now lives in Paris"),
    "cue about another subject": ("Alice likes tea", "Update: the office coffee machine is fixed"),
}


def test_without_a_correction_of_the_same_subject_nothing_is_retired_offline(engine, store):
    planted = plant_pairs(store, NOT_CORRECTIONS)
    before = memory_tables(store)
    result = ok(engine.run_job("dedupe"))
    assert retired_pairs(store, planted) == {}
    assert (result["merged"], result["superseded"]) == (0, 0)
    assert memory_tables(store) == before


# -- 5. contradictions with a model: its answer is validated whole ---------------------------------

CITY = ["Alice lives in Berlin", "Alice lives in Paris"]  # no cue: only a model can tell which is current
FLIGHTS = ["Alice's flight to Lisbon is at 9am", "Bob's flight to Lisbon is at 9am"]
HIKING = ["Alice enjoys hiking in the mountains", "Alice goes hiking in the mountains with her dog",
          "Alice hikes in the mountains every summer with friends"]  # related, not duplicates, no meaning guard


def plant(store, texts: list[str], sender: str = "alice") -> list[int]:
    """Oldest first: ids and stored times in the same order."""
    return [add_memory(store, text, days_ago=len(texts) - n, sender=sender) for n, text in enumerate(texts)]


def decisions(*items: dict) -> str:
    return json.dumps({"decisions": list(items)})


def test_a_supersede_answer_from_the_model_is_applied(model, make_engine, store):
    berlin, paris = plant(store, CITY)
    script = model(decisions({"action": "supersede", "old": "m2", "new": "m1"}))
    run = make_engine(script.config()).run_job("dedupe")
    result = ok(run)
    assert {k: result[k] for k in ("asked", "rejected", "superseded", "merged")} == \
        {"asked": 1, "rejected": 0, "superseded": 1, "merged": 0}
    assert result["tokens"] > 0
    # the model saw stand-ins, the newer memory first
    (sent,) = script.sent_data()
    assert [(m["id"], m["text"]) for m in sent["memories"]] == [("m1", CITY[1]), ("m2", CITY[0])]
    assert rows(store)[berlin][1:3] == (paris, NOW.timestamp())
    assert live_ids(store) == {paris}
    assert history(store) == [(berlin, "long_term", "supersede", paris, CITY[0], CITY[1], run.id)]


def test_a_merge_answer_from_the_model_may_reword_the_survivor(model, make_engine, store):
    first, second, third = plant(store, HIKING)
    wording = "Alice goes hiking in the mountains"
    script = model(decisions({"action": "merge", "ids": ["m1", "m2"], "text": wording}))
    run = make_engine(script.config()).run_job("dedupe")
    result = ok(run)
    # two questions (about the second memory, and the third); the second's merge retires one of the group
    assert (result["merged"], result["rejected"]) == (2, 0), result
    assert live_ids(store) == {first}
    assert rows(store)[first][0] == wording
    actions = [(h[0], h[2], h[3]) for h in history(store)]
    assert (first, "merge", first) in actions  # the survivor's old wording, kept
    assert {(second, "merge", first), (third, "merge", first)} <= set(actions)
    assert [h[4] for h in history(store) if h[0] == first] == [HIKING[0]]


# name: (memories, the model's answer, the reason given for each question asked about them)
BAD_ANSWERS = {
    "not JSON": (CITY, "Sure! m2 is out of date, m1 replaces it.", ["not valid JSON"]),
    "unknown id": (CITY, decisions({"action": "supersede", "old": "m9", "new": "m1"}), ["unknown id 'm9'"]),
    "a real id": (CITY, decisions({"action": "supersede", "old": 1, "new": "m1"}), ["unknown id '1'"]),
    "old newer than new": (CITY, decisions({"action": "supersede", "old": "m1", "new": "m2"}),
                           ["'old' must be stored before 'new'"]),
    # asked about the 2nd memory (with the 1st), then the 3rd (with both)
    "retires more than half": (HIKING, decisions({"action": "merge", "ids": ["m1", "m2", "m3"]}),
                               ["unknown id 'm3'", "retires 2 of 3 memories (at most 1)"]),
    "merge across Alice / Bob": (FLIGHTS, decisions({"action": "merge", "ids": ["m1", "m2"]}),
                                 ["differs in meaning: name alice / bob"]),
    "one good decision, one bad": (CITY, decisions({"action": "supersede", "old": "m2", "new": "m1"},
                                                   {"action": "merge", "ids": ["m1", "m7"]}), ["unknown id 'm7'"]),
    "an extra field": (CITY, decisions({"action": "supersede", "old": "m2", "new": "m1", "also": "delete all"}),
                       ["must be keep, supersede"]),
    "not a decisions object": (CITY, json.dumps([{"action": "supersede", "old": "m2", "new": "m1"}]),
                               ['answer must be {"decisions": [...]}']),
}


def test_a_malformed_model_answer_changes_nothing_and_is_counted_rejected(model, make_engine, store):
    """Each case's memories from a sender of its own (asked about in turn), each question answered badly."""
    answers, expected = [], []
    for n, (name, (texts, answer, reasons)) in enumerate(BAD_ANSWERS.items()):
        plant(store, texts, sender=f"s{n}")
        answers += [answer] * len(reasons)
        expected += [(name, texts, reason) for reason in reasons]
    before = memory_tables(store)
    script = model(*answers)
    result = ok(make_engine(script.config()).run_job("dedupe"))

    asked_about = [{m["text"] for m in data["memories"]} for data in script.sent_data()]
    assert [name for (name, texts, _), sent in zip(expected, asked_about) if not sent <= set(texts)] == []
    assert len(asked_about) == len(expected)
    assert (result["asked"], result["rejected"], result["merged"], result["superseded"]) == \
        (len(expected), len(expected), 0, 0)
    assert len(result["rejections"]) == len(expected)
    wrong = [(name, reason, given) for (name, _, reason), given in zip(expected, result["rejections"])
             if reason not in given]
    assert wrong == []
    assert memory_tables(store) == before


# -- 6. a dry run plans exactly what the run does --------------------------------------------------

def plant_work(store) -> None:
    add_memory(store, AISLE, days_ago=5, keyed=False)  # an agent's own INSERT: no repeat key yet
    add_memory(store, AISLE_NOTE, days_ago=4)
    add_memory(store, AISLE_REMEMBER, days_ago=3.5)
    add_memory(store, DESIGN, days_ago=3)
    add_memory(store, DESIGN_CORRECTION, days_ago=2)
    add_memory(store, "Bob's flight to Lisbon is at 9am", days_ago=1)


COUNTS = ("compared", "merged", "superseded", "keys_filled")


def test_a_dry_run_writes_nothing_and_reports_the_counts_of_the_real_run(engine, store):
    plant_work(store)
    before = snapshot(store)
    dry = engine.dry_run("dedupe")
    assert snapshot(store) == before
    assert {k: dry[k] for k in COUNTS} == {"compared": 6, "merged": 2, "superseded": 1, "keys_filled": 1}
    assert len(dry["plan"]["long-term memories"]) == 3
    run = ok(engine.run_job("dedupe"))
    assert {k: run[k] for k in COUNTS} == {k: dry[k] for k in COUNTS}
    assert len(live_ids(store)) == 6 - 3
    assert count(store, "memory_history") == 3


def test_the_cli_dry_run_writes_nothing_and_reports_the_counts_of_the_real_run(cli, store, db_target):
    plant_work(store)
    before = memory_tables(store)
    dry = cli("run", "dedupe", "--dry-run", "--json", "--db", db_target)
    assert dry.code == 0, dry.err
    dry = json.loads(dry.out)
    assert memory_tables(store) == before
    assert count(store, "run") == 0 and count(store, "job_checkpoint") == 0
    assert (dry["merged"], dry["superseded"]) == (2, 1)
    real = cli("run", "dedupe", "--json", "--db", db_target)
    assert real.code == 0, real.err
    real = json.loads(real.out)["result"]
    assert {k: real[k] for k in COUNTS} == {k: dry[k] for k in COUNTS}
    assert count(store, "memory_history") == 3 and len(live_ids(store)) == 3


# -- 7. SIGKILL part-way through a run -------------------------------------------------------------

GROUPS = 300
SYLLABLES = ["ba", "ko", "ri", "tu", "me", "la", "zi", "no", "pe", "vu"]


def made_up(n: int) -> str:
    """A word of its own for each n (eight letters): each group's words are its own."""
    return "".join(SYLLABLES[int(d)] for d in f"{n:04d}")


def group_texts(i: int) -> list[str]:
    a, b, c, d = (made_up(n * 2000 + i) for n in range(4))
    return [f"the {a} {b} is kept in the {c} {d}",
            f"Note: the {a} {b} is kept in the {c} {d}!",
            f"Remember that the {a} {b} is kept in the {c} {d}."]


# Runs `memtui run dedupe` in this process, the history writer wrapped: on its PAUSE_AT-th row (inside the
# open transaction of a merge, between the history rows of its two retired members) it says so on stdout
# and waits for stdin, which never comes: the parent SIGKILLs it there.
CHILD = """
import sys
from memtui.engine.jobs import dedupe
from memtui.tui.cli import main

target, pause_at = sys.argv[1], int(sys.argv[2])
real, calls = dedupe.record, [0]

def record(*args, **kwargs):
    real(*args, **kwargs)
    calls[0] += 1
    if calls[0] == pause_at:
        print("PAUSED", flush=True)
        sys.stdin.read()

dedupe.record = record
sys.exit(main(["run", "dedupe", "--db", target]))
"""


def kill_dedupe_part_way(db_target: str, pause_at: int) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, db_target, str(pause_at)], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in child.stdout:  # blocks until the child pauses (or ends: then the test fails below)
            seen.append(line)
            if line.strip() == "PAUSED":
                break
        assert seen and seen[-1].strip() == "PAUSED", ("".join(seen), child.communicate(timeout=30)[1])
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)


def test_sigkill_during_dedupe_loses_nothing_and_the_next_run_completes_it(store, db_target):
    with store.atomic():
        groups = [[add_memory(store, text, days_ago=3 - j, recalls=1, importance=(3, 7, 5)[j], pinned=j == 1)
                   for j, text in enumerate(group_texts(i))] for i in range(GROUPS)]
    total = 3 * GROUPS
    # Planner statistics as autovacuum would leave them after such an insert. Without them PostgreSQL ranks
    # every older memory of the sender for each one compared (a full pass of these 900 took 24 s, against
    # 1 s with them): see the report of this test file.
    store.refresh_statistics(store.m.LongTermMemory)
    paused_in = 100  # 100 merges committed, the 101st open with one of its two history rows written
    kill_dedupe_part_way(db_target, pause_at=2 * paused_in + 1)

    def check_nothing_lost() -> int:
        """Every memory is live, or retired with a history row naming a live survivor; returns the merges."""
        now, hist, live = rows(store), history(store), live_ids(store)
        assert len(now) == total, "a memory was lost or added"
        merged_into = {h[0]: h[3] for h in hist if h[2] == "merge"}
        assert len(merged_into) == len(hist), "a memory has two history rows, or one of another kind"
        for memory_id, row in now.items():
            if memory_id in live:
                assert memory_id not in merged_into, f"#{memory_id} is live but has a merge history row"
            else:
                assert row[3] is None, f"#{memory_id} was deleted"
                assert merged_into.get(memory_id) == row[1], f"#{memory_id} is retired without its history row"
                assert row[1] in live, f"#{memory_id} was merged into #{row[1]}, which is not live"
        done = 0
        for members in groups:
            retired = [m for m in members if m not in live]
            assert len(retired) in (0, 2), f"group {members} is half merged: {retired} retired"
            survivor = now[members[0]]
            expected = (3, 7.0, True) if retired else (1, 3.0, False)
            assert (survivor[6], survivor[4], bool(survivor[7])) == expected, (members, survivor)
            done += bool(retired)
        return done

    merged_before = check_nothing_lost()
    assert merged_before == paused_in, "the kill should land in the 101st merge, the 100 before it committed"

    # The next engine, once the dead run's lease has run out, marks it interrupted and does the rest.
    config = Config()
    later = FakeClock(datetime.now(timezone.utc) + timedelta(seconds=config.engine.lease_ttl_s + 1))
    engine = Engine(store, config, later)
    try:
        engine.recover_interrupted()
        assert engine.history("dedupe", 1)[0].status == "interrupted"
        result = ok(engine.run_job("dedupe"))
    finally:
        engine.stop(timeout=5)
    assert result["merged"] == 2 * (GROUPS - merged_before)
    assert check_nothing_lost() == GROUPS
    assert live_ids(store) == {members[0] for members in groups}
    assert count(store, "memory_history") == 2 * GROUPS


# -- 8. incremental runs -------------------------------------------------------------------------

def test_an_incremental_run_compares_only_what_was_added_and_merges_a_late_duplicate(engine, store, clock):
    old = [add_memory(store, text, days_ago=5 - n) for n, text in enumerate(
        [AISLE, "Alice lives in Berlin", DESIGN, "Bob's flight to Lisbon is at 9am", "Alice likes green tea"])]
    first = ok(engine.run_job("dedupe"))
    assert (first["pass"], first["compared"], first["merged"]) == ("full", 5, 0)
    idle = ok(engine.run_job("dedupe"))
    assert (idle["pass"], idle["compared"], idle["merged"]) == ("incremental", 0, 0)

    memory = Memory(store, clock)
    late = memory.remember(AISLE_REMEMBER, sender="alice", keep=True)
    assert ok(engine.run_job("promote"))["promoted"] == 1
    (late_id,) = [r[0] for r in store.execute("SELECT id FROM long_term_memory WHERE source_pending_id = ?",
                                              (late,))]
    add_memory(store, "Carol's birthday is on 12 May", days_ago=0)
    run = engine.run_job("dedupe")
    third = ok(run)
    assert (third["pass"], third["compared"], third["merged"]) == ("incremental", 2, 1)
    assert rows(store)[late_id][1] == old[0]
    assert bool(rows(store)[old[0]][7])  # the late one was kept (pinned): the survivor is pinned now
    assert history(store) == [(late_id, "long_term", "merge", old[0], AISLE_REMEMBER, AISLE, run.id)]
    assert ok(engine.run_job("dedupe"))["compared"] == 0

    clock.advance(hours=25)  # a day on: every live memory is compared again
    full = ok(engine.run_job("dedupe"))
    assert (full["pass"], full["compared"], full["merged"]) == ("full", 6, 0)
