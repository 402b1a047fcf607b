"""Fault injection: what the store and the engine look like after things go wrong.

1. SIGKILL part-way through every job kind that writes (promote has its own test,
   tests/test_promote_kill.py): the store is consistent, the next start marks the
   cut run interrupted, and the job then runs to success.
2. A second process writing continuously while every job runs: no write fails,
   none is lost, nobody sees "database is locked".
3. Two ``memtui --no-ui`` engines on one database: no job runs twice at once, no
   due time runs twice, and when one is SIGKILLed the other carries on.
4. A job that hangs: the timeout fails it, frees its lease, and its late finish
   changes nothing; a real job kind stops at its next batch when told to.
5. The database file deleted, read-only, or full while the engine runs.
6. The clock jumping forward (one missed row, one catch-up) and back (cursors
   repaired).

Time in the engine tests is an injected FakeClock, driven by ``engine.sync()`` and
``engine._fire(name, due_ts)``; the only waits are bounded polls for child processes
and background run threads.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

import memtui.models.sqlite
from memtui.engine import Engine, load_config
from memtui.engine.clock import from_ts
from memtui.engine.config import Config, EngineSettings
from memtui.engine.demo import fill
from memtui.engine.jobs import DEFAULT_JOBS, KINDS
from memtui.engine.jobs.base import JobCancelled, JobKind, JobSpec
from memtui.engine.schedule import Schedule
from memtui.models import Store

from .helpers import (DAY, PYTHON, WAIT, Children, add_conversations, bulk, checkpoint, connect,
                      integrity_ok, job_state, kill_at, new_db, output, rows, run_rows, scalar, wait_until,
                      write_config)

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def children(tmp_path):
    procs = Children(tmp_path)
    yield procs
    procs.close()


def recovered_engine(db_path: Path, config_path: Path, job: str, pid: int, start: bool = False) -> Engine:
    """Open the store as the next start would, once the dead run's lease has expired (a crash is known by
    its lease, never by its PID), recover (or start), and check the cut run is interrupted."""
    config = load_config(config_path)
    engine = Engine(Store.open(db_path), config,
                    lambda: datetime.now(UTC) + timedelta(seconds=config.engine.lease_ttl_s + 1))
    if start:
        engine.start()  # recovers first thing
    else:
        assert engine.recover_interrupted() >= 1
    cut = [r for r in engine.history(job, 100) if f":{pid}:" in r.owner]
    assert len(cut) == 1, cut
    assert cut[0].status == "interrupted"
    assert cut[0].error == "the process running it stopped before it finished"
    assert cut[0].finished is not None
    conn = connect(db_path)
    state = job_state(conn, job)
    conn.close()
    assert (state["lease_owner"], state["lease_run_id"], state["last_status"]) == (None, None, "interrupted")
    return engine


def assert_cut_run_left_running(conn, job: str, pid: int) -> None:
    """Before recovery: the killed run's row still says running, and it still holds the lease."""
    [cut] = [r for r in run_rows(conn, job) if f":{pid}:" in r["owner"]]
    assert cut["status"] == "running"
    assert job_state(conn, job)["lease_run_id"] == cut["id"]


# -- 1. SIGKILL part-way through each job kind ---------------------------------------------

def test_sigkill_mid_consolidate_deletes_only_messages_of_closed_old_conversations(tmp_path, children):
    db = tmp_path / "consolidate.db"
    new_db(db)
    now = time.time()
    senders = [f"s{i}" for i in range(7)]
    add_conversations(db, [(senders[i % 7], "closed", now - 90 * DAY, now - 60 * DAY, 3) for i in range(8000)])
    add_conversations(db, [(senders[i % 7], "active", now - 90 * DAY, now - 60 * DAY, 3) for i in range(500)])
    add_conversations(db, [(senders[i % 7], "closed", now - 2 * DAY, now - DAY, 3) for i in range(500)])
    bulk(db, "INSERT INTO outcome (sender, domain, score, lesson, created_at) VALUES (?, 'd', 0, 'l', ?)",
         [(s, now - k * 3600) for s in senders for k in range(30)])
    config = write_config(tmp_path / "c.toml", "[jobs.consolidate]\nmin_hours_between = 0\n"
                          "min_new_conversations = 0\nbatch_size = 1\noutcomes_per_sender = 5\n")
    conn = connect(db)
    eligible = {r[0] for r in rows(conn, "SELECT id FROM conversation WHERE status = 'closed' AND updated_at < ?",
                                   (now - 30 * DAY,))}
    messages = dict(rows(conn, "SELECT id, conversation_id FROM message"))
    kept_messages = {m for m, c in messages.items() if c not in eligible}
    newest_outcomes = {r[0] for r in rows(
        conn, "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY sender"
              " ORDER BY created_at DESC, id DESC) AS rank FROM outcome) WHERE rank <= 5")}
    total = len(messages)

    proc = children.memtui("run", "consolidate", "--db", db, "--config", config, name="consolidate")
    kill_at(proc, db, lambda c: scalar(c, "SELECT count(*) FROM message") <= total - 300)

    assert integrity_ok(conn)
    assert_cut_run_left_running(conn, "consolidate", proc.pid)
    now_messages = dict(rows(conn, "SELECT id, conversation_id FROM message"))
    assert kept_messages <= set(now_messages), "a message of an active or recent conversation was deleted"
    gone = set(messages) - set(now_messages)
    assert {messages[m] for m in gone} <= eligible
    remaining = len(messages) - len(kept_messages) - len(gone)  # eligible messages not yet pruned
    assert gone and remaining > 0, "the kill should land part-way through"
    assert scalar(conn, "SELECT count(*) FROM conversation") == 9000
    assert newest_outcomes <= {r[0] for r in rows(conn, "SELECT id FROM outcome")}
    assert scalar(conn, "SELECT count(*) FROM fact WHERE key = 'last_consolidation'") == 0  # written last

    engine = recovered_engine(db, config, "consolidate", proc.pid)
    try:
        run = engine.run_job("consolidate")
        assert run.status == "success", run.error
        assert run.result["messages_pruned"] == remaining
    finally:
        engine.close()
    final = dict(rows(conn, "SELECT id, conversation_id FROM message"))
    assert set(final) == kept_messages
    assert {r[0] for r in rows(conn, "SELECT id FROM outcome")} == newest_outcomes
    assert scalar(conn, "SELECT count(*) FROM fact WHERE key = 'last_consolidation'") == 1
    conn.close()


