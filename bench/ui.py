"""Dashboard benchmark: ``python -m bench.ui [--minutes 10] [--rows 100000]`` from the repository root.

What it measures, with the real clock and the promote job retimed to fire every
second, the app running headless (``App.run_test(size=(120, 40))``):

1. update latency — the time each ``MemtuiApp.show_view()`` call takes on
   the screen thread (the bound method is wrapped on the instance; wall time,
   and the main thread's CPU time, which other processes and threads competing
   for the CPUs or the GIL do not inflate), the time each ``read_view()`` takes
   on the reader thread (engine updates are read there, off the screen thread),
   and the time from an engine ``run_finished`` event (stamped in an engine
   subscriber) to the end of the first ``show_view()`` after which the history
   table shows that run with its final status.
   Measured over a database holding ``--rows`` promote runs and, as the
   baseline, over a fresh (empty) database; the two are compared minute by
   minute over the same windows (the first ``--baseline-minutes`` of each; from
   the second minute on the empty run also has the 50 runs each refresh
   re-reads). Also shown: the DataTable column-width pass Textual runs on idle
   after a cell update (``HistoryTable._update_column_widths``), which
   ``show_view()`` does not include, the lag of the event loop (a 20 ms
   sleep, how late it wakes) and the garbage collector's pauses.
2. memory — the process RSS after 1 minute and after ``--minutes``, the job
   firing every second the whole time.
3. history scroll — the history table focused, its cursor moved to the last
   row; the time until the next page (``HistoryTable.PAGE`` rows) is in the
   table. Then the same with more pages loaded (``--deep-rows``), and what the
   per-run update costs once that many rows are in the table.

Each phase runs in a fresh Python process (``--phase``, internal), so its RSS
is its own. Progress goes to stderr, the report to stdout.
"""
from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOB = "promote"
SIZE = (120, 40)
PROBE_S = 0.020          # event-loop lag probe period
FPS = 60                 # how often the frame driver asks for a repaint (--fps): as Textual's Animator does
GAP_GOAL_MS = 50.0       # issue 13: no gap between frames over 50 ms
FRAME_GOAL_MS = 1000 / 60  # a frame is drawn within one 60 Hz refresh (Textual's MAX_FPS)
RSS_GOAL_PCT = 5.0       # RSS growth after the first minute
SAMPLE_S = 10.0          # RSS sample period
AFTER_SCROLL_S = 15.0    # how long refresh costs are watched after loading more history
RESULT = '{"promoted": 3, "expired": 0, "top_score": 0.7}'
_T0 = time.perf_counter()


# -- small helpers -------------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[ui {time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def stats_ms(values_s: list[float]) -> dict:
    """count, p50, p95, max, mean (ms) of durations given in seconds."""
    ms = sorted(v * 1000 for v in values_s)
    if not ms:
        return {"count": 0, "p50": None, "p95": None, "max": None, "mean": None}
    return {"count": len(ms), "p50": percentile(ms, 50), "p95": percentile(ms, 95), "max": ms[-1],
            "mean": sum(ms) / len(ms)}


class Samples:
    """Fixed-width rows of floats in one flat array (doubles; 4-byte floats for the series sampled
    50 times a second): the benchmark's own bookkeeping stays well under a MB over a long run (a list
    of tuples would add MBs to the RSS being measured)."""

    def __init__(self, width: int, typecode: str = "d"):
        self.width = width
        self.data = array.array(typecode)

    def append(self, row) -> None:
        self.data.extend(row)

    def clear(self) -> None:
        del self.data[:]

    def __len__(self) -> int:
        return len(self.data) // self.width

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return tuple(self.data[index * self.width:(index + 1) * self.width])

    def __iter__(self):
        w, data = self.width, self.data
        for i in range(0, len(data), w):
            yield tuple(data[i:i + w])

    @property
    def nbytes(self) -> int:
        return len(self.data) * self.data.itemsize


def window(samples: list[tuple[float, float]], start: float, end: float) -> list[float]:
    """Values of (t, value) samples with start <= t < end."""
    return [v for t, v in samples if start <= t < end]


class FrameWatch:
    """Textual's screen updates, timed: each frame is one outermost call of ``Screen._on_timer_update``,
    ``Screen._refresh_layout`` or ``Screen._compositor_refresh`` (layout, compositor render) that
    handed an update to ``App._display``; its time is the whole call, stamped when it ends.

    Under ``run_test`` the app is headless and ``App._display`` writes nothing, so the hook also turns
    each update into the terminal's escape sequences (``render_segments``), as a real driver would:
    a frame here costs what it costs on a terminal, less the write itself.

    The methods are patched on the classes, in the phase's own process, before the app starts (the
    screen's update timer holds the bound method it found then)."""

    HOOKED = ("_on_timer_update", "_refresh_layout", "_compositor_refresh")

    def __init__(self, clock: dict):
        self.clock = clock
        # (time the frame ended since t0, its wall time, its main-thread CPU time): 4-byte floats (30 µs
        # at 600 s) for ~60 a second. Wall above CPU is time the thread waited: for the GIL (the engine's
        # threads run the job in this process) or for a core (other processes).
        self.frames = Samples(3, "f")
        self._depth = 0
        self._wrote = False

    def install(self, app) -> None:
        from textual.screen import Screen

        for name in self.HOOKED:
            setattr(Screen, name, self._timed(getattr(Screen, name)))
        original_display = app._display

        def display(screen, renderable) -> None:
            if renderable is not None and not app._batch_count:
                self._wrote = True
                if app.is_headless and hasattr(renderable, "render_segments"):
                    renderable.render_segments(app.console)
            original_display(screen, renderable)

        app._display = display  # screens call self.app._display(...)

    def _timed(self, method):
        watch = self

        def timed(screen, *args, **kwargs):
            if watch._depth:
                return method(screen, *args, **kwargs)
            watch._depth, watch._wrote = 1, False
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return method(screen, *args, **kwargs)
            finally:
                watch._depth = 0
                if watch._wrote:
                    t1 = time.perf_counter()
                    watch.frames.append((t1 - watch.clock["t0"], t1 - t0, time.thread_time() - c0))

        return timed


