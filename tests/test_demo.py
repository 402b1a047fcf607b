"""`memtui demo` never loses data: it fills an empty store or refills a demo-only one, by the rows' marks;
`--reset` replaces everything only when a person confirms it; an agent writing meanwhile waits for it."""
from __future__ import annotations

import json
import threading

import pytest

from memtui.engine import Config, Engine
from memtui.engine import demo
from memtui.engine.demo import MEMORY_TABLES, SYSTEM_SENDER, DemoRefused, fill
from memtui.models import Store
from tests.factories import count

pytestmark = pytest.mark.both_backends


def rows(target) -> dict[str, int]:
    store = Store.open(target, create=False)
    try:
        return {t: count(store, t) for t in (*MEMORY_TABLES, "run", "audit_log")}
    finally:
        store.close()


def count_system_facts(target) -> int:
    store = Store.open(target, create=False)
    try:
        return count(store, "fact", f"sender = '{SYSTEM_SENDER}'")
    finally:
        store.close()


def test_demo_fills_an_empty_store_and_marks_every_row(cli, db_target):
    db = db_target
    result = cli("demo", "--db", db)
    assert result.code == 0
    assert len(result.out.splitlines()) == 1 and "replaced" not in result.out  # nothing was there to replace
    store = Store.open(db)
    try:
        for table in MEMORY_TABLES:
            assert count(store, table, "NOT demo") == 0, table
        assert count(store, "pending_memory") > 0
    finally:
        store.close()


def test_demo_refuses_when_real_data_was_added_and_changes_nothing(cli, db_target, tmp_path):
    """The reported defect: demo, remember, import, demo -> the remembered memory and the fact were gone."""
    db = db_target
    assert cli("demo", "--db", db).code == 0
    assert cli("remember", "real one", "--keep", "--db", db).code == 0
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"type": "fact", "sender": "me", "key": "home", "value": "Lisbon"}) + "\n")
    assert cli("import", facts, "--db", db).code == 0
    before = rows(db)

    result = cli("demo", "--db", db)
    assert result.code == 2 and result.out == ""
    assert result.err.strip() == (f"memtui: {db} holds 2 rows that are not demo data (1 pending memory row, "
                                  "1 fact row); nothing was changed. Use --reset to replace everything, "
                                  "or --db to pick another database")
    assert rows(db) == before
    store = Store.open(db)
    try:
        assert store.execute("SELECT content FROM pending_memory WHERE NOT demo").fetchall() == [("real one",)]
    finally:
        store.close()


def test_demo_refills_a_store_that_holds_only_demo_rows_even_after_the_jobs_ran(cli, db_target, clock):
    db = db_target
    store = Store.open(db)
    fill(store, clock())
    engine = Engine(store, Config(), clock)
    for job in ("promote", "decay", "consolidate", "rollup-day", "profile"):
        assert engine.run_job(job).status in ("success", "skipped"), job
    assert count(store, "long_term_memory", "source_pending_id IS NOT NULL") > 0  # promote made derived rows
    engine.close()
    runs = rows(db)["run"]

    demo_before = sum(rows(db)[t] for t in MEMORY_TABLES) - count_system_facts(db)
    result = cli("demo", "--db", db)  # derived rows carry the mark; __system__ facts are engine state
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == f"(it replaced the earlier demo sample: {demo_before:,} rows)"
    after = rows(db)
    assert after["run"] == runs, "a refill keeps the run history"
    assert after["pending_memory"] == 300


def test_a_store_written_by_0_1_with_its_demo_flag_is_not_trusted(store, clock):
    """0.1 marked a whole store as demo with one setting; rows added later were lost. Rows without
    the mark are never the demo's."""
    store.execute("INSERT INTO setting (key, value) VALUES ('demo', '1')")
    store.execute("INSERT INTO pending_memory (content, created_at) VALUES ('mine', 0)")
    with pytest.raises(DemoRefused, match="1 row that is not demo data"):
        fill(store, clock())
    assert count(store, "pending_memory") == 1


def test_reset_without_a_terminal_and_without_yes_refuses(cli, db_target):
    db = db_target
    assert cli("remember", "mine", "--db", db).code == 0
    assert cli("run", "promote", "--db", db).code == 0
    before = rows(db)
    result = cli("demo", "--reset", "--db", db, stdin="")
    assert result.code == 2
    assert "add --yes to confirm" in result.err and "1 pending memory row" in result.err and "1 run row" in result.err
    assert len(result.err.splitlines()) == 1
    assert rows(db) == before