def test_sigkill_mid_decay_never_deletes_pinned_or_live_memories(tmp_path, children):
    db = tmp_path / "decay.db"
    new_db(db)
    now = time.time()
    old = now - 400 * DAY

    def memory(i):
        group = ("pinned" if i % 10 == 0 else "soft-old" if i % 10 == 5 else "recalled" if i % 10 == 7
                 else "fading")
        reinforced = now - DAY if group == "recalled" else old
        deleted = now - 60 * DAY if group == "soft-old" else None
        return (f"{group} {i}", 5.0, old, reinforced, int(group == "pinned"), deleted)

    bulk(db, "INSERT INTO long_term_memory (content, importance, created_at, last_reinforced_at, pinned, deleted_at)"
             " VALUES (?, ?, ?, ?, ?, ?)", [memory(i) for i in range(20000)])
    config = write_config(tmp_path / "c.toml", "[jobs.decay]\nbatch_size = 1\n")
    conn = connect(db)
    group_of = {r[0]: r[1].split()[0] for r in rows(conn, "SELECT id, content FROM long_term_memory")}
    by_group = {g: {i for i, gg in group_of.items() if gg == g} for g in ("pinned", "soft-old", "recalled", "fading")}

    proc = children.memtui("run", "decay", "--db", db, "--config", config, name="decay")
    kill_at(proc, db, lambda c: scalar(c, "SELECT count(*) FROM long_term_memory WHERE deleted_at > ?",
                                       (now - DAY,)) >= 300)

    assert integrity_ok(conn)
    assert_cut_run_left_running(conn, "decay", proc.pid)
    assert scalar(conn, "SELECT count(*) FROM long_term_memory WHERE pinned != 0 AND deleted_at IS NOT NULL") == 0
    state = dict(rows(conn, "SELECT id, deleted_at FROM long_term_memory"))
    hard_deleted = set(group_of) - set(state)
    newly_soft = {i for i, d in state.items() if d is not None and d > now - DAY}
    assert hard_deleted <= by_group["soft-old"], "only memories soft-deleted past the grace period may go"
    assert newly_soft <= by_group["fading"], "only faded, unpinned memories may be soft-deleted"
    assert 0 < len(newly_soft) < len(by_group["fading"]), "the kill should land part-way through"
    assert all(state[i] is None for i in by_group["pinned"] | by_group["recalled"])
    # Every memory is accounted for exactly once: live, soft-deleted or hard-deleted.
    live = {i for i, d in state.items() if d is None}
    soft = {i for i, d in state.items() if d is not None}
    assert len(live) + len(soft) + len(hard_deleted) == len(group_of) == 20000

    engine = recovered_engine(db, config, "decay", proc.pid, start=True)
    try:
        run = engine.run_job("decay")
        assert run.status == "success", run.error
        assert run.result["soft_deleted"] == len(by_group["fading"]) - len(newly_soft)
        assert run.result["hard_deleted"] == len(by_group["soft-old"]) - len(hard_deleted)
    finally:
        engine.stop(timeout=5)
        engine.close()
    state = dict(rows(conn, "SELECT id, deleted_at FROM long_term_memory"))
    assert set(state) == by_group["pinned"] | by_group["recalled"] | by_group["fading"]
    assert all(state[i] is not None for i in by_group["fading"])
    assert all(state[i] is None for i in by_group["pinned"] | by_group["recalled"])
    conn.close()