def frame_figures(frames: list[tuple], start: float, end: float, gc_pauses, refresh) -> dict:
    """Frame times (wall and CPU) and the gaps between frames written in [start, end), with the longest
    gaps and what ran inside each (gc pauses and show_view() calls overlapping it)."""
    inside = [(f[0], f[1]) for f in frames if start <= f[0] < end]
    cpu = sorted(f[2] * 1000 for f in frames if start <= f[0] < end and len(f) > 2)
    times = [t for t, _ in inside]
    gaps = [(b - a, a, b) for a, b in zip(times, times[1:])]
    ending = {f[0]: f for f in frames}  # each frame by when it ended
    worst = []
    for gap, a, b in sorted(gaps, reverse=True)[:5]:
        gc_in = [(gen, w) for t, gen, w, _ in gc_pauses if t < b and t + w > a]
        refresh_in = [w for t, w in refresh if t < b and t + w > a]
        last = ending.get(b, (b, 0.0, 0.0))
        worst.append({"gap_ms": gap * 1000, "at_s": a, "gc": [(int(g), w * 1000) for g, w in gc_in],
                      "refresh_ms": [w * 1000 for w in refresh_in],
                      "frame_ms": (last[1] * 1000, last[2] * 1000 if len(last) > 2 else None)})
    gap_ms = sorted(g * 1000 for g, _, _ in gaps)
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {"frames": len(inside), "fps": (len(inside) - 1) / span if span else None,
            "cpu": {"p50": percentile(cpu, 50) if cpu else None, "p99": percentile(cpu, 99) if cpu else None,
                    "max": cpu[-1] if cpu else None},
            "time": stats_ms([d for _, d in inside]) | {"p99": percentile(sorted(d * 1000 for _, d in inside), 99)
                                                        if inside else None},
            "gap": {"max": gap_ms[-1] if gap_ms else None, "p99": percentile(gap_ms, 99) if gap_ms else None,
                    "p50": percentile(gap_ms, 50) if gap_ms else None,
                    "over_goal": sum(1 for g in gap_ms if g > GAP_GOAL_MS)},
            "worst": worst}


# -- the database ----------------------------------------------------------------------------------

def build_db(path: Path, rows: int) -> dict:
    """A memtui database (schema and seeded jobs from the engine itself) with ``rows`` finished
    promote runs, one every 30 s back from now, the oldest with the lowest id."""
    from memtui.engine import Config, Engine

    engine = Engine(str(path), Config())
    engine.close()
    if not rows:
        return {"rows": 0, "build_s": 0.0}
    t0 = time.perf_counter()
    now = time.time()
    con = sqlite3.connect(path)
    try:
        def gen():
            for i in range(rows):
                started = now - (rows - i) * 30.0
                duration_ms = 5 + (i * 7) % 40
                yield (JOB, "scheduled", started, started, started + duration_ms / 1000, duration_ms, "success",
                       RESULT, "bench")

        with con:
            con.executemany(
                "INSERT INTO run (job, reason, scheduled_for, started_at, finished_at, duration_ms, status, result,"
                " owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", gen())
            # keep the job's counters consistent with its history, as a long-lived database would be
            con.execute("UPDATE job_state SET runs = ?, last_run_at = ?, last_status = 'success',"
                        " last_duration_ms = 20, totals = ? WHERE name = ?",
                        (rows, now - 30.0, json.dumps({"expired": 0, "promoted": 3 * rows}), JOB))
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count = con.execute("SELECT count(*) FROM run WHERE job = ?", (JOB,)).fetchone()[0]
        plans = {
            "history": con.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM run WHERE job = ? ORDER BY id DESC LIMIT 50", (JOB,)).fetchall(),
            "stats": con.execute(
                "EXPLAIN QUERY PLAN SELECT result FROM run WHERE job = ? AND status = 'success'"
                " ORDER BY id DESC LIMIT 20", (JOB,)).fetchall(),
        }
    finally:
        con.close()
    return {"rows": count, "build_s": time.perf_counter() - t0,
            "plans": {k: " / ".join(str(r[-1]) for r in v) for k, v in plans.items()}}


# -- one phase (runs in its own process) ---------------------------------------------------------------

