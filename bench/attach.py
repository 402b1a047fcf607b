"""Attached dashboard latency: ``python -m bench.attach [--backend postgresql] [--trials 30]``.

How long from a key press in a dashboard attached to a headless engine to the
change on its screen, when the change is one only the headless engine can make:
run-now (``r``). The dashboard's engine is attached (engine/engine.py
``attach``), the headless engine a real ``memtui --no-ui`` process with the
default config (1 s poll); the key is ``request_run`` (what ``r`` calls while
attached), and "on screen" is the first engine event after which the attached
engine reads the job as running or finished anew — the event the dashboard
redraws on. The baseline, measured in the same run on the same store, is a
dashboard with its own engine: ``run_now`` (what ``r`` calls then) to the same
event. Goal (issue #13): under 0.5 s. Progress to stderr, the report to stdout.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import common

JOB = "promote"
WAIT_S = 10.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Seen:
    """Wakes the measuring thread on each event of the engine it is subscribed to."""

    def __init__(self):
        self.cond = threading.Condition()
        self.count = 0

    def __call__(self, _event) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_until(self, condition, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("the change never reached the dashboard's engine")
                self.cond.wait(left)


def measure(engine, press, trials: int) -> list[float]:
    """Milliseconds from ``press()`` to the first event after which ``engine`` reads JOB's run anew."""
    seen = Seen()
    unsubscribe = engine.subscribe(seen)
    times = []
    try:
        for i in range(trials):
            before = engine.job(JOB).runs
            t0 = time.perf_counter()
            press()
            seen.wait_until(lambda: (lambda j: j.running or j.runs > before)(engine.job(JOB)))
            times.append((time.perf_counter() - t0) * 1000)
            # Let the run finish before the next press (a press while it runs is a skipped run).
            seen.wait_until(lambda: (lambda j: not j.running and j.runs > before)(engine.job(JOB)))
            common.log(f"  trial {i + 1}/{trials}: {times[-1]:.0f} ms")
    finally:
        unsubscribe()
    return times


def wait_registered(engine, proc) -> None:
    deadline = time.monotonic() + 60
    while not engine.live_engines():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the headless engine never registered")
        time.sleep(0.05)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.attach", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("MEMTUI_BENCH_PG") or common.DEFAULT_PG_URL)
    p.add_argument("--trials", type=int, default=30)
    args = p.parse_args(argv)

    from memtui.engine import Engine
    from memtui.engine.config import Config

    with tempfile.TemporaryDirectory(prefix="memtui-bench-attach-") as scratch:
        if args.backend == "sqlite":
            target, drop = str(Path(scratch) / "attach.db"), None
        else:
            database = f"memtui_bench_attach_{os.getpid()}"
            with common.pg_connect(args.pg_url) as conn:
                conn.execute(f'CREATE DATABASE "{database}"')
            target, drop = common.pg_url(args.pg_url, database), database
        try:
            Engine(target, Config()).close()  # create and seed the store before either process opens it
            common.log("baseline: a dashboard with its own engine")
            own = Engine(target, Config())
            own.retime(JOB, "1h", source="api")  # only the presses run it
            own.start()
            try:
                baseline = measure(own, lambda: own.run_now(JOB, source="ui"), args.trials)
            finally:
                own.stop()
                own.close()
            common.log("attached: a headless memtui --no-ui process runs the jobs")
            env = {**os.environ, "MEMTUI_DB": target}
            proc = subprocess.Popen([sys.executable, "-m", "memtui", "--no-ui"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            attached = Engine(target, Config())
            try:
                wait_registered(attached, proc)
                attached.attach()
                times = measure(attached, lambda: attached.request_run(JOB, source="ui"), args.trials)
            finally:
                attached.stop()
                attached.close()
                proc.terminate()
                proc.wait(30)
        finally:
            if drop is not None:
                with common.pg_connect(args.pg_url) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')

    def line(label, values):
        return (f"  {label:<38} median {statistics.median(values):6.0f} ms   p95 {percentile(values, 0.95):6.0f} ms"
                f"   max {max(values):6.0f} ms")

    print(f"attached dashboard, key to screen — {args.backend}, {args.trials} presses of r ({JOB}), "
          "default config (poll 1 s)")
    print(line("own engine (baseline): run_now", baseline))
    print(line("attached to a headless process", times))
    ratio = statistics.median(times) / statistics.median(baseline)
    goal = percentile(times, 0.95) < 500
    print(f"  ratio attached / own (median): {ratio:.1f}x;  goal p95 < 500 ms: {'met' if goal else 'MISSED'}")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
