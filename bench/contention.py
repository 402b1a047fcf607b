"""contention: an agent writing while memtui's promote runs on the 1M-row database.

A writer process (plain sqlite3, 30 s busy timeout, each insert its own
``BEGIN IMMEDIATE`` transaction, default pragmas as an agent would have them)
inserts one pending memory every 5 ms and times each insert, from before the
first promote batch until after the last; a second process runs memtui's
promote. The writer's latencies inside the promote window are the figure; the
ones outside it are the idle baseline. Afterwards every row the writer
committed must be in the database.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from bench import common
from bench.common import NOW_TS, Child, Section, log, percentile, run_child

WRITER_SESSION = "bench-writer"


def writer(path: str, period_s: float, stop_file: str, ready_file: str) -> dict:
    """Child: insert one pending memory every ``period_s`` until ``stop_file`` appears; time each."""
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    starts, latencies, waits, commits, errors = [], [], [], [], []
    Path(ready_file).touch()
    k = 0
    due = time.perf_counter()
    while not os.path.exists(stop_file):
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        k += 1
        t_wall = time.time()
        t0 = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            t1 = time.perf_counter()
            conn.execute(
                "INSERT INTO pending_memory (content, kind, sender, session, importance, confidence,"
                " access_count, last_access_at, remember, created_at) VALUES (?, 'note', 'agent', ?, 5, 0.5,"
                " 0, ?, 0, ?)", (f"{WRITER_SESSION} #{k}", WRITER_SESSION, NOW_TS, NOW_TS))
            t2 = time.perf_counter()
            conn.execute("COMMIT")
            ok = True
        except sqlite3.Error as exc:
            ok = False
            errors.append(f"{type(exc).__name__}: {exc}")
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        ms = (time.perf_counter() - t0) * 1000
        if ok:
            starts.append(t_wall)
            latencies.append(ms)
            waits.append((t1 - t0) * 1000)
            commits.append((time.perf_counter() - t2) * 1000)
        due = max(due + period_s, time.perf_counter())
    conn.close()
    return {"starts": starts, "latencies_ms": latencies, "lock_wait_ms": waits, "commit_ms": commits,
            "errors": errors, "attempts": k}


def _stats(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values) if values else float("nan")}


def run(args, workdir: Path) -> Section:
    rows = max(1000, int(1_000_000 * args.scale))
    period = args.writer_period_ms / 1000
    sec = Section(f"contention: writer every {args.writer_period_ms:g} ms during promote of {rows:,} rows")
    big = common.cached_db(workdir, "pending", "fill_pending", n=rows, seed=args.seed, order=args.order)
    copy = common.copy_db(big, workdir / "contention.db")
    stop, ready = workdir / "writer.stop", workdir / "writer.ready"
    for f in (stop, ready):
        f.unlink(missing_ok=True)

    log("contention: starting the writer")
    w = Child("bench.contention:writer", workdir, path=str(copy), period_s=period, stop_file=str(stop),
              ready_file=str(ready))
    deadline = time.monotonic() + 60
    while not ready.exists():
        if w.proc.poll() is not None or time.monotonic() > deadline:
            stop.touch()
            w.result(timeout=10)  # raises with the child's stderr
            raise RuntimeError("writer did not start")
        time.sleep(0.01)
    time.sleep(1.0)  # idle baseline
    log("contention: memtui promote with the writer running")
    try:
        res = run_child("bench.common:memtui_job", workdir, path=str(copy), job="promote",
                        jobs={"promote": {"cap": 0}})
    finally:
        time.sleep(0.5)
        stop.touch()
        wres = w.result(timeout=120)
    if res["status"] != "success":
        raise RuntimeError(f"memtui promote ended {res['status']}: {res['error']}")
    log(f"contention: promote {res['wall_s']:.2f} s; writer made {len(wres['latencies_ms']):,} inserts")

    lo, hi = res["t_start"], res["t_end"]
    inside = [lo <= t <= hi for t in wres["starts"]]

    def split(key):
        return ([v for v, x in zip(wres[key], inside) if x], [v for v, x in zip(wres[key], inside) if not x])

    during, idle = split("latencies_ms")
    d, i = _stats(during), _stats(idle)
    dw, iw = (_stats(v) for v in split("lock_wait_ms"))
    dc, ic = (_stats(v) for v in split("commit_ms"))
    committed = len(wres["latencies_ms"])
    found = common.scalar(copy, "SELECT count(*) FROM pending_memory WHERE session = ?", (WRITER_SESSION,)) + \
        common.scalar(copy, "SELECT count(*) FROM long_term_memory WHERE content LIKE ?", (f"{WRITER_SESSION} #%",))
    distinct = common.scalar(copy, "SELECT count(DISTINCT content) FROM pending_memory WHERE session = ?",
                             (WRITER_SESSION,))
    common.remove_db(copy)
    window = hi - lo
    errors = wres["errors"]

    alone = common.SHARED.get("promote_memtui_s")
    sec.line(f"  promote under contention: {res['wall_s']:.2f} s in the child (job {res['job_ms'] / 1000:.2f} s),"
             f" promoted {res['result']['promoted']:,}, expired {res['result']['expired']:,}"
             + (f"; alone in the promote bench: {alone:.2f} s" if alone else ""))
    sec.line(f"  writer: {wres['attempts']:,} attempts, {committed:,} committed, {len(errors)} errors;"
             f" {d['n']:,} inserts during the {window:.2f} s promote window"
             f" ({d['n'] / window if window else 0:.0f}/s of {1000 / args.writer_period_ms:.0f}/s asked)")
    sec.line()
    sec.table(
        ["writer insert latency (ms)", "inserts", "p50", "p99", "max"],
        [["during promote", d["n"], d["p50"], d["p99"], d["max"]],
         ["  of which BEGIN IMMEDIATE (lock wait)", dw["n"], dw["p50"], dw["p99"], dw["max"]],
         ["  of which COMMIT", dc["n"], dc["p50"], dc["p99"], dc["max"]],
         ["idle (before/after)", i["n"], i["p50"], i["p99"], i["max"]],
         ["  of which BEGIN IMMEDIATE (lock wait)", iw["n"], iw["p50"], iw["p99"], iw["max"]],
         ["  of which COMMIT", ic["n"], ic["p50"], ic["p99"], ic["max"]]],
    )
    if errors:
        sec.line(f"  first error: {errors[0]}")
    sec.check("writer p99 < 100 ms during promote", d["p99"] < 100, f"p99 {d['p99']:.1f} ms, max {d['max']:.1f} ms")
    sec.check("writer errors == 0", not errors, f"{len(errors)} errors")
    sec.check("no write lost", found == committed == distinct,
              f"{found:,} writer rows in the database of {committed:,} committed")
    sec.data = {"rows": rows, "promote": res, "during": d, "idle": i, "errors": errors[:20],
                "committed": committed, "found": found, "window_s": window,
                "lock_wait": {"during": dw, "idle": iw}, "commit": {"during": dc, "idle": ic},
                "latencies_during_ms": during}
    return sec