async def _phase_async(db: Path, seconds: float, scroll: bool, deep_rows: int, fps: float = FPS) -> dict:
    from textual.widgets.data_table import CellDoesNotExist

    from memtui.engine import Config, Engine
    from memtui.tui.app import MemtuiApp

    engine = Engine(str(db), Config())
    app = MemtuiApp(engine, db_label="bench.db")

    lock = threading.Lock()
    pending: dict[int, tuple[float, str]] = {}   # run id -> (event stamp, final status)
    latencies = Samples(2)                        # (event time since start, event -> displayed)
    event_counts: dict[str, int] = {}
    refresh = Samples(2)      # show_view() on the screen thread: (start since t0, duration)
    reads = Samples(2)        # read_view() on whichever thread: (start since t0, duration)
    read_cpu = Samples(2)     # (start since t0, that thread's CPU time of the call)
    widths = Samples(3)       # history column-width pass: (start, duration, rows in table)
    lag = Samples(2, "f")     # (probe start, how late it woke); 50 a second: 4-byte floats
    gc_pauses = Samples(4)    # (start, generation, wall, thread CPU)
    refresh_cpu = Samples(2)  # (start since t0, main-thread CPU time of the call)
    refresh_add = Samples(2)  # the same, only the calls that added a run to the history table
    clock = {"t0": time.perf_counter()}           # reset when the engine starts
    gc_started = {}

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started["t"], gc_started["cpu"] = time.perf_counter(), time.thread_time()
        elif "t" in gc_started:
            gc_pauses.append((gc_started["t"] - clock["t0"], info["generation"],
                              time.perf_counter() - gc_started.pop("t"), time.thread_time() - gc_started["cpu"]))

    state = {"table": None, "stop": False}

    def on_event(event) -> None:                  # engine threads
        now = time.perf_counter()
        with lock:
            event_counts[event.kind] = event_counts.get(event.kind, 0) + 1
            if event.kind == "run_finished" and event.job == JOB and event.run is not None:
                pending[event.run.id] = (now, event.run.status)

    original_read = app.read_view

    def timed_read(ask):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return original_read(ask)
        finally:
            read_cpu.append((t0 - clock["t0"], time.thread_time() - c0))
            reads.append((t0 - clock["t0"], time.perf_counter() - t0))

    original_refresh = app.show_view

    def timed_refresh(view) -> None:
        rows_before = state["table"].row_count if state["table"] is not None else None
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            original_refresh(view)
        finally:
            t1, c1 = time.perf_counter(), time.thread_time()
            refresh_cpu.append((t0 - clock["t0"], c1 - c0))
            refresh.append((t0 - clock["t0"], t1 - t0))
            if rows_before is not None and state["table"].row_count > rows_before:
                refresh_add.append((t0 - clock["t0"], c1 - c0))
            table = state["table"]
            if table is None:
                table = state["table"] = app.history_table
                original_widths = table._update_column_widths

                def timed_widths(updated_cells) -> None:
                    w0 = time.perf_counter()
                    try:
                        original_widths(updated_cells)
                    finally:
                        widths.append((w0 - clock["t0"], time.perf_counter() - w0, table.row_count))

                table._update_column_widths = timed_widths  # called as self._update_column_widths on idle
            with lock:
                waiting = list(pending.items())
            for run_id, (stamp, status) in waiting:
                try:
                    shown = table.get_cell(str(run_id), "status")
                except CellDoesNotExist:
                    continue
                if getattr(shown, "plain", str(shown)) == status:
                    with lock:
                        pending.pop(run_id, None)
                    latencies.append((stamp - clock["t0"], t1 - stamp))

    # refresh_all() (mount, keys) and the reader thread's views (engine updates) call self.read_view()
    # and self.show_view(), looked up on the instance per call
    app.read_view, app.show_view = timed_read, timed_refresh
    unsubscribe = engine.subscribe(on_event)

    async def probe() -> None:
        while not state["stop"]:
            t = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            lag.append((t - clock["t0"], max(0.0, time.perf_counter() - t - PROBE_S)))

    frames = FrameWatch(clock)
    frames.install(app)
    out: dict = {"rss_start_mb": rss_mb(), "load_start": _loadavg(), "fps_asked": fps}
    gc.callbacks.append(on_gc)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.history_table
        out["mount_refresh_ms"] = refresh[0][1] * 1000 if refresh else None
        out["rows_after_mount"] = table.row_count
        out["selected_job"] = app.selected_job_name
        engine.retime(JOB, "1s")
        clock["t0"] = time.perf_counter()
        for series in (widths, refresh_add, gc_pauses, frames.frames):  # from here on, times count from the engine start
            series.clear()
        cpu0 = time.process_time()
        engine.start()
        probe_task = asyncio.create_task(probe())
        if fps:
            # The frame driver: the status line asks for a repaint every 1/fps s, as an animation would
            # (Textual's Animator ticks at 60 a second, the screen's update timer too: at another rate the
            # two timers beat, and a frame waits up to a period of each, ~37 ms at 50, with the loop idle),
            # so a frame is due all the time and any stall shows as a gap between frames (a one-line
            # repaint: cheap next to the tables' updates it waits behind).
            app.set_interval(1 / fps, app.query_one("#status").refresh)
        first_refresh, first_read = len(refresh), len(reads)
        rss_samples: list[tuple[float, float, int]] = []
        marks: dict = {}

        def own_bytes() -> int:  # the benchmark's own samples, which grow with the run
            return sum(x.nbytes for x in (refresh, refresh_cpu, refresh_add, reads, read_cpu, widths, latencies,
                                          lag, gc_pauses, frames.frames))

        next_sample, next_log = 0.0, 60.0
        log(f"engine started, {JOB} every 1s; watching for {seconds:.0f}s")
        while True:
            elapsed = time.perf_counter() - clock["t0"]
            if elapsed >= next_sample:
                rss_samples.append((elapsed, rss_mb(), table.row_count))
                next_sample += SAMPLE_S
            if elapsed >= next_log:
                next_log += 60.0
                log(f"t={elapsed:4.0f}s rss={rss_mb():.1f} MB, {len(refresh) - first_refresh} refreshes,"
                    f" {table.row_count} history rows")
            if "1min" not in marks and elapsed >= 60.0:
                marks["1min"] = {"t": elapsed, "rss_mb": rss_mb(), "history_rows": table.row_count,
                                 "gc_objects": len(gc.get_objects()), "bench_bytes": own_bytes()}
            if elapsed >= seconds:
                break
            await asyncio.sleep(0.25)
        marks["end"] = {"t": time.perf_counter() - clock["t0"], "rss_mb": rss_mb(),
                        "history_rows": table.row_count, "gc_objects": len(gc.get_objects()),
                        "bench_bytes": own_bytes()}
        end_t = marks["end"]["t"]
        out.update(rss_samples=rss_samples, marks=marks, seconds=end_t, load_end=_loadavg(),
                   cpu_pct=(time.process_time() - cpu0) / end_t * 100)

        if scroll:
            out["scroll"] = await _scroll(app, pilot, engine, table, clock, refresh, refresh_cpu, refresh_add,
                                          widths, gc_pauses, deep_rows)
        state["stop"] = True
        await probe_task
        # stop the engine while the app is still up: an update posted during unmount would query gone widgets
        await asyncio.to_thread(engine.stop)
    gc.callbacks.remove(on_gc)
    unsubscribe()
    with lock:
        left = dict(pending)
    engine.close()

    series = (refresh, refresh_cpu, refresh_add, reads, read_cpu, widths, latencies, lag, gc_pauses, frames.frames)
    out.update(frames=list(frames.frames),
        refresh=refresh[first_refresh:], refresh_cpu=refresh_cpu[first_refresh:],
        reads=reads[first_read:], read_cpu=read_cpu[first_read:],
        refresh_add=list(refresh_add), widths=list(widths), latency=list(latencies),
        lag=list(lag), gc=list(gc_pauses), events=event_counts, undisplayed=len(left), end_t=end_t,
        bench_bytes=sum(x.nbytes for x in series),
    )
    return out