def test_sigkill_mid_rollup_day_leaves_checkpoint_and_summaries_in_step(tmp_path, children):
    db = tmp_path / "rollup.db"
    new_db(db)
    now = time.time()
    today = int(now // DAY) * DAY  # UTC midnight; the job is configured for UTC
    days = 2500
    bulk(db, "INSERT INTO conversation (id, channel, sender, status, started_at, updated_at)"
             " VALUES (1, 'chat', 'alice', 'closed', ?, ?)", [(today - (days + 1) * DAY, now)])
    bulk(db, "INSERT INTO message (conversation_id, sender, role, content, created_at) VALUES (1, ?, 'user', ?, ?)",
         [(s, f"{s} talked about topic {k} with some more words here.", today - k * DAY + 3600 * h)
          for k in range(0, days + 1) for s in ("alice", "bob") for h in (1, 2)])
    config = write_config(tmp_path / "c.toml", '[jobs.rollup-day]\ntimezone = "UTC"\nbackfill_days = 3650\n')
    first = today - days * DAY

    proc = children.memtui("run", "rollup-day", "--db", db, "--config", config, name="rollup")
    kill_at(proc, db, lambda c: scalar(c, "SELECT count(*) FROM summary") >= 200)

    conn = connect(db)
    assert integrity_ok(conn)
    assert_cut_run_left_running(conn, "rollup-day", proc.pid)
    assert rows(conn, "SELECT level, period_start, sender FROM summary GROUP BY 1, 2, 3 HAVING count(*) > 1") == []
    cp = checkpoint(conn, "rollup-day")
    assert cp["in_progress"] is True
    next_ts = cp["until"]
    assert first < next_ts < today, "the kill should land part-way through"
    summaries = rows(conn, "SELECT period_start, sender FROM summary WHERE level = 'day'")
    # Exactly the days before the checkpoint are summarized, for both senders; none after it.
    expected = {(first + k * DAY, s) for k in range(int((next_ts - first) // DAY)) for s in ("alice", "bob")}
    assert set(summaries) == expected

    engine = recovered_engine(db, config, "rollup-day", proc.pid)
    try:
        run = engine.run_job("rollup-day")
        assert run.status == "success", run.error
        assert run.result["resumed_from_checkpoint"] is True
        assert run.result["summaries_written"] == 2 * days - len(expected)
    finally:
        engine.close()
    assert set(rows(conn, "SELECT period_start, sender FROM summary WHERE level = 'day'")) == {
        (first + k * DAY, s) for k in range(days) for s in ("alice", "bob")}
    assert rows(conn, "SELECT level, period_start, sender FROM summary GROUP BY 1, 2, 3 HAVING count(*) > 1") == []
    assert checkpoint(conn, "rollup-day") == {"until": float(today), "in_progress": False}
    conn.close()


PROFILE_ROWS = (("location", "city", "Berlin", 80), ("location", "city", "Munich", 3),
                ("preference", "favorite drink", "green tea", 40), ("preference", "Favorite Drink", "Green tea", 10),
                ("identity", "name", "Alice Moreau", 60), ("identity", "name", "alice moreau", 20),
                ("work", "employer", "Acme GmbH", 30))


def _profile_state(conn) -> tuple[dict, dict]:
    """Per entity: its attribute rows, and its history as (attribute id, reason) pairs."""
    attrs, history = {}, {}
    for row in rows(conn, "SELECT entity, id, category, key, value, confidence, source, updated_at"
                          " FROM profile_attribute ORDER BY id"):
        attrs.setdefault(row[0], []).append(row[1:])
    for entity, attribute_id, reason in rows(conn, "SELECT entity, attribute_id, reason FROM profile_attribute_history"
                                                   " ORDER BY attribute_id, reason"):
        history.setdefault(entity, []).append((attribute_id, reason))
    return attrs, history


def test_sigkill_mid_profile_leaves_no_half_merged_entity(tmp_path, children):
    db = tmp_path / "profile.db"
    new_db(db)
    now = time.time()
    bulk(db, "INSERT INTO profile_attribute (entity, category, key, value, confidence, source, updated_at)"
             " VALUES (?, ?, ?, ?, ?, 'test', ?)",
         [(f"user{e:05d}", cat, key, value, 0.5 + (i % 4) / 10, now - age * DAY)
          for e in range(3000) for i, (cat, key, value, age) in enumerate(PROFILE_ROWS)])
    config = write_config(tmp_path / "c.toml", "")
    # The reference: what an uninterrupted run makes of the same store.
    reference_db = tmp_path / "reference.db"
    shutil.copy(db, reference_db)
    reference = Engine(Store.open(reference_db), load_config(config))
    assert reference.run_job("profile").status == "success"
    reference.close()
    ref_conn = connect(reference_db)
    ref_attrs, ref_history = _profile_state(ref_conn)
    ref_conn.close()
    conn = connect(db)
    orig_attrs, orig_history = _profile_state(conn)
    assert orig_history == {} and len(orig_attrs) == 3000
    original_ids = {r[0] for r in rows(conn, "SELECT id FROM profile_attribute")}

    proc = children.memtui("run", "profile", "--db", db, "--config", config, name="profile")
    kill_at(proc, db, lambda c: scalar(c, "SELECT count(*) FROM profile_attribute_history") >= 100)

    assert integrity_ok(conn)
    assert_cut_run_left_running(conn, "profile", proc.pid)
    attrs, history = _profile_state(conn)
    present = {r[0] for r in rows(conn, "SELECT id FROM profile_attribute")}
    in_history = {r[0] for r in rows(conn, "SELECT attribute_id FROM profile_attribute_history")}
    assert original_ids <= present | in_history, "an attribute vanished without a history row"
    untouched = done = 0
    for entity in orig_attrs:
        if entity not in history:
            assert attrs[entity] == orig_attrs[entity], f"{entity} changed without history"
            untouched += 1
        else:
            assert (attrs[entity], history[entity]) == (ref_attrs[entity], ref_history[entity]), \
                f"{entity} is half-merged"
            done += 1
    assert untouched and done, "the kill should land part-way through"

    engine = recovered_engine(db, config, "profile", proc.pid)
    try:
        run = engine.run_job("profile")
        assert run.status == "success", run.error
        assert run.result["entities_changed"] == untouched
    finally:
        engine.close()
    assert _profile_state(conn) == (ref_attrs, ref_history)
    conn.close()


def test_sigkill_mid_compact_prunes_only_by_the_rules(tmp_path, children):
    db = tmp_path / "compact.db"
    new_db(db)
    now = time.time()
    bulk(db, "INSERT INTO run (job, reason, started_at, finished_at, status, owner)"
             " VALUES (?, 'scheduled', ?, ?, ?, ?)",
         [("promote", now - 200 * DAY + i, now - 200 * DAY + i, "success", "old") for i in range(200_000)]
         + [("decay", now - 200 * DAY + i, None, "running", "otherhost:1:old") for i in range(20)]
         + [("rollup-day", now - DAY + i, now - DAY + i, "success", "recent") for i in range(12_000)]
         + [("profile", now - DAY + i, now - DAY + i, "failed", "recent") for i in range(50)])
    config = write_config(tmp_path / "c.toml", "[jobs.compact]\nruns_per_job = 10000\n")
    conn = connect(db)
    original = dict(rows(conn, "SELECT id, job FROM run"))
    cutoff = now - 90 * DAY
    by_age = {r[0] for r in rows(conn, "SELECT id FROM run WHERE status != 'running' AND started_at < ?", (cutoff,))}
    rollup_ids = sorted((i for i, j in original.items() if j == "rollup-day"), reverse=True)
    by_cap = set(rollup_ids[10_000:])
    running = {r[0] for r in rows(conn, "SELECT id FROM run WHERE status = 'running'")}
    total = len(original)

    proc = children.memtui("run", "compact", "--db", db, "--config", config, name="compact")
    kill_at(proc, db, lambda c: scalar(c, "SELECT count(*) FROM run WHERE job != 'compact'") <= total - 5000)

    assert integrity_ok(conn)
    assert_cut_run_left_running(conn, "compact", proc.pid)
    current = {r[0] for r in rows(conn, "SELECT id FROM run")}
    deleted = set(original) - current
    assert deleted <= by_age | by_cap, "a run row was deleted that no rule selects"
    assert running <= current, "a running row was pruned"
    assert len(deleted) >= 5000 and by_age & current, "the kill should land part-way through"

    engine = recovered_engine(db, config, "compact", proc.pid)
    try:
        run = engine.run_job("compact")
        assert run.status == "success", run.error
    finally:
        engine.close()
    final = dict(rows(conn, "SELECT id, job FROM run"))
    assert not set(final) & (by_age | by_cap)
    assert {i for i, j in final.items() if j == "rollup-day"} == set(rollup_ids[:10_000])
    assert sum(1 for j in final.values() if j == "profile") == 50
    # The 20 old rows that were 'running' were marked interrupted by the recovery, then pruned by age.
    assert not running & set(final)
    assert [r["status"] for r in run_rows(conn, "compact")] == ["interrupted", "success"]
    conn.close()


# -- 2. a second process writing while every job runs -----------------------------------------

JOB_PARAMS = {
    "promote": {"cap": 0, "batch_size": 20},
    "consolidate": {"min_hours_between": 0.0, "min_new_conversations": 0, "batch_size": 10,
                    "outcomes_per_sender": 20},
    "decay": {"batch_size": 10},
    "compact": {"runs_per_job": 10},
}


def top_up(db: Path, now: float) -> None:
    """Fresh work for every job kind, so each round of jobs writes while the writer does."""
    tag = f"{now:.6f}"
    bulk(db, "INSERT INTO pending_memory (content, importance, confidence, access_count, last_access_at,"
             " created_at) VALUES (?, 9, 0.9, 10, ?, ?)", [(f"bulk {tag} {i}", now, now) for i in range(3000)])
    add_conversations(db, [("bulk", "closed", now - 90 * DAY, now - 60 * DAY, 5) for _ in range(200)])
    bulk(db, "INSERT INTO long_term_memory (content, importance, created_at, last_reinforced_at)"
             " VALUES (?, 5, ?, ?)", [(f"fading {tag} {i}", now - 400 * DAY, now - 400 * DAY) for i in range(1000)])
    bulk(db, "INSERT INTO run (job, reason, started_at, finished_at, status, owner)"
             " VALUES ('promote', 'scheduled', ?, ?, 'success', 'old')", [(now - 200 * DAY, now - 200 * DAY)] * 20000)
    bulk(db, "INSERT INTO profile_attribute (entity, category, key, value, confidence, source, updated_at)"
             " VALUES (?, ?, ?, ?, 0.5, 'bulk', ?)",
         [(f"bulk {tag} {e}", cat, key, value, now - age * DAY) for e in range(100)
          for cat, key, value, age in PROFILE_ROWS])


def test_a_concurrent_writer_loses_nothing_and_never_sees_locked_while_every_job_runs(tmp_path, children):
    db = tmp_path / "busy.db"
    store = Store.open(db)
    engine = Engine(store, Config(jobs=JOB_PARAMS))
    try:
        now = engine.clock()
        fill(store, now, scale=3)
        with store.atomic():
            store.execute(
                "INSERT INTO conversation (channel, sender, status, started_at, updated_at)"
                " VALUES ('chat', 'writer', 'active', ?, ?)", (now.timestamp(), now.timestamp()))
            conversation = store.execute("SELECT max(id) FROM conversation").fetchone()[0]
        stop, out = tmp_path / "stop", tmp_path / "writer.json"
        writer = children.start(PYTHON, Path(__file__).with_name("writer.py"), db, out, stop, conversation,
                                name="writer")
        conn = connect(db)
        wait_until(lambda: scalar(conn, "SELECT count(*) FROM pending_memory WHERE sender = 'writer'") >= 5,
                   what="the writer's first writes")
        runs = []
        # At least three rounds of every job; more (up to ten) until the writer has demonstrably
        # committed inside job runs — on a loaded machine it can take a while to get going.
        for round_no in range(10):
            top_up(db, engine.clock().timestamp())
            for name in DEFAULT_JOBS:
                runs.append(engine.run_job(name))
            spans = [(r.started.timestamp(), r.finished.timestamp()) for r in runs if r.duration_ms]
            times = [float(t) for t in (tmp_path / "commits").read_text().split()] \
                if (tmp_path / "commits").exists() else []
            if round_no >= 2 and sum(1 for t in times if any(a < t < b for a, b in spans)) >= 10:
                break
        stop.touch()
        writer.wait(WAIT)
        assert writer.returncode == 0, output(writer)
        done = json.loads(out.read_text())
        assert engine.problem is None
    finally:
        engine.close()

    failed = [(r.job, r.status, r.error, r.traceback) for r in runs if r.status not in ("success", "skipped")]
    assert failed == [], "\n".join(f"{j} {s} {e}\n{t}" for j, s, e, t in failed)
    busy = [(r.job, r.error) for r in runs if r.status == "skipped" and (r.result or {}).get("busy")]
    assert busy == []
    assert not any("locked" in (r.error or "") for r in runs)
    assert {r.job for r in runs if r.status == "success"} == set(DEFAULT_JOBS)

    assert done["errors"] == [], done["errors"][:5]
    assert done["missing_access"] == [], "an access found its memory in neither table"
    # The writer really wrote while the jobs ran: commits inside the runs' own time spans.
    spans = [(r.started.timestamp(), r.finished.timestamp()) for r in runs if r.duration_ms]
    during = sum(1 for t in done["commit_times"] if any(a < t < b for a, b in spans))
    assert during >= 10, f"only {during} of the writer's {done['writes']} commits fell inside a job run"
    # Every pending memory the writer inserted is in exactly one table.
    pending = dict(rows(conn, "SELECT id, access_count FROM pending_memory"))
    promoted = dict(rows(conn, "SELECT source_pending_id, recall_count FROM long_term_memory"
                               " WHERE source_pending_id IS NOT NULL"))
    for mid in done["high"] + done["low"]:
        where = "both tables" if mid in pending and mid in promoted else "neither table"
        assert (mid in pending) != (mid in promoted), f"writer memory {mid} is in {where}"
    assert all(mid in pending for mid in done["low"]), "a low-scoring, fresh memory left the pending table"
    assert any(mid in promoted for mid in done["high"]), "promote never moved a writer memory"
    # No access was lost: the counts match what the writer says it committed.
    initial = {**{m: 10 for m in done["high"]}, **{m: 0 for m in done["low"]}}
    for key, hits in done["access"].items():
        mid = int(key)
        if mid in pending:
            assert pending[mid] == initial[mid] + hits["pending"]
        else:
            assert promoted[mid] == hits["long_term"]
    messages = {r[0] for r in rows(conn, "SELECT id FROM message WHERE conversation_id = ?", (conversation,))}
    assert set(done["messages"]) <= messages
    assert integrity_ok(conn)
    conn.close()


HOLD_LOCK = """
import os, sqlite3, sys, time
db, go, held, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
conn = sqlite3.connect(db, timeout=30, isolation_level=None)
while not os.path.exists(go):
    time.sleep(0.001)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO setting (key, value) VALUES ('agent', '1') ON CONFLICT (key) DO UPDATE SET value = value + 1")
open(held, "w").close()
time.sleep(seconds)
conn.execute("COMMIT")
"""


@pytest.mark.parametrize("statement", ["PRAGMA optimize", "VACUUM"])
def test_compact_waits_for_another_process_holding_the_write_lock(tmp_path, children, monkeypatch, statement):
    """An agent holds the write lock for 0.3 s just as compact reaches ``statement``: compact must wait
    (busy timeout 30 s), not fail with "database is locked"."""
    db = tmp_path / "optimize.db"
    store = Store.open(db)
    engine = Engine(store, Config(jobs=JOB_PARAMS))
    go, held = tmp_path / "go", tmp_path / "held"
    agent = children.start(PYTHON, "-c", HOLD_LOCK, db, go, held, 0.3, name="agent")
    try:
        fill(store, engine.clock(), scale=1)
        for name in DEFAULT_JOBS:  # the planner uses the indexes: optimize will want fresh statistics
            if name != "compact":
                assert engine.run_job(name).status == "success"
        now = engine.clock().timestamp()  # old run rows: pruning them leaves enough free pages to VACUUM
        bulk(db, "INSERT INTO run (job, reason, started_at, finished_at, status, owner, result)"
                 " VALUES ('promote', 'scheduled', ?, ?, 'success', 'old', ?)",
             [(now - 200 * DAY, now - 200 * DAY, "x" * 200)] * 20000)
        real_execute = store.execute

        def execute(sql, params=()):
            if sql == statement and not go.exists():
                go.touch()  # the agent takes the write lock now, and keeps it 0.3 s
                if not store.db.in_transaction():  # (if compact holds the lock already, the agent waits instead)
                    wait_until(held.exists, timeout=WAIT, what="the agent holding the lock")
            return real_execute(sql, params)

        monkeypatch.setattr(store, "execute", execute)
        run = engine.run_job("compact")
        agent.wait(WAIT)
        assert agent.returncode == 0, output(agent)
    finally:
        engine.close()
    assert go.exists(), f"compact never ran {statement}"
    assert run.status == "success", f"{run.error}\n{run.traceback}"
    assert run.result["vacuumed"] is True



# -- 3. two engines on one database ---------------------------------------------------------

TWO_ENGINES_CONFIG = """\
[engine]
poll_interval_s = 0.2
lease_ttl_s = 5

[jobs.promote]
schedule = "1s"

[jobs.decay]
schedule = "1s"
"""
FAST_JOBS = ("promote", "decay")


def assert_no_overlap_and_no_due_time_twice(conn) -> None:
    for job in FAST_JOBS:
        ran = [r for r in run_rows(conn, job) if r["status"] not in ("skipped", "missed")]
        ran.sort(key=lambda r: r["started_at"])
        for a, b in zip(ran, ran[1:]):
            assert a["finished_at"] is not None, f"{job} run {a['id']} never finished"
            # An interrupted run is ended at the latest by the claim that takes its expired lease, in the
            # same transaction as the next run's row (engine/leases.py): never after the next run began.
            assert b["started_at"] >= a["finished_at"], f"{job} runs {a['id']} and {b['id']} overlap: {a} {b}"
        due = [r["scheduled_for"] for r in ran if r["scheduled_for"] is not None]
        assert len(due) == len(set(due)), f"a due time of {job} ran twice"


def wait_for_line(proc, fragment: str, timeout: float = WAIT) -> None:
    wait_until(lambda: fragment in output(proc) or proc.poll() is not None, timeout, f"{fragment!r} in the log")
    assert proc.poll() is None, output(proc)


def test_two_engines_share_the_jobs_and_the_survivor_recovers_a_killed_ones_run(tmp_path, children):
    db = tmp_path / "two.db"
    config = write_config(tmp_path / "two.toml", TWO_ENGINES_CONFIG)
    Engine(Store.open(db), load_config(config)).close()  # seed the 1 s schedules
    now = time.time()
    # Enough low-scoring pending memories that scoring them takes a while: promote runs are
    # long enough to be caught running, and nothing ever promotes or expires.
    bulk(db, "INSERT INTO pending_memory (content, importance, confidence, access_count, created_at)"
             " VALUES (?, 0, 0, 0, ?)", [(f"low {i}", now - DAY) for i in range(300_000)])
    a = children.memtui("--no-ui", "--db", db, "--config", config, name="engine-a")
    b = children.memtui("--no-ui", "--db", db, "--config", config, name="engine-b")
    wait_for_line(a, "engine running on")
    wait_for_line(b, "engine running on")
    conn = connect(db)

    def shared() -> bool:
        """Both engines have run jobs, and promote has succeeded four times (its first, full pass over
        300,000 memories took 3 s here and 7 s on a loaded CI machine: wait for the runs, not a fixed time)."""
        assert a.poll() is None and b.poll() is None, output(a) + output(b)
        time.sleep(0.2)  # the engines need the cores more than this loop does
        ran = {pid for pid in (a.pid, b.pid)
               if scalar(conn, "SELECT count(*) FROM run WHERE status = 'success' AND owner LIKE ?", (f"%:{pid}:%",))}
        promoted = scalar(conn, "SELECT count(*) FROM run WHERE job = 'promote' AND status = 'success'")
        return ran == {a.pid, b.pid} and promoted >= 4

    wait_until(shared, timeout=60, what="both engines running jobs, promote four times")
    assert_no_overlap_and_no_due_time_twice(conn)

    # SIGKILL engine A while it is running promote.
    mine = f"%:{a.pid}:%"
    wait_until(lambda: rows(conn, "SELECT id FROM run WHERE status = 'running' AND owner LIKE ?", (mine,)),
               timeout=30, what="engine A running a job")
    a.send_signal(signal.SIGKILL)
    a.wait(WAIT)
    killed_at = time.time()
    cut = [r for r in run_rows(conn) if r["status"] == "running" and f":{a.pid}:" in r["owner"]]
    assert cut, "the kill should leave engine A's run row running"
    # The survivor marks it interrupted, frees the lease, and keeps running both jobs.
    wait_until(lambda: all(scalar(conn, "SELECT status FROM run WHERE id = ?", (r["id"],)) == "interrupted"
                           for r in cut), timeout=30, what="the killed run marked interrupted")
    for r in cut:
        job = r["job"]
        assert job_state(conn, job)["lease_run_id"] != r["id"]
    for job in FAST_JOBS:
        wait_until(lambda: scalar(conn, "SELECT count(*) FROM run WHERE job = ? AND status = 'success'"
                                        " AND owner LIKE ? AND started_at > ?",
                                  (job, f"%:{b.pid}:%", killed_at)) >= 2, timeout=30,
                   what=f"engine B running {job} after the kill")
    b.send_signal(signal.SIGTERM)
    b.wait(WAIT)
    assert b.returncode == 0, output(b)
    assert scalar(conn, "SELECT count(*) FROM run WHERE status = 'running'") == 0
    assert_no_overlap_and_no_due_time_twice(conn)
    for proc in (a, b):
        text = output(proc)
        assert "Traceback" not in text and "locked" not in text, text
    conn.close()


# -- 4. a job that hangs ---------------------------------------------------------------------

@dataclass(frozen=True)
class NoConfig:
    pass


class Hang:
    """Each run blocks until its own gate is released, then checks whether it was told to stop."""

    def __init__(self):
        self.gates: list[SimpleNamespace] = []
        self._lock = threading.Lock()

    def run(self, ctx):
        gate = SimpleNamespace(started=threading.Event(), release=threading.Event(), finished=threading.Event(),
                               cancelled=None)
        with self._lock:
            self.gates.append(gate)
        gate.started.set()
        try:
            if not gate.release.wait(WAIT):
                raise RuntimeError("the test never released the run")
            try:
                ctx.check()
                gate.cancelled = False
            except JobCancelled:
                gate.cancelled = True
                raise
            return {"hung": 1}
        finally:
            gate.finished.set()

    def gate(self, index: int) -> SimpleNamespace:
        wait_until(lambda: len(self.gates) > index, timeout=WAIT, what=f"hang run {index} starting")
        return self.gates[index]


@pytest.fixture
def hang(monkeypatch):
    kind = Hang()
    monkeypatch.setitem(KINDS, "hang", JobKind("hang", kind.run, NoConfig, "blocks until released"))
    monkeypatch.setitem(DEFAULT_JOBS, "hang", JobSpec("hang", "hang", "1h"))
    yield kind
    for gate in kind.gates:
        gate.release.set()


def run_threads(name: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == f"memtui-run-{name}" and t.is_alive())


TIMEOUT_SETTINGS = EngineSettings(job_timeout_s=5, poll_interval_s=60, backoff_base_s=30, stop_timeout_s=2)


def test_a_hung_run_is_failed_by_the_timeout_and_its_late_finish_changes_nothing(hang, store, clock, db_path):
    engine = Engine(store, Config(engine=TIMEOUT_SETTINGS), clock)
    engine.start()
    conn = connect(db_path)
    try:
        engine.run_now("hang")
        first = hang.gate(0)
        assert first.started.wait(WAIT)
        [row] = run_rows(conn, "hang")
        assert row["status"] == "running"
        assert job_state(conn, "hang")["lease_run_id"] == row["id"]

        clock.advance(seconds=6)
        engine.sync()
        [row] = run_rows(conn, "hang")
        assert row["status"] == "failed"
        assert "timed out after 5 s" in row["error"] and "job_timeout_s" in row["error"]
        assert row["finished_at"] == (T0 + timedelta(seconds=6)).timestamp()
        assert row["duration_ms"] == 6000
        state = job_state(conn, "hang")
        # The run is failed and told to stop, but keeps the lease for one lease TTL, so a run that
        # stops at its next batch never overlaps the next one.
        assert state["lease_run_id"] == row["id"]
        assert (state["runs"], state["errors"], state["consecutive_failures"], state["last_status"]) == \
            (1, 1, 1, "failed")
        assert state["backoff_until"] == (T0 + timedelta(seconds=36)).timestamp()
        assert engine.problem is None
        assert engine.running_jobs() == ["hang"]
        for _ in range(3):  # repeated syncs count the timeout once
            engine.sync()
        assert job_state(conn, "hang")["errors"] == 1
        assert engine.run_job("hang").status == "skipped"  # still its lease

        # A lease TTL later the thread still hasn't stopped: the job is free again.
        clock.advance(seconds=TIMEOUT_SETTINGS.lease_ttl_s + 1)
        engine.sync()
        state = job_state(conn, "hang")
        assert (state["lease_owner"], state["lease_run_id"], state["lease_expires_at"]) == (None, None, None)
        assert engine.running_jobs() == []
        assert job_state(conn, "hang")["errors"] == 1

        # The lease is free: a new run starts while the hung thread is still blocked.
        engine.run_now("hang")
        second = hang.gate(1)
        assert second.started.wait(WAIT)
        new_row = run_rows(conn, "hang")[2]
        assert new_row["status"] == "running"
        assert job_state(conn, "hang")["lease_run_id"] == new_row["id"]

        # The hung run wakes up late: it sees it was told to stop, and its finish writes nothing.
        first.release.set()
        assert first.finished.wait(WAIT)
        wait_until(lambda: run_threads("hang") == 1, what="the late run's thread ending")
        assert first.cancelled is True
        assert run_rows(conn, "hang")[0] == row
        state = job_state(conn, "hang")
        assert state["lease_run_id"] == new_row["id"], "the late finish freed the new run's lease"
        assert (state["runs"], state["errors"]) == (2, 1)  # the timed-out run and the skipped one

        second.release.set()
        wait_until(lambda: run_threads("hang") == 0, what="the second run ending")
        assert second.cancelled is False
        assert [r["status"] for r in run_rows(conn, "hang")] == ["failed", "skipped", "success"]
        state = job_state(conn, "hang")
        assert (state["runs"], state["errors"], state["consecutive_failures"], state["lease_run_id"]) == \
            (3, 1, 0, None)
        assert engine.problem is None
    finally:
        for gate in hang.gates:
            gate.release.set()
        engine.stop(timeout=5)
        conn.close()


def test_promote_stops_at_its_next_batch_when_the_timeout_cancels_it(store, clock, db_path):
    n = 20_000
    ts = clock().timestamp()
    bulk(db_path, "INSERT INTO pending_memory (content, importance, confidence, access_count, last_access_at,"
                  " created_at) VALUES (?, 9, 0.9, 10, ?, ?)", [(f"memory {i}", ts, ts) for i in range(n)])
    engine = Engine(store, Config(engine=TIMEOUT_SETTINGS, jobs={"promote": {"cap": 0, "batch_size": 1}}), clock)
    conn = connect(db_path)
    try:
        engine.run_now("promote")
        wait_until(lambda: scalar(conn, "SELECT count(*) FROM long_term_memory") >= 100, what="promotion under way")
        clock.advance(seconds=6)
        engine.sync()  # sets the run's cancel flag and fails it
        moved_at_cancel = scalar(conn, "SELECT count(*) FROM long_term_memory")
        wait_until(lambda: run_threads("promote") == 0, what="promote stopping")
        moved = scalar(conn, "SELECT count(*) FROM long_term_memory")
        assert moved <= moved_at_cancel + 1, "promote went on after it was told to stop"
        assert moved < n
        [row] = run_rows(conn, "promote")
        assert row["status"] == "failed" and "timed out after 5 s" in row["error"]
        pending = {r[0] for r in rows(conn, "SELECT id FROM pending_memory")}
        sources = [r[0] for r in rows(conn, "SELECT source_pending_id FROM long_term_memory")]
        assert len(sources) == len(set(sources)) and not pending & set(sources)
        assert len(pending) + len(sources) == n
        assert job_state(conn, "promote")["lease_run_id"] is None
        finisher = Engine(store, Config(jobs={"promote": {"cap": 0}}), clock)
        assert finisher.run_job("promote").status == "success"  # and the next run finishes the work
        assert scalar(conn, "SELECT count(*) FROM pending_memory") == 0
        assert scalar(conn, "SELECT count(DISTINCT source_pending_id) FROM long_term_memory") == n
    finally:
        engine.stop(timeout=5)
        conn.close()


# -- 5. the database file deleted, read-only, or full ------------------------------------------

HELD_SETTINGS = EngineSettings(poll_interval_s=60, stop_timeout_s=2)  # the sync loop stays out of the way


def backup(db_path: Path, to: Path) -> None:
    src, dst = sqlite3.connect(db_path), sqlite3.connect(to)
    src.backup(dst)
    dst.close()
    src.close()


def held_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "memtui.engine" and "jobs held" in r.getMessage()]


def resumed_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "memtui.engine" and "usable again" in r.getMessage()]


def cursor_of(store: Store, name: str) -> float:
    return store.execute("SELECT next_run_at FROM job_state WHERE name = ?", (name,)).fetchone()[0]


def test_deleted_database_holds_the_jobs_and_a_restored_backup_resumes_them(tmp_path, clock, caplog):
    caplog.set_level(logging.INFO, logger="memtui.engine")
    db, saved = tmp_path / "gone.db", tmp_path / "backup.db"
    store = Store.open(db)
    engine = Engine(store, Config(engine=HELD_SETTINGS), clock)
    engine.start()
    try:
        due = cursor_of(store, "promote")
        backup(db, saved)
        witness = connect(db)  # stays on the deleted file, to see whether anything writes to it
        assert scalar(witness, "SELECT count(*) FROM run") == 0
        os.remove(db)
        for _ in range(5):
            engine.sync()  # never raises
        assert engine.problem is not None and "deleted or moved" in engine.problem
        assert str(db) in engine.problem
        assert engine._alarms == {}, "no alarm may stay set while the jobs are held"
        clock.set(from_ts(due) + timedelta(seconds=1))
        engine._fire("promote", due)  # an alarm that was already on its way
        engine.sync()
        assert not db.exists(), "nothing may create a new, empty database in its place"
        assert scalar(witness, "SELECT count(*) FROM run") == 0, "nothing may be written to the deleted file"
        assert scalar(witness, "SELECT next_run_at FROM job_state WHERE name = 'promote'") == due
        witness.close()
        assert run_threads("promote") == 0
        assert len(held_lines(caplog)) == 1, "the problem is logged once, not on every sync"

        shutil.copy(saved, db)
        engine.sync()
        assert engine.problem is None
        st = os.stat(db)
        assert store.identity == (st.st_dev, st.st_ino)
        assert len(resumed_lines(caplog)) == 1
        # Alarms are set again; promote's, already due, may have fired at once (then this is a no-op).
        assert set(engine._alarms) >= set(DEFAULT_JOBS) - {"promote"}
        engine._fire("promote", due)
        conn = connect(db)
        wait_until(lambda: [r["status"] for r in run_rows(conn, "promote")] == ["success"], what="promote running")
        assert cursor_of(store, "promote") > due
        assert integrity_ok(conn)
        conn.close()
    finally:
        engine.stop(timeout=2)
        engine.close()


def test_a_restored_older_backup_is_read_as_it_is_not_mixed_with_the_deleted_files_wal(tmp_path, caplog):
    """The backup is older than the deleted file (writes happened after it). While the engine's threads
    (main and sync loop) still hold connections to the deleted file, its -wal and -shm stay on disk under
    the same names; the restored file must not be read through them."""
    db, saved = tmp_path / "gone.db", tmp_path / "backup.db"
    store = Store.open(db)
    engine = Engine(store, Config(engine=EngineSettings(poll_interval_s=0.1, stop_timeout_s=2)))
    engine.start()  # the sync loop thread opens its own connection
    try:
        for i in range(20):
            engine.remember(f"before the backup {i}")
        time.sleep(0.3)  # let the sync loop use its connection (it polls every 0.1 s)
        backup(db, saved)
        with store.atomic():
            for i in range(500):
                store.execute("INSERT INTO pending_memory (content, created_at) VALUES (?, 0)", (f"after {i}" * 20,))
        os.remove(db)
        wait_until(lambda: engine.problem is not None, timeout=10, what="the engine noticing the deletion")
        shutil.copy(saved, db)
        wait_until(lambda: engine.problem is None, timeout=10, what="the engine adopting the restored file")
        conn = connect(db)
        try:
            assert integrity_ok(conn), "the restored database reads as corrupt"
            assert scalar(conn, "SELECT count(*) FROM pending_memory") == 20, \
                "the restored database shows rows that only the deleted file had"
        finally:
            conn.close()
        assert store.execute("SELECT count(*) FROM pending_memory").fetchone()[0] == 20
    finally:
        engine.stop(timeout=2)
        engine.close()


def _immutable(path: Path, on: bool) -> bool:
    """As root, mode 0444 does not stop writes: add the immutable flag too (where chattr works)."""
    if os.geteuid() != 0:
        return True
    try:
        return subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.fixture
def read_only(db_path):
    """Make the database file read-only (and undo it, whatever happens)."""
    state = {"on": False}

    def make(on: bool) -> None:
        if on:
            os.chmod(db_path, 0o444)
            if not _immutable(db_path, True):
                os.chmod(db_path, 0o644)
                pytest.skip("running as root without chattr: a read-only file cannot be simulated")
        else:
            _immutable(db_path, False)
            os.chmod(db_path, 0o644)
        state["on"] = on

    yield make
    if state["on"]:
        make(False)


def test_read_only_database_fails_background_runs_cleanly_and_recovers_after_chmod(store, clock, db_path,
                                                                                    read_only, caplog):
    caplog.set_level(logging.INFO, logger="memtui.engine")
    engine = Engine(store, Config(engine=HELD_SETTINGS), clock)
    engine.start()
    conn = connect(db_path)
    try:
        read_only(True)
        engine.run_now("promote")  # a fresh thread, so a fresh connection: it cannot write
        wait_until(lambda: engine.problem is not None, timeout=10, what="the problem being reported")
        wait_until(lambda: run_threads("promote") == 0, what="the run thread ending")
        assert "readonly" in engine.problem and "check the file's permissions" in engine.problem
        assert run_rows(conn, "promote") == [], "no run row could be written, and none is left running"
        state = job_state(conn, "promote")
        assert (state["lease_owner"], state["lease_run_id"], state["runs"]) == (None, None, 0)
        assert engine.running_jobs() == []
        assert len(held_lines(caplog)) == 1

        read_only(False)
        engine.sync()
        assert engine.problem is None
        engine.run_now("promote")
        wait_until(lambda: [r["status"] for r in run_rows(conn, "promote")] == ["success"], what="promote running")
    finally:
        engine.stop(timeout=2)
        conn.close()


def test_read_only_database_stays_reported_until_it_is_writable_again(store, clock, db_path, read_only, caplog):
    """The sync loop's connection was opened before the chmod and can still write, so a probe through it
    proves nothing: every run (a fresh thread and connection) would still fail."""
    caplog.set_level(logging.INFO, logger="memtui.engine")
    engine = Engine(store, Config(engine=HELD_SETTINGS), clock)
    engine.start()
    conn = connect(db_path)
    try:
        due = cursor_of(store, "promote")
        read_only(True)
        engine.run_now("promote")
        wait_until(lambda: engine.problem is not None, timeout=10, what="the problem being reported")
        wait_until(lambda: run_threads("promote") == 0, what="the run thread ending")
        for _ in range(3):
            engine.sync()  # from this thread, whose connection predates the chmod
        assert engine.problem is not None, "the problem was cleared while the file is still read-only"
        clock.set(from_ts(due))
        engine._fire("promote", due)  # jobs are held: the alarm claims nothing and runs nothing
        wait_until(lambda: run_threads("promote") == 0, what="no run thread left")
        assert cursor_of(store, "promote") == due
        assert len(held_lines(caplog)) == 1 and resumed_lines(caplog) == []

        read_only(False)
        engine.sync()
        assert engine.problem is None
        engine._fire("promote", due)
        wait_until(lambda: [r["status"] for r in run_rows(conn, "promote")] == ["success"], what="promote running")
    finally:
        engine.stop(timeout=2)
        conn.close()


def full_store(tmp_path, monkeypatch, clock, spare_pages: int, config: Config) -> tuple[Store, Engine]:
    """A store of 2000 large pending memories whose connections may grow it by ``spare_pages`` only."""
    db = tmp_path / "full.db"
    setup = Store.open(db)
    Engine(setup, config, clock)  # seed the jobs
    setup.close()
    ts = clock().timestamp()
    bulk(db, "INSERT INTO pending_memory (content, importance, confidence, access_count, last_access_at, created_at)"
             " VALUES (?, 9, 0.9, 10, ?, ?)", [("x" * 1000 + str(i), ts, ts) for i in range(2000)])
    conn = connect(db)
    pages = scalar(conn, "PRAGMA page_count")
    conn.close()
    monkeypatch.setitem(memtui.models.sqlite.PRAGMAS, "max_page_count", pages + spare_pages)
    store = Store.open(db)
    assert store.execute("PRAGMA max_page_count").fetchone()[0] == pages + spare_pages
    return store, Engine(store, config, clock)


def raise_the_limit(store: Store) -> None:
    """More room: the Store copied PRAGMAS when it opened, so set the pragma on it, for every connection."""
    store.db.pragma("max_page_count", 1 << 30, permanent=True)
    store.reopen()


FULL_CONFIG = Config(engine=HELD_SETTINGS, jobs={"promote": {"cap": 0}})


def test_disk_full_fails_the_run_with_a_clear_message_and_more_room_lets_it_succeed(tmp_path, monkeypatch, clock,
                                                                                    caplog):
    caplog.set_level(logging.INFO, logger="memtui.engine")
    store, engine = full_store(tmp_path, monkeypatch, clock, 3, FULL_CONFIG)
    try:
        run = engine.run_job("promote")
        assert run.status == "failed"
        assert "database or disk is full" in run.error
        conn = connect(store.path)
        state = job_state(conn, "promote")
        assert (state["lease_run_id"], state["errors"], state["consecutive_failures"]) == (None, 1, 1)
        assert scalar(conn, "SELECT count(*) FROM pending_memory") == 2000  # the failed batch wrote nothing
        assert scalar(conn, "SELECT count(*) FROM long_term_memory") == 0
        for _ in range(5):
            engine.sync()
        assert len(run_rows(conn)) == 1, "repeated syncs write nothing"
        assert held_lines(caplog) == []

        raise_the_limit(store)
        engine.sync()
        assert engine.problem is None
        run = engine.run_job("promote")
        assert run.status == "success" and run.result["promoted"] == 2000
        assert integrity_ok(conn)
        conn.close()
    finally:
        engine.stop(timeout=2)
        engine.close()


def test_disk_too_full_for_the_engine_holds_the_jobs_with_a_clear_message(tmp_path, monkeypatch, clock, caplog):
    caplog.set_level(logging.INFO, logger="memtui.engine")
    store, engine = full_store(tmp_path, monkeypatch, clock, 3, FULL_CONFIG)
    engine.start()
    try:
        # Fill every last page, through the run table too, so the engine cannot even record a run.
        for size in (3000, 300, 30, 1):
            while True:
                try:
                    store.execute("INSERT INTO run (job, reason, started_at, status, owner, error)"
                                  " VALUES ('filler', 'manual', 0, 'skipped', 'test', ?)", ("y" * size,))
                except Exception as exc:  # noqa: BLE001 - peewee's OperationalError
                    assert "full" in str(exc)
                    break
        filler_rows = store.execute("SELECT count(*) FROM run").fetchone()[0]
        engine.run_now("promote")
        wait_until(lambda: engine.problem is not None, timeout=10, what="the problem being reported")
        wait_until(lambda: run_threads("promote") == 0, what="the run thread ending")
        assert "database or disk is full" in engine.problem and "free some disk space" in engine.problem, \
            engine.problem
        conn = connect(store.path)
        assert scalar(conn, "SELECT count(*) FROM run") == filler_rows
        assert job_state(conn, "promote")["lease_run_id"] is None
        for _ in range(5):
            engine.sync()
        assert engine.problem is not None, "the problem was cleared while the database is still full"
        assert len(held_lines(caplog)) == 1

        raise_the_limit(store)
        engine.sync()
        assert engine.problem is None
        engine.run_now("promote")
        wait_until(lambda: [r["status"] for r in run_rows(conn, "promote")] == ["success"], what="promote running")
        conn.close()
    finally:
        engine.stop(timeout=2)
        engine.close()


# -- 6. the clock jumps ---------------------------------------------------------------------------

def wait_runs_finished(conn) -> None:
    wait_until(lambda: scalar(conn, "SELECT count(*) FROM run WHERE status = 'running'") == 0
               and all(run_threads(name) == 0 for name in DEFAULT_JOBS), what="runs finishing")


# Cron jobs pinned to UTC, so which of them fall due does not depend on the machine's time zone.
CLOCK_CONFIG = Config(engine=HELD_SETTINGS,
                      jobs={name: {"timezone": "UTC"} for name in ("rollup-day", "rollup-week", "rollup-month",
                                                                   "compact")})


def test_clock_jumping_forward_three_days_records_one_miss_and_one_catch_up_per_job(store, clock, db_path):
    engine = Engine(store, CLOCK_CONFIG, clock)
    engine.start()
    conn = connect(db_path)
    try:
        cursors = {name: cursor_of(store, name) for name in DEFAULT_JOBS}
        now = clock.advance(days=3)
        engine.sync()
        assert {name: cursor_of(store, name) for name in DEFAULT_JOBS} == cursors, "forward needs no repair"
        overdue = {name: due for name, due in cursors.items() if due <= now.timestamp()}
        # Monday 12:00 UTC to Thursday 12:00: the Sunday and first-of-month jobs are not due yet.
        assert set(overdue) == {"promote", "consolidate", "decay", "dedupe", "profile", "rollup-day"}
        for name, due in overdue.items():  # every overdue alarm goes off at once, as after a suspend
            engine._fire(name, due)
        wait_runs_finished(conn)
        for name, due in overdue.items():  # and again: a late duplicate alarm changes nothing
            engine._fire(name, due)
        for _ in range(3):
            engine.sync()
        wait_runs_finished(conn)

        for name in DEFAULT_JOBS:
            runs = run_rows(conn, name)
            if name not in overdue:
                assert runs == [] and cursor_of(store, name) == cursors[name]
                continue
            schedule = Schedule.parse(*rows(conn, "SELECT schedule, timezone, jitter_s FROM job_definition"
                                                  " WHERE name = ?", (name,))[0])
            assert [(r["status"], r["reason"]) for r in runs][0] == ("missed", "scheduled"), runs
            assert len(runs) == 2, f"{name}: one missed row and one catch-up run, no burst: {runs}"
            missed, catch_up = runs
            result = json.loads(missed["result"])
            if schedule.is_interval:
                expected = int((now.timestamp() - cursors[name]) // schedule.interval_s) + 1
            else:
                expected = 3  # rollup-day: 01:00 on Tuesday, Wednesday and Thursday
            assert result["missed"] == expected
            assert result["first_missed"] == from_ts(cursors[name]).isoformat()
            assert missed["scheduled_for"] == cursors[name]
            assert catch_up["reason"] == "catch-up" and catch_up["status"] in ("success", "skipped")
            nxt = cursor_of(store, name)
            assert now.timestamp() < nxt, f"{name} is still overdue"
            if schedule.is_interval:
                assert nxt <= now.timestamp() + schedule.interval_s
                assert (nxt - cursors[name]) % schedule.interval_s == 0, "the interval grid moved"
        assert engine.problem is None
    finally:
        engine.stop(timeout=2)
        conn.close()


def test_clock_jumping_back_two_hours_repairs_the_cursors_and_the_jobs_run_when_due(store, clock, db_path, caplog):
    caplog.set_level(logging.INFO, logger="memtui.engine")
    engine = Engine(store, CLOCK_CONFIG, clock)
    engine.start()
    conn = connect(db_path)
    try:
        before = {name: cursor_of(store, name) for name in DEFAULT_JOBS}
        now = clock.advance(hours=-2)
        for _ in range(3):
            engine.sync()
        repaired = [r.getMessage() for r in caplog.records if "the clock went back" in r.getMessage()]
        assert len(repaired) == len({"promote", "consolidate", "decay", "dedupe", "profile"}), repaired  # logged once each
        for name in DEFAULT_JOBS:
            schedule = Schedule.parse(*rows(conn, "SELECT schedule, timezone, jitter_s FROM job_definition"
                                                  " WHERE name = ?", (name,))[0])
            due = cursor_of(store, name)
            natural = schedule.next_after(now, jitter=False).timestamp()
            assert now.timestamp() < due <= natural + schedule.jitter_s, f"{name} not due within its own interval"
            if schedule.is_interval:
                assert due == now.timestamp() + schedule.interval_s
            else:
                assert due == before[name], "a cron job's cursor is already right"
        # The old, far cursor is stale: firing it does nothing.
        engine._fire("promote", before["promote"])
        assert run_rows(conn, "promote") == []
        # Each repaired job runs when its new due time comes, on schedule (not as a catch-up).
        for name in ("promote", "consolidate", "decay", "profile"):
            due = cursor_of(store, name)
            clock.set(from_ts(due))
            engine._fire(name, due)
            wait_runs_finished(conn)
            [run] = run_rows(conn, name)
            assert (run["reason"], run["scheduled_for"]) == ("scheduled", due)
            assert run["status"] in ("success", "skipped")  # consolidate's gates may skip
            assert cursor_of(store, name) > due
        assert engine.problem is None
    finally:
        engine.stop(timeout=2)
        conn.close()
