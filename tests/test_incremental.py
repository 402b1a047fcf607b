"""Incremental promote and decay do what a full pass would (migration 0004, engine/jobs/promote.py, decay.py).

The property first: over random histories (memories written and used through
the API and through plain SQL, config changes, the clock jumping forwards and
back, cap pressure) every run of the incremental job has the outcome a full
pass has on a copy of the same store taken just before the run: the same
memories promoted, expired, soft-deleted and hard-deleted, and the same counts.
Then the parts one at a time: the triggers see plain SQL; each reason for a full
pass, and a full pass owed surviving a failed run; decay's retirement times
recomputed for a new floor or half-life; a promotion killed part-way.

The copy is a second store on the same backend (a SQLite file, a PostgreSQL
database) into which the memory rows are copied before each run; the full pass
runs there under the same config with ``full_pass_every_h = 0``.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, note, settings, strategies as st

from memtui.engine import Engine, FakeClock
from memtui.engine import memory as ops
from memtui.engine.agent import Memory
from memtui.engine.config import Config
from memtui.engine.jobs.decay import HORIZON_KEY, DecayConfig, retention
from memtui.engine.jobs.promote import seen_mark
from memtui.models import Store
from tests import postgres
from tests.factories import add_long_term, add_pending, count
from tests.kill import kill_promote_part_way
from tests.triggers import allow, refuse

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
HOUR, DAY = 3600.0, 86400.0
NEVER = 1e6  # a full_pass_every_h that keeps the safety net out of a history: its runs stay incremental

PENDING_COLUMNS = ("id", "content", "kind", "sender", "session", "importance", "confidence", "access_count",
                   "last_access_at", "remember", "created_at", "demo")
# Without id (the copy numbers its own; a memory is known by its content) and retire_at (derived).
LONG_TERM_COLUMNS = ("content", "kind", "sender", "importance", "confidence", "created_at", "promoted_at",
                     "last_reinforced_at", "recall_count", "pinned", "source_pending_id", "deleted_at", "demo")
FLAGS = {"remember", "pinned", "demo"}  # 0/1 on SQLite, booleans on PostgreSQL
# What must agree between the incremental run and the full pass ("pass" and "scored" legitimately differ).
COMPARED = {"promote": ("promoted", "expired", "deferred", "top_score"), "decay": ("soft_deleted", "hard_deleted")}
COUNTED = {"promote": ("promoted", "expired", "deferred"), "decay": ("soft_deleted", "hard_deleted",
                                                                       "horizon_recomputed")}


# -- the harness: a store, its reference copy, a clock and the jobs' params ---------------------------


@pytest.fixture
def reference(db_target, tmp_path):
    """A second store on the same backend, for the full pass the incremental run is compared with."""
    if "://" in db_target:
        with postgres.fresh_database("reference") as url:
            store = Store.open(url)
            yield store
            store.close()
        return
    store = Store.open(str(tmp_path / "reference.db"))
    yield store
    store.close()


def read_rows(store, table: str, columns) -> list[tuple]:
    return [tuple(bool(v) if c in FLAGS else v for c, v in zip(columns, row))
            for row in store.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()]


def copy_memories(source, target) -> None:
    """The memories of ``source`` as they are now replace those of ``target`` (the reference's runs are
    all full passes: they score every row whatever its change mark); retire_at is not copied (decay's
    full pass tests the formula, not retire_at)."""
    with target.atomic():
        target.execute("DELETE FROM pending_memory")
        target.execute("DELETE FROM long_term_memory")
        for table, columns in (("pending_memory", PENDING_COLUMNS), ("long_term_memory", LONG_TERM_COLUMNS)):
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for row in read_rows(source, table, columns):
                target.execute(sql, row)


def memories(store) -> tuple[list, list]:
    """What the jobs decided, comparable across the two stores: the pending ids left, and every
    long-term memory left with all its fields (deleted_at says whether and when decay soft-deleted it)."""
    pending = sorted(r[0] for r in store.execute("SELECT id FROM pending_memory"))
    return pending, sorted(read_rows(store, "long_term_memory", LONG_TERM_COLUMNS), key=repr)


def flagged(store, pending_id: int) -> bool:
    """The next promote run scores this memory: written since the last run's mark, or deferred by the cap."""
    return bool(store.execute("SELECT rescore OR changed > ? FROM pending_memory WHERE id = ?",
                              (seen_mark(store), pending_id)).fetchone()[0])


def expected_retire_at(horizon: float, reinforced: float, importance: float, recalls: int) -> float:
    return reinforced + horizon * (0.5 + importance / 10.0) * (1 + recalls)


def assert_retire_at_follows_the_formula(store) -> None:
    """Every long-term row's retire_at is what the formula gives under the stored horizon, NULL while
    pinned or soft-deleted: whoever wrote the row, and however."""
    horizon = float(store.setting(HORIZON_KEY))
    rows = store.execute("SELECT id, last_reinforced_at, importance, recall_count, pinned, deleted_at, retire_at"
                         " FROM long_term_memory").fetchall()
    for lid, reinforced, importance, recalls, pinned, deleted_at, retire_at in rows:
        if pinned or deleted_at is not None:
            assert retire_at is None, (lid, pinned, deleted_at, retire_at)
        else:
            assert retire_at == pytest.approx(expected_retire_at(horizon, reinforced, importance, recalls),
                                              rel=0, abs=1e-6), lid


