"""The agent's side: demo data, `memtui remember`, `memtui import`, and the Python API, on both backends."""
from __future__ import annotations

import json
import pytest

from memtui.engine.agent import Memory
from memtui.engine.demo import DemoRefused, fill
from memtui.engine.importer import import_lines
from memtui.tui.cli import main
from tests import factories
from tests.factories import count
from tests.targets import another_target

pytestmark = pytest.mark.both_backends

MEMORY_TABLES = ("conversation", "message", "pending_memory", "long_term_memory", "fact", "outcome",
                 "profile_attribute")


def snapshot(store) -> dict:
    """The agent's tables, every row in id order."""
    return {t: rows for t, rows in factories.snapshot(store, across_stores=True).items() if t in MEMORY_TABLES}


# -- demo ------------------------------------------------------------------------

def test_demo_is_deterministic_and_has_work_for_every_job(store, clock, db_target, tmp_path):
    from memtui.models import Store

    summary = fill(store, clock())
    with another_target(db_target, tmp_path, "again") as again:
        other = Store.open(again)
        try:
            fill(other, clock())
            assert snapshot(store) == snapshot(other)
        finally:
            other.close()
    assert summary.conversations == count(store, "conversation") > 0
    assert summary.messages == count(store, "message") and summary.outcomes == count(store, "outcome")
    assert count(store, "conversation", "status = 'closed'") and count(store, "conversation", "status = 'active'")
    ages = store.execute("SELECT min(started_at), max(started_at) FROM conversation").fetchone()
    assert clock().timestamp() - ages[0] > 60 * 86400  # spread over the last 90 days
    assert count(store, "pending_memory", "remember") > 0
    assert count(store, "long_term_memory", "pinned") > 0
    per_sender = store.execute(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM outcome GROUP BY sender) AS per_sender").fetchone()
    assert per_sender[0] > 100  # beyond the consolidation cap
    keys = store.execute("SELECT entity, lower(replace(key, '-', '')), count(*) FROM profile_attribute"
                         " GROUP BY 1, 2 HAVING count(*) > 1").fetchall()
    assert keys  # duplicates and contradictions for the profile job


def test_demo_refuses_a_store_with_user_data_unless_reset(store, clock):
    store.execute("INSERT INTO fact (sender, key, value, updated_at) VALUES ('me', 'k', 'v', 0)")
    before = snapshot(store)
    with pytest.raises(DemoRefused, match="--reset"):
        fill(store, clock())
    assert snapshot(store) == before
    fill(store, clock(), reset=True)
    assert ("me", "k") not in {(r[1], r[2]) for r in snapshot(store)["fact"]}


