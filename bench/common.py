"""Shared benchmark helpers: machine facts, data generation, copies, child processes, reporting.

Every contender runs in a fresh Python process (``run_child``) so its time and
its peak RSS (``ru_maxrss`` read in the child) are its own. The child entry
point is this module: ``python -m bench.common CHILD module:function kwargs.json
result.json``; the function returns a JSON-able dict, the child adds its RSS.

Databases are built once per run, on the backend chosen with ``--backend``:
the schema comes from ``Store.open`` (so it is exactly memtui's), the rows from
seeded generators, the same rows on either backend. On SQLite (the default) the
file goes in the work directory, filled by ``executemany``, and after a
``wal_checkpoint(TRUNCATE)`` it is copied for each contender, so every contender
starts from the same bytes. On PostgreSQL (``--backend postgresql``, the server
``--pg-url`` or ``$MEMTUI_BENCH_PG``) the rows go in by ``COPY`` into a database
of the bench's own, which is then vacuumed (frozen, analysed) and serves as the
template of a fresh ``CREATE DATABASE … TEMPLATE`` copy for each contender; every
database the bench creates is dropped at the end (templates stay with ``--keep``).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)  # the fixed "now" of every bench
NOW_TS = NOW.timestamp()
DAY = 86400.0
SHARED: dict = {}  # figures one bench leaves for a later one in the same run
_T_START = time.perf_counter()

# -- progress and machine ----------------------------------------------------------


def log(msg: str) -> None:
    """Progress on stderr, so the report on stdout stays clean."""
    print(f"[{time.perf_counter() - _T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import peewee
        peewee_version = peewee.__version__
    except ImportError:  # pragma: no cover
        peewee_version = "?"
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gb = float("nan")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "peewee": peewee_version,
        "platform": platform.platform(),
        "load": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def fsync_probe(directory: Path, count: int = 30) -> dict:
    """Latency of a 4 KiB append + fsync in ``directory``: the jobs commit and checkpoint in batches,
    so their figures follow this disk's fsync cost (and anything else using the disk meanwhile)."""
    path = directory / "fsync-probe.tmp"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(count):
            os.write(fd, b"\0" * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"p50_ms": percentile(times, 50), "p90_ms": percentile(times, 90), "max_ms": max(times)}


# -- databases -----------------------------------------------------------------------

def _store_pragmas() -> tuple[str, ...]:
    from memtui.models.sqlite import PRAGMAS as STORE_PRAGMAS
    return tuple(f"PRAGMA {name}={value}" for name, value in STORE_PRAGMAS.items())


PRAGMAS = _store_pragmas()  # the same as memtui's, wal_autocheckpoint included


def raw_connect(path: str | os.PathLike) -> sqlite3.Connection:
    """A plain sqlite3 connection with the pragmas memtui's Store sets (autocommit; BEGIN by hand)."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


def create_schema(path: Path) -> None:
    """Create an empty memtui database at ``path`` exactly as memtui does."""
    from memtui.models import Store
    Store.open(path).close()


def checkpoint(path: Path) -> None:
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    conn.close()


def cached_db(workdir: Path, name: str, fill: str, **params) -> Path:
    """Build (once per work directory) a memtui database filled by ``bench.common.<fill>(put, **params)``.

    The build runs in a child process: generating a million rows takes a few
    hundred MB, and a child started later would inherit that peak in its
    ``ru_maxrss`` (Linux keeps the maximum across fork/exec), so the parent stays lean."""
    key = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    path = workdir / f"{name}-{key}.db"
    if not path.exists():
        res = run_child("bench.common:build_db", workdir, path=str(path), fill=fill, params=params)
        log(f"built {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {res['wall_s']:.1f} s")
    return path


def build_db(path: str, fill: str, params: dict) -> dict:
    """Child: create the schema with Store.open, bulk-insert the rows, checkpoint, then move into place."""
    final = Path(path)
    tmp = final.with_name(final.name + ".building")
    remove_db(tmp)
    with timer() as t:
        create_schema(tmp)
        conn = raw_connect(tmp)
        conn.execute("PRAGMA synchronous=off")  # building only; the benches use memtui's settings
        conn.execute("BEGIN")
        globals()[fill](sqlite_put(conn), **params)
        conn.execute("COMMIT")
        conn.close()
        checkpoint(tmp)
    os.replace(tmp, final)
    return {"wall_s": t["s"]}


def copy_db(src: Path, dst: Path) -> Path:
    """A byte copy of a checkpointed database (no -wal/-shm travel with it), owner-only as memtui makes
    its own (SQLite gives the copy's -wal and -shm files its mode)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(dst) + suffix).unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o600)
    return dst


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def scalar(path: Path, sql: str, params=()):
    conn = sqlite3.connect(str(path), timeout=30.0)
    try:
        row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]
    finally:
        conn.close()


