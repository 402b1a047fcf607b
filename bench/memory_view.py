"""memory_view: the dashboard's memory view on a store of 1,000,000 pending and 1,000,000 long-term memories.

``python -m bench.memory_view [--scale 0.1] [--backend postgresql] [--repeat 5]`` from the repository root.

The store is bench/incremental.py's (memories created over the last 7 days and
two years, in id = time order, in the state a store has after memtui ran on it
for a while), at 1,000,000 rows a table at ``--scale 1``, built the same way
(``Store.open``, then ``executemany`` or ``COPY``; the triggers fire on every
row), with one word more in each memory: a made-up name drawn from 20,000 with
Zipf's law (as names and rare words are in real text), so a search can look for
something a few memories hold, as a person does. Then, on one ``Engine`` with a
fake clock: the first promote run (a full pass: it stores every pending
memory's score, which the view pages by), the first decay run and memtui's
compact job (planner statistics, as a store in use has them), and ``NEW``
memories written after that run (not scored yet: the view shows them first).

Measured with the dashboard running headless (``App.run_test``), each time from
the key press to the first screen update that shows the rows (``App._display``,
with the update rendered to the terminal's escape sequences as a real driver
would; under ``run_test`` nothing is written):

1. first page: ``m`` (the view opened, its pending table read) — and ``2`` (the
   long-term table read), each ``--repeat`` times, the view closed in between
   (each ``m`` composes a new view: the first time also pays for the CSS and
   code Textual loads once);
2. next page: the cursor one row above where the view reads the next page, then
   ``down``, page after page;
3. search: a query typed in the search box and ``enter``, for a rare name, a
   common name, three common words and one very common word.

Beside each, the time the engine call itself took (``Engine.pending_page``,
``long_term_page``, ``search_memories``). Target: each on screen in < 100 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import json
import os
import random
import shutil
import string
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench import common, incremental
from bench.common import NOW, Section, log, median, timer

ROWS = 1_000_000  # pending memories, and long-term memories, at --scale 1
NEW = 50  # pending memories written after the first promote run: not scored yet
NAMES = 20_000
TARGET_MS = 100.0
SIZE = (120, 40)
WAIT_S = 60.0  # a screen update that takes longer than this is a failure, not a figure


# -- data ------------------------------------------------------------------------------------------------


def names(seed: int) -> list[str]:
    """``NAMES`` distinct made-up names of 7 letters, most common first (none a prefix of another)."""
    rng = random.Random(seed + 7)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < NAMES:
        name = "".join(rng.choice(string.ascii_lowercase) for _ in range(7))
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def named(rows, seed: int, stream: int):
    """Each row with a name appended to its text (column 0), drawn with Zipf's law (s = 1) over ``names``
    (the same names for both tables; ``stream`` separates the draws)."""
    pool = names(seed)
    cumulative, total = [], 0.0
    for rank in range(1, NAMES + 1):
        total += 1.0 / rank
        cumulative.append(total)
    rng = random.Random(seed * 100 + 11 + stream)
    rand = rng.random
    for row in rows:
        yield (f"{row[0]} {pool[bisect.bisect_left(cumulative, rand() * total)]}", *row[1:])


def share(rank: int) -> float:
    """The share of memories holding the name of ``rank`` (1 = the most common)."""
    return (1.0 / rank) / sum(1.0 / r for r in range(1, NAMES + 1))


def tables(rows: int, band: int, seed: int):
    return (("pending_memory", incremental.PENDING_COLUMNS, named(incremental.pending_rows(rows, seed), seed, 0)),
            ("long_term_memory", incremental.LONG_TERM_COLUMNS,
             named(incremental.long_term_rows(rows, band, seed), seed, 1)))


def build_sqlite(path: str, rows: int, band: int, seed: int) -> dict:
    """Child: memtui's schema (Store.open), then the rows by executemany (as bench/incremental.py builds)."""
    final = Path(path)
    tmp = final.with_name(final.name + ".building")
    common.remove_db(tmp)
    with timer() as t:
        common.create_schema(tmp)
        conn = common.raw_connect(tmp)
        for pragma in ("PRAGMA journal_mode=off", "PRAGMA synchronous=off", "PRAGMA cache_size=-1048576"):
            conn.execute(pragma)
        for table, columns, generated in tables(rows, band, seed):
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            for chunk in incremental._chunks(generated, incremental.BUILD_BATCH):
                conn.execute("BEGIN")
                conn.executemany(sql, chunk)
                conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=wal")
        conn.close()
        common.checkpoint(tmp)
    os.replace(tmp, final)
    return {"wall_s": t["s"], "mb": final.stat().st_size / 2**20}


