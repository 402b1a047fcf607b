"""``python -m bench.soak [--minutes 10]``: the headless engine with every job every second, beside a busy writer.

A soak test, not a speed contest. It fills a fresh database with ``memtui demo``
under a config that gives every job in ``engine.jobs.DEFAULT_JOBS`` a 1-second
schedule without jitter (the config seeds the job definitions of a new
database), then runs two processes side by side for ``--minutes``:

* the engine: ``python -m tui.cli --no-ui --db DB --config CONFIG``; its RSS is
  sampled with psutil every ``--sample-s`` seconds;
* a writer, as an agent would be: memtui's own ``Store`` (busy timeout,
  ``BEGIN IMMEDIATE``), adding one pending memory and one message every
  ``--period-ms`` (each its own transaction) and timing each write.

Then it stops both (SIGTERM to the engine, which must exit 0) and prints, on
stdout: runs per job and by status from the run table, the failures with their
distinct error messages, the engine's RSS at start, end and peak, the sizes of
the database and its WAL at start and end, and the writer's count, errors and
p50/p99/max latency. Progress goes to stderr. Exit status 0 when the engine
exited 0, no run failed and the writer saw no error; 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_T0 = time.monotonic()
WAIT_S = 120  # only ever reached when something is broken


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(min(rank, len(ordered))) - 1]


def sizes(db: Path) -> tuple[int, int]:
    """Bytes of the database file and of its WAL (0 when absent)."""
    wal = Path(f"{db}-wal")
    return (db.stat().st_size if db.exists() else 0), (wal.stat().st_size if wal.exists() else 0)


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


# -- the writer (a child process) ------------------------------------------------------------------

def writer(db: str, seconds: float, period_ms: float, out: str) -> int:
    """Add a pending memory and a message every ``period_ms`` for ``seconds``; write the timings to ``out``."""
    sys.path.insert(0, str(ROOT))
    from memtui.engine.memory import remember
    from memtui.models import Store

    store = Store.open(db)
    now = datetime.now(timezone.utc).timestamp()
    with store.atomic():
        cid = store.execute("INSERT INTO conversation (channel, sender, status, started_at, updated_at)"
                            " VALUES ('soak', 'soak-agent', 'active', ?, ?)", (now, now)).lastrowid
    latencies = {"memory": [], "message": []}
    errors: Counter = Counter()
    period = period_ms / 1000
    end = time.monotonic() + seconds
    due = time.monotonic()
    k = 0
    while True:
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if time.monotonic() >= end:
            break
        k += 1
        for kind in ("memory", "message"):
            t0 = time.perf_counter()
            try:
                when = datetime.now(timezone.utc)
                if kind == "memory":
                    remember(store, when, f"soak note {k}", sender="soak-agent", kind="soak",
                             importance=(k % 11), confidence=(k % 7) / 6)
                else:
                    with store.atomic():
                        store.execute("INSERT INTO message (conversation_id, sender, role, content, created_at)"
                                      " VALUES (?, 'soak-agent', 'user', ?, ?)", (cid, f"soak message {k}",
                                                                                   when.timestamp()))
                latencies[kind].append((time.perf_counter() - t0) * 1000)
            except Exception as exc:  # counted and reported, never fatal
                errors[f"{kind}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"] += 1
        due = max(due + period, time.monotonic())  # a slow write delays the next tick; no catch-up burst
    store.close()
    Path(out).write_text(json.dumps({"latencies_ms": latencies, "errors": dict(errors), "ticks": k}))
    return 0


# -- the soak ----------------------------------------------------------------------------------------

def write_config(path: Path) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from memtui.engine.jobs import DEFAULT_JOBS

    names = list(DEFAULT_JOBS)
    lines = ["# bench.soak: every job every second, no jitter", "[engine]", "stop_timeout_s = 30", ""]
    for name in names:
        lines += [f'[jobs."{name}"]', 'schedule = "1s"', "jitter = 0", ""]
    path.write_text("\n".join(lines))
    return names


def wait_for_line(path: Path, fragment: str, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text(errors="replace").splitlines():
            if fragment in line:
                return line
        if proc.poll() is not None:
            raise RuntimeError(f"the engine exited ({proc.returncode}) before saying {fragment!r}: "
                               f"{path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"no {fragment!r} from the engine within {timeout:g} s")


def where_in_memtui(traceback: str | None) -> str:
    """The innermost frame of memtui's own code in a recorded traceback: 'engine/jobs/x.py:12 in run'."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', traceback or "")
    own = [(f, n, fn) for f, n, fn in frames if f.startswith(str(ROOT)) or not os.path.isabs(f)]
    if not own:
        return ""
    path, line, func = own[-1]
    return f"{os.path.relpath(path, ROOT) if os.path.isabs(path) else path}:{line} in {func}"