def test_demo_command_says_why_it_refuses(db_target, capsys):
    assert main(["remember", "my own memory", "--db", db_target]) == 0
    capsys.readouterr()
    assert main(["demo", "--db", db_target]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memtui: ") and "--reset" in err and "\n" not in err
    assert main(["demo", "--db", db_target, "--reset", "--yes"]) == 0
    assert "demo data in" in capsys.readouterr().out


# -- remember ----------------------------------------------------------------------

def test_remember_prints_the_id_and_stores_every_field(db_target, capsys, store):
    assert main(["remember", "Alice prefers aisle seats", "--sender", "alice", "--kind", "preference",
                 "--importance", "7", "--confidence", "0.9", "--keep", "--db", db_target]) == 0
    mid = int(capsys.readouterr().out.strip())
    Pending = store.m.PendingMemory
    row = Pending.select(Pending.content, Pending.sender, Pending.kind, Pending.importance, Pending.confidence,
                         Pending.remember).where(Pending.id == mid).tuples().get()
    assert row == ("Alice prefers aisle seats", "alice", "preference", 7.0, 0.9, True)


@pytest.mark.parametrize("args, message", [
    (["remember", ""], "non-empty"),
    (["remember", "x", "--importance", "11"], "importance must be a number from 0 to 10"),
    (["remember", "x", "--confidence", "-0.1"], "confidence must be a number from 0 to 1"),
    (["remember", "x", "--importance", "nan"], "importance"),
    (["remember", "x", "--importance", "lots"], "invalid float"),
])
def test_remember_rejects_bad_input_in_one_line(db_target, capsys, store, args, message):
    assert main([*args, "--db", db_target]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert count(store, "pending_memory") == 0


# -- import ------------------------------------------------------------------------

GOOD = [
    {"type": "conversation", "ref": "c1", "sender": "alice", "status": "closed",
     "started_at": "2026-05-01T09:00:00+00:00"},
    {"type": "message", "conversation": "c1", "sender": "alice", "content": "Book Lisbon.", "created_at": 1777626000},
    {"type": "memory", "content": "Alice goes to Lisbon", "sender": "alice", "importance": 6, "keep": True},
    {"type": "fact", "sender": "alice", "key": "airport", "value": "BER"},
    {"type": "outcome", "sender": "alice", "lesson": "confirm dates", "score": 1},
    {"type": "profile", "entity": "alice", "key": "seat", "value": "aisle", "category": "preference"},
]


def lines(*records) -> list[str]:
    return [r if isinstance(r, str) else json.dumps(r) for r in records]


def test_import_writes_every_kind_of_record(store, clock):
    report = import_lines(store, lines(*GOOD), clock())
    assert report.invalid == []
    assert report.written == {"conversation": 1, "message": 1, "memory": 1, "fact": 1, "outcome": 1, "profile": 1}
    conversation_id = store.execute("SELECT id FROM conversation").fetchone()[0]
    assert store.execute("SELECT conversation_id, created_at FROM message").fetchone() == (conversation_id,
                                                                                            1777626000.0)
    assert store.execute("SELECT remember, importance FROM pending_memory").fetchone() == (True, 6.0)
    assert store.execute("SELECT value FROM fact WHERE key = 'airport'").fetchone() == ("BER",)


@pytest.mark.parametrize("bad, reason", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"type": "diary", "text": "x"}), "type must be one of"),
    (json.dumps({"type": "memory"}), "memory: content is required"),
    (json.dumps({"type": "memory", "content": "x", "importance": 11}), "importance must be from 0 to 10"),
    (json.dumps({"type": "memory", "content": "x", "confidence": "high"}), "confidence must be a number"),
    (json.dumps({"type": "memory", "content": "x", "colour": "red"}), "unknown field 'colour'"),
    (json.dumps({"type": "message", "conversation": "nope", "sender": "a", "content": "x"}),
     "no conversation with ref 'nope'"),
    (json.dumps({"type": "message", "conversation_id": 999, "sender": "a", "content": "x"}),
     "no conversation with id 999"),
    (json.dumps({"type": "conversation", "sender": "a", "started_at": "2026-05-01T09:00:00"}), "UTC offset"),
    (json.dumps({"type": "fact", "sender": "a", "key": "k", "value": ""}), "value must not be empty"),
])
def test_one_bad_line_means_nothing_is_written_and_the_line_is_named(store, clock, bad, reason):
    before = snapshot(store)
    report = import_lines(store, [*lines(*GOOD[:3]), bad, *lines(*GOOD[3:])], clock())
    assert len(report.invalid) == 1
    assert report.invalid[0].line == 4
    assert reason in report.invalid[0].reason
    assert str(report.invalid[0]).startswith("line 4: ")
    assert report.written == {}
    assert snapshot(store) == before


def test_skip_invalid_writes_the_valid_lines_and_lists_the_rest(store, clock):
    bad_conversation = {"type": "conversation", "ref": "c2", "sender": ""}
    orphan = {"type": "message", "conversation": "c2", "sender": "a", "content": "lost"}
    report = import_lines(store, lines(*GOOD, bad_conversation, orphan, ""), clock(), skip_invalid=True)
    assert [e.line for e in report.invalid] == [7, 8]
    assert report.total == 6
    assert count(store, "message") == 1