class History:
    """One history, step by step, over ``store``; each job run is compared with a full pass on ``reference``."""

    def __init__(self, store, reference, promote: dict | None = None, decay: dict | None = None):
        self.store, self.reference = store, reference
        self.clock = FakeClock(T0)
        self.memory = Memory(store, self.clock)
        self.params = {"promote": dict(promote or {}), "decay": dict(decay or {})}
        self.seen: Counter = Counter()
        self.written: list[int] = []  # every pending id ever handed out, for accesses through the API
        self.n = 0
        self._engines: tuple[Engine, Engine] | None = None

    @staticmethod
    def reset(*stores) -> None:
        """Memories, checkpoints and the decay horizon as a new store has them (between examples)."""
        for store in stores:
            with store.atomic():
                store.execute("DELETE FROM pending_memory")
                store.execute("DELETE FROM long_term_memory")
                store.execute("DELETE FROM job_checkpoint")
                store.set_setting(HORIZON_KEY, repr(DecayConfig().horizon_s))

    def engines(self) -> tuple[Engine, Engine]:
        """(the engine under test, the reference engine whose every run is a full pass), under the params."""
        if self._engines is None:
            jobs = {job: dict(params) for job, params in self.params.items()}
            full = {job: {**params, "full_pass_every_h": 0} for job, params in self.params.items()}
            self._engines = (Engine(self.store, Config(jobs=jobs), self.clock),
                             Engine(self.reference, Config(jobs=full), self.clock))
        return self._engines

    def now(self) -> float:
        return self.clock().timestamp()

    def content(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def pending_ids(self) -> list[int]:
        return [r[0] for r in self.store.execute("SELECT id FROM pending_memory ORDER BY id")]

    def long_term_ids(self) -> list[int]:
        return [r[0] for r in self.store.execute("SELECT id FROM long_term_memory ORDER BY id")]

    # -- steps (each named do_<step>, arguments as the strategies draw them) --------------------------

    def do_remember(self, importance: float, confidence: float, keep: bool = False) -> int:
        pid = self.memory.remember(self.content("p"), importance=importance, confidence=confidence, keep=keep)
        self.written.append(pid)
        assert flagged(self.store, pid)
        return pid

    def do_insert(self, importance: float, confidence: float, accesses: int, access_hours_ago: float | None,
                  age_hours: float, unflagged: bool) -> int:
        """A pending memory written by an agent in plain SQL; perhaps even saying rescore = FALSE."""
        now = self.now()
        pid = self.store.execute(
            "INSERT INTO pending_memory (content, kind, sender, importance, confidence, access_count,"
            " last_access_at, remember, created_at, rescore) VALUES (?, 'note', 'agent', ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id",
            (self.content("p"), importance, confidence, accesses,
             None if access_hours_ago is None else now - access_hours_ago * HOUR, False, now - age_hours * HOUR,
             not unflagged)).fetchone()[0]
        self.written.append(pid)
        assert flagged(self.store, pid)  # new to promote, whatever the INSERT said
        return pid

    def do_access(self, pick: int) -> None:
        """record_access through the API, on any id ever handed out (promoted: it reinforces the
        long-term successor; gone: refused)."""
        if not self.written:
            return
        pid = self.written[pick % len(self.written)]
        try:
            tier = self.memory.record_access(pid)
        except ops.MemoryInputError:
            return
        if tier == "pending":
            assert flagged(self.store, pid)

    def do_recall(self, pick: int) -> None:
        """recall through the API: reinforces long-term hits (restoring decayed ones), accesses pending ones."""
        if self.n:
            self.memory.recall(f"p{pick % self.n + 1}")

    def do_set_pending(self, pick: int, column: str, value) -> None:
        ids = self.pending_ids()
        if ids:
            self.sql_pending(ids[pick % len(ids)], column, value)

    def sql_pending(self, pid: int, column: str, value) -> None:
        """A plain-SQL write to one of a pending memory's scoring inputs (times given in hours ago)."""
        if column in ("last_access_at", "created_at"):
            value = self.now() - value * HOUR
        self.store.execute(f"UPDATE pending_memory SET {column} = ? WHERE id = ?", (value, pid))
        assert flagged(self.store, pid), column

    def do_insert_long(self, importance: float, recalls: int, age_days: float, reinforced_days_ago: float,
                       pinned: bool) -> int:
        now = self.clock()
        return add_long_term(self.store, created=now - timedelta(days=age_days),
                             reinforced=now - timedelta(days=min(age_days, reinforced_days_ago)),
                             importance=importance, recalls=recalls, pinned=pinned, content=self.content("l"))

    def do_set_long(self, pick: int, column: str, value) -> None:
        """A plain-SQL write to a long-term memory (times given in days ago; deleted_at None restores)."""
        ids = self.long_term_ids()
        if not ids:
            return
        if column in ("last_reinforced_at", "deleted_at") and value is not None:
            value = self.now() - value * DAY
        self.store.execute(f"UPDATE long_term_memory SET {column} = ? WHERE id = ?", (value, ids[pick % len(ids)]))

    def do_reinforce(self, pick: int) -> None:
        ids = self.long_term_ids()
        if ids:
            ops.reinforce(self.store, self.clock(), ids[pick % len(ids)])

    def do_advance(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    def do_back(self, seconds: int) -> None:
        self.clock.advance(seconds=-seconds)

    def do_configure(self, job: str, changes: dict) -> None:
        self.params[job].update(changes)
        self._engines = None

    def do_run(self, job: str) -> dict:
        """Run ``job``; a full pass over a copy of the store as it was just before must agree. The reference
        has run each job at the same times as the store under test, so its checkpoint's last now is the
        same: a run whose clock is a little behind the last run's scores at that now in both."""
        copy_memories(self.store, self.reference)
        engine, full = self.engines()
        expected = full.run_job(job)
        got = engine.run_job(job)
        assert expected.status == "success", expected.error
        assert got.status == "success", got.error
        assert expected.result["pass"] == "full"
        compared = COMPARED[job]
        assert {k: got.result.get(k) for k in compared} == {k: expected.result.get(k) for k in compared}, \
            (got.result, expected.result)
        assert memories(self.store) == memories(self.reference), (got.result, expected.result)
        if job == "promote":  # only the qualifiers the cap left behind stay flagged: nothing is scored twice
            assert count(self.store, "pending_memory", "rescore") == got.result["deferred"]
        kind = got.result["pass"] if got.result["pass"] == "incremental" else got.result.get("full_because", "full")
        self.seen[(job, kind)] += 1
        for key in COUNTED[job]:
            if got.result.get(key):
                self.seen[(job, kind, key)] += 1
        return got.result

    def apply(self, step: tuple):
        name, *args = step
        out = getattr(self, f"do_{name}")(*args)
        assert_retire_at_follows_the_formula(self.store)
        return out


# -- 1. the property: incremental == full pass, after every step of any history ----------------------------

# Rounded as the API rounds (9 places): a subnormal (5e-324) written by plain SQL makes PostgreSQL raise "value out
# of range: underflow" in the score or the retire_at trigger, where SQLite computes 0; docs/schema.md says so.
IMPORTANCE = st.one_of(st.integers(0, 10).map(float), st.floats(0, 10).map(lambda x: round(x, 9)))
CONFIDENCE = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]), st.floats(0, 1).map(lambda x: round(x, 9)))
PICK = st.integers(0, 10_000)
HOURS_AGO = st.one_of(st.integers(-2, 48), st.integers(48, 24 * 30)).map(float)
DAYS_AGO = st.one_of(st.floats(0, 5), st.floats(5, 400))
SECONDS = st.one_of(st.integers(1, 3600), st.integers(3600, 2 * 86400), st.integers(2 * 86400, 30 * 86400))

