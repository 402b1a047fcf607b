"""The Textual dashboard: live job status, run history, promotion stats, and keys to steer the jobs.

The engine runs in its own threads; it reports through ``Engine.subscribe``,
whose callback only posts a message (``post_message`` is thread-safe and never
blocks). Consecutive ``EngineUpdate`` messages collapse into one, so a job
firing every second cannot flood the UI; each update asks the reader thread
(tui/reader.py) to re-read the few rows it shows (``read_view``), and the view
it posts back is diffed into the tables on the screen thread (``show_view``):
no frame waits for the store. A key's own change is read and drawn at once. A
half-second tick moves countdowns and spinners from the data already in hand,
without touching the database.

When a live engine already serves the database, the dashboard attaches to it
instead of starting a second scheduler here (``Engine.attach``): it follows the
store, its keys write to the database as always, and what only a running engine
can do (run now, cancel) is asked of that engine through the database
(engine/requests.py). The status line says which engine serves it, and when
none does any more, ``s`` starts one in this process.

While the dashboard owns the terminal, the engine's log goes to a file
(``LogFile``): the same one line per run and per change that ``--no-ui``
prints (engine/report.py), owner-only and rotated.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Callable, Iterable

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable

from memtui.engine import Engine, EngineError, EngineInfo, Event, JobInfo, RunInfo
from memtui.engine.memory import PromotionStats
from memtui.engine.registry import host_and_pid
from memtui.engine.report import describe_result, event_logger, fmt_duration
from memtui.tui import strips, ticks
from memtui.tui.format import fmt_delta
from memtui.tui.memories import MemoryScreen
from memtui.tui.reader import LatestReader
from memtui.tui.screens import DetailsScreen, EnginesScreen, HelpScreen, RetimeRequest, RetimeScreen
from memtui.tui.widgets import HistoryTable, JobsTable, KeysFooter, StatsPanel, StatusLine


class EngineUpdate(Message):
    """Something changed in the engine or the store; re-read and redraw."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EngineUpdate)


class StatsRead(Message):
    """The promotion figures, read on a worker thread (their counts scan the memory tables)."""

    def __init__(self, stats, took_ms: float):
        super().__init__()
        self.stats, self.took_ms = stats, took_ms


@dataclass(frozen=True)
class ViewAsk:
    """What one screen update reads, decided on the screen thread: the selected job's runs (a page
    when the table is new, else the newest 50), the live engines (attached, or the engines panel
    open), the open details' runs, the jobs asked of another engine, and the promotion figures
    when they are cheap. ``seq`` orders views: one asked before the newest shown is dropped."""
    seq: int
    history_job: str | None
    history_limit: int
    live: bool
    details_job: str | None
    asked: tuple[str, ...]
    stats: bool


@dataclass
class View:
    """What ``MemtuiApp.read_view`` read for one ``ViewAsk``; drawn by ``show_view``."""
    ask: ViewAsk
    now: datetime
    jobs: list[JobInfo]
    paused: bool
    live: list[EngineInfo] | None
    history: list[RunInfo] | None
    details: list[RunInfo] | None
    asked: dict[str, list[RunInfo]]
    stats: PromotionStats | None
    stats_ms: float | None


class ViewRead(Message):
    """The reader thread read a view (or failed to: ``error``)."""

    def __init__(self, view: View | None, error: Exception | None):
        super().__init__()
        self.view, self.error = view, error


class RunNotice(Message):
    """A run started from the keyboard finished; tell the person how it went."""

    def __init__(self, run: RunInfo):
        super().__init__()
        self.run = run