def test_import_command_from_a_file_and_from_stdin(db_target, tmp_path, capsys, monkeypatch, store):
    import io

    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines(*GOOD)) + "\n")
    assert main(["import", str(path), "--db", db_target]) == 0
    assert "imported 1 conversation, 1 fact, 1 memory, 1 message, 1 outcome, 1 profile" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"type": "memory", "content": "from stdin"}) + "\n"))
    assert main(["import", "-", "--db", db_target]) == 0
    assert count(store, "pending_memory", "content = 'from stdin'") == 1


def test_import_command_with_a_bad_line_exits_2_and_writes_nothing(db_target, tmp_path, capsys, store):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines(*GOOD, "{oops")) + "\n")
    before = snapshot(store)
    assert main(["import", str(path), "--db", db_target]) == 2
    err = capsys.readouterr().err
    assert f"memtui: {path}: line 7: not valid JSON" in err
    assert "nothing was imported" in err
    assert snapshot(store) == before
    assert main(["import", str(tmp_path / "missing.jsonl"), "--db", db_target]) == 2
    assert "cannot read" in capsys.readouterr().err


# -- the Python API ------------------------------------------------------------------

def test_memory_api_round_trip(db_target, clock):
    with Memory.open(db_target, clock=clock) as memory:
        mid = memory.remember("Alice prefers aisle seats", sender="alice", importance=7)
        assert memory.record_access(mid) == "pending"
        hits = memory.recall("AISLE seats", sender="alice")
        assert [(h.id, h.tier) for h in hits] == [(mid, "pending")]
        assert memory.recall("aisle", sender="bob") == []
        assert memory.recall("   ") == []
        row = memory.store.execute("SELECT access_count FROM pending_memory WHERE id = ?", (mid,)).fetchone()
        assert row == (2,)  # the explicit access and the recall

        conversation = memory.start_conversation("alice")
        clock.advance(minutes=5)
        memory.add_message(conversation, "alice", "Book me something to Lisbon.")
        memory.close_conversation(conversation)
        status, updated = memory.store.execute("SELECT status, updated_at FROM conversation").fetchone()
        assert status == "closed" and updated == clock().timestamp()
        memory.set_fact("alice", "airport", "BER")
        memory.set_fact("alice", "airport", "LIS")
        assert memory.store.execute("SELECT value FROM fact").fetchall() == [("LIS",)]
        assert memory.add_outcome("alice", "confirm dates first", score=1) > 0
        assert memory.set_profile("alice", "seat", "aisle", category="preference") > 0


def test_an_empty_path_is_refused_not_read_as_the_default_store(tmp_path, monkeypatch):
    from memtui.engine.config import ConfigError

    monkeypatch.setenv("MEMTUI_DB", str(tmp_path / "default.db"))
    for empty in ("", "  "):
        with pytest.raises(ConfigError, match="empty database path"):
            Memory.open(empty)
    assert not (tmp_path / "default.db").exists()


def test_recall_reinforces_long_term_memories_first(db_target, clock):
    from memtui.engine import Engine
    from memtui.engine.config import Config

    with Memory.open(db_target, clock=clock) as memory:
        kept = memory.remember("the cat is called Miso", keep=True)
        engine = Engine(memory.store, Config(), clock)
        assert engine.run_job("promote").result["promoted"] == 1
        memory.remember("the cat likes Miso soup")  # pending, also matches
        clock.advance(days=3)
        hits = memory.recall("miso")
        assert [h.tier for h in hits] == ["long_term", "pending"]
        recalls, reinforced = memory.store.execute(
            "SELECT recall_count, last_reinforced_at FROM long_term_memory WHERE source_pending_id = ?",
            (kept,)).fetchone()
        assert recalls == 1 and reinforced == clock().timestamp()
        assert memory.recall("miso", reinforce=False, limit=1)[0].tier == "long_term"
        assert memory.store.execute("SELECT recall_count FROM long_term_memory").fetchone() == (1,)