def build_pg(server: str, database: str, rows: int, band: int, seed: int) -> dict:
    """Child: a new database with memtui's schema, the rows by COPY, then VACUUM (FREEZE, ANALYZE)."""
    with timer() as t:
        building, url = common.pg_building(server, database)
        with common.pg_connect(url, autocommit=False) as conn:
            conn.execute("SET synchronous_commit = off")  # building only
            with conn.cursor() as cur:
                put = common.pg_put(cur)
                for table, columns, generated in tables(rows, band, seed):
                    put(table, columns, generated)
                    conn.commit()
        size = common.pg_finish_building(server, url, building, database)
    return {"wall_s": t["s"], "mb": size / 2**20}


def build(args, workdir: Path, backend, rows: int, band: int) -> tuple[str, dict | None]:
    """A fresh copy of the built store to measure on (SQLite path or PostgreSQL URL), and the build's
    figures (None when an earlier run with the same --workdir built it)."""
    params = {"rows": rows, "band": band, "seed": args.seed}
    key = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    figures = None
    if backend.name == "sqlite":
        built = workdir / f"memory-view-{key}.db"
        if not built.exists():
            log(f"memory_view: building {rows:,} + {rows:,} memories on SQLite")
            figures = common.run_child("bench.memory_view:build_sqlite", workdir, path=str(built), **params)
        log("memory_view: copying the built store")
        return backend.copy(built, "memory-view"), figures
    digest = hashlib.sha1(f"{workdir}|{key}".encode()).hexdigest()[:12]
    database = f"memtui_bench_memory_view_{digest}"[:63]
    if database not in backend.templates:
        backend.templates.append(database)  # dropped at the end unless --keep
    if not backend.exists(database):
        log(f"memory_view: building {rows:,} + {rows:,} memories on PostgreSQL")
        figures = common.run_child("bench.memory_view:build_pg", workdir, server=backend.server,
                                   database=database, **params)
    return backend.copy(database, "memory-view"), figures


# -- the measured session (this process) ------------------------------------------------------------------


class Painted:
    """When the screen first showed something: the first update handed to the terminal after ``arm``
    for which ``ready()`` holds. Headless, ``App._display`` writes nothing, so the update is also
    rendered to the terminal's escape sequences here, as a real driver would (bench/ui.py does the same)."""

    def __init__(self, app):
        self.ready = None
        self.t0 = self.t = self.cpu0 = self.cpu = 0.0
        self.shown = asyncio.Event()
        original = app._display

        def display(screen, renderable) -> None:
            if renderable is not None and not app._batch_count and hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)
            original(screen, renderable)
            if self.ready is not None and renderable is not None and self.ready():
                self.t, self.cpu, self.ready = time.perf_counter(), time.process_time(), None
                self.shown.set()

        app._display = display

    def arm(self, ready) -> None:
        self.ready, self.t0, self.cpu0, self.t = ready, time.perf_counter(), time.process_time(), 0.0
        self.shown.clear()

    async def wait(self, what: str) -> float:
        """Milliseconds from ``arm`` to the update (``cpu_ms``: this process's CPU time meanwhile, which
        other processes on the machine do not inflate; the engine is not started, so it is the view's and
        its search thread's). Waited for on an event: polling would wake the event loop and take the GIL
        from the search thread."""
        try:
            await asyncio.wait_for(self.shown.wait(), WAIT_S)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{what}: not on screen after {WAIT_S:g} s") from None
        self.cpu_ms = (self.cpu - self.cpu0) * 1000
        return (self.t - self.t0) * 1000