class MemtuiApp(App):
    TITLE = "memtui"
    CSS_PATH = "app.tcss"
    # key, action, footer label, what it does (for help and the command palette)
    KEYS = [
        ("space", "toggle", "On/off", "Toggle job: turn the selected job on or off"),
        ("e", "enable", "Enable", "Enable job: let the selected job run on its schedule"),
        ("d", "disable", "Disable", "Disable job: stop the selected job from running"),
        ("t", "retime", "Retime", "Retime job: interval (45s, 5m, 1h30m) or cron, with a preview"),
        ("r", "run_now", "Run", "Run job now: run the selected job now; its schedule is not shifted"),
        ("x", "cancel", "Cancel", "Cancel run: ask the engine running the selected job to stop it at its next "
                                  "check point"),
        ("p", "pause", "Pause", "Pause or resume all: each job's own on/off is kept"),
        ("enter", "details", "Details", "Job details: config, last error with traceback, recent results"),
        ("m", "memories", "Memories", "Memories: pending and long-term memories, search, and each one's story"),
        ("n", "engines", "Engines", "Engines: every live engine serving this database, and what it runs now"),
        ("s", "start_engine", "Start engine", "Start an engine here: while attached and no engine serves the "
                                              "database, run the jobs in this process"),
        ("question_mark", "help", "Help", "Help: every key"),
        ("q", "quit", "Quit", "Quit: stop the engine, waiting for running jobs"),
    ]
    BINDINGS = [Binding(key, action, label, show=key != "enter") for key, action, label, _ in KEYS]
    LOCK_WAIT_S = 2.0

    def __init__(self, engine: Engine, *, model: str = "offline fallback", tick_s: float = 0.5,
                 stop_timeout_s: float | None = None, db_label: str | None = None, log_path: Path | None = None,
                 log_problem: str | None = None):
        super().__init__()
        strips.install()  # pieces of lines live as long as their frame (tui/strips.py)
        ticks.install()  # a frame drawn late delays the next by one interval at most (tui/ticks.py)
        self.log_path = log_path
        self.log_problem = log_problem  # why there is no log file, when there is none
        self.engine = engine
        self.model = model
        self.db_label = db_label or engine.store.label
        self.tick_s = tick_s
        self.stop_timeout_s = stop_timeout_s
        self.jobs: list[JobInfo] = []
        self.paused = False
        self.stats = None
        self.frame = 0
        self.stopping: str | None = None
        self._unsubscribe = None
        self._signals: list[int] = []  # the signals this app quits on (on_mount)
        self.live: list[EngineInfo] = []  # the engines serving the database, while attached
        self._asked: dict[str, float] = {}  # job -> when this dashboard asked another engine to run it
        self._offered: bool | None = None  # whether the footer offers s (start an engine here) now
        self._stats_asked: tuple[int | None, float] | None = None  # (promote runs, monotonic) of the last read
        self._stats_reading = False
        self._stats_ms = 0.0  # how long the last read of the figures took
        self._updated_at = 0.0  # when the last engine update was drawn (time.monotonic)
        self._update_timer = None  # an engine update waiting for UPDATE_GAP_S to pass
        self._asked_seq = 0  # the newest view asked for (ViewAsk.seq)
        self._shown_seq = 0  # the newest view drawn
        self._reader: LatestReader[ViewAsk] | None = None

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield JobsTable(id="jobs")
        with Horizontal(id="lower"):
            yield HistoryTable(id="history")
            yield StatsPanel(id="stats")
        # On a narrow line: e/d first (space turns a job on and off), then the engines panel and cancel.
        yield KeysFooter(drop_order=("e", "d", "n", "x"))

    @property
    def jobs_table(self) -> JobsTable:
        return self.query_one("#jobs", JobsTable)

    @property
    def history_table(self) -> HistoryTable:
        return self.query_one("#history", HistoryTable)

    def on_mount(self) -> None:
        # Changes made from the keyboard write on this thread: wait briefly for another writer,
        # then say so, instead of freezing the screen for the store's full busy timeout.
        self.engine.limit_lock_wait(self.LOCK_WAIT_S)
        self.query_one("#jobs").border_title = "jobs"
        self.query_one("#stats").border_title = "promotion"
        self._reader = LatestReader(self._read_in_background, self.engine.store.db.close)
        self._unsubscribe = self.engine.subscribe(self._on_engine_event)
        self.refresh_all()
        self.jobs_table.focus()
        self.set_interval(self.tick_s, self._tick)
        # A closed terminal (SIGHUP) or a kill (SIGTERM) quits as q does: the engine stops its runs
        # cleanly and a --demo takes its temporary folder with it, instead of dying where it stands.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            if sig == signal.SIGHUP and signal.getsignal(sig) is signal.SIG_IGN:  # nohup: hangups stay ignored
                continue
            try:
                loop.add_signal_handler(sig, self.exit)
                self._signals.append(sig)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread; no such signal here
                pass
        # Everything alive now (Textual, Rich, the engine) lives as long as the app: moving it out of
        # the collector's reach cuts full collections from ~400 ms to a fraction (bench/ui.py).
        gc.collect()
        gc.freeze()

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)
        if self._unsubscribe:
            self._unsubscribe()
        if self._reader is not None:
            self._reader.stop()

    # -- engine → UI ---------------------------------------------------------------

    def _on_engine_event(self, event: Event) -> None:
        """Called on engine threads: only post messages from here."""
        self.post_message(EngineUpdate())
        if event.kind == "run_finished" and event.run is not None and event.run.reason == "manual":
            self.post_message(RunNotice(event.run))

    # A run's start and end come a few ms apart: each view drawn costs a frame (~25 ms for both
    # tables), so an update within UPDATE_GAP_S of the last waits for the rest of it.
    UPDATE_GAP_S = 0.05

    def on_engine_update(self, _: EngineUpdate) -> None:
        if not self.is_running or self._update_timer is not None:
            return  # leaving; or an update is already due, which reads everything anew
        wait = self._updated_at + self.UPDATE_GAP_S - time.monotonic()
        if wait > 0:
            self._update_timer = self.set_timer(wait, self._engine_update)
        else:
            self._engine_update()

    def _engine_update(self) -> None:
        """Ask the reader thread for a fresh view: the reads (~10 ms, longer when a job in this
        process holds the GIL) never hold a frame back; the view comes back as a ViewRead."""
        self._update_timer = None
        if not self.is_running:
            return  # nothing to draw on once the app is leaving
        if self.held:
            self._show_held()
        else:
            self._asked_seq += 1
            self._reader.ask(self._view_ask(self._asked_seq))
        self._updated_at = time.monotonic()

    def _read_in_background(self, ask: ViewAsk) -> None:
        """The reader thread: read, then post the view (post_message is thread-safe and never blocks)."""
        try:
            view = self.read_view(ask)
        except Exception as exc:  # the store unusable meanwhile: the engine holds the jobs and says why
            self.post_message(ViewRead(None, exc))
        else:
            self.post_message(ViewRead(view, None))

    def on_view_read(self, message: ViewRead) -> None:
        if message.view is not None:
            self.show_view(message.view)
        elif self.is_running:  # say why on the status line, as a read on this thread would have
            self._refresh_status()

    def _tell_asked_runs(self, recent: dict[str, list[RunInfo]]) -> None:
        """While attached: say how a run this dashboard asked another engine for went, once it ended."""
        for job, runs in recent.items():
            since = self._asked.get(job)
            if since is None:
                continue
            done = next((r for r in runs if r.reason == "manual"
                         and r.started.timestamp() >= since - 1 and r.status != "running"), None)
            if done is not None:
                del self._asked[job]
                self.on_run_notice(RunNotice(done))

    def toast(self, message: str, **kwargs) -> None:
        """A toast whose text is shown as it is: job errors and results may hold [brackets] that
        Textual would otherwise read as markup and swallow ("[jobs.decay] ...")."""
        self.notify(message, markup=False, **kwargs)

    def on_run_notice(self, message: RunNotice) -> None:
        run = message.run
        if run.status == "success":
            words = describe_result(run.result, 200)
            self.toast(f"{run.job}: done in {fmt_duration(run.duration_ms)}" + (f" — {words}" if words else ""),
                       title="run finished")
        elif run.status == "skipped":
            self.toast(f"{run.job}: skipped — {run.error}", title="run skipped", severity="warning")
        else:
            self.toast(f"{run.job}: {run.status} — {run.error}", title="run failed", severity="error")

    @property
    def held(self) -> bool:
        """The engine holds every job: the database is unusable (engine.problem says why)."""
        return self.engine.problem is not None

    def refresh_all(self) -> None:
        """Read what the screen shows and draw it, now, on this thread: after a key, whose effect
        the person expects on the next frame. Engine updates read on the reader thread instead."""
        if self.held:  # the database can't be read now: show why, keep the rest, stop the countdowns
            self._show_held()
            return
        self._asked_seq += 1
        self.show_view(self.read_view(self._view_ask(self._asked_seq)))

    def _show_held(self) -> None:
        self._refresh_status()
        self.jobs_table.show(self.jobs, self.engine.clock(), self.frame, held=True)
        if self.stats is not None:
            self.query_one("#stats", StatsPanel).show(self.stats, self.engine.clock(), self.paused, held=True)

    def _view_ask(self, seq: int) -> ViewAsk:
        """What the next read covers, from the screen's state now (read on the screen thread)."""
        table = self.history_table
        job = self.selected_job_name
        screen = self.screen
        runs = next((j.runs for j in self.jobs if j.name == "promote"), None)
        stats = False
        if self.stats is None or self._stats_ms < self.STATS_INLINE_MS:
            stats = True  # cheap: read with the rest
            self._stats_asked = (runs, time.monotonic())
        elif not self._stats_reading and (runs != self._stats_asked[0]
                                          or time.monotonic() - self._stats_asked[1] >= self.STATS_EVERY_S):
            self._stats_asked = (runs, time.monotonic())  # slow: on a worker of its own, so no view waits for it
            self._stats_reading = True
            self.run_worker(self._read_stats, thread=True, group="stats")
        return ViewAsk(
            seq=seq, history_job=job,
            history_limit=table.PAGE if job != table.job or table.row_count == 0 else 50,
            live=self.engine.attached or isinstance(screen, EnginesScreen),
            details_job=screen.job.name if isinstance(screen, DetailsScreen) else None,
            asked=tuple(self._asked), stats=stats)

    def read_view(self, ask: ViewAsk) -> View:
        """Every read one screen update needs, and nothing else: safe on any thread (the engine's
        reads take their own connection per thread), so the reader thread runs it too."""
        engine = self.engine
        jobs = engine.jobs()
        names = {j.name for j in jobs}
        stats, stats_ms = None, None
        if ask.stats:
            t0 = time.perf_counter()
            stats = engine.promotion_stats()
            stats_ms = (time.perf_counter() - t0) * 1000
        return View(
            ask=ask, now=engine.clock(), jobs=jobs, paused=engine.paused,
            live=engine.live_engines() if ask.live else None,
            history=engine.history(ask.history_job, ask.history_limit) if ask.history_job in names else None,
            details=engine.history(ask.details_job, DetailsScreen.RUNS) if ask.details_job in names else None,
            asked={job: engine.history(job, 5) for job in ask.asked if job in names},
            stats=stats, stats_ms=stats_ms)

    def show_view(self, view: View) -> None:
        """Draw a view read here or on the reader thread. One asked before the newest view shown
        is dropped: a key's own refresh already drew something newer."""
        if view.ask.seq <= self._shown_seq or not self.is_running:
            return
        self._shown_seq = view.ask.seq
        if self.held:
            self._show_held()
            return
        now = view.now
        self.jobs, self.paused = view.jobs, view.paused
        if view.live is not None:
            self.live = view.live
        self.jobs_table.show(self.jobs, now, self.frame)
        table = self.history_table
        job = self.selected_job_name
        if job != table.job:
            table.start(job)
        if job is not None and job == view.ask.history_job and view.history is not None:
            table.merge(view.history, now)
        elif job is not None:  # the selection moved while the view was read: read its runs now
            self._refresh_history(now)
        if view.stats is not None:
            self.stats, self._stats_ms = view.stats, view.stats_ms
        if self.stats is not None:
            self.query_one("#stats", StatsPanel).show(self.stats, now, self.paused)
        self._refresh_status()
        screen = self.screen
        if isinstance(screen, DetailsScreen) and view.details is not None and screen.job.name == view.ask.details_job:
            job_info = next((j for j in self.jobs if j.name == screen.job.name), None)
            if job_info is not None:
                screen.show(job_info, view.details, now)
        elif isinstance(screen, EnginesScreen) and view.live is not None:
            screen.show(self.live, now)
        self._tell_asked_runs(view.asked)

    # The promotion figures count the memory tables: a few milliseconds on most stores, read with
    # every view; once a read takes longer than STATS_INLINE_MS (a second at 10 million rows), on a
    # worker of their own instead, when promote has run since or every STATS_EVERY_S.
    STATS_EVERY_S = 5.0
    STATS_INLINE_MS = 20.0

    def _read_stats(self) -> None:
        try:
            t0 = time.perf_counter()
            stats = self.engine.promotion_stats()
            self.post_message(StatsRead(stats, (time.perf_counter() - t0) * 1000))
        except Exception:  # the store unusable meanwhile: the status line says why; keep the last figures
            self.post_message(StatsRead(None, self._stats_ms))
        finally:
            self.engine.store.db.close()  # this worker thread's connection

    def on_stats_read(self, message: StatsRead) -> None:
        self._stats_reading = False
        self._stats_ms = message.took_ms  # cheap again (rows deleted): back to reading with the view
        if message.stats is not None and self.is_running:
            self.stats = message.stats
            self.query_one("#stats", StatsPanel).show(self.stats, self.engine.clock(), self.paused, self.held)

    def _refresh_status(self) -> None:
        offer = self.check_action("start_engine", ())
        if offer != self._offered:  # the footer shows s only while it would act
            self._offered = offer
            self.refresh_bindings()
        self.query_one("#status", StatusLine).show(
            running=self.engine.started, paused=self.paused, stopping=self.stopping,
            db_path=self.db_label, model=self.model, problem=self.engine.problem,
            attached=self.attached_words(self.engine.clock()) if self.engine.attached else None,
        )

    @property
    def silent_after_s(self) -> float:
        """An engine beats every third of a lease TTL, from a sync loop that runs at least that
        often; one not heard from for longer than that and two sync periods may be gone: the status
        line says so long before the registry gives it up (one whole lease TTL)."""
        engine = self.engine.config.engine
        beat = engine.lease_ttl_s / 3
        return beat + 2 * min(engine.poll_interval_s, beat)

    def serving(self, now: datetime) -> list[EngineInfo]:
        """The live engines heard from within one heartbeat period."""
        return [e for e in self.live if (now - e.heartbeat).total_seconds() <= self.silent_after_s]

    def attached_words(self, now: datetime) -> tuple[str, str]:
        """What the status line says while attached: who serves the database, or that nobody does."""
        if not self.live:
            return "■ attached · no engine serves this database — s starts one here", "bold red"
        heard = self.serving(now)
        if not heard:
            newest = max(self.live, key=lambda e: e.heartbeat)
            quiet = fmt_delta((now - newest.heartbeat).total_seconds())
            return (f"■ attached · engine on {newest.host} (pid {newest.pid}) silent for {quiet}"
                    " — s starts one here", "bold yellow")
        if len(heard) == 1:
            return f"● attached · engine on {heard[0].host} (pid {heard[0].pid})", "bold green"
        hosts = sorted({e.host for e in heard})
        return f"● attached · {len(heard)} engines on {', '.join(hosts)}", "bold green"

    def _refresh_history(self, now: datetime) -> None:
        table = self.history_table
        job = self.selected_job_name
        if job != table.job:
            table.start(job)
        if job is not None:
            table.merge(self.engine.history(job, table.PAGE if table.row_count == 0 else 50), now)

    def _tick(self) -> None:
        if not self.is_running or self.screen_stack == []:
            return
        self.frame += 1
        now = self.engine.clock()
        self.jobs_table.show(self.jobs, now, self.frame, self.held)
        if self.engine.attached and self.frame % 2 == 0:  # "silent for …" moves on between updates
            self._refresh_status()
        if self.stats is not None and self.frame % 2 == 0:
            self.query_one("#stats", StatsPanel).show(self.stats, now, self.paused, self.held)

    # -- selection -----------------------------------------------------------------

    @property
    def selected_job_name(self) -> str | None:
        return self.jobs_table.selected_key

    @property
    def selected_job(self) -> JobInfo | None:
        name = self.selected_job_name
        return next((j for j in self.jobs if j.name == name), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "jobs":
            self._refresh_history(self.engine.clock())
        elif event.data_table.id == "history":
            table = self.history_table
            if table.job and table.wants_more():
                older = self.engine.history(table.job, table.PAGE, before_id=table.oldest_id)
                table.merge(older, self.engine.clock(), older=True)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "jobs":
            self.action_details()

    # -- actions ---------------------------------------------------------------------

    def _attempt(self, change) -> bool:
        """Run one control call; any failure becomes a notification, never a crash."""
        try:
            change()
        except EngineError as exc:
            self.toast(str(exc), severity="error")
            return False
        except Exception as exc:  # the database busy past our short wait, or worse
            self.toast(f"could not change it now: {' '.join(str(exc).split())[:200]} — try again",
                       severity="error")
            return False
        return True

    def _change(self, what: str | Callable[[JobInfo], str], change) -> None:
        """Apply ``change(name)`` to the selected job; ``what`` says the outcome, from the job as it is after."""
        job = self.selected_job
        if job is None:
            return
        after: list = []
        if self._attempt(lambda: after.append(change(job.name))):
            self.refresh_all()
            result = after[0] if after and isinstance(after[0], JobInfo) else job
            self.toast(f"{job.name}: {what(result) if callable(what) else what}")

    @staticmethod
    def _enabled_words(job: JobInfo) -> str:
        if not job.enabled:
            return "disabled"
        return "enabled; all jobs are paused, so it runs once you resume (p)" if job.paused else "enabled"

    def action_toggle(self) -> None:
        job = self.selected_job
        if job is not None:
            self._change(self._enabled_words, lambda n: self.engine.toggle(n, source="ui"))

    def action_enable(self) -> None:
        self._change(self._enabled_words, lambda n: self.engine.enable(n, source="ui"))

    def action_disable(self) -> None:
        self._change("disabled", lambda n: self.engine.disable(n, source="ui"))

    def action_run_now(self) -> None:
        job = self.selected_job
        if job is None:
            return
        if self.engine.attached:
            self._ask_run(job)
            return
        try:
            self.engine.run_now(job.name, source="ui")
        except EngineError as exc:  # held (the database is unusable: the message says why) or unknown job
            self.toast(f"{job.name}: {exc}", title="nothing ran", severity="error")
            return
        except Exception as exc:  # the database busy past our short wait, or worse
            self.toast(f"{job.name}: could not start it — {' '.join(str(exc).split())[:200]}",
                       title="nothing ran", severity="error")
            return
        self.toast(f"{job.name}: starting now")

    def _ask_run(self, job: JobInfo) -> None:
        """Attached: the engine serving the database runs it (the first live one to see the request)."""
        now = self.engine.clock()
        if not self.serving(now):
            self.toast(f"{job.name}: no engine serves this database to run it — press s to start one here",
                       title="nothing ran", severity="error")
            return
        if self._attempt(lambda: self.engine.request_run(job.name, source="ui")):
            self._asked[job.name] = now.timestamp()
            heard = self.serving(now)
            where = f"the engine on {heard[0].host}" if len(heard) == 1 else "one of the engines"
            self.toast(f"{job.name}: asked {where} to run it now")

    def action_cancel(self) -> None:
        job = self.selected_job
        if job is None:
            return
        asked: list[int] = []
        if self._attempt(lambda: asked.append(self.engine.cancel(job.name, source="ui"))):
            self.toast(f"{job.name}: asked to stop run #{asked[0]}; it stops at its next check point")
            self.refresh_all()

    def action_memories(self) -> None:
        self.push_screen(MemoryScreen(self.engine))

    def action_engines(self) -> None:
        self.live = self.engine.live_engines()
        here = self.engine.owner if self.engine.started else None
        self.push_screen(EnginesScreen(self.live, self.engine.clock(), here))

    def action_start_engine(self) -> None:
        if not self.engine.attached:
            return
        now = self.engine.clock()
        self.live = self.engine.live_engines()
        heard = self.serving(now)
        if heard:
            self.toast(f"the engine on {heard[0].host} (pid {heard[0].pid}) serves this database; "
                       "memtui --engine runs one here beside it", severity="warning")
            return
        try:
            self.engine.start()
        except Exception as exc:  # the store unusable: the status line says why
            self.toast(f"could not start an engine here: {' '.join(str(exc).split())[:200]}", severity="error")
            return
        host, pid = host_and_pid(self.engine.owner)
        self.toast(f"engine started here ({host}, pid {pid}): the jobs run in this process now")
        self.refresh_all()

    JOB_ACTIONS = frozenset(action for _, action, _, _ in KEYS if action not in ("help", "quit"))

    def check_action(self, action: str, parameters) -> bool | None:
        """The jobs view's keys act on the selected job: elsewhere (the memory view, a dialog) they are
        neither shown nor run. ``s`` is offered only while attached and no engine is heard from."""
        if action in self.JOB_ACTIONS and len(self.screen_stack) > 1:
            return False
        if action == "start_engine":
            return self.engine.attached and not self.serving(self.engine.clock())
        return True

    def action_pause(self) -> None:
        if self.paused:
            if self._attempt(lambda: self.engine.resume_all(source="ui")):
                self.toast("resumed: enabled jobs are scheduled again")
        elif self._attempt(lambda: self.engine.pause_all(source="ui")):
            self.toast("paused: no job will fire until you resume")
        self.refresh_all()

    def action_retime(self) -> None:
        job = self.selected_job
        if job is None:
            return

        def apply(request: RetimeRequest | None) -> None:
            if request is None:
                return
            self._change(lambda j: f"now {j.schedule_text}", lambda n: self.engine.retime(
                n, request.spec, request.timezone or "", source="ui"))

        self.push_screen(RetimeScreen(job, self.engine.clock), apply)

    def action_details(self) -> None:
        job = self.selected_job
        if job is not None:
            self.push_screen(DetailsScreen(job, self.engine.history(job.name, DetailsScreen.RUNS),
                                           self.engine.clock()))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_help(), self.log_path, self.engine.config.engine.poll_interval_s,
                                    self.log_problem))

    def describe(self, action: str) -> str:
        """What the key for ``action`` does, as help and the command palette say it."""
        text = next(text for _, act, _, text in self.KEYS if act == action)
        if action == "quit" and self.engine.attached:
            text = "Quit: close the dashboard; the engines serving the database go on"
        elif action == "quit":
            timeout = self.engine.config.engine.stop_timeout_s if self.stop_timeout_s is None else self.stop_timeout_s
            text += f" (up to {timeout:g} s; runs still going then are marked interrupted)"
        return text

    def key_help(self) -> list[tuple[str, str]]:
        names = {"question_mark": "?"}
        return [(names.get(key, key), self.describe(action)) for key, action, _, _ in self.KEYS] + [
            ("↑ ↓", "select a job; tab moves to the run history"),
            ("home end", "the first or last row"),
        ]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's own Quit says "as soon as possible", but quitting here waits for running jobs:
        # it is replaced by ours, which says so.
        yield from (c for c in super().get_system_commands(screen) if c.title != "Quit")
        for _, action, _, _ in self.KEYS:
            title, help_text = self.describe(action).split(": ", 1)
            yield SystemCommand(title, help_text, getattr(self, f"action_{action}"))

    async def action_quit(self) -> None:
        """Stop the engine (waiting for running jobs, shown on screen), then exit."""
        if self.stopping is not None:
            return
        running = self.engine.running_jobs()
        self.stopping = f"stopping: waiting for {', '.join(running)}" if running else "stopping"
        self._refresh_status()
        self.run_worker(self._stop_engine, thread=True, exclusive=True, group="quit")

    def _stop_engine(self) -> None:
        self.engine.stop(self.stop_timeout_s)  # attached: only its sync loop, at once
        self.call_from_thread(self.exit)


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A RotatingFileHandler whose files are owner-only (0600): the log and each file a rollover
    starts. The standard handler opens them with the process umask (often 0644), and run lines
    carry job errors and results."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if hasattr(os, "fchmod"):
            try:
                os.fchmod(fd, 0o600)  # a log left readable by an older version is tightened too
            except OSError:
                pass
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


