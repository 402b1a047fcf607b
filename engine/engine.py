"""The Engine: runs memtui's jobs over one store, alone or beside other engines on one database.

The database is the single source of truth: definitions, cursors, leases, runs,
the audit log and which engines are alive all live in it, so any number of
engines (one per host, on one PostgreSQL server) and commands (the CLI, a
dashboard) cooperate through it and nothing else. APScheduler alone keeps none
of this: it has no run-now, no history, no clock injection, and its 1 s misfire
grace and silently accepted zero intervals are the wrong defaults here.

This file is the Engine's frame: its lifecycle (start registers it and recovers
runs left behind; stop waits for runs, then says it stopped), events, the sync
loop, the health of the store, and what it reports (jobs, runs, audit, engines).
The rest is one file per seam, each a mixin of this class:

- control.py    — seeding and the control API: enable, disable, retime, pause, resume, run now;
- scheduling.py — cursors, APScheduler alarms, claiming a due time by compare-and-set;
- leases.py     — a job's lease, and recovering runs whose engine is gone;
- runner.py     — a run's thread, outcome, counters, backoff and timeout;
- requests.py   — run-now and cancel requests any process leaves for the engine that can act on them;
- browse.py     — the dashboard's memory view: pages of memories by key, search, pin/forget/keep;
- registry.py   — the ``engine_instance`` rows and heartbeats (a helper object, not a mixin);
- definitions.py — definitions as read from the table, and concrete time zones.

An engine that is not started can still follow the store: ``attach()`` runs
the sync loop and the change listener without a scheduler, so a dashboard that
attached to a headless engine sees every change at once and asks that engine
(requests.py) for what only a running engine can do. ``start()`` later turns it
into a scheduling engine in place.

Every time the engine decides or records is its injected clock's (``clock``).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timezone
from pathlib import Path
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from peewee import JOIN

from memtui.engine import memory
from memtui.engine.browse import MemoryViewMixin
from memtui.engine.clock import Clock, from_ts, system_clock
from memtui.engine.config import Config, ConfigError
from memtui.engine.control import ControlMixin
from memtui.engine.definitions import Definition, read_definition, read_definitions
from memtui.engine.jobs import DEFAULT_JOBS, KINDS, JobContext, config_for, config_of_kind
from memtui.engine.leases import LeaseMixin
from memtui.engine.registry import EngineRegistry
from memtui.engine.requests import RequestsMixin
from memtui.engine.runner import ActiveRun, RunnerMixin, db_problem
from memtui.engine.schedule import ScheduleError
from memtui.engine.scheduling import SchedulingMixin
from memtui.engine.story import MemoryStory, story
from memtui.engine.types import AuditEntry, EngineError, EngineInfo, Event, JobInfo, RunInfo
from memtui.models import DB_ERRORS, Store, StoreError

log = logging.getLogger("memtui.engine")
UTC = timezone.utc
LISTEN_RETRY_S = 1.0  # after the change listener's connection was lost
ATTACHED_POLL_S = 0.25  # how often an attached engine (a dashboard with no scheduler) reads the store
CHECKPOINT_EVERY_S = 5.0  # how often a running engine copies the SQLite WAL back (models/sqlite.py)


class Engine(ControlMixin, SchedulingMixin, LeaseMixin, RunnerMixin, RequestsMixin, MemoryViewMixin):
    """Runs memtui's jobs over one store. Every public method is safe from any thread."""

    def __init__(self, store: Store | str | os.PathLike, config: Config | None = None,
                 clock: Clock = system_clock, owner: str | None = None):
        self.store = store if isinstance(store, Store) else Store.open(store)
        self.config = config or Config()
        self.clock = clock
        # Who runs are owned by, and this engine's id among the engines: host:pid:token.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._registry = EngineRegistry(self.store, clock, self.owner, self.config.engine.lease_ttl_s)
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._subscribers: list[Callable[[Event], None]] = []
        self._scheduler: BackgroundScheduler | None = None
        self._alarms: dict[str, tuple[str, float]] = {}  # job -> (aps job id, due ts)
        self._running: dict[int, ActiveRun] = {}  # runs this engine holds, by run id
        self.problem: str | None = None  # why jobs are held (database gone, read-only, full)
        self._seen: dict[str, tuple] = {}
        self._stop = threading.Event()
        self._checkpointed_at = float("-inf")  # time.monotonic() of the last WAL checkpoint (_checkpoint_log)
        self._wake = threading.Event()  # the sync loop runs now: stopping, or another process announced a change
        self._threads: list[threading.Thread] = []  # the sync loop and the change listener
        self._apply_lock = threading.Lock()
        self._attached = False  # following the store without a scheduler (attach())
        self._seen_engines: tuple | None = None  # the live engines last told, while attached
        self._logged: set[tuple] = set()  # sync failures already logged
        self._seed()
        self._seen_paused = self.paused
        self._audit_high_water()  # changes made before this engine opened the store are history, not news

    # -- lifecycle -------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._scheduler is not None and not self._stop.is_set()

    @property
    def attached(self) -> bool:
        """Following the store without scheduling anything (``attach()``, not ``start()``ed)."""
        return self._attached and self._scheduler is None and not self._stop.is_set()

    def attach(self) -> None:
        """Follow the store without running jobs: the sync loop and the change listener publish
        every change any process makes (the dashboard redraws on them), and ``engines`` events
        when the set of live engines changes. Nothing is scheduled, registered or run here."""
        if self._scheduler is not None or self._threads:
            return
        self._attached = True
        self.sync()
        self._start_followers()

    def _start_followers(self) -> None:
        self._start_daemon(self._sync_loop, "memtui-sync")
        listener = self._open_listener()
        if listener is not None:
            self._start_daemon(self._listen, "memtui-listen", listener)

    def start(self) -> None:
        """Register this engine, recover interrupted runs, start the scheduler and the sync loop
        (an attached engine becomes a scheduling one in place)."""
        if self._scheduler is not None:
            return
        try:
            self._registry.register()
        except DB_ERRORS as exc:  # the sync loop registers it once the store can be written
            self._set_problem(db_problem(self.store.label, exc))
        self.recover_interrupted()
        # The pool only handles alarms; every run gets a thread of its own (see _start_thread),
        # so a job that hangs can never starve the others of workers.
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._scheduler.start()
        self._attached = False
        self.sync()
        if not self._threads:  # an attached engine's loop carries on, now scheduling too
            self._start_followers()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop scheduling, wait up to ``timeout`` s for running jobs, mark the rest interrupted.

        Returns True when every run finished on its own."""
        timeout = self.config.engine.stop_timeout_s if timeout is None else timeout
        self._stop.set()
        self._wake.set()
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception:  # already shut down
                pass
        for thread in self._threads:
            thread.join(timeout=5)
        deadline = time.monotonic() + timeout
        beat_every = self.config.engine.lease_ttl_s / 3
        next_beat = time.monotonic() + beat_every
        while True:
            with self._idle:
                if not self._running or time.monotonic() >= deadline:
                    leftover = {run_id: active.job for run_id, active in self._running.items()}
                    break
                self._idle.wait(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            if time.monotonic() >= next_beat:
                # The sync loop has stopped: keep our leases and heartbeat alive while the runs drain,
                # or another engine would take them for a dead engine's and mark them interrupted.
                next_beat += beat_every
                try:
                    self._renew_leases()
                    if self._registry.registered:
                        self._registry.beat()
                except DB_ERRORS as exc:
                    log.warning("could not renew leases while stopping: %s", db_problem(self.store.label, exc))
        for run_id, name in leftover.items():
            with self._lock:
                active = self._running.get(run_id)
            if active is not None:
                active.cancel.set()
            self._interrupt(run_id, name, f"engine stopped after waiting {timeout:g} s for the run to finish")
        try:
            self._registry.stopped()
        except DB_ERRORS as exc:  # then it is known gone by its heartbeat, one lease TTL later
            log.warning("could not record this engine's stop: %s", db_problem(self.store.label, exc))
        return not leftover

    def running_jobs(self) -> list[str]:
        with self._lock:
            return sorted({active.job for active in self._running.values()})

    def close(self) -> None:
        self.release_thread()  # this thread's connection, and the search helper's (engine/browse.py)

    def _start_daemon(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # -- events ----------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` from engine threads for every event; returns an unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _publish(self, kind: str, job: str | None = None, run: RunInfo | None = None,
                 audit: AuditEntry | None = None) -> None:
        event = Event(kind, job, run, self.clock(), audit)
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed")

    # -- definitions -----------------------------------------------------------

    def _definitions(self) -> dict[str, Definition]:
        return read_definitions(self.store)

    def _definition(self, name: str) -> Definition:
        return read_definition(self.store, name)

    @property
    def paused(self) -> bool:
        return self.store.setting("paused", "0") == "1"

    # -- engines -----------------------------------------------------------------

    def engines(self, include_gone: bool = False) -> list[EngineInfo]:
        """The engines serving this database, on any host: the live ones, or all still recorded."""
        return self._registry.engines(include_gone)

    def live_engines(self) -> list[EngineInfo]:
        return self.engines()

    # -- reading ---------------------------------------------------------------

    def job(self, name: str) -> JobInfo:
        for info in self.jobs():
            if info.name == name:
                return info
        raise EngineError(f"unknown job {name!r}")

    def jobs(self) -> list[JobInfo]:
        JobDefinition, JobState = self.store.m.JobDefinition, self.store.m.JobState
        now = self.clock().timestamp()
        paused = self.paused
        rows = list(JobDefinition.select(
            JobDefinition.name, JobDefinition.kind, JobDefinition.enabled, JobDefinition.schedule,
            JobDefinition.timezone, JobDefinition.jitter_s, JobDefinition.config, JobDefinition.updated_at,
            JobState.next_run_at, JobState.last_run_at, JobState.last_status, JobState.last_duration_ms,
            JobState.runs, JobState.errors, JobState.consecutive_failures, JobState.backoff_until, JobState.totals,
            JobState.lease_owner, JobState.lease_expires_at,
        ).join(JobState, JOIN.LEFT_OUTER, on=(JobState.name == JobDefinition.name)).objects())
        order = {name: i for i, name in enumerate(DEFAULT_JOBS)}
        rows.sort(key=lambda r: (order.get(r.name, len(order)), r.name))
        out = []
        for r in rows:
            d = Definition.from_row(r)
            try:
                text, detail = d.words(jitter=False), d.words()
            except ScheduleError:
                text = detail = f"invalid schedule {d.schedule!r}"
            kind = KINDS.get(d.kind)
            out.append(JobInfo(
                name=d.name, kind=d.kind, enabled=d.enabled, schedule=d.schedule, schedule_text=text,
                schedule_detail=detail, timezone=d.zone, jitter_s=d.jitter_s,
                next_run=from_ts(r.next_run_at) if d.enabled and not paused else None,
                last_run=from_ts(r.last_run_at), last_status=r.last_status, last_duration_ms=r.last_duration_ms,
                runs=r.runs or 0, errors=r.errors or 0, consecutive_failures=r.consecutive_failures or 0,
                backoff_until=from_ts(r.backoff_until) if r.backoff_until and r.backoff_until > now else None,
                running=bool(r.lease_owner) and (r.lease_expires_at or 0) >= now, paused=paused,
                totals=json.loads(r.totals or "{}"), config=self._effective_config(d),
                summary=kind.summary if kind else f"unknown kind {d.kind!r}",
            ))
        return out

    def _effective_config(self, d: Definition) -> dict:
        try:
            cfg = self._job_config(d)
        except (ConfigError, EngineError):
            return {}
        return dict(vars(cfg))

    def _job_config(self, d: Definition):
        if d.kind not in KINDS:
            raise EngineError(f"job {d.name!r} has kind {d.kind!r}, which this memtui does not know")
        params = {**self.config.job_params(d.name), **json.loads(d.config or "{}")}
        return config_for(d.name, params) if d.name in DEFAULT_JOBS else KINDS[d.kind].config(**params)

    def _context(self, d: Definition, run_id: int | None, dry_run: bool = False,
                 cancel: threading.Event | None = None) -> JobContext:
        return JobContext(store=self.store, clock=self.clock, config=self._job_config(d), job=d.name,
                          run_id=run_id, dry_run=dry_run, llm=self.config.llm, tz=d.parsed().tz,
                          log=logging.getLogger(f"memtui.jobs.{d.name}"), cancel=cancel or threading.Event())

    def history(self, name: str | None = None, limit: int = 50, before_id: int | None = None) -> list[RunInfo]:
        """Runs newest first, optionally of one job and older than ``before_id`` (for paging)."""
        Run = self.store.m.Run
        query = Run.select().order_by(Run.id.desc()).limit(limit)
        if name is not None:
            self._definition(name)
            query = query.where(Run.job == name)
        if before_id is not None:
            query = query.where(Run.id < before_id)
        return [self._run_info(row) for row in query]

    def run(self, run_id: int) -> RunInfo | None:
        Run = self.store.m.Run
        row = Run.get_or_none(Run.id == run_id)
        return self._run_info(row) if row else None

    @staticmethod
    def _run_info(r) -> RunInfo:
        return RunInfo(
            id=r.id, job=r.job, reason=r.reason, scheduled_for=from_ts(r.scheduled_for), started=from_ts(r.started_at),
            finished=from_ts(r.finished_at), duration_ms=r.duration_ms, status=r.status,
            result=json.loads(r.result) if r.result else None, error=r.error, traceback=r.traceback, owner=r.owner,
        )

    def audit_log(self, limit: int = 50) -> list[AuditEntry]:
        AuditLog = self.store.m.AuditLog
        rows = AuditLog.select().order_by(AuditLog.id.desc()).limit(limit)
        return [AuditEntry(from_ts(r.at), r.action, r.job, r.old_value, r.new_value, r.source) for r in rows]

    # -- the agent's side --------------------------------------------------------

    def remember(self, content: str, **fields) -> memory.Remembered:
        """Add a pending memory (see engine.memory.remember for the fields); returns its id, which says
        whether the text repeated a kept memory (``.repeat``)."""
        return memory.remember(self.store, self.clock(), content, **fields)

    def record_access(self, memory_id: int) -> str:
        return memory.record_access(self.store, self.clock(), memory_id)

    def reinforce(self, long_term_id: int) -> None:
        memory.reinforce(self.store, self.clock(), long_term_id)

    def promotion_stats(self, recent: int = 20) -> memory.PromotionStats:
        return memory.promotion_stats(self.store, recent)

    def story(self, memory_id: int, long_term: bool = False) -> MemoryStory:
        """Where memory ``memory_id`` is and what the jobs will do with it next (``memtui why``), under the
        configs of this database's promote and decay jobs."""
        return story(self.store, self.clock(), memory_id, long_term=long_term,
                     promote=self._kind_config("promote"), decay=self._kind_config("decay"))

    def _kind_config(self, kind: str):
        """The typed config of the job of ``kind`` (the one named after it first), or the kind's defaults."""
        return config_of_kind(self._definitions().values(), kind, self.config.job_params)

    # -- syncing with the database ----------------------------------------------

    def _sync_loop(self) -> None:
        # At least three times a lease TTL: leases and the heartbeat are renewed here.
        period = min(self.config.engine.poll_interval_s, self.config.engine.lease_ttl_s / 3)
        while True:
            # Attached, runs started and ended by other engines are not announced: a dashboard sees
            # them within a quarter second by looking more often (a few small reads each time).
            self._wake.wait(min(period, ATTACHED_POLL_S) if self.attached else period)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.sync()

    def _open_listener(self):
        """A connection announcing other processes' changes (PostgreSQL), or None: then polling alone."""
        try:
            return self.store.change_listener()
        except Exception as exc:  # polling still picks every change up within a poll
            log.warning("changes from other processes are picked up by polling only: %s", one_line_of(exc))
            return None

    def _listen(self, listener) -> None:
        """Wake the sync loop as soon as another process announces a change. A lost connection is
        opened again a second later, and again until it opens; polling carries on meanwhile."""
        try:
            while not self._stop.is_set():
                if listener is None:
                    if self._stop.wait(LISTEN_RETRY_S):
                        return
                    try:
                        listener = self.store.change_listener()
                    except Exception:  # still unreachable: the sync loop says so, not this thread
                        continue
                    self._wake.set()  # whatever was announced while nobody listened
                    continue
                try:
                    announced = listener.wait(0.5)  # short: stop() waits for this thread
                except Exception as exc:
                    log.debug("change listener lost, listening again shortly: %s", one_line_of(exc))
                    _close_quietly(listener)
                    listener = None
                    continue
                if announced:
                    self._wake.set()
        finally:
            if listener is not None:
                _close_quietly(listener)

    def sync(self) -> None:
        """Beat the heartbeat, renew leases, enforce run timeouts, recover runs whose engine is gone,
        repair cursors after a clock jump, adopt definition and cursor changes from any process —
        or, if the database can't be used, say why and hold the jobs until it can. Each step runs
        even if another fails."""
        try:
            self._check_database()
        except StoreError as exc:
            self._set_problem(str(exc))
            return
        except DB_ERRORS as exc:
            self._set_problem(db_problem(self.store.label, exc))
            return
        for step in (self._beat, self._renew_leases, self._enforce_timeouts, self.recover_interrupted,
                     self._repair_cursors, self._apply_changes, self._take_requests, self._watch_engines,
                     self._checkpoint_log):
            try:
                step()
            except DB_ERRORS as exc:
                self._set_problem(db_problem(self.store.label, exc))
                return
            except Exception as exc:  # a bug: say it once per kind of failure, not every second
                key = (step.__name__, type(exc).__name__, str(exc))
                if key not in self._logged:
                    self._logged.add(key)
                    log.exception("sync step %s failed", step.__name__)

    def _beat(self) -> None:
        """The heartbeat of a started engine (a CLI's engine is not registered)."""
        if self.started:
            self._registry.beat()

    def _watch_engines(self) -> None:
        """While attached: an ``engines`` event when an engine starts, stops, or beats (the
        dashboard says who serves the store, and since when it was last heard from)."""
        if not self.attached:
            return
        seen = tuple((e.id, e.heartbeat, tuple(e.running)) for e in self.live_engines())
        if seen != self._seen_engines:
            self._seen_engines = seen
            self._publish("engines")

    def _checkpoint_log(self) -> None:
        """A started engine copies the write-ahead log back into the database on its own beat, so no
        job's commit (nor a key press) pays for it: see models/sqlite.py. Every engine serving the
        store may: a checkpoint with nothing left to copy costs two reads."""
        now = time.monotonic()
        if self.started and now - self._checkpointed_at >= CHECKPOINT_EVERY_S:
            self._checkpointed_at = now
            self.store.checkpoint_log()

    # -- health ------------------------------------------------------------------

    def _check_database(self) -> None:
        """Raise if the file is gone or replaced; while a problem is set, probe with a real write
        on a fresh connection (old connections can still write to a file made read-only)."""
        self.store.check()
        if self.problem is not None:
            self.store.probe_write()
            self._set_problem(None)

    def _set_problem(self, problem: str | None) -> None:
        """Hold or release the jobs. The log says so once per change of state: a second reason
        found while already held (the sync loop and a run thread both notice) is not news."""
        with self._lock:
            if problem == self.problem:
                return
            previous, self.problem = self.problem, problem
            if problem:
                for name in list(self._alarms):
                    self._set_alarm(name, None)
        if problem and previous is None:
            log.error("jobs held: %s", problem)
        elif problem:
            log.debug("jobs still held: %s", problem)
        else:
            log.warning("database usable again; jobs resume")
        self._publish("health")


def _close_quietly(listener) -> None:
    try:
        listener.close()
    except Exception:  # a connection already broken
        pass


def one_line_of(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def open_engine(db_path: str | Path, config: Config | None = None, clock: Clock = system_clock, *,
                create: bool = True) -> Engine:
    """An engine (not started) over the store at ``db_path`` (a path or a URL); ``create=False``
    refuses a store that does not exist yet."""
    return Engine(Store.open(db_path, create=create), config, clock)


__all__ = ["Engine", "EngineError", "open_engine"]