def test_a_promoted_id_stays_valid_for_the_agent(db_target, clock):
    with Memory.open(db_target, clock=clock) as memory:
        mid = memory.remember("x", keep=True)
        from memtui.engine import Engine
        from memtui.engine.config import Config

        Engine(memory.store, Config(), clock).run_job("promote")
        assert memory.record_access(mid) == "long_term"
        newer = memory.remember("y")
        assert newer != mid  # ids are never reused
        with pytest.raises(ValueError, match="no memory with id 424242"):
            memory.record_access(424242)


def test_using_a_memory_that_decayed_restores_it_and_a_deleted_one_is_an_error(db_target, clock):
    """Issue 16.5: a use of a soft-deleted memory raised "no memory" instead of restoring it."""
    from memtui.engine import Engine
    from memtui.engine.config import Config
    from memtui.engine.memory import MemoryInputError

    with Memory.open(db_target, clock=clock) as memory:
        engine = Engine(memory.store, Config(), clock)
        mids = [memory.remember(f"note {i}", importance=10, confidence=1.0) for i in range(2)]
        for mid in mids:
            for _ in range(10):
                memory.record_access(mid)
        assert engine.run_job("promote").result["promoted"] == 2  # not kept, so not pinned: they can decay
        clock.advance(days=400)
        assert engine.run_job("decay").result["soft_deleted"] == 2
        clock.advance(hours=1)
        assert memory.record_access(mids[0]) == "long_term"
        row = memory.store.execute("SELECT deleted_at, recall_count, last_reinforced_at FROM long_term_memory"
                                   " WHERE source_pending_id = ?", (mids[0],)).fetchone()
        assert row == (None, 1, clock().timestamp())
        assert [(h.content, h.decayed) for h in memory.recall("note", reinforce=False)] == [
            ("note 0", False), ("note 1", True)]  # back among the living; the other still faded
        clock.advance(days=31)  # past decay's grace: the memory nobody used is deleted for good
        assert engine.run_job("decay").result["hard_deleted"] == 1
        with pytest.raises(MemoryInputError, match=f"no memory with id {mids[1]}"):
            memory.record_access(mids[1])


def test_the_demo_agent_feeds_promotion(engine, clock):
    from memtui.engine.demo import DemoAgent

    agent = DemoAgent(engine.remember, engine.record_access)
    for _ in range(20):
        agent.step()
        clock.advance(seconds=3)
    pending = engine.store.execute("SELECT count(*), max(access_count) FROM pending_memory").fetchone()
    assert pending[0] >= 20 and pending[1] >= 5
    assert engine.run_job("promote").result["promoted"] > 0
    for _ in range(10):  # accesses of promoted memories reinforce their long-term successors
        agent.step()
    reinforced = engine.store.execute("SELECT count(*) FROM long_term_memory WHERE source_pending_id IS NOT NULL"
                                      " AND recall_count > 0").fetchone()[0]
    assert reinforced > 0


# -- promotion figures -------------------------------------------------------------------

def add_run(store, job: str, status: str, promoted: int) -> None:
    store.execute("INSERT INTO run (job, reason, started_at, status, result) VALUES (?, 'scheduled', 0, ?, ?)",
                  (job, status, json.dumps({"promoted": promoted})))


def test_promotion_stats_read_the_promote_job_s_own_successful_runs(store):
    from memtui.engine.memory import promotion_stats

    for promoted, status in ((5, "success"), (7, "failed"), (2, "success"), (3, "success")):
        add_run(store, "promote", status, promoted)
        add_run(store, "decay", "success", 100)  # another job's successes are not promotion's
    stats = promotion_stats(store, recent=2)
    assert stats.recent == [2, 3]  # oldest first


@pytest.mark.sqlite_only  # SQLite's planner: PostgreSQL chooses by its own statistics
def test_promotion_stats_walk_the_job_s_runs_by_its_index_not_every_success(store):
    from memtui.engine.memory import recent_results

    for i in range(200):
        add_run(store, "decay", "success", 0)
    store.execute("ANALYZE")  # statistics that make the status index look selective enough to tempt
    sql, params = recent_results(store, "promote", 20).sql()
    plan = " / ".join(str(row[-1]) for row in store.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall())
    assert "run_job_id" in plan and "run_status" not in plan, plan