PROMOTE_CHANGES = st.fixed_dictionaries({}, optional={
    "threshold": st.sampled_from([0.3, 0.5, 0.6, 0.7, 0.85]),
    "w_recency": st.sampled_from([0.0, 0.2, 0.5]),
    "w_frequency": st.sampled_from([0.1, 0.3]),
    "w_confidence": st.sampled_from([0.25, 0.5]),
    "w_importance": st.sampled_from([0.25, 0.4]),
    # 0.5 and 0.9: recency far below the smallest double over the long spans (score_terms caps the hours, else
    # PostgreSQL's pow() raises "underflow" where SQLite's gives 0).
    "recency_decay": st.sampled_from([0.5, 0.9, 0.985, 0.99, 0.995, 1.0]),
    "cap": st.sampled_from([0, 1, 2, 3, 500]),
    "ttl_days": st.sampled_from([0.25, 1.0, 3.0, 7.0]),
    "batch_size": st.sampled_from([1, 2, 1000]),
    "full_pass_every_h": st.sampled_from([1.0, 24.0, NEVER, NEVER]),
})
DECAY_CHANGES = st.fixed_dictionaries({}, optional={
    "half_life_days": st.sampled_from([0.5, 2.0, 10.0, 30.0]),
    "floor": st.sampled_from([0.05, 0.3, 0.6]),
    "min_age_days": st.sampled_from([0.0, 0.5, 7.0]),
    "grace_days": st.sampled_from([0.0, 0.5, 3.0, 30.0]),
    "batch_size": st.sampled_from([1, 5000]),
    "full_pass_every_h": st.sampled_from([24.0, NEVER, NEVER]),
})

PENDING_WRITES = st.one_of(
    st.tuples(st.just("importance"), IMPORTANCE),
    st.tuples(st.just("confidence"), CONFIDENCE),
    st.tuples(st.just("access_count"), st.integers(0, 15)),
    st.tuples(st.just("last_access_at"), HOURS_AGO),
    st.tuples(st.just("remember"), st.booleans()),
    st.tuples(st.just("created_at"), HOURS_AGO),
)
LONG_TERM_WRITES = st.one_of(
    st.tuples(st.just("importance"), IMPORTANCE),
    st.tuples(st.just("recall_count"), st.integers(0, 5)),
    st.tuples(st.just("last_reinforced_at"), DAYS_AGO),
    st.tuples(st.just("pinned"), st.booleans()),
    st.tuples(st.just("deleted_at"), st.one_of(st.none(), st.floats(0, 5))),
)
STEPS = {
    "remember": st.tuples(st.just("remember"), IMPORTANCE, CONFIDENCE, st.integers(0, 7).map(lambda n: n == 0)),
    "remember a likely qualifier": st.tuples(st.just("remember"), st.integers(5, 10).map(float),
                                             st.sampled_from([0.5, 1.0]), st.just(False)),
    "insert": st.tuples(st.just("insert"), IMPORTANCE, CONFIDENCE, st.integers(0, 12),
                        st.one_of(st.none(), HOURS_AGO), HOURS_AGO.map(abs), st.booleans()),
    "access": st.tuples(st.just("access"), PICK),
    "recall": st.tuples(st.just("recall"), PICK),
    "set_pending": st.tuples(st.just("set_pending"), PICK, PENDING_WRITES).map(lambda t: (t[0], t[1], *t[2])),
    "insert_long": st.tuples(st.just("insert_long"), IMPORTANCE, st.integers(0, 3), DAYS_AGO, DAYS_AGO,
                             st.integers(0, 5).map(lambda n: n == 0)),
    "set_long": st.tuples(st.just("set_long"), PICK, LONG_TERM_WRITES).map(lambda t: (t[0], t[1], *t[2])),
    "reinforce": st.tuples(st.just("reinforce"), PICK),
    "advance": st.tuples(st.just("advance"), SECONDS),
    "back": st.tuples(st.just("back"),
                      st.one_of(st.integers(1, 60), st.integers(60, 3600), st.integers(3600, 3 * 86400))),
    "configure promote": st.tuples(st.just("configure"), st.just("promote"), PROMOTE_CHANGES),
    "configure decay": st.tuples(st.just("configure"), st.just("decay"), DECAY_CHANGES),
    "run": st.tuples(st.just("run"), st.sampled_from(["promote", "decay"])),
}
# How often each kind of step comes, relative to the others: runs and writes most.
WEIGHTS = {"remember": 3, "remember a likely qualifier": 3, "insert": 2, "access": 3, "recall": 1,
           "set_pending": 3, "insert_long": 1, "set_long": 2, "reinforce": 1, "advance": 3, "back": 2,
           "configure promote": 2, "configure decay": 1, "run": 6}
STEP = st.one_of(*(STEPS[kind] for kind, weight in WEIGHTS.items() for _ in range(weight)))
# The jobs' params to begin with (promote's cap apart, so that cap pressure is common), then the steps.
HISTORY = st.tuples(st.sampled_from([1, 2, 3, 0, 500]), PROMOTE_CHANGES, DECAY_CHANGES,
                    st.lists(STEP, min_size=15, max_size=60))
# Every history ends with both jobs run, promote again after the clock went back two hours (what the drawn steps
# rarely do after a first promote run: hypothesis favours short runs of steps), both again three days later (most
# long-term memories retired by then, at decay's params to begin with), and decay once more half a day after that
# (past its grace, to begin with); last, an agent's plain-SQL memory written 30 days ago that scores nothing but
# recency, and promote once more: an incremental run that expires it, under most params (which draws reach an
# expiry otherwise depends on hypothesis's version: 6.170.17's 30 examples on PostgreSQL had none).
CODA = [("run", "promote"), ("run", "decay"), ("back", 2 * 3600), ("run", "promote"), ("advance", 3 * 86400 + 2 * 3600),
        ("run", "promote"), ("run", "decay"), ("advance", 13 * 3600), ("run", "decay"),
        ("insert", 0.0, 0.0, 0, None, 30 * 24.0, False), ("run", "promote")]
EXAMPLES = {"sqlite": 120, "postgresql": 30}


