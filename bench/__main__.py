"""``python -m bench [--backend sqlite|postgresql] [--only promote,consolidate,contention,incremental,dedupe]
[--scale 0.1] ...``: run and print the report."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import common

BENCHES = ("promote", "consolidate", "contention", "incremental", "dedupe")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__,
        epilog="Progress goes to stderr, the report to stdout. Exit status 1 when any check misses"
               " (contenders disagree, a write is lost, or a performance target is missed).")
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                   help="where memtui and the raw-SQL baseline run: SQLite files in the work directory (default),"
                        " or databases the bench creates (and drops) on a PostgreSQL server")
    p.add_argument("--pg-url", default=os.environ.get("MEMTUI_BENCH_PG") or common.DEFAULT_PG_URL,
                   help="with --backend postgresql: the server, as a URL to a database the user can connect to"
                        " and create databases from ($MEMTUI_BENCH_PG; default "
                        f"{common.DEFAULT_PG_URL})")
    p.add_argument("--only", default=",".join(BENCHES),
                   help=f"comma-separated benches to run (default: all of {','.join(BENCHES)})")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every data size by this (1 = 1M pending memories, 1M messages; incremental:"
                        " 10M pending and 10M long-term memories; dedupe: 100k long-term memories; 0.05 for a"
                        " quick run)")
    p.add_argument("--seed", type=int, default=42, help="seed of the data generators (default 42)")
    p.add_argument("--order", choices=("time", "random"), default="time",
                   help="row ids follow each table's time column as when written live (time, default),"
                        " or are independent of it, as after an import or merge (random)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs of each memtui/raw contender on fresh copies; the report takes the median (default 3)")
    p.add_argument("--writer-period-ms", type=float, default=5.0,
                   help="contention: the writer inserts one pending memory this often (default 5)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where the databases go (default: a new temporary directory, removed afterwards)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (reuse it later with --workdir); on PostgreSQL also keep the"
                        " built template databases, which the same --workdir then reuses")
    p.add_argument("--json", type=Path, default=None, help="also write all raw figures to this JSON file")
    args = p.parse_args(argv)
    args.only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(args.only) - set(BENCHES)
    if unknown:
        p.error(f"unknown bench {sorted(unknown)[0]!r} (known: {', '.join(BENCHES)})")
    if not 0 < args.scale <= 10:
        p.error("--scale must be in (0, 10]")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    start_load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"
    if args.workdir is not None:
        workdir, owned = args.workdir.resolve(), False
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir, owned = Path(tempfile.mkdtemp(prefix="memtui-bench-")), True
    common.log(f"work directory {workdir}")
    fsync = common.fsync_probe(workdir)
    sections = []
    backend = None
    try:
        backend = common.make_backend(args, workdir)
        common.log(f"backend: {backend.describe()}")
        for name in BENCHES:
            if name in args.only:
                sections.append(importlib.import_module(f"bench.{name}").run(args, workdir, backend))
    finally:
        if backend is not None:
            backend.close()
        if owned and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    machine = common.machine_info()
    run_text = (f"python -m bench --backend {args.backend} --only {','.join(args.only)} --scale {args.scale:g}"
                f" --seed {args.seed} --order {args.order} --repeat {args.repeat}")
    print(common.render_report(machine, run_text, sections, time.perf_counter() - t0,
                                start_load, fsync, backend.describe()))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "fsync": fsync, "backend": backend.describe(),
                                         "args": {k: v for k, v in vars(args).items() if k != "pg_url"},
                                         "benches": {s.title: s.data for s in sections}}, indent=2, default=str))
    return 0 if all(ok for s in sections for _, ok, _ in s.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