class LogFile:
    """The dashboard's log: while it owns the terminal, the engine's log goes to a file.

    ``follow(engine)`` adds one line per run and per change through report.event_logger, the
    lines ``--no-ui`` prints. The file is 0600 and rotates at MAX_BYTES, keeping BACKUPS older
    files, so it cannot grow without bound. ``close()`` puts the loggers back as they were.

    A log that cannot be written (a read-only home, a file where the folder should be) does not
    keep the dashboard from opening: ``path`` is then None and ``problem`` says why, and the
    log goes nowhere rather than onto the screen the dashboard draws."""

    MAX_BYTES = 1_000_000
    BACKUPS = 3
    LOGGERS = (("memtui", logging.INFO), ("apscheduler", logging.WARNING))

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS):
        self.path: Path | None = path
        self.problem: str | None = None
        try:
            _make_private_dirs(path.parent)
            self.handler: logging.Handler = PrivateRotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        except OSError as exc:
            self.path, self.problem = None, f"cannot write {path}: {exc.strerror or exc}"
            self.handler = logging.NullHandler()
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._saved = []
        for name, level in self.LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level, logger.propagate))
            logger.addHandler(self.handler)
            logger.setLevel(level)
            logger.propagate = False  # nothing may reach the terminal the dashboard draws on
        self._unsubscribe: list[Callable[[], None]] = []

    @classmethod
    def open(cls, path: Path | None = None) -> "LogFile":
        """The log file, by default memtui.log in the user log dir."""
        if path is None:
            import platformdirs

            path = Path(platformdirs.user_log_dir("memtui")) / "memtui.log"
        return cls(path)

    def follow(self, engine: Engine) -> None:
        self._unsubscribe.append(engine.subscribe(event_logger(logging.getLogger("memtui"))))

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        for logger, level, propagate in self._saved:
            logger.removeHandler(self.handler)
            logger.setLevel(level)
            logger.propagate = propagate
        self._saved.clear()
        self.handler.close()