class Timed:
    """Times each call of the engine's view methods (the engine's share of a figure)."""

    def __init__(self, engine):
        self.calls: dict[str, list[float]] = {}
        for name in ("pending_page", "long_term_page", "search_memories"):
            setattr(engine, name, self._wrap(name, getattr(engine, name)))

    def _wrap(self, name, method):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.calls.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        return timed

    def last(self, name: str) -> float | None:
        return self.calls.get(name, [None])[-1]


def queries(seed: int) -> list[tuple[str, str]]:
    """(label, query): the search box's cases, from a rare name to a word in a quarter of the memories."""
    pool = names(seed)
    return [
        (f"a rare name (rank 2,000: {share(2000):.4%} of memories)", pool[1999]),
        (f"a common name (rank 20: {share(20):.2%})", pool[19]),
        ("three common words (each in ~23 %)", "flight booked hotel"),
        ("one very common word (~23 %)", "coffee"),
    ]


async def measure(engine, repeat: int, seed: int, pages: int) -> dict:
    from memtui.tui.app import MemtuiApp
    from memtui.tui.memories import MemoryScreen, MemoryTable

    timed = Timed(engine)
    app = MemtuiApp(engine, db_label="bench")
    out: dict = {"open": [], "long_term": [], "next_pending": [], "next_long_term": [], "search": {}}
    bound = any(getattr(b, "key", None) == "m" for b in MemtuiApp.BINDINGS)
    async with app.run_test(size=SIZE) as pilot:
        painted = Painted(app)
        await pilot.pause()

        def view():
            return app.screen if isinstance(app.screen, MemoryScreen) else None

        async def open_view() -> float:
            painted.arm(lambda: view() is not None and view().table("pending").row_count > 0)
            if bound:
                await pilot.press("m")
            else:  # until the jobs view binds m: what its binding does
                app.push_screen(MemoryScreen(engine))
            return await painted.wait("the memory view")

        async def next_page(table) -> float:
            """The cursor one row above where the next page is read, then one key press down."""
            shown = table.row_count
            table.move_cursor(row=max(0, shown - MemoryTable.MORE_WITHIN - 1), animate=False)
            await pilot.pause()
            await asyncio.sleep(0.05)  # that scroll painted, and done with
            painted.arm(lambda: table.row_count > shown)
            await pilot.press("down")
            return await painted.wait("the next page")

        for i in range(repeat):
            ms = await open_view()
            out["open"].append({"ms": ms, "cpu_ms": painted.cpu_ms, "engine_ms": timed.last("pending_page"),
                                "rows": view().table("pending").row_count})
            log(f"memory_view: view open with its first page {ms:.1f} ms (engine {timed.last('pending_page'):.1f})")
            lt = view().table("long-term")
            painted.arm(lambda: lt.row_count > 0 and view().mode == "long-term")
            await pilot.press("2")
            ms = await painted.wait("the long-term page")
            out["long_term"].append({"ms": ms, "cpu_ms": painted.cpu_ms, "engine_ms": timed.last("long_term_page"),
                                     "rows": lt.row_count})
            if i == 0:  # deeper and deeper pages: each read from the last one's key
                for mode, key in (("long-term", "next_long_term"), ("pending", "next_pending")):
                    if mode == "pending":
                        await pilot.press("1")
                        await pilot.pause()
                    table = view().table(mode)
                    for _ in range(pages):
                        if table.exhausted:
                            break
                        ms = await next_page(table)
                        engine_ms = timed.last("pending_page" if mode == "pending" else "long_term_page")
                        out[key].append({"ms": ms, "cpu_ms": painted.cpu_ms, "engine_ms": engine_ms,
                                         "rows": table.row_count})
                    log(f"memory_view: {pages} next pages of {mode}: "
                        + ", ".join(f"{r['ms']:.0f}" for r in out[key]) + " ms")
                for label, query in queries(seed):
                    search = view().query_one("#memory-search")
                    search.value = query
                    search.focus()
                    await pilot.pause()
                    painted.arm(lambda q=query: view().query_text == q and not view().searching)
                    await pilot.press("enter")
                    ms = await painted.wait(f"the search for {query!r}")
                    hits = view().table("results").found  # the first are rows, the rest as the cursor nears them
                    out["search"].setdefault(label, []).append(
                        {"query": query, "ms": ms, "cpu_ms": painted.cpu_ms, "engine_ms": timed.last("search_memories"),
                         "hits": hits})
                    log(f"memory_view: search {query!r} {ms:.1f} ms (engine {timed.last('search_memories'):.1f}),"
                        f" {hits} hits shown")
            else:  # the same searches again, warm
                for label, query in queries(seed):
                    search = view().query_one("#memory-search")
                    search.value = query
                    search.focus()
                    await pilot.pause()
                    painted.arm(lambda q=query: view().query_text == q and not view().searching)
                    await pilot.press("enter")
                    ms = await painted.wait(f"the search for {query!r}")
                    out["search"][label].append({"query": query, "ms": ms, "cpu_ms": painted.cpu_ms,
                                                 "engine_ms": timed.last("search_memories"),
                                                 "hits": view().table("results").found})
            await pilot.press("escape")  # back to the jobs view: the next repetition opens a new view
            await pilot.pause()
        app.exit()
    return out


