"""incremental: promote and decay on a large store where little changed since the last run.

The store holds 10,000,000 pending and 10,000,000 long-term memories at
``--scale 1`` (``--scale`` multiplies both; the report says the size used), in
the state a store has after memtui has run on it for a while:

- pending memories created over the last 7 days (less an hour, so none reaches
  promote's TTL while the bench runs), each scoring below the promotion
  threshold (one that would qualify is drawn again: promote, every 30 s, would
  have moved it already), none marked "remember";
- long-term memories created over the last two years, last reinforced between
  then and now; one whose retention fell below decay's floor before now was
  soft-deleted within the hour after (decay runs hourly), and one soft-deleted
  more than the 30-day grace ago is gone (it is drawn again); 2 % pinned. On top
  of those, ``CHANGED`` long-term memories cross the floor every 30 s from now
  on (their last reinforcement is chosen so), enough for every measured run.

The store is built through ``Store.open`` (memtui's migrations and triggers) and
filled by ``executemany`` (SQLite) or ``COPY`` (PostgreSQL); the triggers run
on every row, as they would for an agent's writes. Then, in one process, on one
``Engine`` with a fake clock:

1. the first promote run and the first decay run (full passes: promote scores
   every row and corrects the stored scores that drifted, decay tests its
   formula on every row),
   then memtui's ``compact`` job, as a store in use has had (on PostgreSQL it is
   ``VACUUM (ANALYZE)``: the dead row versions the first runs left go, and the
   planner's statistics are taken after them);
2. per repetition: ``CHANGED`` pending memories changed (half through memtui's
   ``record_access``, half by a plain-SQL ``UPDATE … SET importance`` on a
   connection of the bench's own, as an agent bypassing memtui would) and the
   clock moved to just past the moment the next ``CHANGED`` long-term memories
   cross the floor (about 30 s later); then an incremental promote run and an
   incremental decay run, each timed around ``Engine.run_job``;
3. per repetition, the same again (fresh changes) with each job's checkpoint
   row deleted first, which forces a full pass: the full pass on the same data,
   in the same run;
4. per repetition, the same again (fresh changes), and instead of each job the
   writes it makes, as hand-written set-based SQL in one transaction on the
   bench's own connection (promote: copy the memories changed since the last
   run's mark that qualify, with every column memtui fills, delete them, and
   move the mark in promote's checkpoint; decay: soft-delete the memories past
   their ``retire_at`` and hard-delete those past the grace, each with its
   ``memory_history`` row): the floor, what the same writes cost with no job
   around them.

The writes before each measured run (and each floor) are written back,
unmeasured, as a store in use has them: on SQLite a PASSIVE checkpoint just
before the run, so that it pays for its own pages. memtui's connections leave
the copy back to a running engine's sync loop (models/sqlite.py), so a run's
commits no longer make it (SQLite's own starts only past 10,000 pages): the
checkpoint that follows, of the run's own pages, is timed apart ("then
checkpoint"), as is the one after the floor, whose connection has the same
pragmas; on PostgreSQL a ``CHECKPOINT`` before the
changes, as the server makes one every few minutes, so that the first change
to a page after it is logged whole: the agent's writes pay that for the rows
they change, a run for each page it is first to touch (decay's rows; index
entries), as in a store in use, where the few thousand pages a run touches
among millions were hardly ever touched since the server's last checkpoint.
The report gives, per run, the median and the mean, the time its COMMITs took
and the log it wrote (SQLite: WAL pages; PostgreSQL: MiB of WAL).

After every measured run the bench checks, with SQL of its own (the formulas
written out, not memtui's), that the run did what a full pass would: promote
moved exactly the changed memories that qualify and left no pending memory that
qualifies; decay soft-deleted only memories its formula says are due, left none
that are due, and none past the grace.

Targets: each incremental run <= 50 ms and >= 100x faster than the full pass; the
report also gives the incremental run's ratio to the floor.
With fewer than 10,000 rows a table (``--scale`` below 0.001) the changes shrink
to a tenth of the rows.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import time
from datetime import datetime, timezone
from heapq import merge
from pathlib import Path

from bench import common
from bench.common import DAY, NOW, NOW_TS, Section, log, median, timer

ROWS = 10_000_000  # pending memories, and long-term memories, at --scale 1
CHANGED = 1_000  # pending memories changed, long-term memories newly due, before each measured run
STEP_S = 30.0  # the long-term memories of the band cross the floor CHANGED per STEP_S (promote's period)
TARGET_MS = 50.0
KINDS = ("incremental", "full", "floor")  # the measured runs of each repetition, each after its own changes
TARGET_RATIO = 100.0
PENDING_SPAN_S = 7 * DAY - 3600  # created over the last 7 days less an hour: none expires during the bench
LONG_SPAN_S = 2 * 365 * DAY
SOFT_DELETE_LAG_S = 3600.0  # decay runs hourly: a memory past its floor is soft-deleted within the hour

# Promote's and decay's default settings, written out here (the reference checks must not share memtui's SQL).
THRESHOLD = 0.6
FLOOR = 0.05
HALF_LIFE_DAYS = 30.0
MIN_AGE_S = 7 * DAY
GRACE_S = 30 * DAY
LIMIT_DAYS = -math.log(FLOOR) * HALF_LIFE_DAYS / math.log(2)  # R < floor  <=>  days > LIMIT_DAYS * strength
HORIZON_S = LIMIT_DAYS * DAY

PENDING_COLUMNS = ("content", "kind", "sender", "session", "importance", "confidence", "access_count",
                   "last_access_at", "remember", "created_at")
LONG_TERM_COLUMNS = ("content", "kind", "sender", "importance", "confidence", "created_at", "promoted_at",
                     "last_reinforced_at", "recall_count", "pinned", "deleted_at")
BUILD_BATCH = 250_000  # rows per executemany / transaction while building a SQLite store


# -- data (seeded) -----------------------------------------------------------------------------


def sizes(scale: float) -> tuple[int, int]:
    """(rows per table, changes per run): CHANGED whatever the scale, but a tenth of the rows below
    ``CHANGED`` x 10 (scale < 0.001), so that a run still changes a small part of the store."""
    rows = max(100, int(ROWS * scale))
    return rows, min(CHANGED, rows // 10)


POOL = 1 << 16  # values drawn once per distribution, then picked from at random: much faster per row


def _pools(rng: random.Random) -> dict:
    """Pools of memory texts (4-24 words), importances (0-10, beta 2,4: skewed low) and confidences
    (beta 4,2: skewed high): picking from a pool costs a tenth of drawing each value."""
    return {
        "text": [" ".join(rng.choices(common._WORDS, k=rng.randint(4, 24))) for _ in range(POOL)],
        "importance": [round(min(10.0, rng.betavariate(2, 4) * 10), 1) for _ in range(POOL)],
        "confidence": [round(rng.betavariate(4, 2), 3) for _ in range(POOL)],
    }


def _accesses(rng: random.Random) -> int:
    """Mostly 0-3, with a Pareto tail (capped at 1000)."""
    return min(int(rng.paretovariate(1.5)) - 1, 1000)


def _score_at(importance, confidence, accesses, last, created, now_ts) -> float:
    hours = max(0.0, (now_ts - (last if last is not None else created)) / 3600.0)
    return (0.20 * 0.995 ** hours + 0.30 * min(accesses / 10.0, 1.0) + 0.25 * min(max(confidence, 0.0), 1.0)
            + 0.25 * min(max(importance, 0.0), 10.0) / 10.0)


def pending_rows(n: int, seed: int, now_ts: float = NOW_TS):
    """``n`` pending memories in id = time order, each scoring below the threshold at ``now_ts`` (with a
    margin of 0.02; a draw at or above is drawn again, keeping its creation time). Importance 0-10 skewed
    low, confidence skewed high, accesses mostly 0-3 with a Pareto tail, the last access after creation
    (none for half the never-accessed)."""
    rng = random.Random(seed)
    pools = _pools(rng)
    texts, importances, confidences = pools["text"], pools["importance"], pools["confidence"]
    kinds, senders = common._KINDS, [f"agent-{i}" for i in range(200)]
    sessions = [f"s{i}" for i in range(5000)]
    rand, uniform = rng.random, rng.uniform
    created_times = sorted(now_ts - rand() * PENDING_SPAN_S for _ in range(n))
    for created in created_times:
        while True:
            accesses = _accesses(rng)
            if accesses == 0:
                last = None if rand() < 0.5 else created
            else:
                last = uniform(created, now_ts)
            importance = importances[int(rand() * POOL)]
            confidence = confidences[int(rand() * POOL)]
            if _score_at(importance, confidence, accesses, last, created, now_ts) < THRESHOLD - 0.02:
                break
        yield (texts[int(rand() * POOL)], kinds[int(rand() * 5)], senders[int(rand() * 200)],
               sessions[int(rand() * 5000)], importance, confidence, accesses, last, 0, created)


def _strength(importance: float, recalls: int) -> float:
    return (0.5 + importance / 10.0) * (1 + recalls)


def long_term_rows(n: int, band: int, seed: int, now_ts: float = NOW_TS):
    """``n`` long-term memories in id = time order: ``n - band`` in the steady state decay leaves behind
    (see the module docstring), and ``band`` whose retention crosses the floor ``CHANGED`` per ``STEP_S``
    after ``now_ts``."""
    rng = random.Random(seed + 1)
    pools = _pools(rng)
    texts, importances, confidences = pools["text"], pools["importance"], pools["confidence"]
    kinds, senders = common._KINDS, [f"agent-{i}" for i in range(200)]
    rand, uniform = rng.random, rng.uniform

    def natural():
        for created in sorted(now_ts - rand() * LONG_SPAN_S for _ in range(n - band)):
            while True:
                reinforced = uniform(created, now_ts)
                importance = importances[int(rand() * POOL)]
                recalls = _accesses(rng)
                pinned = rand() < 0.02
                deleted = None
                if not pinned:
                    retire = reinforced + HORIZON_S * _strength(importance, recalls)
                    if retire < now_ts:
                        deleted = retire + rand() * SOFT_DELETE_LAG_S
                        if deleted >= now_ts:
                            deleted = None  # due, not yet soft-deleted: the first run does it
                        elif deleted < now_ts - GRACE_S:
                            continue  # hard-deleted by now: draw again
                break
            yield created, reinforced, importance, recalls, pinned, deleted

    def crossing():
        rows = []
        for j in range(band):
            retire = now_ts + (j + rand()) * STEP_S / CHANGED
            importance = importances[int(rand() * POOL)]
            recalls = _accesses(rng)
            reinforced = retire - HORIZON_S * _strength(importance, recalls)
            created = max(now_ts - LONG_SPAN_S, reinforced - rand() * 200 * DAY)
            rows.append((created, reinforced, importance, recalls, False, None))
        rows.sort()
        return rows

    for created, reinforced, importance, recalls, pinned, deleted in merge(natural(), crossing()):
        yield (texts[int(rand() * POOL)], kinds[int(rand() * 5)], senders[int(rand() * 200)], importance,
               confidences[int(rand() * POOL)], created, created, reinforced, recalls, int(pinned), deleted)


def _chunks(rows, size: int):
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- building (in a child process) ---------------------------------------------------------------


def build_sqlite(path: str, rows: int, band: int, seed: int) -> dict:
    """Child: memtui's schema (Store.open), then the rows by executemany, BUILD_BATCH a transaction.

    While building only: no journal and no fsync (a build cut short is thrown away anyway: it is
    built under another name and renamed when done), and a 1 GiB page cache. The file is in WAL
    mode again afterwards, as memtui opens it."""
    final = Path(path)
    tmp = final.with_name(final.name + ".building")
    common.remove_db(tmp)
    with timer() as t:
        common.create_schema(tmp)
        conn = common.raw_connect(tmp)
        for pragma in ("PRAGMA journal_mode=off", "PRAGMA synchronous=off", "PRAGMA cache_size=-1048576"):
            conn.execute(pragma)
        for table, columns, generated in (
                ("pending_memory", PENDING_COLUMNS, pending_rows(rows, seed)),
                ("long_term_memory", LONG_TERM_COLUMNS, long_term_rows(rows, band, seed))):
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for chunk in _chunks(generated, BUILD_BATCH):
                conn.execute("BEGIN")
                conn.executemany(sql, chunk)
                conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=wal")
        conn.close()
        common.checkpoint(tmp)
    os.replace(tmp, final)
    return {"wall_s": t["s"], "mb": final.stat().st_size / 2**20}


def build_pg(server: str, database: str, rows: int, band: int, seed: int) -> dict:
    """Child: a new database with memtui's schema (Store.open), the rows by COPY (the triggers fire for
    each), then VACUUM (FREEZE, ANALYZE); built under a temporary name and renamed when done."""
    with timer() as t:
        building, url = common.pg_building(server, database)
        with common.pg_connect(url, autocommit=False) as conn:
            conn.execute("SET synchronous_commit = off")  # building only
            with conn.cursor() as cur:
                put = common.pg_put(cur)
                put("pending_memory", PENDING_COLUMNS, pending_rows(rows, seed))
                conn.commit()
                put("long_term_memory", LONG_TERM_COLUMNS, long_term_rows(rows, band, seed))
            conn.commit()
        size = common.pg_finish_building(server, url, building, database)
    return {"wall_s": t["s"], "mb": size / 2**20}


def build(args, workdir: Path, backend, rows: int, band: int) -> tuple[str, dict | None]:
    """The built store (SQLite path or PostgreSQL database name), and its build figures (None when an
    earlier run with the same --workdir built it)."""
    params = {"rows": rows, "band": band, "seed": args.seed}
    key = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    if backend.name == "sqlite":
        path = workdir / f"incremental-{key}.db"
        if path.exists():
            return str(path), None
        log(f"incremental: building {rows:,} + {rows:,} rows on SQLite")
        res = common.run_child("bench.incremental:build_sqlite", workdir, path=str(path), **params)
    else:
        digest = hashlib.sha1(f"{workdir}|{key}".encode()).hexdigest()[:12]
        database = f"memtui_bench_incremental_{digest}"[:63]
        if database not in backend.templates:
            backend.templates.append(database)  # dropped at the end unless --keep
        if backend.exists(database):
            return database, None
        log(f"incremental: building {rows:,} + {rows:,} rows on PostgreSQL")
        res = common.run_child("bench.incremental:build_pg", workdir, server=backend.server, database=database,
                               **params)
        path = database
    log(f"incremental: built in {res['wall_s']:.1f} s, {res['mb']:,.0f} MiB")
    return str(path), res


# -- the measured session (in this process) ---------------------------------------------------------


def wal_frames(path: str) -> int:
    """Frames in use in the WAL of the SQLite database at ``path``: the wal-index header's mxFrame, at byte
    16 of the -shm file, in the machine's byte order (sqlite.org/walformat.html). Read between transactions
    of the bench's own, with no other writer, so never torn."""
    try:
        with open(path + "-shm", "rb") as fh:
            fh.seek(16)
            return int.from_bytes(fh.read(4), sys.byteorder)
    except FileNotFoundError:
        return 0