async def _scroll(app, pilot, engine, table, clock, refresh, refresh_cpu, refresh_add, widths, gc_pauses,
                  deep_rows: int) -> dict:
    """Page the history: focus it, move the cursor to the last row, wait for the page."""
    page = table.PAGE
    table.focus()
    await asyncio.sleep(0.5)

    paints: list[tuple[float, float]] = []  # history table render_lines calls: (start, end)
    original_render_lines = table.render_lines

    def timed_render_lines(crop):
        p0 = time.perf_counter()
        try:
            return original_render_lines(crop)
        finally:
            paints.append((p0, time.perf_counter()))

    table.render_lines = timed_render_lines  # the compositor calls widget.render_lines(crop)

    async def one_page() -> dict | None:
        before_oldest, before_rows = table.oldest_id, table.row_count
        if table.exhausted:
            return None
        t0 = time.perf_counter()
        table.move_cursor(row=table.row_count - 1)
        while table.oldest_id == before_oldest and time.perf_counter() - t0 < 30:
            await asyncio.sleep(0)
        t_rows = time.perf_counter()
        # the first time the compositor renders the table after the page is in it
        painted = None
        while painted is None and time.perf_counter() - t_rows < 5:
            painted = next((end for start, end in paints if start >= t_rows), None)
            if painted is None:
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.2)  # let the idle width pass and the other pending updates run before the next page
        return {"rows_before": before_rows, "rows_after": table.row_count, "added": table.row_count - before_rows,
                "to_rows_ms": (t_rows - t0) * 1000,
                "to_repaint_ms": None if painted is None else (painted - t0) * 1000}

    def cost_since(t_from: float) -> dict:
        r = [d for t, d in refresh if t >= t_from]
        w = [d for t, d, _ in widths if t >= t_from]
        rc = [d for t, d in refresh_cpu if t >= t_from]
        ra = [d for t, d in refresh_add if t >= t_from]
        g = [d for t, gen, d, _ in gc_pauses if t >= t_from and gen == 2]
        gc_cpu = [c for t, gen, _, c in gc_pauses if t >= t_from and gen == 2]
        return {"refresh": stats_ms(r), "refresh_cpu": stats_ms(rc), "refresh_add": stats_ms(ra),
                "widths": stats_ms(w), "gc2": stats_ms(g),
                "gc2_cpu": stats_ms(gc_cpu), "rows": table.row_count}

    async def watch() -> dict:
        t_from = time.perf_counter() - clock["t0"]
        await asyncio.sleep(AFTER_SCROLL_S)
        return cost_since(t_from)

    # the engine.history() page query alone, outside the UI
    q0 = time.perf_counter()
    engine.history(table.job, page, before_id=table.oldest_id)
    query_ms = (time.perf_counter() - q0) * 1000

    out = {"page": page, "query_ms": query_ms, "before": await watch(), "pages": []}
    log(f"scroll: history has {table.row_count} rows; paging 5 pages of {page}")
    for _ in range(5):
        result = await one_page()
        if result is None:
            break
        out["pages"].append(result)
    out["after_5"] = await watch()
    if deep_rows and table.row_count < deep_rows:
        log(f"scroll: paging on to {deep_rows} rows")
        gc.collect()
        out["deep_rss_before"] = (table.row_count, rss_mb())
        deep = []
        while table.row_count < deep_rows:
            result = await one_page()
            if result is None:
                break
            deep.append(result)
        out["deep_pages"] = deep
        gc.collect()
        out["deep_rss_after"] = (table.row_count, rss_mb())
        out["after_deep"] = await watch()
        log(f"scroll: {table.row_count} rows in the table")
    return out


def run_phase(label: str, seconds: float, rows: int, scroll: bool, deep_rows: int, workdir: Path,
              fps: float = FPS) -> dict:
    db = workdir / f"{label}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    log(f"{label}: building database with {rows:,} {JOB} runs")
    built = build_db(db, rows)
    log(f"{label}: built in {built['build_s']:.1f}s")
    result = asyncio.run(_phase_async(db, seconds, scroll, deep_rows, fps))
    result.update(label=label, db=built, db_bytes=db.stat().st_size)
    return result


