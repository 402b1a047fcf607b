"""contention: an agent writing while memtui's jobs run.

On SQLite (the default), during promote of the 1M-row database: a writer
process (plain sqlite3, 30 s busy timeout, each insert its own ``BEGIN
IMMEDIATE`` transaction, default pragmas as an agent would have them) inserts
one pending memory every 5 ms and times each insert, from before the first
promote batch until after the last; a second process runs memtui's promote.
The writer's latencies inside the promote window are the figure; the ones
outside it are the idle baseline. Afterwards every row the writer committed
must be in the database.

On PostgreSQL (``--backend postgresql``), during every job: the agent is
memtui's own API (``memtui.engine.agent.Memory``) in another process, every
5 ms either remembering a memory or adding a message to a conversation it
keeps open, each call its own transaction, timed. Meanwhile one memtui process
runs every default job in turn on one database holding the data of all of them
(the promote bench's pending memories, the consolidate bench's conversations
and outcomes, long-term memories for decay): promote, consolidate, decay, the
three rollups, profile and compact. The writer's latencies are reported per
job's window; afterwards every memory and message the agent was told were
written must be there.
"""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from bench import common
from bench.common import NOW, NOW_TS, Child, Section, log, percentile, run_child

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


def start_ready(name: str, workdir: Path, stop: Path, **kwargs) -> Child:
    """Start child ``bench.contention:NAME`` (the writer or the agent), wait until it says it is ready, then
    one idle second for its baseline latencies. It writes until ``stop`` exists."""
    ready = workdir / f"{name}.ready"
    for f in (stop, ready):
        f.unlink(missing_ok=True)
    log(f"contention: starting the {name}")
    child = Child(f"bench.contention:{name}", workdir, stop_file=str(stop), ready_file=str(ready), **kwargs)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if child.proc.poll() is not None or time.monotonic() > deadline:
            stop.touch()
            child.result(timeout=10)  # raises with the child's stderr
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.01)
    time.sleep(1.0)  # idle baseline
    return child


def run(args, workdir: Path, backend) -> Section:
    if backend.name == "postgresql":
        return run_pg(args, workdir, backend)
    rows = max(1000, int(1_000_000 * args.scale))
    period = args.writer_period_ms / 1000
    sec = Section(f"contention on SQLite: writer every {args.writer_period_ms:g} ms during promote of {rows:,} rows")
    big = common.cached_db(workdir, "pending", "fill_pending", n=rows, seed=args.seed, order=args.order)
    copy = common.copy_db(big, workdir / "contention.db")
    stop = workdir / "writer.stop"
    w = start_ready("writer", workdir, stop, path=str(copy), period_s=period)
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


# -- PostgreSQL: an agent on memtui's API while every job runs ---------------------------------------

AGENT = "bench-agent"
LONG_TERM = 200_000  # long-term memories for decay, at scale 1


def agent(path: str, period_s: float, stop_file: str, ready_file: str) -> dict:
    """Child: an agent on memtui's API, every ``period_s`` alternately ``remember`` and ``add_message`` (to a
    conversation it keeps open) until ``stop_file`` appears; each call timed. The agent's clock is the
    bench's fixed now, so its memories are as fresh to the jobs as they would be live."""
    from memtui.engine.agent import Memory
    from memtui.engine.clock import FakeClock

    memory = Memory.open(path, clock=FakeClock(NOW))
    conversation = memory.start_conversation(AGENT)
    ops, starts, latencies, errors = [], [], [], []
    Path(ready_file).touch()
    k = 0
    due = time.perf_counter()
    while not os.path.exists(stop_file):
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        k += 1
        op = "remember" if k % 2 else "add_message"
        t_wall = time.time()
        t0 = time.perf_counter()
        try:
            if op == "remember":
                memory.remember(f"{AGENT} #{k}", sender=AGENT, session=AGENT)
            else:
                memory.add_message(conversation, AGENT, f"{AGENT} message #{k}")
        except Exception as exc:  # noqa: BLE001 - every failure counts, whatever it is
            errors.append(f"{op}: {type(exc).__name__}: {exc}")
        else:
            ops.append(op)
            starts.append(t_wall)
            latencies.append((time.perf_counter() - t0) * 1000)
        due = max(due + period_s, time.perf_counter())
    memory.close()
    return {"ops": ops, "starts": starts, "latencies_ms": latencies, "errors": errors, "attempts": k,
            "conversation": conversation}


def memtui_jobs(path: str, jobs: list[str], config: dict) -> dict:
    """Child: open ``path`` with memtui and run ``jobs`` one after the other at the fixed now, each timed."""
    from memtui.engine import Engine, FakeClock
    from memtui.engine.config import Config
    from memtui.models import Store

    store = Store.open(path)
    engine = Engine(store, Config(jobs=config), FakeClock(NOW))
    runs = []
    for job in jobs:
        t_start = time.time()
        info = engine.run_job(job)
        runs.append({"job": job, "t_start": t_start, "t_end": time.time(), "status": info.status,
                     "result": info.result, "error": info.error, "job_ms": info.duration_ms})
    store.close()
    return {"runs": runs}