def session(target: str, rows: int, repeat: int, seed: int, pages: int) -> dict:
    """Settle the store as a store in use is (first promote and decay runs, compact), write ``NEW`` memories,
    then measure the view."""
    from memtui.engine import Engine, FakeClock
    from memtui.engine.config import Config
    from memtui.models import Store

    store = Store.open(target)
    clock = FakeClock(NOW)
    engine = Engine(store, Config(), clock)
    out: dict = {"settle": {}}
    try:
        for job in ("promote", "decay", "compact"):
            with timer() as t:
                info = engine.run_job(job)
            if info.status != "success":
                raise RuntimeError(f"{job} ended {info.status}: {info.error}")
            out["settle"][job] = {"s": t["s"], "result": info.result}
            log(f"memory_view: {job} {t['s']:.1f} s: {info.result}")
        # The rows went in by plain SQL, so the search index has them queued; a store in use has had them
        # indexed long since (every recall, and the dedupe job, indexes the queue first).
        with timer() as t:
            store.sync_search()
        out["settle"]["search index"] = {"s": t["s"], "result": {}}
        log(f"memory_view: search index brought up to date in {t['s']:.1f} s")
        clock.advance(timedelta(minutes=1))
        rng = random.Random(seed + 3)
        for i in range(NEW):
            engine.remember(f"new since the last promote run {i} " + " ".join(rng.choices(common._WORDS, k=8)),
                            sender=f"agent-{i % 200}", importance=rng.uniform(0, 10))
        out.update(asyncio.run(measure(engine, repeat, seed, pages)))
    finally:
        engine.stop(timeout=5)
        store.close()
    return out


# -- the bench -------------------------------------------------------------------------------------------


def _ms(values: list[dict], key: str = "ms") -> tuple[float | None, float | None]:
    got = [v[key] for v in values if v.get(key) is not None]
    return (median(got), max(got)) if got else (None, None)