class Raw:
    """The bench's own connection to the store (sqlite3 or psycopg), for its changes and checks:
    ``sql`` uses ``:name`` parameters on SQLite and ``%(name)s`` on PostgreSQL, via ``p(name)``."""

    def __init__(self, backend_name: str, target: str):
        self.pg = backend_name == "postgresql"
        self.target = target
        self.conn = common.pg_connect(target) if self.pg else common.raw_connect(target)

    def p(self, name: str) -> str:
        return f"%({name})s" if self.pg else f":{name}"

    def _run(self, sql: str, params: dict | None):
        return self.conn.execute(sql, params) if params else self.conn.execute(sql)

    def all(self, sql: str, params: dict | None = None) -> list[tuple]:
        return self._run(sql, params).fetchall()

    def one(self, sql: str, params: dict | None = None):
        row = self._run(sql, params).fetchone()
        return None if row is None else row[0]

    def ids_in(self, ids) -> str:
        return "(" + ",".join(str(int(i)) for i in ids) + ")"

    def update_importance(self, pairs: list[tuple[float, int]]) -> None:
        """An agent's plain-SQL write, bypassing memtui: one transaction."""
        sql = "UPDATE pending_memory SET importance = %s WHERE id = %s" if self.pg else \
            "UPDATE pending_memory SET importance = ? WHERE id = ?"
        if self.pg:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(sql, pairs)
        else:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(sql, pairs)
            self.conn.execute("COMMIT")

    # -- the floor: the same writes as bare SQL, one transaction ------------------------------------

    def _transaction(self, statements: list[tuple[str, dict]]) -> list[int]:
        """Run ``statements`` in one write transaction; their rowcounts. (PostgreSQL: the connection is in
        autocommit, so ``transaction()`` is one BEGIN … COMMIT; SQLite: BEGIN IMMEDIATE, as memtui.)"""
        counts = []
        if self.pg:
            with self.conn.transaction():
                for sql, params in statements:
                    counts.append(self.conn.execute(sql, params).rowcount)
            return counts
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                counts.append(self.conn.execute(sql, params).rowcount)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        before = wal_frames(self.target)  # 0 when this transaction started the WAL over
        self.conn.execute("COMMIT")
        after = wal_frames(self.target)
        self.frames = after - before if after >= before else after  # the COMMIT began the WAL again
        return counts

    def floor_promote(self, now_ts: float) -> int:
        """What an incremental promote run writes, as hand-written set-based SQL in one transaction: the
        memories changed since the mark of promote's last run that qualify, copied into long-term memory
        with every column memtui fills (the score, its four terms, the threshold) and deleted, and the mark
        moved in promote's checkpoint to one taken first (as memtui's pending_change_mark: on SQLite the
        highest change number, kept where the triggers read it; on PostgreSQL the snapshot's xmin less
        one). Returns how many moved."""
        from bench import promote
        score = promote.PG_SCORE if self.pg else promote.RAW_SCORE
        rounded = f"round(({score})::numeric, 9)::float8" if self.pg else f"round({score}, 9)"
        seen = json.loads(self.one("SELECT value FROM job_checkpoint WHERE job = 'promote'")).get("seen", 0)
        qualifies = (f"changed > {int(seen)} AND"
                     f" ({promote.PG_PROMOTABLE if self.pg else promote.RAW_PROMOTABLE})")
        now, cap = self.p("now"), "least" if self.pg else "min"
        recency = (f"power(0.995::float8, greatest(0.0::float8, ({now} - coalesce(last_access_at, created_at))"
                   " / 3600.0::float8))") if self.pg else \
            f"pow(0.995, max(0.0, ({now} - coalesce(last_access_at, created_at)) / 3600.0))"
        floor0, top = ("greatest", "least") if self.pg else ("max", "min")
        if self.pg:  # below every transaction still open: a change committed later is above it
            params = {"now": now_ts, "mark": int(self.one(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1"))}
            take_mark, mark = [], "%(mark)s::bigint"
        else:  # the highest change number, kept where the trigger reads it, in this transaction
            params = {"now": now_ts}
            mark = "(SELECT CAST(value AS INTEGER) FROM setting WHERE key = 'promote.seen')"
            take_mark = [("INSERT OR REPLACE INTO setting (key, value) SELECT 'promote.seen',"
                          " MAX(COALESCE((SELECT MAX(changed) FROM pending_memory), 0),"
                          f" COALESCE({mark}, 0))", params)]
        *_, moved, deleted, _ = self._transaction([*take_mark,
            ("INSERT INTO long_term_memory (content, kind, sender, importance, confidence, created_at, promoted_at,"
             " last_reinforced_at, recall_count, pinned, source_pending_id, demo, content_key, promotion_score,"
             " promotion_recency, promotion_frequency, promotion_confidence, promotion_importance,"
             " promotion_threshold)"
             f" SELECT content, kind, sender, importance, confidence, created_at, {now}, {now}, 0, remember, id, demo,"
             f" content_key, {rounded}, {recency}, {cap}(access_count / 10.0, 1.0),"
             f" {top}({floor0}(confidence, 0.0), 1.0), {top}({floor0}(importance, 0.0), 10.0) / 10.0, {THRESHOLD!r}"
             f" FROM pending_memory WHERE {qualifies}", params),
            (f"DELETE FROM pending_memory WHERE {qualifies}", params),
            ("UPDATE job_checkpoint SET value = " + (
                f"jsonb_set(value::jsonb, '{{seen}}', to_jsonb({mark}))::text" if self.pg else
                f"json_set(value, '$.seen', {mark})") + " WHERE job = 'promote'", params),
        ])
        if moved != deleted:
            raise RuntimeError(f"floor promote copied {moved} and deleted {deleted}")
        return moved

    def floor_decay(self, now_ts: float) -> tuple[int, int]:
        """What an incremental decay run writes, as hand-written SQL in one transaction: each memory past
        its retire_at (and older than the minimum age) soft-deleted with its history row, each past the
        grace hard-deleted with its own; PostgreSQL with a writing WITH, as memtui. (soft, hard)."""
        now = self.p("now")
        params = {"now": now_ts}
        due = f"retire_at < {now} AND created_at < {now} - {MIN_AGE_S!r}"
        past = f"deleted_at < {now} - {GRACE_S!r} AND NOT pinned"
        history = ("INSERT INTO memory_history (memory_id, tier, action, old_text, reason, run_id, at, demo)"
                   " SELECT id, 'long_term', '{action}', content, 'floor', NULL, " + now + ", demo FROM {source}")
        if self.pg:
            soft, hard = self._transaction([
                (f"WITH w AS (UPDATE long_term_memory SET deleted_at = {now}, retire_at = NULL WHERE {due}"
                 " RETURNING id, content, demo) " + history.format(action="soft_delete", source="w"), params),
                (f"WITH w AS (DELETE FROM long_term_memory WHERE {past} RETURNING id, content, demo) "
                 + history.format(action="hard_delete", source="w"), params)])
            return soft, hard
        _, soft, _, hard = self._transaction([
            (history.format(action="soft_delete", source=f"long_term_memory WHERE {due}"), params),
            (f"UPDATE long_term_memory SET deleted_at = {now}, retire_at = NULL WHERE {due}", params),
            (history.format(action="hard_delete", source=f"long_term_memory WHERE {past}"), params),
            (f"DELETE FROM long_term_memory WHERE {past}", params)])
        return soft, hard

    # -- what a run leaves to write back, and what it wrote ------------------------------------------

    def before_changes(self) -> None:
        """PostgreSQL, before the changes each measured run handles: a CHECKPOINT, as the server makes every
        few minutes. Then the first change to a page after it logs the whole page, as in a store in use:
        the agent's writes pay that for the rows they change (promote, within 30 s, finds those pages
        logged already), and a run for each page it is first to touch (decay's rows, index entries: a few
        thousand pages at random among millions, hardly ever touched since the server's last checkpoint)."""
        if self.pg:
            self.conn.execute("CHECKPOINT")

    def before_run(self) -> None:
        """SQLite, just before each measured run: a PASSIVE checkpoint of the WAL, unmeasured, so that a run
        pays for its own pages only (its commits copy back what it wrote once the WAL passes
        wal_autocheckpoint, not the agent's changes before it)."""
        if self.pg:
            return
        busy, log_frames, done = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if busy or log_frames != done:
            raise RuntimeError(f"the WAL could not be checkpointed before a run ({done} of {log_frames} frames)")

    def wal_mark(self):
        """Where the log is now: PostgreSQL's insert position; SQLite, the frames in the WAL (its index's
        mxFrame, read from the -shm file's header: a new write transaction after a checkpoint starts the
        WAL again from 0, so frames are counted per commit, see ``frames_since``)."""
        if self.pg:
            return self.one("SELECT pg_current_wal_insert_lsn()::text")
        return wal_frames(self.target)

    def wal_mb_since(self, mark) -> float:
        """PostgreSQL: MiB of WAL since ``mark``."""
        return float(self.one(f"SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), {self.p('m')}::pg_lsn)",
                              {"m": mark})) / 2**20

    def db_mb(self) -> float:
        if self.pg:
            return self.one("SELECT pg_database_size(current_database())") / 2**20
        return sum(Path(self.target + s).stat().st_size for s in ("", "-wal") if Path(self.target + s).exists()) / 2**20

    def close(self) -> None:
        self.conn.close()

    # -- the formulas, written out: what a full pass would find -------------------------------------

    def promotable(self) -> str:
        from bench import promote  # the promote bench's hand-written score, in each backend's spelling
        if self.pg:
            return promote.PG_PROMOTABLE
        return promote.RAW_PROMOTABLE

    def decay_due(self) -> str:
        now = self.p("now")
        return (f"deleted_at IS NULL AND NOT pinned AND created_at < {now} - {MIN_AGE_S!r}"
                f" AND ({now} - last_reinforced_at) / 86400.0 > {LIMIT_DAYS!r} * (0.5 + importance / 10.0)"
                " * (1 + recall_count)")


def _ms(s: float) -> float:
    return round(s * 1000, 3)


def session(backend_name: str, target: str, rows: int, changed: int, repeat: int, seed: int) -> dict:
    """Settle, then ``repeat`` x (incremental pair, full pair, floor pair); returns every figure."""
    from memtui.engine import Engine, FakeClock
    from memtui.engine.config import Config
    from memtui.engine.memory import record_access
    from memtui.models import Store

    rng = random.Random(seed + 2)
    store = Store.open(target)
    raw = Raw(backend_name, target)
    clock = FakeClock(NOW)
    engine = Engine(store, Config(), clock)
    out: dict = {"settle": {}, **{kind: {"promote": [], "decay": []} for kind in KINDS}, "problems": [],
                 "wrong_pass": [], "changes": []}
    try:
        for job in ("promote", "decay"):
            log(f"incremental: first {job} run after the build (a full pass over {rows:,} rows)")
            with timer() as t:
                info = engine.run_job(job)
            if info.status != "success":
                raise RuntimeError(f"first {job} run ended {info.status}: {info.error}")
            out["settle"][job] = {"wall_ms": _ms(t["s"]), "job_ms": info.duration_ms, "result": info.result}
            log(f"incremental: first {job} run {t['s']:.1f} s: {info.result}")
        # A store in use has had its maintenance since (compact is weekly; on PostgreSQL autovacuum too):
        # dead row versions reclaimed, planner statistics taken after the first runs.
        log("incremental: compact (memtui's maintenance job)")
        with timer() as t:
            info = engine.run_job("compact")
        if info.status != "success":
            raise RuntimeError(f"compact ended {info.status}: {info.error}")
        out["compact"] = {"wall_ms": _ms(t["s"]), "result": info.result}
        log(f"incremental: compact {t['s']:.1f} s: {info.result}")
        out["mb_settled"] = raw.db_mb()

        pending_max = raw.one("SELECT max(id) FROM pending_memory")
        pending_min = raw.one("SELECT min(id) FROM pending_memory")
        used: set[int] = set()
        now_ts = clock().timestamp()

        def step() -> tuple[float, list[int]]:
            """Move the clock just past the next ``changed`` retirements; change ``changed`` pending memories."""
            nonlocal now_ts
            nxt = raw.one(f"SELECT retire_at FROM long_term_memory WHERE retire_at >= {raw.p('now')}"
                          f" ORDER BY retire_at LIMIT 1 OFFSET {changed - 1}", {"now": now_ts})
            if nxt is None:
                raise RuntimeError("the store has no more long-term memories about to cross the floor")
            clock.set(datetime.fromtimestamp(nxt + 0.001, timezone.utc))
            now_ts = clock().timestamp()
            ids = []
            while len(ids) < changed:
                i = rng.randint(pending_min, pending_max)
                if i not in used:
                    used.add(i)
                    ids.append(i)
            accessed, updated = ids[: changed // 2], ids[changed // 2:]
            with timer() as t_api:
                for i in accessed:
                    if record_access(store, clock(), i) != "pending":
                        raise RuntimeError(f"pending memory {i} was not pending")
            with timer() as t_sql:
                raw.update_importance([(round(rng.uniform(0, 10), 1), i) for i in updated])
            out["changes"].append((_ms(t_api["s"]), _ms(t_sql["s"])))
            return now_ts, ids

        # Every COMMIT of the store's connection, timed, with the WAL frames it appended (SQLite): what a run's
        # commits cost (on SQLite with the checkpoint a commit runs once the WAL passes wal_autocheckpoint).
        commits: list[tuple[float, int]] = []
        plain_commit = store.db.commit

        def timed_commit():
            before = raw.wal_mark() if not raw.pg else None
            t0 = time.perf_counter()
            try:
                return plain_commit()
            finally:
                commits.append((time.perf_counter() - t0, 0 if raw.pg else max(0, raw.wal_mark() - before)))
        store.db.commit = timed_commit

        def measured(job: str, kind: str, ids: list[int]) -> None:
            p = raw.p
            expected = None
            if job == "promote":  # which of the changed memories qualify (all the others scored below before)
                expected = {i for (i,) in raw.all(f"SELECT id FROM pending_memory WHERE id IN {raw.ids_in(ids)}"
                                                  f" AND ({raw.promotable()})", {"now": now_ts})}
            else:
                due_before = raw.one(f"SELECT count(*) FROM long_term_memory WHERE retire_at < {p('now')}"
                                     " AND deleted_at IS NULL", {"now": now_ts})
            if kind == "full":
                with store.atomic():
                    store.execute("DELETE FROM job_checkpoint WHERE job = ?", (job,))
            raw.before_run()
            mark = raw.wal_mark()
            commits.clear()
            if kind == "floor":  # the same writes, hand-written, one transaction on the bench's connection
                with timer() as t:
                    done = raw.floor_promote(now_ts) if job == "promote" else raw.floor_decay(now_ts)
                result = ({"promoted": done, "pass": "floor"} if job == "promote" else
                          {"soft_deleted": done[0], "hard_deleted": done[1], "pass": "floor"})
                res = {"wall_ms": _ms(t["s"]), "job_ms": _ms(t["s"]), "result": result, "now": now_ts}
                if not raw.pg:
                    res["wal_pages"] = raw.frames
            else:
                with timer() as t:
                    info = engine.run_job(job)
                if info.status != "success":
                    raise RuntimeError(f"{kind} {job} run ended {info.status}: {info.error}")
                result = info.result
                res = {"wall_ms": _ms(t["s"]), "job_ms": info.duration_ms, "result": result, "now": now_ts,
                       "commits": len(commits), "commit_ms": _ms(sum(c for c, _ in commits))}
                if not raw.pg:
                    res["wal_pages"] = sum(f for _, f in commits)
                if result.get("pass") != kind:
                    out["wrong_pass"].append(f"a {kind} {job} run said pass={result.get('pass')!r}"
                                             f" ({result.get('full_because')})")
            if raw.pg:
                res["wal_mb"] = round(raw.wal_mb_since(mark), 2)
            else:  # what the engine's sync loop does next: copy the run's pages back (models/sqlite.py)
                with timer() as t:
                    frames, copied = store.checkpoint_log()
                res["checkpoint_ms"] = _ms(t["s"])
                if frames != copied:
                    raise RuntimeError(f"the WAL could not be checkpointed after a run ({copied} of {frames} frames)")
            # What a full pass would have done, tested with the formulas written out (after the timing).
            if job == "promote":
                moved = {i for (i,) in raw.all(f"SELECT source_pending_id FROM long_term_memory"
                                               f" WHERE promoted_at = {p('now')}", {"now": now_ts})}
                left = raw.one(f"SELECT count(*) FROM pending_memory WHERE {raw.promotable()}", {"now": now_ts})
                flagged = raw.one("SELECT count(*) FROM pending_memory WHERE rescore")
                res.update(expected=len(expected), left_qualifying=left, left_flagged=flagged)
                if moved != expected or left or flagged:
                    out["problems"].append(
                        f"{kind} promote at {now_ts}: moved {len(moved)}, expected {len(expected)}"
                        f" ({len(moved ^ expected)} differ), {left} qualifying memories left pending,"
                        f" {flagged} left flagged")
            else:
                soft = raw.one(f"SELECT count(*) FROM long_term_memory WHERE deleted_at = {p('now')}",
                               {"now": now_ts})
                wrong = raw.one(f"SELECT count(*) FROM long_term_memory WHERE deleted_at = {p('now')}"
                                f" AND NOT ({raw.decay_due().replace('deleted_at IS NULL AND ', '')})",
                                {"now": now_ts})
                left = raw.one(f"SELECT count(*) FROM long_term_memory WHERE {raw.decay_due()}", {"now": now_ts})
                past = raw.one(f"SELECT count(*) FROM long_term_memory WHERE deleted_at < {p('now')} - {GRACE_S!r}"
                               " AND NOT pinned", {"now": now_ts})
                res.update(due_before=due_before, soft_now=soft, wrongly_soft=wrong, left_due=left,
                           left_past_grace=past)
                if soft != result.get("soft_deleted") or wrong or left or past:
                    out["problems"].append(
                        f"{kind} decay at {now_ts}: soft-deleted {result.get('soft_deleted')} ({soft} found),"
                        f" {wrong} not due by the formula, {left} due left, {past} past the grace left")
            out[kind][job].append(res)
            extra = "".join(f", {k} {res[k]}" for k in ("commit_ms", "wal_pages", "wal_mb", "checkpoint_ms")
                            if k in res)
            log(f"incremental: {kind} {job} {res['wall_ms']:.1f} ms (job {res['job_ms']:.1f} ms{extra}): {result}")

        for rep in range(repeat):
            for kind in KINDS:
                log(f"incremental: {kind} runs, {rep + 1}/{repeat}")
                raw.before_changes()
                _, ids = step()
                measured("promote", kind, ids)
                measured("decay", kind, ids)
        out["mb_end"] = raw.db_mb()
    finally:
        engine.stop(timeout=5)
        raw.close()
        store.close()
    return out


# -- the bench ------------------------------------------------------------------------------------------


def _compact_text(result: dict) -> str:
    if "tables_vacuumed" in result:
        return f"VACUUM (ANALYZE) of {result['tables_vacuumed']} tables"
    return (f"PRAGMA optimize, WAL checkpoint, {'VACUUM' if result.get('vacuumed') else 'no VACUUM'}"
            f" ({result.get('free_pages', 0):,} free pages)")


def run(args, workdir: Path, backend) -> Section:
    rows, changed = sizes(args.scale)
    band = changed * (len(KINDS) * args.repeat + 2)
    sec = Section(f"incremental on {backend.label}: {rows:,} pending + {rows:,} long-term memories")
    built, figures = build(args, workdir, backend, rows, band)
    # A build reused from an earlier run (--workdir, --keep) stays as built: the session gets a copy.
    reuse = (args.keep or args.workdir is not None) if backend.name == "sqlite" else backend.keep
    if reuse:
        log("incremental: copying the built store")
        with timer() as t_copy:
            target = backend.copy(built, "incremental")
    else:
        target = built if backend.name == "sqlite" else backend.url(built)
    probe = Raw(backend.name, target)
    mb_built = probe.db_mb()
    probe.close()
    try:
        res = session(backend.name, target, rows, changed, args.repeat, args.seed)
    finally:
        if reuse:
            backend.remove(target)

    def med(kind, job, key="wall_ms"):
        return median([r[key] for r in res[kind][job]])

    inc = {job: med("incremental", job) for job in ("promote", "decay")}
    full = {job: med("full", job) for job in ("promote", "decay")}
    rep = f" (median of {args.repeat})" if args.repeat > 1 else ""
    sec.line(f"  data: scale {args.scale:g} = {rows:,} pending and {rows:,} long-term memories (scale 1 = "
             f"{ROWS:,} each), seed {args.seed}, ids in time order (--order does not apply);"
             f" clock starts at {NOW.isoformat()}")
    sec.line(f"  each measured run: {changed:,} pending memories changed since the last run ({changed // 2:,}"
             f" record_access, {changed - changed // 2:,} plain-SQL UPDATE importance) and {changed:,} long-term"
             f" memories newly past their floor (clock moved to just after them, ~{STEP_S * changed / CHANGED:g} s)")
    if figures is not None:
        how = ("executemany, no journal, synchronous=off" if backend.name == "sqlite"
               else "COPY, then VACUUM (FREEZE, ANALYZE)")
        sec.line(f"  build: {figures['wall_s']:.1f} s (Store.open, then {how}; the triggers fire on every row;"
                 " the time includes generating the rows in Python)")
    else:
        sec.line("  build: reused from an earlier run in this work directory (its build time is in that report)")
    what = "file + WAL" if backend.name == "sqlite" else "pg_database_size"
    sec.line(f"  database size ({what}): {mb_built:,.0f} MiB as built, {res['mb_settled']:,.0f} MiB after the"
             f" first runs, {res['mb_end']:,.0f} MiB at the end")
    if reuse:
        sec.line(f"  (the measured copy took {t_copy['s']:.1f} s to make)")
    sp, sd = res["settle"]["promote"], res["settle"]["decay"]
    sec.line(f"  first run after the build: promote {sp['wall_ms'] / 1000:,.1f} s ({sp['result'].get('pass')},"
             f" scored {sp['result'].get('scored', 0):,}, promoted {sp['result'].get('promoted', 0):,}),"
             f" decay {sd['wall_ms'] / 1000:,.1f} s ({sd['result'].get('pass')}, soft-deleted"
             f" {sd['result'].get('soft_deleted', 0):,}, hard-deleted {sd['result'].get('hard_deleted', 0):,})")
    sec.line(f"  then memtui's compact job, as a store in use has had it (weekly; on PostgreSQL autovacuum too):"
             f" {res['compact']['wall_ms'] / 1000:,.1f} s ({_compact_text(res['compact']['result'])})")
    sec.line()

    def mean(kind, job, key="wall_ms"):
        return sum(r[key] for r in res[kind][job]) / len(res[kind][job])

    def written(kind, job):
        rs = res[kind][job]
        if "wal_pages" in rs[0]:
            return f"{median([r['wal_pages'] for r in rs]):,.0f} pages"
        return f"{median([r['wal_mb'] for r in rs]):,.1f} MiB"

    def row(job, kind, label):
        r0 = res[kind][job][0]["result"]
        work = (f"scored {r0.get('scored', 0):,}, promoted {r0.get('promoted', 0):,}" if job == "promote" else
                f"soft {r0.get('soft_deleted', 0):,}, hard {r0.get('hard_deleted', 0):,}")
        if kind == "floor" and job == "promote":
            work = f"promoted {r0.get('promoted', 0):,}, the mark moved"
        commit = "" if kind == "floor" else f"{med(kind, job, 'commit_ms'):,.1f}"
        cells = [f"{label}{rep}", r0.get("pass"), med(kind, job), round(mean(kind, job), 1),
                 med(kind, job, "job_ms"), commit, written(kind, job), work]
        if not pg:
            cells.insert(6, med(kind, job, "checkpoint_ms"))
        return cells

    floor = {job: med("floor", job) for job in ("promote", "decay")}
    pg = backend.name != "sqlite"
    sec.table(["run", "pass", "ms (run_job)", "mean", "ms (job)", "commits ms"] + ([] if pg else ["then checkpoint ms"])
              + ["log written", "first run's work"], [
        row("promote", "incremental", "promote, incremental"),
        row("promote", "full", "promote, forced full pass"),
        row("promote", "floor", "promote's writes as bare SQL"),
        row("decay", "incremental", "decay, incremental"),
        row("decay", "full", "decay, forced full pass"),
        row("decay", "floor", "decay's writes as bare SQL"),
    ])
    log_note = ("WAL pages the run's commits appended" if backend.name == "sqlite" else
                "WAL the server wrote during the run")
    sec.line("  (ms (run_job): Engine.run_job in the bench's process, with the run's bookkeeping;"
             " ms (job): the run record's duration_ms, the job alone; commits ms: the run's COMMITs"
             + ("; then checkpoint: the PASSIVE checkpoint of the run's pages that a running engine's sync loop"
                " makes next, off the run's path (no commit makes it below 10,000 pages)" if backend.name == "sqlite"
                else "") + f"; log written: {log_note};"
             " bare SQL: the same writes, hand-written and set-based, in one transaction on a connection of the"
             " bench's own, after the same changes; "
             + ("the WAL checkpointed just before every measured run" if backend.name == "sqlite" else
                "a CHECKPOINT before the changes each measured run handles") + ")")
    api_ms = sorted(a for a, _ in res["changes"])[len(res["changes"]) // 2]
    sql_ms = sorted(b for _, b in res["changes"])[len(res["changes"]) // 2]
    half = changed // 2
    sec.line(f"  the changes before each run, what the agent pays (median of {len(res['changes'])}): {half:,}"
             f" record_access calls {api_ms:.1f} ms ({api_ms * 1000 / half:.0f} µs each, a transaction each),"
             f" {changed - half:,} plain-SQL UPDATEs of importance {sql_ms:.1f} ms (one transaction)")
    sec.line("  all runs (ms): " + "; ".join(
        f"{job} {kind} " + ", ".join(f"{r['wall_ms']:.1f}" for r in res[kind][job])
        for job in ("promote", "decay") for kind in KINDS))
    for job in ("promote", "decay"):
        sec.check(f"{job} incremental run <= {TARGET_MS:g} ms", inc[job] <= TARGET_MS,
                  f"{inc[job]:.1f} ms{rep}, mean {mean('incremental', job):.1f} ms"
                  f" (job alone {med('incremental', job, 'job_ms'):.1f} ms)")
        ratio = full[job] / inc[job]
        sec.check(f"{job} full pass / incremental >= {TARGET_RATIO:g}x", ratio >= TARGET_RATIO,
                  f"{ratio:,.0f}x ({full[job]:,.1f} ms vs {inc[job]:.1f} ms)")
        sec.line(f"  {job}: the incremental run is {inc[job] / floor[job]:.2f}x the same writes as bare SQL"
                 f" ({inc[job]:.1f} ms vs {floor[job]:.1f} ms; the job alone"
                 f" {med('incremental', job, 'job_ms') / floor[job]:.2f}x), and the full pass on the same data"
                 f" {full[job] / floor[job]:,.0f}x")
    sec.check('each run was the pass meant ("pass" in its result)', not res["wrong_pass"],
              "; ".join(res["wrong_pass"][:3]) or f"{args.repeat} incremental and {args.repeat} full per job")
    sec.check("every run did what a full pass would (formulas written out, on every row)",
              not res["problems"], "; ".join(res["problems"][:3]) or
              "promote moved exactly the changed memories that qualify, none left (nor flagged); decay"
              " soft-deleted only memories its formula says are due, none due or past the grace left"
              " (the bare-SQL runs too)")
    sec.data = {"rows": rows, "changed": changed, "band": band, "build": figures, "mb_built": mb_built,
                "session": res, "incremental_ms": inc, "full_ms": full, "floor_ms": floor,
                "ratio": {job: full[job] / inc[job] for job in inc},
                "ratio_to_floor": {job: inc[job] / floor[job] for job in inc}}
    return sec