def run_pg(args, workdir: Path, backend) -> Section:
    from bench.consolidate import CONVERSATIONS, MESSAGES, OUTCOMES, SENDERS
    from memtui.engine.jobs import DEFAULT_JOBS

    sizes = {
        "pending": max(1000, int(1_000_000 * args.scale)),
        "long_term": max(1000, int(LONG_TERM * args.scale)),
        "conversations": max(100, int(CONVERSATIONS * args.scale)),
        "messages": max(1000, int(MESSAGES * args.scale)),
        "outcomes": max(200, int(OUTCOMES * args.scale)),
        "senders": max(5, int(SENDERS * args.scale)),
    }
    jobs = list(DEFAULT_JOBS)
    period = args.writer_period_ms / 1000
    sec = Section(f"contention on PostgreSQL: agent API call every {args.writer_period_ms:g} ms during every job")
    db = backend.cached("jobs", "fill_jobs_data", seed=args.seed, order=args.order, **sizes)
    copy = backend.copy(db, "contention")
    stop = workdir / "agent.stop"
    w = start_ready("agent", workdir, stop, path=copy, period_s=period)
    log(f"contention: memtui runs {', '.join(jobs)} with the agent writing")
    try:
        res = run_child("bench.contention:memtui_jobs", workdir, path=copy, jobs=jobs,
                        config={"promote": {"cap": 0}})
    finally:
        time.sleep(0.5)
        stop.touch()
        wres = w.result(timeout=120)
    runs = res["runs"]
    log("contention: " + ", ".join(f"{r['job']} {r['t_end'] - r['t_start']:.2f} s ({r['status']})" for r in runs)
        + f"; the agent made {len(wres['latencies_ms']):,} calls")

    starts, lat, ops = wres["starts"], wres["latencies_ms"], wres["ops"]

    def inside(lo, hi, op=None):
        return [v for t, v, o in zip(starts, lat, ops) if lo <= t <= hi and (op is None or o == op)]

    first, last = runs[0]["t_start"], runs[-1]["t_end"]
    windows = [(f"during {r['job']} ({r['t_end'] - r['t_start']:.2f} s)", inside(r["t_start"], r["t_end"]))
               for r in runs]
    during_all = inside(first, last)
    idle = [v for t, v in zip(starts, lat) if not first <= t <= last]
    remembered = ops.count("remember")
    messaged = ops.count("add_message")
    conv = wres["conversation"]
    found_memories = backend.scalar(copy, "SELECT count(*) FROM pending_memory WHERE session = ?", (AGENT,)) + \
        backend.scalar(copy, "SELECT count(*) FROM long_term_memory WHERE content LIKE ?", (f"{AGENT} #%",))
    distinct_memories = backend.scalar(
        copy, "SELECT count(DISTINCT content) FROM (SELECT content FROM pending_memory WHERE session = ?"
        " UNION ALL SELECT content FROM long_term_memory WHERE content LIKE ?) AS agent_rows",
        (AGENT, f"{AGENT} #%"))
    found_messages = backend.scalar(copy, "SELECT count(*) FROM message WHERE conversation_id = ?", (conv,))
    backend.remove(copy)
    errors = wres["errors"]
    failed = [r for r in runs if r["status"] not in ("success", "skipped")]

    d, i = _stats(during_all), _stats(idle)
    window = last - first
    sec.line(f"  data: seed {args.seed}, ids in {args.order} order; {sizes['pending']:,} pending memories,"
             f" {sizes['long_term']:,} long-term, {sizes['conversations']:,} conversations with"
             f" {sizes['messages']:,} messages, {sizes['outcomes']:,} outcomes")
    sec.line("  jobs, one after the other in one memtui process (engine.run_job at the fixed now; promote uncapped):")
    for r in runs:
        shown = ", ".join(f"{k} {v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{k} {v}"
                          for k, v in (r["result"] or {}).items() if not isinstance(v, (dict, list)))
        sec.line(f"    {r['job']:<13} {r['t_end'] - r['t_start']:7.2f} s  {r['status']:<8} {shown}"
                 + (f"  error: {r['error']}" if r["error"] else ""))
    sec.line(f"  agent: {wres['attempts']:,} calls, {remembered + messaged:,} returned ({remembered:,} remember,"
             f" {messaged:,} add_message), {len(errors)} errors; {d['n']:,} during the {window:.2f} s of jobs"
             f" ({d['n'] / window if window else 0:.0f}/s of {1000 / args.writer_period_ms:.0f}/s asked)")
    sec.line()
    rows = [[label, s["n"], s["p50"], s["p99"], s["max"]] for label, s in
            ((label, _stats(v)) for label, v in windows)]
    rows += [["during any job", d["n"], d["p50"], d["p99"], d["max"]]]
    for op in ("remember", "add_message"):
        s = _stats(inside(first, last, op))
        rows.append([f"  of which {op}", s["n"], s["p50"], s["p99"], s["max"]])
    rows.append(["idle (before/after)", i["n"], i["p50"], i["p99"], i["max"]])
    sec.table(["agent call latency (ms)", "calls", "p50", "p99", "max"], rows)
    if errors:
        sec.line(f"  first error: {errors[0]}")
    sec.check("every job succeeded (or a gate skipped it)", not failed,
              "; ".join(f"{r['job']} {r['status']}: {r['error']}" for r in failed) or
              ", ".join(f"{r['job']} {r['status']}" for r in runs))
    sec.check("agent p99 < 100 ms during the jobs", d["p99"] < 100, f"p99 {d['p99']:.1f} ms, max {d['max']:.1f} ms")
    sec.check("agent errors == 0", not errors, f"{len(errors)} errors")
    sec.check("no write lost", found_memories == remembered == distinct_memories and found_messages == messaged,
              f"{found_memories:,} of {remembered:,} memories and {found_messages:,} of {messaged:,} messages"
              " found in the database")
    sec.data = {"sizes": sizes, "jobs": runs, "during": d, "idle": i, "errors": errors[:20],
                "windows": {label: _stats(v) for label, v in windows}, "remembered": remembered,
                "messaged": messaged, "found_memories": found_memories, "found_messages": found_messages,
                "latencies_during_ms": during_all}
    return sec