def sqlite_put(conn: sqlite3.Connection):
    """The fill functions' ``put(table, columns, rows)`` for a SQLite connection: one executemany."""
    def put(table: str, columns, rows) -> None:
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         rows)
    return put


# -- backends: where the databases live, how each contender gets a fresh copy ----------------

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

WRITTEN_NOTE = {
    "sqlite": "  (MB written: bytes the contender's process passed to write() — WAL frames and checkpoint copies)",
    "postgresql": "  (MB written: WAL the server wrote while the contender ran, pg_current_wal_lsn() before and after)",
}


class SqliteBackend:
    """Databases are files in the work directory; a contender's copy is a byte copy."""

    name = "sqlite"
    label = "SQLite"

    def __init__(self, workdir: Path):
        self.workdir = workdir

    def describe(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}, files in the work directory"

    def cached(self, name: str, fill: str, **params) -> Path:
        return cached_db(self.workdir, name, fill, **params)

    def copy(self, source: Path, name: str) -> str:
        return str(copy_db(source, self.workdir / f"{name}.db"))

    def remove(self, target: str) -> None:
        remove_db(Path(target))

    def wal_mark(self):
        return None

    def scalar(self, target, sql: str, params=()):
        return scalar(Path(target), sql, params)

    def close(self) -> None:
        pass


def pg_url(server: str, database: str) -> str:
    """``server`` (a postgresql:// URL) pointing at ``database`` instead."""
    from urllib.parse import urlsplit, urlunsplit
    return urlunsplit(urlsplit(server)._replace(path=f"/{database}"))


def pg_connect(url: str, autocommit: bool = True):
    import psycopg
    return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)


class PostgresBackend:
    """Databases on a PostgreSQL server: each built once (COPY, then VACUUM FREEZE ANALYZE) and used as
    the template of a fresh ``CREATE DATABASE … TEMPLATE`` for every contender (a file-level copy).

    Names start with ``memtui_bench_``; templates carry a hash of the work directory and the data's
    parameters (``--workdir X --keep`` reuses them, as it reuses SQLite files), copies the bench's pid.
    Everything created is dropped by ``close()``, templates too unless ``keep``."""

    name = "postgresql"
    label = "PostgreSQL"

    def __init__(self, workdir: Path, server: str, keep: bool = False):
        self.workdir = workdir
        self.server = server
        self.keep = keep
        self.templates: list[str] = []
        self.copies: set[str] = set()
        with pg_connect(server) as conn:  # fails here, at once, when the server can't be used
            self.version = conn.execute("SHOW server_version").fetchone()[0]
            self.settings = {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in
                             ("shared_buffers", "synchronous_commit", "max_wal_size", "work_mem")}
            self.file_copy = conn.info.server_version >= 150000  # CREATE DATABASE … STRATEGY FILE_COPY

    def describe(self) -> str:
        from memtui.models.postgres import redact_url
        settings = ", ".join(f"{k} {v}" for k, v in self.settings.items())
        return f"PostgreSQL {self.version} at {redact_url(self.server)} ({settings})"

    def _admin(self):
        return pg_connect(self.server)

    def url(self, database: str) -> str:
        return pg_url(self.server, database)

    def exists(self, database: str) -> bool:
        with self._admin() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None

    def cached(self, name: str, fill: str, **params) -> str:
        key = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
        digest = hashlib.sha1(f"{self.workdir}|{key}".encode()).hexdigest()[:12]
        database = f"memtui_bench_{name}_{digest}"[:63]
        if database not in self.templates:
            self.templates.append(database)
        if not self.exists(database):
            res = run_child("bench.common:build_pg", self.workdir, server=self.server, database=database,
                            fill=fill, params=params)
            log(f"built PostgreSQL database {database} ({name} {key}, {res['mb']:.0f} MiB) in {res['wall_s']:.1f} s")
        return database

    def copy(self, template: str, name: str) -> str:
        """A fresh database copied from ``template``; returns its URL. A FILE_COPY copy checkpoints before
        and after, so the contender starts with nothing of the previous one left to write back."""
        database = f"memtui_bench_{os.getpid()}_{name}"[:63]
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            strategy = " STRATEGY FILE_COPY" if self.file_copy else ""
            conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"{strategy}')
            self.copies.add(database)
            try:
                conn.execute("CHECKPOINT")
            except Exception:  # noqa: BLE001 - a user without the right may still run the bench
                pass
        return self.url(database)

    def remove(self, target: str) -> None:
        from urllib.parse import urlsplit
        database = urlsplit(target).path.lstrip("/")
        self.drop(database)
        self.copies.discard(database)

    def wal_mark(self):
        with self._admin() as conn:
            return conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]

    def wal_mb_since(self, mark: str) -> float:
        with self._admin() as conn:
            diff = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (mark,)).fetchone()[0]
        return round(float(diff) / 2**20, 1)

    def drop(self, database: str) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def scalar(self, target: str, sql: str, params=()):
        with pg_connect(target if "://" in str(target) else self.url(target)) as conn:
            row = conn.execute(sql.replace("%", "%%").replace("?", "%s"), params).fetchone()  # ? as on SQLite
            return None if row is None else row[0]

    def close(self) -> None:
        for database in sorted(self.copies) + ([] if self.keep else self.templates):
            try:
                self.drop(database)
            except Exception as exc:  # noqa: BLE001 - report, go on dropping the others
                log(f"could not drop {database}: {exc}")
        self.copies.clear()