def run_table(db: Path) -> tuple[dict[str, Counter], Counter, dict]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        by_job: dict[str, Counter] = {}
        for job, status, n in con.execute("SELECT job, status, count(*) FROM run GROUP BY job, status"):
            by_job.setdefault(job, Counter())[status] = n
        failures, where = Counter(), {}
        for job, status, error, n, trace in con.execute(
                "SELECT job, status, error, count(*), max(traceback) FROM run"
                " WHERE status IN ('failed', 'interrupted') GROUP BY job, status, error ORDER BY count(*) DESC"):
            failures[(job, status, error)] = n
            where[(job, status, error)] = where_in_memtui(trace)
        return by_job, failures, where
    finally:
        con.close()


def soak(args: argparse.Namespace, workdir: Path) -> tuple[str, dict, bool]:
    import psutil

    python = sys.executable
    db, config = workdir / "soak.db", workdir / "soak.toml"
    engine_out, engine_err = workdir / "engine.out", workdir / "engine.err"
    writer_json = workdir / "writer.json"
    jobs = write_config(config)
    seconds = args.minutes * 60

    log(f"work directory {workdir}; filling {db.name} with memtui demo")
    demo = subprocess.run([python, "-m", "memtui", "demo", "--db", str(db), "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S)
    if demo.returncode != 0:
        raise RuntimeError(f"memtui demo failed ({demo.returncode}): {demo.stderr.strip()}")
    log(demo.stdout.strip())
    db_start = sizes(db)

    with open(engine_out, "w") as out_fh, open(engine_err, "w") as err_fh:
        engine = subprocess.Popen([python, "-m", "memtui", "--no-ui", "--db", str(db), "--config", str(config)],
                                  cwd=ROOT, stdout=out_fh, stderr=err_fh,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
    writer_proc = None
    try:
        wait_for_line(engine_err, "engine running", engine, WAIT_S)
        ps = psutil.Process(engine.pid)
        rss = [(0.0, ps.memory_info().rss)]
        log(f"engine up (pid {engine.pid}, RSS {mib(rss[0][1])}); writer starts for {seconds:g} s")
        writer_proc = subprocess.Popen([python, "-m", "bench.soak", "--writer", str(db), "--seconds", str(seconds),
                                        "--period-ms", str(args.period_ms), "--out", str(writer_json)], cwd=ROOT)
        started = time.monotonic()
        next_sample = started + args.sample_s
        next_note = started + 60
        while writer_proc.poll() is None:
            if engine.poll() is not None:
                raise RuntimeError(f"the engine died ({engine.returncode}) during the soak")
            now = time.monotonic()
            if now >= next_sample:
                rss.append((now - started, ps.memory_info().rss))
                next_sample += args.sample_s
            if now >= next_note:
                log(f"{(now - started) / 60:.0f} min: engine RSS {mib(rss[-1][1])}, db+WAL {mib(sum(sizes(db)))}")
                next_note += 60
            time.sleep(0.2)
        rss.append((time.monotonic() - started, ps.memory_info().rss))
        db_end = sizes(db)
        log(f"writer done ({writer_proc.returncode}); stopping the engine with SIGTERM")
        t_stop = time.monotonic()
        engine.send_signal(signal.SIGTERM)
        engine_rc = engine.wait(timeout=WAIT_S)
        stop_s = time.monotonic() - t_stop
    finally:
        for proc in (writer_proc, engine):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    db_after = sizes(db)

    by_job, failures, where = run_table(db)
    w = json.loads(writer_json.read_text()) if writer_json.exists() else {"latencies_ms": {}, "errors": {"no report": 1}}
    all_lat = [x for values in w["latencies_ms"].values() for x in values]
    engine_log = engine_err.read_text(errors="replace").splitlines()
    tracebacks = sum("Traceback" in line for line in engine_log)

    statuses = sorted({s for c in by_job.values() for s in c})
    lines = [
        f"memtui soak: every job every 1 s for {args.minutes:g} min, writer period {args.period_ms:g} ms",
        f"  python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} cores;"
        f" work directory {workdir}",
        "",
        "runs per job and status (run table)",
    ]
    table = [["job", *statuses, "total"]]
    for job in [*jobs, *sorted(set(by_job) - set(jobs))]:
        counts = by_job.get(job, Counter())
        table.append([job, *(str(counts.get(s, 0)) for s in statuses), str(sum(counts.values()))])
    totals = Counter()
    for counts in by_job.values():
        totals.update(counts)
    table.append(["all", *(str(totals.get(s, 0)) for s in statuses), str(sum(totals.values()))])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["  " + "  ".join(c.ljust(w_) if i == 0 else c.rjust(w_) for i, (c, w_) in enumerate(zip(row, widths)))
              for row in table]
    lines += ["", f"failures: {sum(failures.values())} run(s) failed or interrupted"
                  f"{', distinct messages:' if failures else ''}"]
    for (job, status, error), n in failures.most_common():
        at = f" (at {where[(job, status, error)]})" if where.get((job, status, error)) else ""
        lines.append(f"  {n:>5} x {job} {status}: {' '.join(str(error).split())[:300]}{at}")
    peak_t, peak = max(rss, key=lambda s: s[1])
    lines += [
        "",
        f"engine RSS: start {mib(rss[0][1])}, end {mib(rss[-1][1])}, max {mib(peak)} (at {peak_t / 60:.1f} min);"
        f" {len(rss)} samples every {args.sample_s:g} s",
        f"database: start {mib(db_start[0])} + WAL {mib(db_start[1])};"
        f" end {mib(db_end[0])} + WAL {mib(db_end[1])};"
        f" after stop {mib(db_after[0])} + WAL {mib(db_after[1])}",
        f"engine: exit status {engine_rc} after SIGTERM ({stop_s:.1f} s to stop); log {len(engine_log)} lines,"
        f" {tracebacks} traceback(s)",
        f"writer: {len(all_lat)} writes ({len(w['latencies_ms'].get('memory', []))} memories,"
        f" {len(w['latencies_ms'].get('message', []))} messages), {sum(w['errors'].values())} error(s);"
        f" latency p50 {percentile(all_lat, 50):.2f} ms, p99 {percentile(all_lat, 99):.2f} ms,"
        f" max {max(all_lat, default=float('nan')):.2f} ms",
    ]
    for kind, values in w["latencies_ms"].items():
        lines.append(f"  {kind:<8} p50 {percentile(values, 50):.2f} ms, p99 {percentile(values, 99):.2f} ms,"
                     f" max {max(values, default=float('nan')):.2f} ms")
    for message, n in w["errors"].items():
        lines.append(f"  error x{n}: {message}")
    data = {"minutes": args.minutes, "runs": {j: dict(c) for j, c in by_job.items()},
            "failures": [{"job": j, "status": s, "error": e, "count": n, "at": where[(j, s, e)]}
                         for (j, s, e), n in failures.items()],
            "rss_samples": rss, "db_start": db_start, "db_end": db_end, "db_after_stop": db_after,
            "engine_exit": engine_rc, "engine_tracebacks": tracebacks,
            "writer": {"writes": len(all_lat), "errors": w["errors"],
                       "p50_ms": percentile(all_lat, 50), "p99_ms": percentile(all_lat, 99),
                       "max_ms": max(all_lat, default=None)}}
    ok = engine_rc == 0 and not failures and not w["errors"]
    return "\n".join(lines), data, ok


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long the engine and the writer run (default 10)")
    p.add_argument("--period-ms", type=float, default=10.0,
                   help="the writer adds a pending memory and a message this often (default 10)")
    p.add_argument("--sample-s", type=float, default=5.0, help="engine RSS sampling period (default 5)")
    p.add_argument("--workdir", type=Path, default=None, help="where the database goes (default: a temporary dir)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    p.add_argument("--writer", metavar="DB", help=argparse.SUPPRESS)  # the child process
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.writer is None and not (args.minutes > 0 and args.period_ms > 0 and args.sample_s > 0):
        p.error("--minutes, --period-ms and --sample-s must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.writer is not None:
        return writer(args.writer, args.seconds, args.period_ms, args.out)
    if args.workdir is not None:
        workdir, owned = args.workdir.resolve(), False
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir, owned = Path(tempfile.mkdtemp(prefix="memtui-soak-")), True
    try:
        report, data, ok = soak(args, workdir)
    finally:
        if owned and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