# -- orchestration ---------------------------------------------------------------------------------

def _child(label: str, seconds: float, rows: int, scroll: bool, deep_rows: int, workdir: Path,
           fps: float = FPS) -> dict:
    out = workdir / f"{label}.json"
    cmd = [sys.executable, "-m", "bench.ui", "--phase", label, "--seconds", repr(seconds), "--rows", str(rows),
           "--deep-rows", str(deep_rows), "--workdir", str(workdir), "--out", str(out), "--fps", repr(fps)]
    if scroll:
        cmd.append("--scroll")
    subprocess.run(cmd, cwd=ROOT, check=True)
    return json.loads(out.read_text())


def run(minutes: float = 10.0, *, rows: int = 100_000, baseline_minutes: float = 2.0, deep_rows: int = 10_000,
        workdir: Path | None = None, fps: float = FPS) -> dict:
    """Run the baseline (empty history) and the main phase (``rows`` runs); return every figure.

    ``result["report"]`` is the printable report."""
    if minutes <= 0 or baseline_minutes <= 0:
        raise ValueError("minutes must be positive")
    owned = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="memtui-bench-ui-")) if owned else Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        baseline = _child("empty", baseline_minutes * 60, 0, False, 0, workdir, fps)
        main_phase = _child("full", minutes * 60, rows, True, deep_rows, workdir, fps)
    finally:
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
    result = summarize(baseline, main_phase, minutes, baseline_minutes, rows)
    result["wall_s"] = time.perf_counter() - t0
    result["report"] = format_report(result)
    return result