def test_reset_on_a_terminal_asks_and_no_changes_nothing(cli, db_target):
    db = db_target
    assert cli("remember", "mine", "--db", db).code == 0
    before = rows(db)
    result = cli("demo", "--reset", "--db", db, stdin="n\n", tty=True)
    assert result.code == 1
    assert "deletes everything" in result.err and "nothing was changed" in result.err
    assert rows(db) == before


def test_reset_on_a_terminal_replaces_everything_after_yes(cli, db_target):
    db = db_target
    assert cli("remember", "mine", "--db", db).code == 0
    assert cli("disable", "decay", "--db", db).code == 0
    assert cli("run", "promote", "--db", db).code == 0
    result = cli("demo", "--reset", "--db", db, stdin="y\n", tty=True)
    assert result.code == 0, result.err
    after = rows(db)
    assert after["run"] == 0 and after["audit_log"] == 0
    store = Store.open(db)
    try:
        assert count(store, "pending_memory", "NOT demo") == 0
        assert store.m.JobDefinition.get_by_id("decay").enabled is False, "job definitions (schedules, on/off) stay"
        assert store.m.JobState.get_by_id("promote").runs == 0
    finally:
        store.close()


def test_reset_with_yes_does_not_ask(cli, db_target):
    db = db_target
    assert cli("remember", "mine", "--db", db).code == 0
    result = cli("demo", "--reset", "--yes", "--db", db, stdin="")
    assert result.code == 0 and "demo data in" in result.out
    assert rows(db)["pending_memory"] == 300


def test_a_fact_the_agent_wrote_over_a_demo_fact_is_the_agents(cli, db_target, tmp_path):
    """Writing a demo fact's key again (import, or the API) makes the row the agent's: demo keeps it."""
    from memtui import Memory

    db = db_target
    assert cli("demo", "--db", db).code == 0
    facts = tmp_path / "facts.jsonl"
    facts.write_text(json.dumps({"type": "fact", "sender": "alice", "key": "timezone", "value": "Asia/Tokyo"}) + "\n")
    assert cli("import", facts, "--db", db).code == 0
    with Memory.open(db) as memory:
        memory.set_fact("bob", "language", "fr")
    result = cli("demo", "--db", db)
    assert result.code == 2 and "2 rows that are not demo data (2 fact rows)" in result.err
    store = Store.open(db)
    try:
        values = dict(store.execute("SELECT sender, value FROM fact WHERE (sender, key) IN"
                                    " (VALUES ('alice', 'timezone'), ('bob', 'language'))").fetchall())
        assert values == {"alice": "Asia/Tokyo", "bob": "fr"}
    finally:
        store.close()


def test_ctrl_d_at_the_reset_question_is_a_no(cli, db_target):
    db = db_target
    assert cli("remember", "mine", "--db", db).code == 0
    before = rows(db)
    result = cli("demo", "--reset", "--db", db, stdin="", tty=True)  # end of input at the prompt
    assert result.code == 1 and "nothing was changed" in result.err and "unexpected" not in result.err
    assert rows(db) == before


@pytest.mark.parametrize("reset", [False, True], ids=["refill", "reset"])
def test_an_agent_writing_during_a_refill_waits_for_it_and_keeps_its_row(store, db_target, clock, monkeypatch, reset):
    """The check and the rewrite are one transaction and the tables are locked first: an agent's insert
    that arrives between the check and the delete waits for the refill to commit, then lands. (Without
    the lock, PostgreSQL would let it commit at once, and the refill's DELETE would then remove it.)"""
    fill(store, clock())
    agent = Store.open(db_target)
    inserted = threading.Event()
    errors: list[BaseException] = []

    def agent_inserts():
        try:
            agent.m.Fact.insert(sender="me", key="home", value="Lisbon", updated_at=0).execute()
            inserted.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=agent_inserts)
    real_clear = demo._clear_memory

    def clear_while_an_agent_writes(s):  # between the check and the delete
        thread.start()
        assert not inserted.wait(0.5), "the agent's insert went through during the refill"
        real_clear(s)

    monkeypatch.setattr(demo, "_clear_memory", clear_while_an_agent_writes)
    try:
        fill(store, clock(), reset=reset)
        thread.join(30)
        assert inserted.is_set() and errors == []
        assert store.execute("SELECT value FROM fact WHERE sender = 'me'").fetchall() == [("Lisbon",)]
    finally:
        thread.join(30)
        agent.close()