def make_backend(args, workdir: Path):
    """The backend ``--backend`` names; a PostgreSQL server that cannot be used is a one-line exit."""
    if getattr(args, "backend", "sqlite") != "postgresql":
        return SqliteBackend(workdir)
    from memtui.models.postgres import redact_url
    try:
        return PostgresBackend(workdir, args.pg_url, keep=args.keep)
    except ImportError:
        raise SystemExit("python -m bench: --backend postgresql needs psycopg: pip install 'memtui[postgres]'")
    except Exception as exc:  # noqa: BLE001 - any reason the server can't be used
        reason = " ".join(str(exc).split())[:300]
        raise SystemExit(f"python -m bench: cannot use the PostgreSQL server at {redact_url(args.pg_url)}: {reason}")


def pg_building(server: str, database: str) -> tuple[str, str]:
    """A new, empty database with memtui's schema (``Store.open``) to build ``database`` in, under a
    temporary name that the builder renames when done: (that name, its URL)."""
    from memtui.models import Store

    building = f"{database[:54]}_building"
    with pg_connect(server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{building}"')
    url = pg_url(server, building)
    Store.open(url).close()
    return building, url


def pg_finish_building(server: str, url: str, building: str, database: str) -> int:
    """Freeze and analyze the built database, then put it in place of ``database``; returns its size in bytes."""
    with pg_connect(url) as conn:
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    with pg_connect(server) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{database}"')
    return size


def pg_put(cur):
    """The fill functions' ``put(table, columns, rows)`` for a psycopg cursor: one COPY per call."""
    def put(table: str, columns, rows) -> None:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    return put


def build_pg(server: str, database: str, fill: str, params: dict) -> dict:
    """Child: a new database with memtui's schema (Store.open), the rows by COPY, identity sequences moved
    past the copied ids, VACUUM (FREEZE, ANALYZE); built under a temporary name and renamed when done,
    so a build cut short is never taken for a finished one."""
    from memtui.models import Store

    building = f"{database[:54]}_building"
    with timer() as t:
        with pg_connect(server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{building}"')
        url = pg_url(server, building)
        Store.open(url).close()
        with pg_connect(url, autocommit=False) as conn:
            conn.execute("SET synchronous_commit = off")  # building only
            with conn.cursor() as cur:
                globals()[fill](pg_put(cur), **params)
                # Rows were copied with their ids (conversation) or took identity values: either way the
                # next INSERT of an agent must get a new id.
                for (table,) in cur.execute(
                        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
                        " AND column_name = 'id' AND is_identity = 'YES'").fetchall():
                    cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                f" coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
            conn.commit()
        with pg_connect(url) as conn:
            conn.execute("VACUUM (FREEZE, ANALYZE)")
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        with pg_connect(server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{database}"')
    return {"wall_s": t["s"], "mb": size / 2**20}


# -- data generation (seeded) ----------------------------------------------------------

_WORDS = ("user prefers dark mode deploys friday staging server postgres migration budget meeting "
          "allergic peanuts daughter birthday march project alpha deadline python rust editor vim "
          "timezone berlin coffee oat milk flight booked hotel invoice overdue password manager "
          "weekly report api key rotated backup nightly customer churn onboarding call notes").split()
_KINDS = ("note", "fact", "preference", "event", "task")


def _text(rng, low: int, high: int) -> str:
    return " ".join(rng.choices(_WORDS, k=rng.randint(low, high)))


def _times(rng, n: int, span_s: float, order: str, now_ts: float) -> list[float]:
    """``n`` times uniform over the ``span_s`` before now: ascending when ``order`` is "time"
    (rows are written as things happen, so ids follow time), shuffled when "random"."""
    times = [now_ts - rng.random() * span_s for _ in range(n)]
    if order == "time":
        times.sort()
    elif order != "random":
        raise ValueError(f"unknown order {order!r}")
    return times


def pending_rows(n: int, seed: int, order: str = "time", now_ts: float = NOW_TS):
    """``n`` pending memories with realistic spreads, as pending_memory INSERT tuples.

    importance 0-10 skewed low (beta 2,4), confidence 0-1 skewed high (beta 4,2),
    access_count mostly 0-3 with a Pareto tail, created_at uniform over the last
    10 days, last_access_at after it (NULL for half the never-accessed), ~1 % remember.
    """
    import random
    rng = random.Random(seed)
    senders = [f"agent-{i}" for i in range(200)]
    for created in _times(rng, n, 10 * DAY, order, now_ts):
        accesses = min(int(rng.paretovariate(1.5)) - 1, 1000)
        if accesses == 0:
            last = None if rng.random() < 0.5 else created
        else:
            last = rng.uniform(created, now_ts)
        yield (
            _text(rng, 4, 24), rng.choice(_KINDS), rng.choice(senders), f"s{rng.randrange(5000)}",
            round(min(10.0, rng.betavariate(2, 4) * 10), 1), round(rng.betavariate(4, 2), 3),
            accesses, last, 1 if rng.random() < 0.01 else 0, created,
        )


PENDING_COLUMNS = ("content", "kind", "sender", "session", "importance", "confidence", "access_count",
                   "last_access_at", "remember", "created_at")


def fill_pending(put, n: int, seed: int, order: str) -> None:
    put("pending_memory", PENDING_COLUMNS, pending_rows(n, seed, order))


def long_term_rows(n: int, seed: int, order: str = "time", now_ts: float = NOW_TS):
    """``n`` long-term memories for decay: created over the last year, last reinforced between then
    and now, importance 0-10 (beta 2,4), recalls mostly 0-2 with a Pareto tail, 2 % pinned, 10 %
    soft-deleted at a time after the last reinforcement (about a third of those past decay's grace)."""
    import random
    rng = random.Random(seed)
    for created in _times(rng, n, 365 * DAY, order, now_ts):
        reinforced = rng.uniform(created, now_ts)
        deleted = rng.uniform(reinforced, now_ts) if rng.random() < 0.10 else None
        yield (_text(rng, 4, 24), rng.choice(_KINDS), f"agent-{rng.randrange(200)}",
               round(min(10.0, rng.betavariate(2, 4) * 10), 1), round(rng.betavariate(4, 2), 3), created,
               created, reinforced, min(int(rng.paretovariate(1.5)) - 1, 1000),
               1 if rng.random() < 0.02 else 0, deleted)


def fill_jobs_data(put, pending: int, long_term: int, conversations: int, messages: int, outcomes: int,
                   senders: int, seed: int, order: str) -> None:
    """Data for every job at once (the PostgreSQL contention bench): the pending memories of the promote
    bench, the conversations and outcomes of the consolidate bench, and long-term memories for decay."""
    fill_pending(put, pending, seed, order)
    fill_conversations(put, conversations, messages, outcomes, senders, seed, order)
    put("long_term_memory", ("content", "kind", "sender", "importance", "confidence", "created_at", "promoted_at",
                             "last_reinforced_at", "recall_count", "pinned", "deleted_at"),
        long_term_rows(long_term, seed, order))


def fill_conversations(put, conversations: int, messages: int, outcomes: int,
                       senders: int, seed: int, order: str, now_ts: float = NOW_TS) -> None:
    """Conversations (half closed) started over 90 days, each active for up to 3 days, with messages
    at random times inside it; outcomes over 90 days, spread over senders with a Pareto skew (some
    senders keep all theirs, a few have thousands). With ``order`` "time" every table's ids follow
    its time column, as when rows are written as things happen."""
    import random
    rng = random.Random(seed)
    agents = [f"user-{i}" for i in range(max(1, conversations // 50))]
    conv = []
    for cid, started in enumerate(_times(rng, conversations, 90 * DAY, order, now_ts), start=1):
        updated = min(now_ts, started + rng.random() * 3 * DAY)
        status = "closed" if rng.random() < 0.5 else "active"
        conv.append((cid, rng.choice(("chat", "email", "slack")), rng.choice(agents), status, started, updated))
    put("conversation", ("id", "channel", "sender", "status", "started_at", "updated_at"), conv)
    msgs = []
    for _ in range(messages):
        cid, _, _, _, started, updated = conv[rng.randrange(conversations)]
        msgs.append((rng.uniform(started, updated), cid))
    if order == "time":
        msgs.sort()
    else:
        rng.shuffle(msgs)

    def message_rows():
        for created, cid in msgs:
            role = "user" if rng.random() < 0.5 else "assistant"
            yield cid, conv[cid - 1][2] if role == "user" else "assistant", role, _text(rng, 5, 40), created

    put("message", ("conversation_id", "sender", "role", "content", "created_at"), message_rows())
    del msgs
    weights = [rng.paretovariate(1.2) for _ in range(senders)]
    who = rng.choices(range(senders), weights=weights, k=outcomes)

    def outcome_rows():
        for s, created in zip(who, _times(rng, outcomes, 90 * DAY, order, now_ts)):
            yield f"user-{s}", rng.choice(("code", "travel", "mail", "")), round(rng.uniform(-1, 1), 3), \
                _text(rng, 5, 25), created

    put("outcome", ("sender", "domain", "score", "lesson", "created_at"), outcome_rows())


# -- timing and child processes ------------------------------------------------------------


@contextmanager
def timer():
    """``with timer() as t: ...`` then ``t["s"]`` is the elapsed seconds (perf_counter)."""
    box = {}
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - t0


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class Child:
    """A contender running in its own Python process; ``result()`` waits and returns its dict."""

    def __init__(self, target: str, workdir: Path, **kwargs):
        self.target = target
        stem = f"{target.replace(':', '.')}-{time.monotonic_ns()}"
        self.args_file = workdir / f"{stem}.args.json"
        self.result_file = workdir / f"{stem}.result.json"
        self.args_file.write_text(json.dumps(kwargs, default=str))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.common", "CHILD", target, str(self.args_file), str(self.result_file)],
            cwd=ROOT, env=_child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def result(self, timeout: float | None = None) -> dict:
        out, err = self.proc.communicate(timeout=timeout)
        self.args_file.unlink(missing_ok=True)
        if self.proc.returncode != 0 or not self.result_file.exists():
            raise RuntimeError(f"child {self.target} exited {self.proc.returncode}:\n{err[-4000:]}{out[-2000:]}")
        data = json.loads(self.result_file.read_text())
        self.result_file.unlink(missing_ok=True)
        return data


def run_child(target: str, workdir: Path, **kwargs) -> dict:
    """Run ``module:function(**kwargs)`` in a fresh process; its dict plus ``rss_peak_mb``/``rss_base_mb``."""
    return Child(target, workdir, **kwargs).result()


def _vm_hwm_kb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _wchar() -> float:
    """Bytes this process has passed to write() so far (WAL frames, checkpoint copies, ...)."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _child_main(target: str, args_file: str, result_file: str) -> None:
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    kwargs = json.loads(Path(args_file).read_text())
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    written = _wchar()
    result = func(**kwargs)
    result["written_mb"] = round((_wchar() - written) / 2**20, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result["rss_base_mb"] = round(base / 1024, 1)
    result["rss_peak_mb"] = round(peak / 1024, 1)
    result["vm_hwm_mb"] = round(_vm_hwm_kb() / 1024, 1)  # this process image's own peak, a cross-check
    tmp = Path(result_file + ".tmp")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, result_file)


def memtui_job(path: str, job: str, jobs: dict | None = None) -> dict:
    """Child: open ``path`` with memtui and run ``job`` synchronously at the fixed NOW; time it all."""
    from memtui.engine import Engine, FakeClock
    from memtui.engine.config import Config
    from memtui.models import Store

    rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_start = time.time()
    with timer() as t:
        store = Store.open(path)
        engine = Engine(store, Config(jobs=jobs or {}), FakeClock(NOW))
        info = engine.run_job(job)
    t_end = time.time()
    store.close()
    return {"wall_s": t["s"], "job_ms": info.duration_ms, "status": info.status, "result": info.result,
            "error": info.error, "t_start": t_start, "t_end": t_end,
            "rss_imports_mb": round(rss_imports / 1024, 1)}


def run_contender(backend, target: str, workdir: Path, child: str, **kwargs) -> dict:
    """``run_child(child, path=target, **kwargs)``; on PostgreSQL ``written_mb`` is then the WAL the server
    wrote meanwhile (the child's own write() bytes are only its socket), on SQLite what the child wrote."""
    mark = backend.wal_mark()
    res = run_child(child, workdir, path=target, **kwargs)
    if mark is not None:
        res["written_mb"] = backend.wal_mb_since(mark)
    return res


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, p: float) -> float:
    """Nearest-rank percentile (p in 0-100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(-(-p * len(ordered) // 100)) - 1))
    return ordered[k]


# -- reporting -------------------------------------------------------------------------------


class Section:
    """One bench's part of the report: lines, a table, target checks, and raw data for --json."""

    def __init__(self, title: str):
        self.title = title
        self.lines: list[str] = []
        self.checks: list[tuple[str, bool, str]] = []
        self.data: dict = {}

    def line(self, text: str = "") -> None:
        self.lines.append(text)

    def table(self, header: list[str], rows: list[list]) -> None:
        cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        for n, r in enumerate(cells):
            self.lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                               for i, (c, w) in enumerate(zip(r, widths))))
            if n == 0:
                self.lines.append("  " + "  ".join("-" * w for w in widths))

    def check(self, label: str, ok: bool, detail: str) -> None:
        self.checks.append((label, bool(ok), detail))

    def render(self) -> str:
        out = [f"== {self.title} " + "=" * max(0, 74 - len(self.title)), *self.lines]
        if self.checks:
            out.append("")
            for label, ok, detail in self.checks:
                out.append(f"  [{'PASS' if ok else 'MISS'}] {label}: {detail}")
        return "\n".join(out)


def _fmt(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def render_report(machine: dict, args_text: str, sections: list[Section], wall_s: float,
                  start_load: str = "?", fsync: dict | None = None, backend: str | None = None) -> str:
    head = [
        "memtui benchmarks",
        f"  machine : {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GiB RAM",
        f"  software: Python {machine['python']}, SQLite {machine['sqlite']}, peewee {machine['peewee']}"
        f" ({machine['platform']})",
        f"  disk    : fsync of a 4 KiB append in the work directory p50 {fsync['p50_ms']:.2f} ms,"
        f" p90 {fsync['p90_ms']:.2f} ms, max {fsync['max_ms']:.2f} ms" if fsync else "",
        f"  backend : {backend}" if backend else "",
        f"  run     : {args_text}; suite wall time {wall_s:.0f} s",
        f"  load    : {start_load} at the start, {machine['load'][0]:.2f} at the end (1-min load average;"
        f" anything near {machine['cores']} means the figures shared the CPU)" if machine.get("load") else "",
        "",
    ]
    body = "\n\n".join(s.render() for s in sections)
    checks = [(s.title, *c) for s in sections for c in s.checks]
    tail = ["", "== summary " + "=" * 64]
    tail += [f"  [{'PASS' if ok else 'MISS'}] {title}: {label}" for title, label, ok, _ in checks]
    return "\n".join([line for line in head if line] + [""]) + "\n" + body + "\n" + "\n".join(tail)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "CHILD":
    _child_main(*sys.argv[2:])