def summarize(base: dict, full: dict, minutes: float, baseline_minutes: float, rows: int) -> dict:
    w = baseline_minutes * 60

    def latency_block(phase: dict, start: float, end: float) -> dict:
        return {
            "refresh": stats_ms(window(phase["refresh"], start, end)),
            "refresh_cpu": stats_ms(window(phase["refresh_cpu"], start, end)),
            "refresh_add": stats_ms(window(phase["refresh_add"], start, end)),
            "read": stats_ms(window(phase.get("reads", []), start, end)),
            "read_cpu": stats_ms(window(phase.get("read_cpu", []), start, end)),
            "event_to_displayed": stats_ms(window(phase["latency"], start, end)),
            "widths": stats_ms([d for t, d, _ in phase["widths"] if start <= t < end]),
            "loop_lag": stats_ms(window(phase["lag"], start, end)),
            "gc2": stats_ms([d for t, gen, d, _ in phase["gc"] if start <= t < end and gen == 2]),
            "gc2_cpu": stats_ms([c for t, gen, _, c in phase["gc"] if start <= t < end and gen == 2]),
            "gc01": stats_ms([d for t, gen, d, _ in phase["gc"] if start <= t < end and gen < 2]),
        }

    # matched windows: each whole minute of the baseline (or all of it when shorter than a minute);
    # from the second minute on, the empty run also has the 50 newest runs that each refresh re-reads
    bounds = [(m * 60.0, (m + 1) * 60.0) for m in range(int(w // 60))] or [(0.0, w)]
    matched = []
    for start, end in bounds:
        block = {"window": (start, end), "empty": latency_block(base, start, end),
                 "full": latency_block(full, start, end), "ratio": {}}
        for key in ("refresh", "refresh_cpu", "event_to_displayed"):
            block["ratio"][key] = {q: (block["full"][key][q] / block["empty"][key][q]
                                       if block["empty"][key][q] else None) for q in ("p50", "p95", "max")}
        matched.append(block)
    whole = latency_block(full, 0, full["end_t"])
    per_minute = []
    for m in range(int(full["end_t"] // 60) + (1 if full["end_t"] % 60 > 1 else 0)):
        block = stats_ms(window(full["refresh"], m * 60, (m + 1) * 60))
        lat = stats_ms(window(full["latency"], m * 60, (m + 1) * 60))
        rows_at = [r for t, _, r in full["rss_samples"] if t < (m + 1) * 60]
        per_minute.append({"minute": m + 1, "refresh": block, "latency": lat, "history_rows": rows_at[-1] if rows_at
                           else None})
    marks = full["marks"]
    memory = {"start_mb": full["rss_start_mb"], "samples": full["rss_samples"], "end": marks["end"],
              "bench_bytes": full["bench_bytes"]}
    if "1min" in marks:
        one, end = marks["1min"], marks["end"]
        own = end.get("bench_bytes", 0) - one.get("bench_bytes", 0)
        memory.update(one_min=one, growth_mb=end["rss_mb"] - one["rss_mb"],
                      growth_pct=(end["rss_mb"] - one["rss_mb"]) / one["rss_mb"] * 100,
                      bench_growth_mb=own / 2**20,
                      app_growth_pct=(end["rss_mb"] - one["rss_mb"] - own / 2**20) / one["rss_mb"] * 100,
                      rows_added=end["history_rows"] - one["history_rows"],
                      gc_objects_added=end["gc_objects"] - one["gc_objects"])
    base_marks = base["marks"]
    return {
        "config": {"minutes": minutes, "baseline_minutes": baseline_minutes, "rows": rows, "size": SIZE,
                   "python": platform.python_version(), "textual": _version("textual"),
                   "cpus": os.cpu_count(), "platform": platform.platform(), "code": _code_version()},
        "db": {"empty": base["db"], "full": full["db"], "full_bytes": full["db_bytes"]},
        "mount": {"empty_ms": base["mount_refresh_ms"], "full_ms": full["mount_refresh_ms"],
                  "empty_rows": base["rows_after_mount"], "full_rows": full["rows_after_mount"],
                  "selected": full["selected_job"]},
        "matched": matched, "whole": whole, "per_minute": per_minute,
        "load": {"empty": (base["load_start"], base["load_end"]), "full": (full["load_start"], full["load_end"])},
        "cpu_pct": {"empty": base["cpu_pct"], "full": full["cpu_pct"]},
        "lag_spikes": {name: sum(1 for t, v in phase["lag"] if v > 0.1 and t < phase["end_t"])
                       for name, phase in (("empty", base), ("full", full))},
        "events": {"empty": base["events"], "full": full["events"], "full_s": full["end_t"],
                   "empty_s": base["end_t"]},
        "undisplayed": {"empty": base["undisplayed"], "full": full["undisplayed"]},
        "memory": memory,
        "baseline_memory": {"start_mb": base["rss_start_mb"], "end": base_marks["end"],
                            "one_min": base_marks.get("1min")},
        "scroll": full.get("scroll"),
        "frames": {"fps_asked": full.get("fps_asked"),
                   "full": frame_figures(full.get("frames", []), 0, full["end_t"], full["gc"], full["refresh"]),
                   "empty": frame_figures(base.get("frames", []), 0, base["end_t"], base["gc"], base["refresh"])},
        "gc_max": {name: {"all": max([w * 1000 for t, _, w, _ in phase["gc"] if t < phase["end_t"]], default=None),
                          "gen2": max([w * 1000 for t, g, w, _ in phase["gc"] if t < phase["end_t"] and g == 2],
                                      default=None),
                          "gen2_count": sum(1 for t, g, _, _ in phase["gc"] if t < phase["end_t"] and g == 2)}
                   for name, phase in (("empty", base), ("full", full))},
    }


def _code_version() -> str:
    """Where the measured code came from: the checkout, its commit, and whether it had local changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "engine", "models", "tui"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"{ROOT} at {head}" + (" with local changes in engine/models/tui" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return f"{ROOT} (not a git checkout)"


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "?"


# -- the report -----------------------------------------------------------------------------------

def _f(v, fmt="{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _row(label: str, s: dict, unit="ms") -> str:
    return (f"    {label:<46} n={s['count']:<6} p50 {_f(s['p50']):>8}  p95 {_f(s['p95']):>8}"
            f"  max {_f(s['max']):>8} {unit}")


def _goal(ok: bool | None) -> str:
    return "?" if ok is None else "ok" if ok else "MISSED"


def _goals(r: dict) -> list[str]:
    """The figures issue 13 sets goals for, each with its goal, over the main run's watch window."""
    fr, mem, g = r["frames"]["full"], r["memory"], r["gc_max"]["full"]
    fps = r["frames"]["fps_asked"]
    gap, p99 = fr["gap"]["max"], fr["time"]["p99"]
    lines = [
        f"Goals (main run, {r['events']['full_s']:.0f} s over {r['db']['full']['rows']:,} runs, {JOB} every second;"
        + (f" a repaint asked every {1000 / fps:.0f} ms):" if fps else " frames only when the dashboard changes):"),
        f"  longest gap between frames  {_f(gap, '{:8.1f}')} ms   goal <= {GAP_GOAL_MS:.0f} ms"
        f"        {_goal(None if gap is None else gap <= GAP_GOAL_MS)}"
        f"   ({fr['gap']['over_goal']} gaps over it in {fr['frames']:,} frames, {_f(fr['fps'], '{:.1f}')} frames/s;"
        f" gap p50 {_f(fr['gap']['p50'], '{:.1f}')}, p99 {_f(fr['gap']['p99'], '{:.1f}')} ms)",
        f"  p99 frame time              {_f(p99, '{:8.1f}')} ms   goal <= {FRAME_GOAL_MS:.1f} ms (60 Hz)"
        f"  {_goal(None if p99 is None else p99 <= FRAME_GOAL_MS)}"
        f"   (p50 {_f(fr['time']['p50'], '{:.1f}')}, max {_f(fr['time']['max'], '{:.1f}')} ms; main-thread CPU"
        f" p50 {_f(fr.get('cpu', {}).get('p50'), '{:.1f}')}, p99 {_f(fr.get('cpu', {}).get('p99'), '{:.1f}')},"
        f" max {_f(fr.get('cpu', {}).get('max'), '{:.1f}')} ms)",
        f"  gc pause, max               {_f(g['all'], '{:8.1f}')} ms   goal <= {GAP_GOAL_MS:.0f} ms"
        f"        {_goal(None if g['all'] is None else g['all'] <= GAP_GOAL_MS)}"
        f"   ({g['gen2_count']} full collections, the longest {_f(g['gen2'], '{:.1f}')} ms)",
    ]
    if "one_min" in mem:
        lines += [
            f"  RSS after 1 min             {mem['one_min']['rss_mb']:8.1f} MB",
            f"  RSS at the end              {mem['end']['rss_mb']:8.1f} MB   growth {mem['growth_pct']:+.1f} %,"
            f" goal < {RSS_GOAL_PCT:.0f} %   {_goal(mem['growth_pct'] < RSS_GOAL_PCT)}"
            f"   (less the benchmark's own samples, {mem['bench_growth_mb']:.2f} MB: {mem['app_growth_pct']:+.1f} %)",
        ]
    else:
        lines.append(f"  RSS: the run is shorter than a minute (end {mem['end']['rss_mb']:.1f} MB); growth not measured")
    for w in fr["worst"]:
        inside = ", ".join([f"gc gen{gen} {ms:.0f} ms" for gen, ms in w["gc"] if gen == 2 or ms >= 5]
                           + [f"show_view {ms:.0f} ms" for ms in w["refresh_ms"]]) or "no gc, no show_view"
        wall, cpu = w.get("frame_ms", (None, None))
        lines.append(f"    gap {w['gap_ms']:6.1f} ms at {w['at_s']:6.1f} s: {inside}; the frame ending it"
                     f" {_f(wall, '{:.0f}')} ms ({_f(cpu, '{:.0f}')} ms CPU)")
    return lines


def format_report(r: dict) -> str:
    c = r["config"]
    lines = [
        "memtui dashboard benchmark (python -m bench.ui)",
        f"  python {c['python']}, textual {c['textual']}, {c['cpus']} CPUs, {c['platform']}",
        f"  code: {c['code']}",
        f"  app.run_test(size={c['size']}), engine on the real clock, {JOB} retimed to \"1s\";"
        f" main run {c['minutes']:g} min over {r['db']['full']['rows']:,} {JOB} runs"
        f" ({r['db']['full_bytes'] / 2**20:.1f} MB db), baseline {c['baseline_minutes']:g} min over an empty history",
        f"  1-min load average (start -> end): baseline {_f(r['load']['empty'][0])} -> {_f(r['load']['empty'][1])},"
        f" main {_f(r['load']['full'][0])} -> {_f(r['load']['full'][1])} (other processes share these CPUs);"
        f" CPU used by the app process: baseline {r['cpu_pct']['empty']:.1f} %, main {r['cpu_pct']['full']:.1f} %"
        f" of one core",
        "",
        *_goals(r),
        "",
        "1. Update latency",
        f"  initial show_view() on mount: empty {_f(r['mount']['empty_ms'])} ms ({r['mount']['empty_rows']} rows),"
        f" full {_f(r['mount']['full_ms'])} ms ({r['mount']['full_rows']} rows loaded; selected job:"
        f" {r['mount']['selected']})",
    ]
    rows_label = f"{r['db']['full']['rows']:,} rows"
    for block in r["matched"]:
        start, end = block["window"]
        lines.append(f"  matched window {start:.0f}-{end:.0f} s after the engine started, both runs:")
        for key, label in (("refresh", "show_view() wall"), ("refresh_cpu", "show_view() CPU"),
                           ("event_to_displayed", "run_finished -> refresh done"),
                           ("widths", "idle column-width pass"), ("loop_lag", "event-loop lag (20 ms probe)"),
                           ("gc2", "gc pause, generation 2")):
            lines.append(_row(f"{label}, empty", block["empty"][key]))
            lines.append(_row(f"{label}, {rows_label}", block["full"][key]))
        for key, label in (("refresh", "show_view() wall"), ("refresh_cpu", "show_view() CPU"),
                           ("event_to_displayed", "run_finished -> refresh done")):
            q = block["ratio"][key]
            lines.append(f"    ratio {rows_label}/empty, {label:<29} p50 {_f(q['p50'], '{:.2f}x')}"
                         f"  p95 {_f(q['p95'], '{:.2f}x')}  max {_f(q['max'], '{:.2f}x')}")
    ev = r["events"]
    lines += [
        f"  whole main run ({ev['full_s']:.0f} s):",
        _row("show_view() wall", r["whole"]["refresh"]),
        _row("show_view() CPU (screen thread)", r["whole"]["refresh_cpu"]),
        _row("show_view() CPU, calls that added a run", r["whole"]["refresh_add"]),
        _row("read_view() wall (reader thread)", r["whole"]["read"]),
        _row("read_view() CPU (its thread)", r["whole"]["read_cpu"]),
        _row("run_finished -> refresh done", r["whole"]["event_to_displayed"]),
        _row("idle column-width pass (history)", r["whole"]["widths"]),
        _row("event-loop lag (20 ms probe)", r["whole"]["loop_lag"]),
        _row("gc pause, generation 2 (full), wall", r["whole"]["gc2"]),
        _row("gc pause, generation 2 (full), CPU", r["whole"]["gc2_cpu"]),
        _row("gc pause, generations 0-1", r["whole"]["gc01"]),
        f"    engine events: {', '.join(f'{k} {v}' for k, v in sorted(ev['full'].items()))};"
        f" show_view() {r['whole']['refresh']['count'] / ev['full_s']:.2f}/s;"
        f" {JOB} run_finished never seen displayed: {r['undisplayed']['full']};"
        f" event-loop stalls > 100 ms: {r['lag_spikes']['full']} (baseline run: {r['lag_spikes']['empty']})",
        "  per minute (show_view p50/p95/max ms | event->displayed p50/p95 ms | history rows in the table):",
    ]
    for m in r["per_minute"]:
        a, b = m["refresh"], m["latency"]
        lines.append(f"    min {m['minute']:>2}: {_f(a['p50']):>6} {_f(a['p95']):>6} {_f(a['max']):>7} |"
                     f" {_f(b['p50']):>6} {_f(b['p95']):>6} | {m['history_rows']}")
    mem = r["memory"]
    lines += ["", "2. Memory (RSS of the main run's process)",
              f"  at start (imports, db built, before the app): {mem['start_mb']:.1f} MB"]
    if "one_min" in mem:
        one, end = mem["one_min"], mem["end"]
        lines += [
            f"  after 1 min  ({one['t']:.0f} s): {one['rss_mb']:.1f} MB   history rows {one['history_rows']},"
            f" gc objects {one['gc_objects']:,}",
            f"  after {c['minutes']:g} min ({end['t']:.0f} s): {end['rss_mb']:.1f} MB   history rows"
            f" {end['history_rows']}, gc objects {end['gc_objects']:,}",
            f"  growth: {mem['growth_mb']:+.1f} MB ({mem['growth_pct']:+.1f} %);"
            f" {mem['rows_added']} history rows and {mem['gc_objects_added']:+,} gc-tracked objects added",
        ]
    else:
        lines.append(f"  run shorter than 1 min; end: {mem['end']['rss_mb']:.1f} MB")
    lines.append(f"  (the benchmark's own samples, included above: {mem['bench_bytes'] / 2**20:.2f} MB at the end)")
    lines.append("  samples (s: MB): " + ", ".join(f"{t:.0f}: {m:.1f}" for t, m, _ in mem["samples"]))
    bm = r["baseline_memory"]
    lines.append(f"  baseline (empty history) process: start {bm['start_mb']:.1f} MB,"
                 + (f" 1 min {bm['one_min']['rss_mb']:.1f} MB," if bm["one_min"] else "")
                 + f" end {bm['end']['rss_mb']:.1f} MB")
    s = r.get("scroll")
    if s:
        lines += ["", f"3. History scroll (page = {s['page']} rows; cursor moved to the last row)",
                  f"  engine.history(job, {s['page']}, before_id) query alone: {s['query_ms']:.2f} ms"]
        for i, p in enumerate(s["pages"], 1):
            lines.append(f"  page {i}: {p['rows_before']} -> {p['rows_after']} rows: rows in the table after"
                         f" {p['to_rows_ms']:.1f} ms, table repainted after {_f(p['to_repaint_ms'], '{:.1f}')} ms")
        deep = s.get("deep_pages") or []
        if deep:
            rows_ms = sorted(p["to_rows_ms"] for p in deep)
            paint_ms = sorted(p["to_repaint_ms"] for p in deep if p["to_repaint_ms"] is not None) or [float("nan")]
            lines.append(f"  {len(deep)} more pages to {deep[-1]['rows_after']} rows: to rows p50"
                         f" {percentile(rows_ms, 50):.1f} / max {rows_ms[-1]:.1f} ms, to repaint p50"
                         f" {percentile(paint_ms, 50):.1f} / max {paint_ms[-1]:.1f} ms; last page"
                         f" {deep[-1]['to_rows_ms']:.1f} / {_f(deep[-1]['to_repaint_ms'], '{:.1f}')} ms")
        lines.append(f"  per-run update cost vs rows held in the history table ({AFTER_SCROLL_S:.0f} s each):")
        for key in ("before", "after_5", "after_deep"):
            if key in s:
                lines.append(_row(f"show_view() wall, {s[key]['rows']} rows", s[key]["refresh"]))
                lines.append(_row(f"show_view() CPU, {s[key]['rows']} rows", s[key]["refresh_cpu"]))
                lines.append(_row(f"  of which adding a run, {s[key]['rows']} rows", s[key]["refresh_add"]))
                lines.append(_row(f"idle width pass, {s[key]['rows']} rows", s[key]["widths"]))
                lines.append(_row(f"gc pause gen 2 wall, {s[key]['rows']} rows", s[key]["gc2"]))
                lines.append(_row(f"gc pause gen 2 CPU, {s[key]['rows']} rows", s[key]["gc2_cpu"]))
        if "deep_rss_after" in s:
            (r0, m0), (r1, m1) = s["deep_rss_before"], s["deep_rss_after"]
            lines.append(f"  RSS with {r0} rows in the table {m0:.1f} MB, with {r1} rows {m1:.1f} MB:"
                         f" {(m1 - m0) * 1024 / max(1, r1 - r0):.2f} KB per history row held")
    plans = r["db"]["full"].get("plans")
    if plans:
        lines += ["", f"Query plans on the {r['db']['full']['rows']:,}-run database:",
                  f"  history(job, 50): {plans['history']}", f"  promotion_stats recent: {plans['stats']}"]
    lines.append(f"\n(total wall time {r.get('wall_s', 0):.0f} s)" if "wall_s" in r else "")
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0,
                   help="how long the main run keeps the app alive, promote firing every second (default 10;"
                        " 2 for a quick check)")
    p.add_argument("--rows", type=int, default=100_000, help="promote runs in the main run's history (default 100000)")
    p.add_argument("--baseline-minutes", type=float, default=2.0,
                   help="length of the empty-history baseline run; latency is compared minute by minute over it"
                        " (default 2)")
    p.add_argument("--deep-rows", type=int, default=10_000,
                   help="after the 5-page scroll, keep paging until this many rows are loaded"
                        " (0: don't; default 10000)")
    p.add_argument("--fps", type=float, default=FPS,
                   help=f"how often the frame driver asks for a repaint (default {FPS}; 0: no driver, frames only"
                        " when the dashboard itself changes)")
    p.add_argument("--workdir", type=Path, default=None, help="where the databases go (default: a temporary folder)")
    p.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    # internal: one phase in this process
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    p.add_argument("--scroll", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phase:
        result = run_phase(args.phase, args.seconds, args.rows, args.scroll, args.deep_rows, args.workdir, args.fps)
        args.out.write_text(json.dumps(result))
        return 0
    result = run(args.minutes, rows=args.rows, baseline_minutes=args.baseline_minutes, deep_rows=args.deep_rows,
                 workdir=args.workdir, fps=args.fps)
    print(result["report"])
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in result.items() if k != "report"}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
