"""Full-text search over the memory tables (migration 0005): kept in step by the store itself — an agent's
plain-SQL write, from a connection that has none of memtui's functions, is found by the next recall — and
the same rows found on SQLite (FTS5) and PostgreSQL (GIN over to_tsvector), ranked by relevance weighted by
importance.
"""
from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from memtui.engine import memory as ops
from memtui.engine.agent import Memory
from memtui.engine.story import describe
from tests.factories import add_long_term

pytestmark = pytest.mark.both_backends


def found(memory: Memory, query: str, **kwargs) -> list[str]:
    return [hit.content for hit in memory.recall(query, reinforce=False, **kwargs)]


@pytest.mark.sqlite_only
def test_plain_sql_writes_from_a_bare_connection_reach_the_index(store, clock, db_path):
    memory = Memory(store, clock)
    agent = sqlite3.connect(db_path)  # no memtui_fold, no memtui_search_text: a stranger's connection
    try:
        with agent:
            agent.execute("INSERT INTO pending_memory (content, created_at) VALUES ('Émile rides a tandem', 0)")
            agent.execute("INSERT INTO long_term_memory (content, created_at, last_reinforced_at)"
                          " VALUES ('Zoë keeps bees', 0, 0)")
        assert found(memory, "emile tandem") == ["Émile rides a tandem"]
        assert found(memory, "ZOE") == ["Zoë keeps bees"]
        with agent:
            agent.execute("UPDATE long_term_memory SET content = 'Zoë keeps goats' WHERE content = 'Zoë keeps bees'")
            agent.execute("DELETE FROM pending_memory")
        assert found(memory, "bees") == [] and found(memory, "goats") == ["Zoë keeps goats"]
        assert found(memory, "tandem") == []
        assert store.execute("SELECT count(*) FROM search_queue").fetchone()[0] == 0
    finally:
        agent.close()


def test_words_match_as_prefixes_case_and_accents_folded(store, clock):
    memory = Memory(store, clock)
    for text in ("Alice prefers aisle seats", "Straße closed on Sundays", "Σωκράτης taught Plato", "ﬁsh on Fridays"):
        memory.remember(text)
    assert found(memory, "aisle seat") == ["Alice prefers aisle seats"]
    assert found(memory, "STRASSE") == ["Straße closed on Sundays"]
    assert found(memory, "ΣΩΚΡΑΤΗΣ") == ["Σωκράτης taught Plato"]
    assert found(memory, "fish") == ["ﬁsh on Fridays"]
    assert found(memory, "aisle tea") == []  # every word, not any
    assert found(memory, "…") == []  # no word at all: nothing, not everything


def test_more_relevant_first_and_importance_weighs_in(store, clock):
    memory = Memory(store, clock)
    now = clock()
    add_long_term(store, created=now - timedelta(days=1), importance=5,
                  content="tea notes: green tea, black tea, oolong tea, white tea")
    add_long_term(store, created=now - timedelta(days=1), importance=5, content="Bob drinks tea after a long meeting")
    assert found(memory, "tea")[0].startswith("tea notes")  # the term four times in a short text
    add_long_term(store, created=now - timedelta(days=1), importance=10, content="Carol drinks tea after a long run")
    add_long_term(store, created=now - timedelta(days=1), importance=0, content="Dave drinks tea after a long walk")
    ranked = found(memory, "drinks tea after a long")
    assert ranked.index("Carol drinks tea after a long run") < ranked.index("Bob drinks tea after a long meeting") \
        < ranked.index("Dave drinks tea after a long walk")  # equally relevant: the more important first


def test_recall_reads_each_memory_table_once(store, clock, caplog):
    """On PostgreSQL the index is a column of the table itself: recall matches and ranks in place. Joined
    to its own hits, each matching row was read twice (its page for the match, then the primary key and
    the page again): 150 against 85 ms for a name in 0.5 % of 2,000,000 memories (bench/memory_view.py).
    On SQLite the index is a table of its own (FTS5), joined once. Each tier is ranked by a query of its
    own, which reads its table once."""
    memory = Memory(store, clock)
    memory.remember("Bob drinks tea")
    with caplog.at_level("DEBUG", logger="peewee"):
        assert [h.content for h in memory.recall("tea", reinforce=False)] == ["Bob drinks tea"]
    ranked = [r.getMessage() for r in caplog.records if '"rank" DESC' in r.getMessage()]
    assert len(ranked) == 2  # one ranked query a tier, merged by recall_order
    for table in ("long_term_memory", "pending_memory"):
        [sql] = [sql for sql in ranked if f'FROM "{table}" AS "t1"' in sql]
        assert sql.count(f'FROM "{table}"') + sql.count(f'JOIN "{table}"') == 1, sql


def test_a_retired_memory_is_found_only_when_history_is_asked(store, clock, engine):
    memory = Memory(store, clock)
    now = clock()
    kept = add_long_term(store, created=now - timedelta(days=2), content="Alice likes aisle seats")
    add_long_term(store, created=now - timedelta(days=1), content="FYI alice likes aisle seats")
    assert engine.run_job("dedupe").result["merged"] == 1
    assert [h.id for h in memory.recall("aisle", reinforce=False)] == [kept]
    both = memory.recall("aisle", history=True)
    assert [(h.id, h.superseded) for h in both][0] == (kept, False) and both[1].superseded
    recalls = dict(store.execute("SELECT id, recall_count FROM long_term_memory"))
    assert recalls == {kept: 1, both[1].id: 0}  # the retired one is not reinforced: its survivor is


def test_a_forgotten_memory_is_not_recalled_until_a_use_of_its_id_restores_it(store, clock):
    memory = Memory(store, clock)
    now = clock()
    faded = add_long_term(store, created=now - timedelta(days=90), content="Alice's old flat was in Kreuzberg",
                          deleted=now - timedelta(days=1))
    asked = add_long_term(store, created=now - timedelta(days=90), content="Alice's new flat is in Neukölln",
                          pinned=True)
    forgot = memory.forget(asked, long_term=True)
    assert (forgot.tier, forgot.done, forgot.unpinned) == ("long_term", True, True)
    assert memory.forget(asked, long_term=True).done is False  # once is enough
    # a memory decay faded is still offered (and restored); one forgotten on request is not
    assert [(h.id, h.decayed) for h in memory.recall("alice flat", reinforce=False)] == [(faded, True)]
    assert "forgotten on request on " in "\n".join(describe(memory.why(asked, long_term=True)))
    ops.reinforce(store, clock(), asked)  # used by its own id: restorable
    assert {h.id for h in memory.recall("neukolln", reinforce=False)} == {asked}
    actions = [row[0] for row in store.execute(
        "SELECT action FROM memory_history WHERE memory_id = ? ORDER BY id", (asked,))]
    assert actions == ["forget", "restore"]
    pending = memory.remember("a passing thought")
    assert memory.forget(pending).tier == "pending"
    assert memory.why(pending).tier == "gone"