def run(args, workdir: Path, backend) -> Section:
    rows = max(1000, int(ROWS * args.scale))
    band = min(1000, rows // 10)
    sec = Section(f"memory view on {backend.label}: {rows:,} pending + {rows:,} long-term memories")
    target, figures = build(args, workdir, backend, rows, band)
    try:
        res = session(target, rows, args.repeat, args.seed, args.pages)
    finally:
        backend.remove(target)
    sec.line(f"  data: scale {args.scale:g} = {rows:,} pending and {rows:,} long-term memories (bench/incremental.py's,"
             f" each with a made-up name of {NAMES:,}, Zipf), seed {args.seed}; {NEW} pending memories written after"
             " the first promote run (not scored yet)")
    if figures is not None:
        sec.line(f"  build: {figures['wall_s']:.1f} s, {figures['mb']:,.0f} MiB")
    settle = res["settle"]
    sec.line("  settled: " + ", ".join(f"{job} {v['s']:.1f} s" for job, v in settle.items())
             + f" (promote's first run stored {settle['promote']['result'].get('scored', 0):,} scores)")
    sec.line(f"  the dashboard headless at {SIZE[0]}x{SIZE[1]}; each figure from the key press to the first screen"
             " update showing the rows (rendered to escape sequences), and the engine call alone")
    sec.line()
    table_rows = []

    def add(label: str, values: list[dict], rows_key: str = "rows") -> float | None:
        shown, worst = _ms(values)
        cpu, _ = _ms(values, "cpu_ms")
        engine, _ = _ms(values, "engine_ms")
        extra = values[-1].get(rows_key) if values else None
        table_rows.append([label, len(values), shown, worst, cpu, engine, extra])
        return worst

    worst = {
        "first page (m, the first time)": add("m, the first time: view opens on the first page", res["open"][:1]),
    }
    if len(res["open"]) > 1:
        worst["first page (m again)"] = add("m again (escape in between)", res["open"][1:])
    worst.update({
        "long-term first page (2)": add("2: first long-term page", res["long_term"]),
        "next page, pending": add("next pending page (cursor near the end)", res["next_pending"]),
        "next page, long-term": add("next long-term page", res["next_long_term"]),
    })
    for label, values in res["search"].items():
        worst[f"search: {label}"] = add(f"search: {label}", values, "hits")
    sec.table(["what", "n", "median ms", "max ms", "cpu ms", "engine ms", "rows"], table_rows)
    sec.line("  (median and max: wall time to the screen update; cpu ms: the process's CPU time meanwhile, median;"
             " engine ms: the engine call alone, median; rows: rows in the table after it, for a search the hits"
             " found, at most 100 (the first 40 made into rows at once, the rest as the cursor nears them))")
    for label, ms in worst.items():
        sec.check(f"{label} on screen < {TARGET_MS:g} ms", ms is not None and ms < TARGET_MS,
                  "-" if ms is None else f"worst {ms:.1f} ms")
    sec.data = {"rows": rows, "build": figures, "session": res}
    return sec


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.memory_view", description=__doc__.split("\n\n")[0],
                                epilog="Progress goes to stderr, the report to stdout; exit status 1 when a"
                                       " figure misses its target.")
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--pg-url", default=os.environ.get("MEMTUI_BENCH_PG") or common.DEFAULT_PG_URL,
                   help=f"with --backend postgresql: the server (default {common.DEFAULT_PG_URL})")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the store's size (1 = 1,000,000 pending and 1,000,000 long-term memories)")
    p.add_argument("--repeat", type=int, default=5, help="times the view is opened (default 5)")
    p.add_argument("--pages", type=int, default=5, help="next pages read in each table (default 5)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--workdir", type=Path, default=None,
                   help="where the databases go (default: a new temporary directory, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the built store (reuse it with --workdir)")
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    if not 0 < args.scale <= 10:
        p.error("--scale must be in (0, 10]")
    if args.repeat < 1 or args.pages < 1:
        p.error("--repeat and --pages must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    if args.workdir is not None:
        workdir, owned = args.workdir.resolve(), False
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir, owned = Path(tempfile.mkdtemp(prefix="memtui-bench-view-")), True
    backend = common.make_backend(args, workdir)
    try:
        log(f"memory_view: {backend.describe()}, work directory {workdir}")
        section = run(args, workdir, backend)
    finally:
        backend.close()
        if owned and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    machine = common.machine_info()
    text = (f"python -m bench.memory_view --backend {args.backend} --scale {args.scale:g} --repeat {args.repeat}"
            f" --pages {args.pages} --seed {args.seed}")
    print(common.render_report(machine, text, [section], time.perf_counter() - t0, backend=backend.describe()))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "section": section.data}, indent=2, default=str))
    return 0 if all(ok for _, ok, _ in section.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