def test_incremental_runs_agree_with_a_full_pass_over_any_history(store, reference):
    seen: Counter = Counter()

    @settings(max_examples=EXAMPLES[store.kind], deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(HISTORY)
    def check(history):
        cap, promote, decay, steps = history
        History.reset(store, reference)
        # Decay's lifetimes short to begin with, so that soft and hard deletes are common (promote's TTL is
        # left long: memories scored below the threshold stay, for a change of settings to make them qualify).
        h = History(store, reference, {"full_pass_every_h": NEVER, "cap": cap, **promote},
                    {"full_pass_every_h": NEVER, "min_age_days": 0.0, "half_life_days": 0.5, "floor": 0.3,
                     "grace_days": 0.5, **decay})
        for step in [*steps, *CODA]:
            note(f"{h.clock().isoformat()} {step}")
            h.apply(step)
        seen.update(h.seen)

    check()
    # The comparison meant something: incremental runs did every kind of thing a run does.
    wanted = [("promote", "incremental", "promoted"), ("promote", "incremental", "expired"),
              ("promote", "incremental", "deferred"), ("decay", "incremental", "soft_deleted"),
              ("decay", "incremental", "hard_deleted"), ("decay", "incremental", "horizon_recomputed"),
              ("promote", "scoring settings changed"), ("promote", "clock moved back"), ("promote", "safety net")]
    if store.kind != "sqlite":  # fewer examples: the fixed history below covers the rest on every backend
        wanted = [kind for kind in wanted if kind[-1] in ("promoted", "expired", "soft_deleted", "hard_deleted")]
    assert not [kind for kind in wanted if not seen[kind]], sorted(seen.items())


def test_a_fixed_history_hits_every_outcome_and_agrees_with_a_full_pass(store, reference):
    """A history written out by hand, so that what the property covers does not rest on what hypothesis
    happens to draw: incremental runs that promote (a deferred qualifier, a memory an agent's SQL made
    qualify), defer, expire, soft-delete and hard-delete, each reason for a full pass, a recompute."""
    h = History(store, reference, {"cap": 2, "ttl_days": 1.0, "full_pass_every_h": NEVER},
                {"half_life_days": 2.0, "floor": 0.3, "min_age_days": 0.0, "grace_days": 1.0,
                 "full_pass_every_h": NEVER})
    run = lambda job: h.apply(("run", job))  # noqa: E731
    top = h.apply(("remember", 10.0, 1.0, False))  # 0.2 + 0.25 + 0.25 = 0.70
    h.apply(("remember", 9.0, 0.9, False))  # 0.65
    h.apply(("remember", 8.0, 1.0, False))  # 0.65, the higher id: deferred by the cap
    low = h.apply(("remember", 1.0, 0.1, False))  # 0.25
    stale = h.apply(("remember", 5.0, 0.5, False))  # 0.45
    assert run("promote") == {"promoted": 2, "expired": 0, "deferred": 1, "top_score": 0.7, "pass": "full",
                              "full_because": "first run", "scored": 5}
    assert run("decay")["pass"] == "full"
    h.apply(("advance", 60))
    assert run("promote")["promoted"] == 1  # the deferred one kept its flag
    assert not flagged(store, low) and not flagged(store, stale)
    # An agent's plain SQL makes the low one qualify: the trigger flags it, the incremental run takes it.
    h.sql_pending(low, "importance", 10.0)
    h.sql_pending(low, "access_count", 10)
    h.apply(("remember", 9.0, 1.0, False))
    h.apply(("remember", 9.0, 1.0, False))
    h.apply(("remember", 9.0, 1.0, False))
    result = run("promote")
    assert (result["pass"], result["promoted"], result["deferred"]) == ("incremental", 2, 2)
    h.apply(("advance", int(1.5 * DAY)))  # the stale one is past the TTL
    result = run("promote")
    assert (result["pass"], result["promoted"], result["expired"]) == ("incremental", 2, 1)
    assert count(store, "pending_memory", "id = ?", (stale,)) == 0
    # Decay: every long-term memory retires within about five days at this half-life and floor; one an
    # agent wrote with plain SQL, and made older with plain SQL, too.
    old = h.apply(("insert_long", 5.0, 0, 30.0, 0.0, False))
    store.execute("UPDATE long_term_memory SET last_reinforced_at = ? WHERE id = ?", (h.now() - 10 * DAY, old))
    assert_retire_at_follows_the_formula(store)
    result = run("decay")
    assert (result["pass"], result["soft_deleted"]) == ("incremental", 1)
    h.apply(("advance", int(6 * DAY)))
    result = run("decay")  # the seven promoted ones soft-deleted, the old one past its grace
    assert (result["pass"], result["soft_deleted"], result["hard_deleted"]) == ("incremental", 7, 1)
    assert h.memory.record_access(top) == "long_term"  # used again: its successor is restored
    (first,) = store.execute("SELECT id FROM long_term_memory WHERE source_pending_id = ?", (top,)).fetchone()
    h.apply(("advance", int(1.5 * DAY)))
    result = run("decay")
    assert (result["pass"], result["soft_deleted"], result["hard_deleted"]) == ("incremental", 0, 6)
    assert h.long_term_ids() == [first]
    h.apply(("configure", "decay", {"floor": 0.05}))
    result = run("decay")
    assert result.get("horizon_recomputed") and result["pass"] == "incremental"
    # Each reason for a full pass.
    h.apply(("remember", 5.0, 0.5, False))
    h.apply(("configure", "promote", {"threshold": 0.4}))
    assert run("promote")["full_because"] == "scoring settings changed"
    h.apply(("configure", "promote", {"cap": 0, "ttl_days": 7.0}))  # not a scoring setting
    assert run("promote")["pass"] == "incremental"
    # 0.2·recency + 0.12 + 0 + 0.1 is at least 0.4 for 21 hours after the last access: cleared after 30,
    # it qualifies again when the clock goes back to 5 hours after.
    back = h.apply(("remember", 4.0, 0.0, False))
    h.sql_pending(back, "access_count", 4)
    h.apply(("advance", 30 * 3600))
    assert run("promote")["promoted"] == 0
    assert not flagged(store, back)
    h.apply(("back", 25 * 3600))
    result = run("promote")
    assert (result["full_because"], result["promoted"]) == ("clock moved back", 1)
    h.apply(("configure", "promote", {"full_pass_every_h": 1.0}))
    h.apply(("advance", 2 * 3600))
    assert run("promote")["full_because"] == "safety net"
    # A clock a few seconds behind the last run's (another host's): compared with a full pass all the same.
    h.apply(("back", 10))
    h.apply(("remember", 10.0, 1.0, False))
    assert run("promote")["promoted"] == 1
    wanted = {("promote", "incremental", "promoted"), ("promote", "incremental", "expired"),
              ("promote", "incremental", "deferred"), ("decay", "incremental", "soft_deleted"),
              ("decay", "incremental", "hard_deleted"), ("decay", "incremental", "horizon_recomputed")}
    assert wanted <= set(h.seen), sorted(h.seen.items())


# -- 2. the triggers see plain SQL ----------------------------------------------------------------------

def make_engine(store, clock, promote: dict | None = None, decay: dict | None = None) -> Engine:
    jobs = {job: params for job, params in (("promote", promote), ("decay", decay)) if params}
    return Engine(store, Config(jobs=jobs), clock)


# Per scoring input: a pending memory below the threshold (0.6) and a plain-SQL write that makes it qualify.
AT = object()  # "now", in the write
SCORING_WRITES = {
    "importance": (dict(importance=0, confidence=0.2, accesses=10, last_access=AT), 10.0),  # 0.55 -> 0.80
    "confidence": (dict(importance=0, confidence=0, accesses=10, last_access=AT), 1.0),  # 0.50 -> 0.75
    "access_count": (dict(importance=10, confidence=0, accesses=0, last_access=AT), 10),  # 0.45 -> 0.75
    "last_access_at": (dict(importance=4, confidence=0, accesses=10, last_access=-100), AT),  # 0.52 -> 0.60
    "remember": (dict(importance=0, confidence=0, accesses=0, last_access=AT), True),  # 0.20 -> kept
    "created_at": (dict(importance=4, confidence=0, accesses=10, last_access=None, created=-100), AT),  # same
}


def at(clock, value):
    if value is AT:
        return clock()
    return None if value is None else clock() + timedelta(hours=value)


@pytest.mark.parametrize("column", list(SCORING_WRITES))
def test_a_plain_sql_write_to_a_scoring_input_makes_the_next_incremental_run_score_it(store, clock, column):
    base, value = SCORING_WRITES[column]
    kw = {k: at(clock, v) if k in ("last_access", "created") else v for k, v in base.items()}
    below = add_pending(store, clock(), **kw)
    engine = make_engine(store, clock)
    first = engine.run_job("promote").result
    assert (first["pass"], first["promoted"]) == ("full", 0)
    assert not flagged(store, below)  # scored below the threshold: not scored again until written
    clock.advance(seconds=30)
    idle = engine.run_job("promote").result
    assert (idle["pass"], idle["scored"], idle["promoted"]) == ("incremental", 0, 0)
    written = clock().timestamp() if value is AT else value
    store.execute(f"UPDATE pending_memory SET {column} = ? WHERE id = ?", (written, below))
    assert flagged(store, below)
    run = engine.run_job("promote").result
    assert (run["pass"], run["scored"], run["promoted"]) == ("incremental", 1, 1)
    assert count(store, "long_term_memory", "source_pending_id = ?", (below,)) == 1


def test_any_write_to_a_scoring_input_flags_even_of_the_same_value_and_other_columns_do_not(store, clock):
    pid = add_pending(store, clock(), importance=1, confidence=0.1)
    engine = make_engine(store, clock)
    engine.run_job("promote")
    for column in ("content", "kind", "sender", "session", "demo"):
        store.execute(f"UPDATE pending_memory SET {column} = {column} WHERE id = ?", (pid,))
        assert not flagged(store, pid), column
    for column in ("importance", "confidence", "access_count", "last_access_at", "remember", "created_at"):
        store.execute(f"UPDATE pending_memory SET {column} = {column} WHERE id = ?", (pid,))
        assert flagged(store, pid), column
        clock.advance(seconds=1)
        run = engine.run_job("promote").result
        assert (run["pass"], run["scored"], run["promoted"]) == ("incremental", 1, 0)
        assert not flagged(store, pid)


def test_an_access_through_the_api_flags_and_the_incremental_run_promotes(store, clock):
    memory = Memory(store, clock)
    pid = memory.remember("aisle seats", importance=4, confidence=0)
    for _ in range(9):
        memory.record_access(pid)  # 0.2 + 0.27 + 0 + 0.1 = 0.57
    engine = make_engine(store, clock)
    assert engine.run_job("promote").result["promoted"] == 0
    assert not flagged(store, pid)
    clock.advance(seconds=30)
    assert memory.record_access(pid) == "pending"  # ten accesses: 0.2·0.999… + 0.3 + 0.1 = 0.6 (rounded)
    assert flagged(store, pid)
    run = engine.run_job("promote").result
    assert (run["pass"], run["promoted"]) == ("incremental", 1)


def test_a_change_after_the_highest_numbered_memory_was_deleted_is_still_above_the_mark(store, clock):
    """SQLite numbers a change one above the highest number in the table or the last run's mark: the row
    that held the highest may be gone (promoted, forgotten) by the time the next change comes."""
    engine = make_engine(store, clock)
    below = add_pending(store, clock(), importance=1, confidence=0.1, content="below")
    last = add_pending(store, clock(), importance=1, confidence=0.1, content="the last one written")
    assert engine.run_job("promote").result["promoted"] == 0
    mark = seen_mark(store)
    assert not flagged(store, below) and not flagged(store, last)
    store.execute("DELETE FROM pending_memory WHERE id = ?", (last,))  # the highest number goes
    store.execute("UPDATE pending_memory SET importance = 10, access_count = 10, confidence = 1 WHERE id = ?",
                  (below,))
    assert store.execute("SELECT changed FROM pending_memory WHERE id = ?", (below,)).fetchone()[0] > mark
    clock.advance(seconds=30)
    run = engine.run_job("promote").result
    assert (run["pass"], run["scored"], run["promoted"]) == ("incremental", 1, 1)


def test_a_write_still_open_when_a_run_takes_its_mark_is_scored_by_the_next_run(store, clock, db_target):
    """PostgreSQL numbers a change by its transaction: one open while a run reads cannot be seen by it, and
    commits later with a lower number than changes the run did see. The mark stays below it (SQLite: a
    writer holds the only write lock, so a run waits for it to end)."""
    if store.kind == "sqlite":
        pytest.skip("SQLite serializes writers: a run's mark cannot pass an open write")
    from urllib.parse import urlsplit

    engine = make_engine(store, clock)
    pid = add_pending(store, clock(), importance=1, confidence=0.1)
    assert engine.run_job("promote").result["promoted"] == 0
    agent = postgres.connect(urlsplit(db_target).path.lstrip("/"))
    elsewhere = postgres.connect("postgres")  # a transaction left open in another database: not waited for
    try:
        elsewhere.execute("BEGIN")
        elsewhere.execute("SELECT pg_current_xact_id()")
        agent.execute("BEGIN")
        agent.execute("UPDATE pending_memory SET importance = 10, access_count = 10, confidence = 1 WHERE id = %s",
                      (pid,))
        clock.advance(seconds=30)
        newer = add_pending(store, clock(), importance=1, confidence=0.1, content="committed after it began")
        while_open = engine.run_job("promote").result
        assert (while_open["pass"], while_open["scored"], while_open["promoted"]) == ("incremental", 1, 0)
        agent.execute("COMMIT")
        clock.advance(seconds=30)
        after = engine.run_job("promote").result
        assert (after["pass"], after["promoted"]) == ("incremental", 1)
        assert count(store, "long_term_memory", "source_pending_id = ?", (pid,)) == 1
        clock.advance(seconds=30)
        # The mark is past both now, whatever stays open in the other database.
        assert engine.run_job("promote").result["scored"] == 0 and not flagged(store, newer)
    finally:
        elsewhere.execute("ROLLBACK")
        elsewhere.close()
        agent.close()


def test_a_store_from_0007_keeps_what_was_flagged_for_the_next_run(db_target, clock):
    """Migration 0008: the memories flagged under 0007 are marked changed (above the mark 0 of an older
    checkpoint), with their score at their last use stored; the others keep theirs and are not scored."""
    from playhouse.migrations import Runner

    from memtui.engine.jobs.promote import PromoteConfig, scoring_settings
    from memtui.models.db import MIGRATIONS_DIR

    old = Store.open(db_target, migrate=False)
    try:
        Runner(old.db, directory=str(MIGRATIONS_DIR)).up(target="0007_lighter_writes")
        now = clock().timestamp()
        rows = {"flagged, qualifies": (10.0, 1.0, 10, True), "flagged, below": (1.0, 0.1, 0, True),
                "scored before": (2.0, 0.2, 0, False)}
        ids = {}
        for name, (importance, confidence, uses, flag) in rows.items():
            ids[name] = old.execute(
                "INSERT INTO pending_memory (content, importance, confidence, access_count, last_access_at,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (name, importance, confidence, uses, now, now)).fetchone()[0]
            old.execute("UPDATE pending_memory SET rescore = ?, last_score = ? WHERE id = ?",
                        (flag, None if flag else 0.3, ids[name]))
        old.execute("INSERT INTO job_checkpoint (job, value, updated_at) VALUES ('promote', ?, ?)",
                    (json.dumps({"now": now, "full_at": now, "full_due": None, "scores_stored": True,
                                 "scored_with": scoring_settings(PromoteConfig())}), now))
    finally:
        old.close()
    store = Store.open(db_target)
    try:
        got = {name: store.execute("SELECT changed, rescore, last_score FROM pending_memory WHERE id = ?",
                                   (i,)).fetchone() for name, i in ids.items()}
        assert [(changed, bool(flag)) for changed, flag, _ in got.values()] == [(1, False), (1, False), (0, False)]
        assert got["flagged, below"][2] == pytest.approx(0.2 + 0.25 * 0.1 + 0.25 * 0.1, abs=1e-9)
        assert got["scored before"][2] == 0.3
        clock.advance(seconds=30)
        run = make_engine(store, clock).run_job("promote").result
        assert (run["pass"], run["scored"], run["promoted"]) == ("incremental", 2, 1)
        assert count(store, "long_term_memory", "source_pending_id = ?", (ids["flagged, qualifies"],)) == 1
    finally:
        store.close()


def test_retire_at_follows_every_plain_sql_write_to_a_retention_input(store, clock):
    now = clock()
    horizon = DecayConfig().horizon_s
    lid = add_long_term(store, created=now - timedelta(days=400), reinforced=now - timedelta(days=3),
                        importance=5, recalls=1)
    other = add_long_term(store, created=now - timedelta(days=400), reinforced=now, content="other")

    def retire_at(row=lid):
        return store.execute("SELECT retire_at FROM long_term_memory WHERE id = ?", (row,)).fetchone()[0]

    def formula(row=lid):
        reinforced, importance, recalls = store.execute(
            "SELECT last_reinforced_at, importance, recall_count FROM long_term_memory WHERE id = ?",
            (row,)).fetchone()
        return expected_retire_at(horizon, reinforced, importance, recalls)

    assert retire_at() == pytest.approx(formula(), abs=1e-6)
    assert store.setting(HORIZON_KEY) == repr(horizon)
    for sql, params in [("importance = ?", (9.5,)), ("recall_count = ?", (4,)),
                        ("last_reinforced_at = ?", ((now - timedelta(days=50)).timestamp(),)),
                        ("importance = ?, recall_count = ?", (0.0, 0))]:
        store.execute(f"UPDATE long_term_memory SET {sql} WHERE id = ?", (*params, lid))
        assert retire_at() == pytest.approx(formula(), abs=1e-6), sql
    store.execute("UPDATE long_term_memory SET pinned = ? WHERE id = ?", (True, lid))
    assert retire_at() is None
    store.execute("UPDATE long_term_memory SET pinned = ? WHERE id = ?", (False, lid))
    assert retire_at() == pytest.approx(formula(), abs=1e-6)
    store.execute("UPDATE long_term_memory SET deleted_at = ? WHERE id = ?", (now.timestamp(), lid))
    assert retire_at() is None
    store.execute("UPDATE long_term_memory SET deleted_at = NULL WHERE id = ?", (lid,))
    assert retire_at() == pytest.approx(formula(), abs=1e-6)
    ops.reinforce(store, now, lid)  # the API: a recall, reinforced now
    assert retire_at() == pytest.approx(expected_retire_at(horizon, now.timestamp(), 0.0, 1), abs=1e-6)
    assert retire_at(other) == pytest.approx(formula(other), abs=1e-6)  # untouched by the writes to lid

    # Decay's incremental run finds what plain SQL made overdue, and only that.
    engine = make_engine(store, clock)
    assert engine.run_job("decay").result == {"soft_deleted": 0, "hard_deleted": 0, "pass": "full"}
    clock.advance(minutes=1)
    store.execute("UPDATE long_term_memory SET last_reinforced_at = ? WHERE id = ?",
                  ((clock() - timedelta(days=1000)).timestamp(), lid))
    assert retire_at() < clock().timestamp()
    assert engine.run_job("decay").result == {"soft_deleted": 1, "hard_deleted": 0, "pass": "incremental"}
    assert store.execute("SELECT id FROM long_term_memory WHERE deleted_at IS NOT NULL").fetchall() == [(lid,)]
    assert retire_at() is None


# -- 3. the reasons for a full pass ---------------------------------------------------------------------

def test_a_clock_a_little_behind_the_last_run_scores_at_that_run_s_now(store, clock):
    """Engines on several hosts take promote in turn; their clocks differ by a little. A run whose clock is
    behind the last run's by under CLOCK_SKEW_S stays incremental and scores at the last run's now, so
    what it decides is what a full pass at that now decides; further back is a full pass at its own now."""
    from memtui.engine.jobs.promote import CLOCK_SKEW_S

    # Just below the threshold (0.5995): cleared by the first run, not scored again by a run a little behind.
    edge = add_pending(store, clock(), importance=5, confidence=0.5, accesses=5,
                       last_access=clock() - timedelta(hours=0.5))
    first = make_engine(store, clock).run_job("promote").result
    assert first["promoted"] == 0 and not flagged(store, edge)
    clock.advance(seconds=-(CLOCK_SKEW_S - 1))
    behind = make_engine(store, clock).run_job("promote").result
    assert (behind["pass"], behind["scored"], behind["promoted"]) == ("incremental", 0, 0)
    clock.advance(seconds=-2)
    back = make_engine(store, clock).run_job("promote").result
    assert (back["pass"], back["full_because"]) == ("full", "clock moved back")


def test_each_reason_for_a_full_pass_and_otherwise_an_incremental_run(store, clock):
    add_pending(store, clock(), importance=1, confidence=0.1)

    def run(**params):
        return make_engine(store, clock, promote=params or None).run_job("promote").result

    def reason(result):
        return result.get("full_because") if result["pass"] == "full" else "incremental"

    assert reason(run()) == "first run"
    clock.advance(minutes=1)
    assert reason(run()) == "incremental"
    assert reason(run(cap=3, ttl_days=2.0, batch_size=5)) == "incremental"  # not scoring settings
    for name, value in [("threshold", 0.5), ("w_recency", 0.3), ("w_frequency", 0.2), ("w_confidence", 0.3),
                        ("w_importance", 0.2), ("recency_decay", 0.99)]:
        clock.advance(seconds=1)
        assert reason(run(**{name: value})) == "scoring settings changed", name
        assert reason(run(**{name: value})) == "incremental", name
        assert reason(run()) == "scoring settings changed", name  # and back
    clock.advance(minutes=-10)  # well beyond any allowance for another host's clock being a little ahead
    assert reason(run()) == "clock moved back"
    assert reason(run()) == "incremental"  # the same now again: not back
    clock.advance(minutes=59, seconds=59)
    assert reason(run()) == "incremental"
    clock.advance(seconds=1)  # an hour since the last full pass
    assert reason(run()) == "safety net"
    assert reason(run()) == "incremental"
    assert reason(run(full_pass_every_h=0.0)) == "configured for every run"
    assert reason(run(full_pass_every_h=0.0)) == "configured for every run"


def test_a_row_cleared_under_the_old_threshold_is_promoted_once_it_is_lowered(store, clock):
    mid = add_pending(store, clock(), importance=5, confidence=0.5)  # 0.2 + 0.125 + 0.125 = 0.45
    engine = make_engine(store, clock)
    assert engine.run_job("promote").result["promoted"] == 0
    assert not flagged(store, mid)
    clock.advance(minutes=1)
    lowered = make_engine(store, clock, promote={"threshold": 0.4}).run_job("promote").result
    assert (lowered["pass"], lowered["full_because"], lowered["promoted"]) == \
        ("full", "scoring settings changed", 1)
    assert count(store, "long_term_memory", "source_pending_id = ?", (mid,)) == 1


def test_a_row_cleared_at_a_later_now_qualifies_again_when_the_clock_moves_back(store, clock):
    then = clock()
    # 0.20·recency + 0.30 + 0 + 0.105: 0.605 at ``then``, 0.595 ten hours later.
    row = add_pending(store, then, importance=4.2, confidence=0, accesses=10, last_access=then)
    clock.advance(hours=10)
    engine = make_engine(store, clock)
    assert engine.run_job("promote").result["promoted"] == 0
    assert not flagged(store, row)
    clock.set(then)
    run = engine.run_job("promote").result
    assert (run["pass"], run["full_because"], run["promoted"]) == ("full", "clock moved back", 1)
    assert count(store, "long_term_memory", "source_pending_id = ?", (row,)) == 1


def test_a_full_pass_owed_because_the_clock_moved_back_stays_owed_when_that_run_fails(store, clock):
    then = clock()
    row = add_pending(store, then, importance=4.2, confidence=0, accesses=10, last_access=then)  # as above
    clock.advance(hours=10)
    engine = make_engine(store, clock)
    assert engine.run_job("promote").result["promoted"] == 0
    assert not flagged(store, row)
    clock.set(then)
    # The full pass fails where it promotes the qualifier: none of its work commits.
    refuse(store, "no_promotion", "INSERT", "long_term_memory", "TRUE", "promotion refused")
    failed = engine.run_job("promote")
    assert failed.status == "failed" and "promotion refused" in failed.error
    allow(store, "no_promotion", "long_term_memory")
    assert not flagged(store, row) and count(store, "pending_memory", "id = ?", (row,)) == 1
    clock.advance(seconds=1)  # now after the failed run's: the clock did not move back since it
    run = engine.run_job("promote").result
    assert (run["pass"], run["full_because"], run["promoted"]) == ("full", "clock moved back", 1)
    clock.advance(seconds=1)
    assert engine.run_job("promote").result["pass"] == "incremental"  # paid


def test_the_safety_net_finds_a_qualifier_whose_change_mark_was_lost(store, clock):
    engine = make_engine(store, clock)
    assert engine.run_job("promote").result["full_because"] == "first run"
    clock.advance(minutes=1)
    lost = add_pending(store, clock(), importance=10, confidence=1, accesses=10, last_access=clock())
    store.execute("UPDATE pending_memory SET changed = 0 WHERE id = ?", (lost,))  # not an input: sticks
    assert not flagged(store, lost)
    assert engine.run_job("promote").result["promoted"] == 0  # an incremental run trusts the marks
    clock.advance(minutes=59)
    run = engine.run_job("promote").result
    assert (run["pass"], run["full_because"], run["promoted"]) == ("full", "safety net", 1)


def test_decay_tests_the_formula_on_every_row_on_its_first_run_daily_and_when_the_clock_moved_back(store, clock):
    lost = add_long_term(store, created=clock() - timedelta(days=400), reinforced=clock() - timedelta(days=100))
    engine = make_engine(store, clock, decay={"min_age_days": 0.0})
    assert engine.run_job("decay").result == {"soft_deleted": 0, "hard_deleted": 0, "pass": "full"}
    # Plain SQL makes it overdue and then hides that from the range scan (retire_at is not an input: it sticks).
    clock.advance(minutes=1)
    store.execute("UPDATE long_term_memory SET last_reinforced_at = ? WHERE id = ?",
                  ((clock() - timedelta(days=1000)).timestamp(), lost))
    store.execute("UPDATE long_term_memory SET retire_at = NULL WHERE id = ?", (lost,))
    assert engine.run_job("decay").result == {"soft_deleted": 0, "hard_deleted": 0, "pass": "incremental"}
    clock.advance(hours=-1)
    assert engine.run_job("decay").result == {"soft_deleted": 1, "hard_deleted": 0, "pass": "full"}  # moved back
    store.execute("UPDATE long_term_memory SET deleted_at = NULL WHERE id = ?", (lost,))  # restored: overdue
    store.execute("UPDATE long_term_memory SET retire_at = NULL WHERE id = ?", (lost,))  # and hidden again
    clock.advance(hours=23, minutes=59)
    assert engine.run_job("decay").result["pass"] == "incremental"
    assert live_ids(store) == {lost}
    clock.advance(minutes=1)  # a day since the last full pass
    assert engine.run_job("decay").result == {"soft_deleted": 1, "hard_deleted": 0, "pass": "full"}


# -- 4. decay: a new floor or half-life recomputes every retire_at -----------------------------------------

def decay_rows(store, clock) -> list[int]:
    now = clock()
    rows = []
    for i, (age, importance, recalls, pinned) in enumerate(
            [(1, 5, 0, False), (3, 5, 0, False), (6, 0, 0, False), (6, 10, 2, False), (12, 2, 1, False),
             (20, 5, 0, True), (40, 9, 0, False), (90, 5, 3, False), (200, 1, 0, False), (0.5, 0, 0, False)]):
        rows.append(add_long_term(store, created=now - timedelta(days=age + 1), reinforced=now - timedelta(days=age),
                                  importance=importance, recalls=recalls, pinned=pinned, content=f"lt{i}"))
    return rows


def live_ids(store) -> set[int]:
    return {r[0] for r in store.execute("SELECT id FROM long_term_memory WHERE deleted_at IS NULL")}


def due_by_the_formula(store, now: datetime, cfg: DecayConfig) -> set[int]:
    """What R < floor says, in Python: the live, unpinned memories old enough."""
    rows = store.execute("SELECT id, created_at, last_reinforced_at, importance, recall_count, pinned"
                         " FROM long_term_memory WHERE deleted_at IS NULL").fetchall()
    now_ts = now.timestamp()
    return {lid for lid, created, reinforced, importance, recalls, pinned in rows
            if not pinned and created < now_ts - cfg.min_age_days * DAY
            and retention((now_ts - reinforced) / DAY, importance, recalls, cfg) < cfg.floor}


@pytest.mark.parametrize("change", [{"half_life_days": 5.0}, {"floor": 0.6}, {"half_life_days": 3.0, "floor": 0.2}])
def test_a_new_floor_or_half_life_recomputes_retire_at_and_soft_deletes_what_the_formula_says(store, clock, change):
    decay_rows(store, clock)
    params = {"min_age_days": 0.0}
    first = make_engine(store, clock, decay=params).run_job("decay").result
    assert first["pass"] == "full" and "horizon_recomputed" not in first
    before = live_ids(store)
    assert before and len(before) < 10
    clock.advance(minutes=1)
    same = make_engine(store, clock, decay=params).run_job("decay").result
    assert same == {"soft_deleted": 0, "hard_deleted": 0, "pass": "incremental"}

    cfg = DecayConfig(**params, **change)
    clock.advance(minutes=1)
    due = due_by_the_formula(store, clock(), cfg)
    assert due and due < before  # the new config retires some, not all
    run = make_engine(store, clock, decay={**params, **change}).run_job("decay").result
    assert run == {"soft_deleted": len(due), "hard_deleted": 0, "pass": "incremental", "horizon_recomputed": True}
    assert live_ids(store) == before - due
    assert store.setting(HORIZON_KEY) == repr(cfg.horizon_s)
    assert_retire_at_follows_the_formula(store)
    clock.advance(minutes=1)
    again = make_engine(store, clock, decay={**params, **change}).run_job("decay").result
    assert again == {"soft_deleted": 0, "hard_deleted": 0, "pass": "incremental"}  # recomputed once

    # And back to the defaults: recomputed again, retire_at as before (nothing more is due).
    clock.advance(minutes=1)
    back = make_engine(store, clock, decay=params).run_job("decay").result
    assert back.get("horizon_recomputed") is True
    assert store.setting(HORIZON_KEY) == repr(DecayConfig().horizon_s)
    assert_retire_at_follows_the_formula(store)


def test_a_recompute_that_fails_part_way_stays_owed(store, clock):
    decay_rows(store, clock)
    params = {"min_age_days": 0.0}
    make_engine(store, clock, decay=params).run_job("decay")
    before = live_ids(store)
    change = {**params, "half_life_days": 5.0}
    clock.advance(minutes=1)
    refuse(store, "no_recompute", "UPDATE", "long_term_memory", "TRUE", "recompute refused")
    failed = make_engine(store, clock, decay=change).run_job("decay")
    assert failed.status == "failed" and "recompute refused" in failed.error
    allow(store, "no_recompute", "long_term_memory")
    assert store.setting(HORIZON_KEY) == repr(DecayConfig(**change).horizon_s)  # the new horizon is written...
    clock.advance(minutes=1)
    due = due_by_the_formula(store, clock(), DecayConfig(**change))
    assert due
    run = make_engine(store, clock, decay=change).run_job("decay").result  # ...and the recompute still owed
    assert run == {"soft_deleted": len(due), "hard_deleted": 0, "pass": "incremental", "horizon_recomputed": True}
    assert live_ids(store) == before - due
    assert_retire_at_follows_the_formula(store)


# -- 5. an incremental promotion killed part-way ---------------------------------------------------------

KILLED_N = 16_000  # memories changed since the last run, half of them qualifying


def test_sigkill_mid_incremental_promotion_loses_nothing_and_the_next_run_catches_up(db_target, tmp_path):
    params = {"cap": 0, "batch_size": 200, "full_pass_every_h": 100.0}
    started = datetime.now(timezone.utc) - timedelta(minutes=1)
    store = Store.open(db_target)
    try:
        cleared = [add_pending(store, started, importance=1, confidence=0.1, content=f"low {i}") for i in range(50)]
        first = Engine(store, Config(jobs={"promote": params}), FakeClock(started)).run_job("promote")
        assert first.result["full_because"] == "first run" and first.result["promoted"] == 0
        assert count(store, "pending_memory", "rescore") == 0
        # One statement on either backend: the odd ones qualify (0.2 + 0.3 + 0.225 + 0.225), the even ones do not.
        store.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO pending_memory (content, kind, sender, session, importance, confidence, access_count,"
            " last_access_at, remember, created_at, demo)"
            " SELECT 'memory ' || i, 'note', 'agent', '', CASE WHEN i % 2 = 1 THEN 9.0 ELSE 1.0 END,"
            " CASE WHEN i % 2 = 1 THEN 0.9 ELSE 0.1 END, CASE WHEN i % 2 = 1 THEN 10 ELSE 0 END, ?, FALSE, ?, FALSE"
            " FROM n", (KILLED_N - 1, started.timestamp() + 30, started.timestamp() + 30))
        assert sum(flagged(store, pid) for (pid,) in store.execute("SELECT id FROM pending_memory")) == KILLED_N
        qualifying = KILLED_N // 2
    finally:
        store.close()

    config = tmp_path / "config.toml"
    config.write_text("[jobs.promote]\n" + "".join(f"{k} = {v}\n" for k, v in params.items()))
    killed = kill_promote_part_way(db_target, config, moved=1000)
    pending, sources = killed.pending, killed.sources
    assert 0 < len(sources) < qualifying, "the kill should land part-way through"
    assert len(sources) == len(set(sources)), "a memory was promoted twice"
    assert not pending & set(sources), "a memory is in both tables"
    assert len(pending) + len(sources) == KILLED_N + len(cleared), "a memory was lost"
    assert '"full_due": null' in killed.checkpoint  # the killed run was an incremental one

    config_obj = Config(jobs={"promote": params})
    later = FakeClock(datetime.now(timezone.utc) + timedelta(seconds=config_obj.engine.lease_ttl_s + 1))
    engine = Engine(Store.open(db_target), config_obj, later)
    try:
        engine.recover_interrupted()
        assert engine.history("promote", 1)[0].status == "interrupted"
        run = engine.run_job("promote")
        assert run.status == "success"
        assert run.result["pass"] == "incremental"
        assert run.result["promoted"] == qualifying - len(sources)
        s = engine.store
        assert count(s, "pending_memory") == KILLED_N - qualifying + len(cleared)
        assert count(s, "pending_memory", "rescore") == 0
        again = engine.run_job("promote").result  # every leftover was scored below, once: none again
        assert (again["pass"], again["scored"], again["promoted"]) == ("incremental", 0, 0)
        assert s.execute("SELECT count(DISTINCT source_pending_id) FROM long_term_memory").fetchone()[0] == qualifying
        # A full pass now finds nothing left to do: the incremental runs had the full pass's outcome.
        full = Engine(s, Config(jobs={"promote": {**params, "full_pass_every_h": 0}}), later).run_job("promote")
        assert (full.result["pass"], full.result["promoted"], full.result["expired"]) == ("full", 0, 0)
    finally:
        engine.close()