def _make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents 0700 (mkdir(parents=True) gives parents the umask's mode)."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for each in reversed(missing):
        try:
            each.mkdir(mode=0o700)
        except FileExistsError:
            pass  # made by another process meanwhile


def model_label(model: str | None) -> str:
    return model or "offline fallback"


def start_or_attach(engine: Engine, own_engine: bool = False) -> None:
    """Attach to the live engines serving the store, if any (another process runs the jobs; this one
    follows and asks); else, or with ``own_engine``, start the engine in this process."""
    if not own_engine and engine.live_engines():
        engine.attach()
    else:
        engine.start()


def run_dashboard(args) -> int:
    """Open the dashboard: attached to the live engines serving the database when there are any
    (``--engine`` starts one here anyway), else with an engine running in this process.

    ``--demo`` uses a fresh demo database in a temporary folder and makes the
    memory jobs due at start, so there is activity to see at once: ordinary
    scheduled runs, not run-now (nobody pressed a key, and no audit row says so)."""
    import tempfile

    from memtui.engine import load_config, open_engine
    from memtui.engine.config import resolve_db_path
    from memtui.engine.demo import DemoAgent, fill

    config = load_config(getattr(args, "config", None))
    with tempfile.TemporaryDirectory(prefix="memtui-demo-") as scratch:
        # A demo logs beside its database and is gone with it: its runs never mix into the log of the
        # user's own store (which names no database on its lines).
        log = LogFile.open(Path(scratch) / "memtui.log" if args.demo else None)
        try:
            db_path = resolve_db_path(None if args.demo else getattr(args, "db", None))
            if args.demo:
                db_path = f"{scratch}/demo.db"
            engine = open_engine(db_path, config)
            log.follow(engine)  # before start: the first runs are logged too
            if args.demo:
                fill(engine.store, engine.clock())
            start_or_attach(engine, own_engine=args.demo or getattr(args, "engine", False))
            agent = None
            if args.demo:
                engine.make_due(["promote", "decay", "consolidate", "rollup-day", "profile"])
                agent = DemoAgent(engine.remember, engine.record_access).start()
            try:
                MemtuiApp(engine, model=model_label(config.llm.model), log_path=log.path,
                          log_problem=log.problem).run()
            finally:
                if agent is not None:
                    agent.stop()
                engine.stop()
                engine.close()
        finally:
            log.close()
    return 0
