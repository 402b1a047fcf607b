"""The Engine: owns the store and one APScheduler BackgroundScheduler, runs and records every job.

The database is the single source of truth. Each job's next due time lives in
``job_state.next_run_at`` (the *cursor*); whoever changes a definition
(this engine, the CLI, a second dashboard) writes the new cursor in the same
transaction, and a running engine adopts stored cursors within one poll.
APScheduler is the alarm clock and the thread pool: the engine sets one
``DateTrigger`` alarm per job at its cursor, translated from the injected clock
to wall time. When an alarm fires, the engine claims that due time by moving the
cursor forward with a compare-and-set, so two engines on one database never both
run the same due time; it records a ``missed`` row (with how many) when the
alarm is later than the grace time, then runs once as ``catch-up``.

Every execution, scheduled or manual, goes through ``_execute``: it takes the
job's lease row (so a job never runs twice at once, across processes too),
writes the run row, calls the job, records the outcome, counters and backoff,
releases the lease and publishes events. APScheduler alone keeps none of this:
it has no run-now, no history, no clock injection, and its 1 s misfire grace
and silently accepted zero intervals are the wrong defaults here.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import traceback as tb
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from memtui.engine.clock import Clock, from_ts, system_clock
from memtui.engine.config import Config, ConfigError
from memtui.engine import memory
from memtui.engine.jobs import DEFAULT_JOBS, KINDS, JobContext, SkipRun, config_for
from memtui.engine.redact import redact
from memtui.engine.schedule import Schedule, ScheduleError
from memtui.engine.types import AuditEntry, Event, JobInfo, RunInfo
from memtui.models import DB_ERRORS, Store, StoreError

log = logging.getLogger("memtui.engine")
UTC = timezone.utc


class EngineError(Exception):
    """A request the engine refuses (unknown job, bad spec); the message is one line."""


DEF_COLUMNS = "name, kind, enabled, schedule, timezone, jitter_s, config, updated_at"
RUN_COLUMNS = ("id, job, reason, scheduled_for, started_at, finished_at, duration_ms, status, result, error,"
               " traceback, owner")


@dataclass(frozen=True)
class _Definition:
    name: str
    kind: str
    enabled: bool
    schedule: str
    timezone: str | None
    jitter_s: int
    config: str
    updated_at: float  # interval grids are anchored here: a retime starts a new grid

    @classmethod
    def from_row(cls, row) -> "_Definition":
        return cls(row[0], row[1], bool(row[2]), *row[3:8])

    def parsed(self) -> Schedule:
        return Schedule.parse(self.schedule, self.timezone, self.jitter_s)

    def schedulable(self) -> Schedule | None:
        """The schedule when the job can be scheduled at all: known kind, readable schedule."""
        if self.kind not in KINDS:
            return None
        try:
            return self.parsed()
        except ScheduleError:  # e.g. written with plain SQL, or a zone this machine lacks
            return None

    def next_due(self, now: datetime, after: datetime | None = None) -> float | None:
        """The first fire time strictly after ``after`` (default now), on the job's own grid."""
        schedule = self.schedulable()
        if schedule is None:
            return None
        due = schedule.next_after(max(now, after or now), anchor=from_ts(self.updated_at)
                                  if schedule.is_interval else None)
        return due.timestamp() if due else None


@dataclass
class _Active:
    """A run this engine is executing: its job, start (clock seconds) and stop flag."""

    job: str
    started_ts: float
    cancel: threading.Event
    timed_out_at: float | None = None  # clock seconds when the timeout failed it




def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Engine:
    """Runs memtui's jobs over one store. Every public method is safe from any thread."""

    def __init__(self, store: Store | str | os.PathLike, config: Config | None = None,
                 clock: Clock = system_clock, owner: str | None = None):
        self.store = store if isinstance(store, Store) else Store.open(store)
        self.config = config or Config()
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._subscribers: list[Callable[[Event], None]] = []
        self._scheduler: BackgroundScheduler | None = None
        self._alarms: dict[str, tuple[str, float]] = {}  # job -> (aps job id, due ts)
        self._running: dict[int, _Active] = {}  # runs this engine holds, by run id
        self.problem: str | None = None  # why jobs are held (database gone, read-only, full)
        self._seen: dict[str, tuple] = {}
        self._stop = threading.Event()
        self._sync_thread: threading.Thread | None = None
        self._apply_lock = threading.Lock()
        self._logged: set[tuple] = set()  # sync failures already logged
        self._seed()
        self._seen_paused = self.paused
        # Changes made before this engine opened the store are history, not news.
        self._audit_seen = self.store.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]

    # -- lifecycle -------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._scheduler is not None and not self._stop.is_set()

    def start(self) -> None:
        """Recover interrupted runs, start the scheduler and the sync loop."""
        if self._scheduler is not None:
            return
        self.recover_interrupted()
        # The pool only handles alarms; every run gets a thread of its own (see _start_thread),
        # so a job that hangs can never starve the others of workers.
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._scheduler.start()
        self.sync()
        self._sync_thread = threading.Thread(target=self._sync_loop, name="memtui-sync", daemon=True)
        self._sync_thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop scheduling, wait up to ``timeout`` s for running jobs, mark the rest interrupted.

        Returns True when every run finished on its own."""
        timeout = self.config.engine.stop_timeout_s if timeout is None else timeout
        self._stop.set()
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception:  # already shut down
                pass
        if self._sync_thread is not None:
            self._sync_thread.join(timeout=5)
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._running and time.monotonic() < deadline:
                self._idle.wait(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            leftover = {run_id: active.job for run_id, active in self._running.items()}
        for run_id, name in leftover.items():
            with self._lock:
                active = self._running.get(run_id)
            if active is not None:
                active.cancel.set()
            self._interrupt(run_id, name, f"engine stopped after waiting {timeout:g} s for the run to finish")
        return not leftover

    def running_jobs(self) -> list[str]:
        with self._lock:
            return sorted({active.job for active in self._running.values()})

    def close(self) -> None:
        self.store.close()

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

    def _seed(self) -> None:
        """Insert the default jobs missing from the table; the table wins afterwards."""
        now = self.clock()
        with self.store.atomic():
            existing = {r[0] for r in self.store.execute("SELECT name FROM job_definition")}
            for spec in DEFAULT_JOBS.values():
                if spec.name in existing:
                    continue
                overrides = self.config.job_definition(spec.name)
                enabled = overrides.get("enabled", spec.enabled)
                schedule = Schedule.parse(overrides.get("schedule", spec.schedule),
                                          overrides.get("timezone"), overrides.get("jitter", spec.jitter_s))
                self.store.execute(
                    "INSERT INTO job_definition (name, kind, enabled, schedule, timezone, jitter_s, config,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, '{}', ?, ?)",
                    (spec.name, spec.kind, enabled, schedule.spec, schedule.timezone, schedule.jitter_s,
                     now.timestamp(), now.timestamp()),
                )
                self.store.execute("INSERT OR IGNORE INTO job_state (name, next_run_at) VALUES (?, ?)",
                                   (spec.name, self._cursor(self._definition(spec.name), now)))
            # A definition written with plain SQL gets its state row too (no schedule until retimed).
            self.store.execute("INSERT OR IGNORE INTO job_state (name) SELECT name FROM job_definition")

    def _definitions(self) -> dict[str, _Definition]:
        rows = self.store.execute(f"SELECT {DEF_COLUMNS} FROM job_definition ORDER BY name").fetchall()
        return {r[0]: _Definition.from_row(r) for r in rows}

    def _definition(self, name: str) -> _Definition:
        row = self.store.execute(f"SELECT {DEF_COLUMNS} FROM job_definition WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(self._definitions()) or "none"
            raise EngineError(f"unknown job {name!r} (known: {known})")
        return _Definition.from_row(row)

    @property
    def paused(self) -> bool:
        return self.store.setting("paused", "0") == "1"

    def _cursor(self, d: _Definition, now: datetime, paused: bool | None = None) -> float | None:
        """The due time to store for ``d``: its next fire time, or None when it must not fire.

        A failing job's backoff holds across disable/enable, pause/resume and retime: none of
        them is a request to retry at once (run-now is)."""
        paused = self.paused if paused is None else paused
        if not d.enabled or paused:
            return None
        due = d.next_due(now)
        row = self.store.execute("SELECT backoff_until FROM job_state WHERE name = ?", (d.name,)).fetchone()
        if due is not None and row and row[0] and row[0] > due:
            due = row[0]
        return due

    def _audit(self, action: str, job: str | None, old, new, source: str) -> None:
        self.store.execute(
            "INSERT INTO audit_log (at, action, job, old_value, new_value, source) VALUES (?, ?, ?, ?, ?, ?)",
            (self.clock().timestamp(), action, job, None if old is None else str(old),
             None if new is None else str(new), source),
        )

    # -- control API -----------------------------------------------------------

    def enable(self, name: str, source: str = "api") -> JobInfo:
        return self._set_enabled(name, True, source)

    def disable(self, name: str, source: str = "api") -> JobInfo:
        return self._set_enabled(name, False, source)

    def toggle(self, name: str, source: str = "api") -> JobInfo:
        return self._set_enabled(name, not self._definition(name).enabled, source)

    def _set_enabled(self, name: str, enabled: bool, source: str) -> JobInfo:
        now = self.clock()
        with self.store.atomic():
            d = self._definition(name)
            if d.enabled != enabled:
                self.store.execute("UPDATE job_definition SET enabled = ?, updated_at = ? WHERE name = ?",
                                   (enabled, now.timestamp(), name))
                self.store.execute("UPDATE job_state SET next_run_at = ? WHERE name = ?",
                                   (self._cursor(self._definition(name), now), name))
            self._audit("enable" if enabled else "disable", name, d.enabled, enabled, source)
        self._apply_changes()
        return self.job(name)

    def retime(self, name: str, spec: str, tz: str | None = None, source: str = "api",
               jitter_s: int | None = None) -> JobInfo:
        """Give job ``name`` a new schedule; ``tz=None`` keeps its time zone."""
        now = self.clock()
        with self.store.atomic():
            d = self._definition(name)
            try:
                schedule = Schedule.parse(spec, d.timezone if tz is None else tz,
                                          d.jitter_s if jitter_s is None else jitter_s)
            except ScheduleError as exc:
                raise EngineError(str(exc)) from None
            self.store.execute(
                "UPDATE job_definition SET schedule = ?, timezone = ?, jitter_s = ?, updated_at = ? WHERE name = ?",
                (schedule.spec, schedule.timezone, schedule.jitter_s, now.timestamp(), name),
            )
            self.store.execute("UPDATE job_state SET next_run_at = ? WHERE name = ?",
                               (self._cursor(self._definition(name), now), name))
            old = d.schedule + (f" {d.timezone}" if d.timezone else "")
            new = schedule.spec + (f" {schedule.timezone}" if schedule.timezone else "")
            self._audit("retime", name, old, new, source)
        self._apply_changes()
        return self.job(name)

    def pause_all(self, source: str = "api") -> None:
        """Stop every job from firing; each job's own enabled flag is kept."""
        with self.store.atomic():
            was = self.paused
            self.store.set_setting("paused", "1")
            self.store.execute("UPDATE job_state SET next_run_at = NULL")
            self._audit("pause_all", None, was, True, source)
        self._apply_changes()

    def resume_all(self, source: str = "api") -> None:
        """Schedule again exactly the jobs that are enabled, each at its next point on its own grid."""
        now = self.clock()
        with self.store.atomic():
            was = self.paused
            self.store.set_setting("paused", "0")
            for d in self._definitions().values():
                self.store.execute("UPDATE job_state SET next_run_at = ? WHERE name = ?",
                                   (self._cursor(d, now, paused=False), d.name))
            self._audit("resume_all", None, was, False, source)
        self._apply_changes()

    def run_now(self, name: str, source: str = "api") -> None:
        """Start job ``name`` in the background now; the schedule is not shifted.

        If it is already running the run is recorded as skipped, with the reason. While the jobs
        are held (the database is gone, read-only or full) it writes nothing and says why."""
        self._refuse_while_held()
        self._definition(name)
        with self.store.atomic():
            self._audit("run_now", name, None, None, source)
        self._apply_changes()  # the change is told before the run it starts, not at the next poll
        self._spawn(name, "manual")

    def make_due(self, names: list[str]) -> None:
        """Make these enabled jobs due now: they run as ordinary scheduled runs (``memtui --demo``
        uses it so there is activity at once; nobody pressed run-now, so nothing is audited)."""
        now = self.clock().timestamp()
        with self.store.atomic():
            for name in names:
                d = self._definition(name)
                if d.enabled and not self.paused:
                    self.store.execute("UPDATE job_state SET next_run_at = ? WHERE name = ?", (now, name))
        self._apply_changes()

    def _refuse_while_held(self) -> None:
        try:
            self.store.check()  # deleted a moment ago, before the sync loop noticed
        except StoreError as exc:
            self._set_problem(str(exc))
        if self.problem is not None:
            raise EngineError(f"jobs are held, nothing was run: {self.problem}")

    def limit_lock_wait(self, seconds: float) -> None:
        """Writes from the calling thread wait at most ``seconds`` for another writer (a UI
        thread should not freeze for the store's full busy timeout)."""
        self.store.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    def run_job(self, name: str, reason: str = "manual") -> RunInfo:
        """Run job ``name`` in the calling thread and return its run record."""
        self._definition(name)
        return self._execute(name, reason)

    def dry_run(self, name: str) -> dict:
        """What job ``name`` would do now, computed without writing anything (no run row either)."""
        d = self._definition(name)
        kind = KINDS.get(d.kind)
        if kind is None or not kind.dry_run:
            raise EngineError(f"job {name!r} has no dry run (jobs that do: "
                              f"{', '.join(n for n, k in self._kinds_by_job().items() if k.dry_run)})")
        return kind.run(self._context(d, run_id=None, dry_run=True))

    def _kinds_by_job(self) -> dict:
        return {name: KINDS[d.kind] for name, d in self._definitions().items() if d.kind in KINDS}

    def _context(self, d: _Definition, run_id: int | None, dry_run: bool = False,
                 cancel: threading.Event | None = None) -> JobContext:
        return JobContext(store=self.store, clock=self.clock, config=self._job_config(d), job=d.name,
                          run_id=run_id, dry_run=dry_run, llm=self.config.llm, tz=d.parsed().tz,
                          log=logging.getLogger(f"memtui.jobs.{d.name}"), cancel=cancel or threading.Event())

    # -- reading ---------------------------------------------------------------

    def job(self, name: str) -> JobInfo:
        for info in self.jobs():
            if info.name == name:
                return info
        raise EngineError(f"unknown job {name!r}")

    def jobs(self) -> list[JobInfo]:
        now = self.clock().timestamp()
        paused = self.paused
        rows = self.store.execute(
            "SELECT d.name, d.kind, d.enabled, d.schedule, d.timezone, d.jitter_s, d.config, d.updated_at,"
            " s.next_run_at, s.last_run_at, s.last_status, s.last_duration_ms, s.runs, s.errors,"
            " s.consecutive_failures, s.backoff_until, s.totals, s.lease_owner, s.lease_expires_at"
            " FROM job_definition d LEFT JOIN job_state s ON s.name = d.name ORDER BY d.name"
        ).fetchall()
        order = {name: i for i, name in enumerate(DEFAULT_JOBS)}
        rows.sort(key=lambda r: (order.get(r[0], len(order)), r[0]))
        out = []
        for r in rows:
            d = _Definition.from_row(r)
            try:
                text, detail = d.parsed().describe(jitter=False), d.parsed().describe()
            except ScheduleError:
                text = detail = f"invalid schedule {d.schedule!r}"
            kind = KINDS.get(d.kind)
            out.append(JobInfo(
                name=d.name, kind=d.kind, enabled=bool(d.enabled), schedule=d.schedule, schedule_text=text,
                schedule_detail=detail, timezone=d.timezone, jitter_s=d.jitter_s,
                next_run=from_ts(r[8]) if d.enabled and not paused else None,
                last_run=from_ts(r[9]), last_status=r[10], last_duration_ms=r[11], runs=r[12] or 0,
                errors=r[13] or 0, consecutive_failures=r[14] or 0,
                backoff_until=from_ts(r[15]) if r[15] and r[15] > now else None,
                running=bool(r[17]) and (r[18] or 0) >= now, paused=paused,
                totals=json.loads(r[16] or "{}"), config=self._effective_config(d),
                summary=kind.summary if kind else f"unknown kind {d.kind!r}",
            ))
        return out

    def _effective_config(self, d: _Definition) -> dict:
        try:
            cfg = self._job_config(d)
        except (ConfigError, EngineError):
            return {}
        return dict(vars(cfg))

    def _job_config(self, d: _Definition):
        if d.kind not in KINDS:
            raise EngineError(f"job {d.name!r} has kind {d.kind!r}, which this memtui does not know")
        params = {**self.config.job_params(d.name), **json.loads(d.config or "{}")}
        return config_for(d.name, params) if d.name in DEFAULT_JOBS else KINDS[d.kind].config(**params)

    def history(self, name: str | None = None, limit: int = 50, before_id: int | None = None) -> list[RunInfo]:
        """Runs newest first, optionally of one job and older than ``before_id`` (for paging)."""
        if name is not None:
            self._definition(name)
        clauses, params = [], []
        if name is not None:
            clauses.append("job = ?")
            params.append(name)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.store.execute(
            f"SELECT {RUN_COLUMNS} FROM run {where} ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [self._run_info(r) for r in rows]

    def run(self, run_id: int) -> RunInfo | None:
        row = self.store.execute(f"SELECT {RUN_COLUMNS} FROM run WHERE id = ?", (run_id,)).fetchone()
        return self._run_info(row) if row else None

    @staticmethod
    def _run_info(r) -> RunInfo:
        return RunInfo(
            id=r[0], job=r[1], reason=r[2], scheduled_for=from_ts(r[3]), started=from_ts(r[4]),
            finished=from_ts(r[5]), duration_ms=r[6], status=r[7],
            result=json.loads(r[8]) if r[8] else None, error=r[9], traceback=r[10], owner=r[11],
        )

    def audit_log(self, limit: int = 50) -> list[AuditEntry]:
        rows = self.store.execute(
            "SELECT at, action, job, old_value, new_value, source FROM audit_log ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [AuditEntry(from_ts(r[0]), *r[1:]) for r in rows]

    # -- the agent's side --------------------------------------------------------

    def remember(self, content: str, **fields) -> int:
        """Add a pending memory (see engine.memory.remember for the fields); returns its id."""
        return memory.remember(self.store, self.clock(), content, **fields)

    def record_access(self, memory_id: int) -> str:
        return memory.record_access(self.store, self.clock(), memory_id)

    def reinforce(self, long_term_id: int) -> None:
        memory.reinforce(self.store, self.clock(), long_term_id)

    def promotion_stats(self, recent: int = 20) -> memory.PromotionStats:
        return memory.promotion_stats(self.store, recent)

    # -- syncing with the database ----------------------------------------------

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.config.engine.poll_interval_s):
            self.sync()

    def sync(self) -> None:
        """Adopt definition and cursor changes from any process, renew leases, recover dead runs,
        enforce run timeouts, repair cursors after a clock jump — or, if the database can't be
        used, say why and hold the jobs until it can. Each step runs even if another fails."""
        try:
            self._check_database()
        except StoreError as exc:
            self._set_problem(str(exc))
            return
        except DB_ERRORS as exc:
            self._set_problem(_db_problem(self.store.label, exc))
            return
        for step in (self._renew_leases, self._enforce_timeouts, self.recover_interrupted,
                     self._repair_cursors, self._apply_changes):
            try:
                step()
            except DB_ERRORS as exc:
                self._set_problem(_db_problem(self.store.label, exc))
                return
            except Exception as exc:  # a bug: say it once per kind of failure, not every second
                key = (step.__name__, type(exc).__name__, str(exc))
                if key not in self._logged:
                    self._logged.add(key)
                    log.exception("sync step %s failed", step.__name__)

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

    def _enforce_timeouts(self) -> None:
        """Fail runs older than job_timeout_s and ask them to stop. Their lease is kept for one
        lease TTL more, so a run that stops at its next batch never overlaps its successor; a
        thread that still hasn't stopped by then loses the lease and its job is free again."""
        grace = self.config.engine.lease_ttl_s
        now = self.clock().timestamp()
        with self._lock:
            overdue = [(run_id, a) for run_id, a in self._running.items()
                       if a.timed_out_at is None and now - a.started_ts > self.config.job_timeout_s(a.job)]
            stuck = [(run_id, a) for run_id, a in self._running.items()
                     if a.timed_out_at is not None and now - a.timed_out_at > grace]
        for run_id, active in overdue:
            active.cancel.set()  # a job that calls ctx.check() stops at its next batch
            active.timed_out_at = now
            limit = self.config.job_timeout_s(active.job)
            self._abandon(run_id, active.job, "failed",
                          f"timed out after {limit:g} s (engine.job_timeout_s, or the job's timeout_s);"
                          " the run was told to stop", count_failure=True, release=False)
        for run_id, active in stuck:
            log.warning("run #%d of %s has not stopped %g s after its timeout; its job is free again",
                        run_id, active.job, grace)
            with self.store.atomic():
                self._release_lease(active.job, run_id)
            self._forget(run_id)

    def _repair_cursors(self) -> None:
        """After the clock jumps back, a cursor can sit far in the future: bring it back."""
        now = self.clock()
        cap = now.timestamp() + self.config.engine.backoff_cap_s
        states = {r[0]: r[1:] for r in self.store.execute(
            "SELECT name, next_run_at, backoff_until FROM job_state WHERE next_run_at IS NOT NULL")}
        for d in self._definitions().values():
            schedule = d.schedulable()
            if not d.enabled or d.name not in states or schedule is None:
                continue
            cursor, backoff_until = states[d.name]
            natural = d.next_due(now)
            if natural is None:
                continue
            latest = max(natural + schedule.effective_jitter_s, min(backoff_until or 0, cap)) + 1
            if cursor > latest:
                log.warning("%s was due at %s, beyond its schedule: the clock went back; rescheduling",
                            d.name, from_ts(cursor).isoformat(timespec="seconds"))
                with self.store.atomic():
                    self.store.execute(
                        "UPDATE job_state SET next_run_at = ?, backoff_until = MIN(backoff_until, ?)"
                        " WHERE name = ? AND next_run_at = ?", (natural, cap, d.name, cursor))

    def _apply_changes(self) -> None:
        """Make alarms match the stored definitions and cursors; publish what changed.

        One thread at a time reads and applies, so an older snapshot never lands after a newer
        one; events go out after the locks are released (a subscriber may touch the database)."""
        events: list[tuple[str, str | None, AuditEntry | None]] = []
        with self._apply_lock:
            for entry in self._new_audit_entries():
                events.append(("audit", entry.job, entry))
            definitions = self._definitions()
            states = {r[0]: r[1:] for r in self.store.execute(
                "SELECT name, next_run_at, runs, last_status, last_run_at, lease_owner, consecutive_failures"
                " FROM job_state")}
            paused = self.paused
            with self._lock:
                if paused != self._seen_paused:
                    events.append(("paused" if paused else "resumed", None, None))
                self._seen_paused = paused
                for name, d in definitions.items():
                    state = states.get(name, (None,) * 6)
                    key = (d, paused)
                    previous = self._seen.get(name)
                    if previous is None or previous[0] != key:
                        events.append(("job_changed", name, None))
                    elif previous[1] != state:
                        events.append(("state_changed", name, None))
                    self._seen[name] = (key, state)
                    if self.started:
                        schedulable = (d.enabled and not paused and self.problem is None
                                       and d.schedulable() is not None)
                        self._set_alarm(name, state[0] if schedulable else None)
        for kind, name, entry in events:
            self._publish(kind, name, audit=entry)

    def _new_audit_entries(self) -> list[AuditEntry]:
        """Audit rows written since the last look, by anyone: each change is told once."""
        rows = self.store.execute(
            "SELECT id, at, action, job, old_value, new_value, source FROM audit_log WHERE id > ? ORDER BY id",
            (self._audit_seen,)).fetchall()
        if rows:
            self._audit_seen = rows[-1][0]
        return [AuditEntry(from_ts(r[1]), *r[2:], id=r[0]) for r in rows]

    def _set_alarm(self, name: str, due_ts: float | None) -> None:
        """Point job ``name``'s APScheduler alarm at ``due_ts`` (None: no alarm). Holds _lock."""
        current = self._alarms.get(name)
        if current is not None and current[1] == due_ts:
            return
        if current is not None:
            try:
                self._scheduler.remove_job(current[0])
            except JobLookupError:
                pass  # already fired
            del self._alarms[name]
        if due_ts is None or self._stop.is_set():
            return
        wall = datetime.now(UTC) + (from_ts(due_ts) - self.clock())
        alarm_id = f"{name}@{due_ts}"
        try:
            self._scheduler.add_job(self._fire, DateTrigger(run_date=wall), args=(name, due_ts),
                                    id=alarm_id, replace_existing=True)
        except Exception:
            if not self._stop.is_set():
                raise
            return
        self._alarms[name] = (alarm_id, due_ts)

    def _fire(self, name: str, due_ts: float) -> None:
        """An alarm went off (on APScheduler's pool): claim the due time and start the run."""
        try:
            begun = self._claim(name, due_ts)
        except DB_ERRORS as exc:
            self._set_problem(_db_problem(self.store.label, exc))
            return
        except EngineError as exc:  # stopping, or the job was deleted meanwhile
            log.info("alarm of %s not taken: %s", name, exc)
            return
        except Exception:
            log.exception("alarm of %s failed", name)
            return
        self._apply_changes()  # the next alarm: ours, or whatever another process stored
        if begun is not None:
            self._start_thread(self._run_guarded, name, begun)

    def _claim(self, name: str, due_ts: float) -> int | None:
        """In one transaction: move the cursor on (compare-and-set, so of two engines only one
        wins a due time), record a miss when late, take the lease and write the run row.
        Returns the id of a run to execute, or None."""
        # The alarm entry stays until the claim is decided: a sync in between then sees the same due
        # time and leaves it alone instead of re-adding an alarm that is still running.
        if self._stop.is_set() or self.problem is not None:
            return None
        now = self.clock()
        d = self._definition(name)
        schedule = d.schedulable()
        if schedule is None:
            return None
        due = from_ts(due_ts)
        next_ts = d.next_due(now, after=due)  # strictly after the due time: never the same one again
        with self.store.atomic():
            row = self.store.execute("SELECT backoff_until FROM job_state WHERE name = ?", (name,)).fetchone()
            if row and row[0] and next_ts is not None:
                next_ts = max(next_ts, row[0])
            claimed = self.store.execute(
                "UPDATE job_state SET next_run_at = ? WHERE name = ? AND next_run_at = ?", (next_ts, name, due_ts)
            ).rowcount == 1
            if not claimed:
                return None  # another engine ran this due time, or the job was changed meanwhile
            missed_id = None
            reason = "scheduled"
            if (now - due).total_seconds() > self.config.engine.misfire_grace_s:
                missed_id = self._insert_missed(name, due, now, schedule.count_between(due, now))
                reason = "catch-up"
            run_id, holder = self._begin_run(name, reason, due, now)
        if missed_id is not None:
            self._publish("run_finished", name, self.run(missed_id))
        if holder is not None:
            self._publish("run_finished", name, self.run(run_id))
            return None
        return run_id

    def _insert_missed(self, name: str, due: datetime, now: datetime, count: int) -> int:
        result = {"missed": count, "first_missed": due.isoformat()}
        return self.store.execute(
            "INSERT INTO run (job, reason, scheduled_for, started_at, finished_at, duration_ms, status, result,"
            " error, owner) VALUES (?, 'scheduled', ?, ?, ?, 0, 'missed', ?, ?, ?)",
            (name, due.timestamp(), now.timestamp(), now.timestamp(), json.dumps(result),
             f"{count} run(s) missed since {due.isoformat(timespec='seconds')}; one catch-up run follows",
             self.owner),
        ).lastrowid

    # -- leases ----------------------------------------------------------------

    def _renew_leases(self) -> None:
        with self._lock:
            mine = list(self._running)
        if not mine:
            return
        expires = self.clock().timestamp() + self.config.engine.lease_ttl_s
        with self.store.atomic():
            self.store.execute(
                f"UPDATE job_state SET lease_expires_at = ? WHERE lease_owner = ? AND lease_run_id IN"
                f" ({','.join('?' * len(mine))})", (expires, self.owner, *mine),
            )

    def _release_lease(self, job: str, run_id: int) -> None:
        """Free ``job`` if ``run_id`` still holds it; inside the caller's transaction."""
        self.store.execute(
            "UPDATE job_state SET lease_owner = NULL, lease_run_id = NULL, lease_expires_at = NULL"
            " WHERE name = ? AND lease_run_id = ?", (job, run_id))

    def _forget(self, run_id: int) -> None:
        with self._idle:
            self._running.pop(run_id, None)
            self._idle.notify_all()

    def recover_interrupted(self) -> int:
        """Mark runs left ``running`` by a dead process as interrupted and free their leases."""
        now = self.clock().timestamp()
        host = socket.gethostname()
        rows = self.store.execute(
            "SELECT r.id, r.job, r.owner, s.lease_owner, s.lease_run_id, s.lease_expires_at FROM run r"
            " LEFT JOIN job_state s ON s.name = r.job WHERE r.status = 'running'"
        ).fetchall()
        count = 0
        for run_id, job, owner, lease_owner, lease_run_id, lease_expires in rows:
            with self._lock:
                if run_id in self._running:
                    continue
            holds_lease = lease_owner == owner and lease_run_id == run_id
            owner_host, _, rest = owner.partition(":")
            pid = rest.partition(":")[0]
            dead_here = owner_host == host and pid.isdigit() and not _pid_alive(int(pid))
            expired = holds_lease and (lease_expires or 0) < now
            if not holds_lease or dead_here or expired:
                self._interrupt(run_id, job, "the process running it stopped before it finished")
                count += 1
        return count

    def _interrupt(self, run_id: int, job: str, why: str) -> None:
        self._abandon(run_id, job, "interrupted", why)

    def _abandon(self, run_id: int, job: str, status: str, why: str, count_failure: bool = False,
                 release: bool = True) -> None:
        """End a run that will not finish by itself (process gone, stopped, timed out)."""
        now = self.clock().timestamp()
        with self.store.atomic():
            ended = self.store.execute(
                "UPDATE run SET status = ?, finished_at = ?, error = ?,"
                " duration_ms = round((? - started_at) * 1000, 3) WHERE id = ? AND status = 'running'",
                (status, now, why, now, run_id),
            ).rowcount
            if ended:
                self.store.execute("UPDATE job_state SET last_status = ? WHERE name = ?", (status, job))
            if ended and count_failure:
                self._count_outcome(job, "failed", now, None, {}, ())
            if release:
                self._release_lease(job, run_id)
        if release:
            self._forget(run_id)
        if ended:
            self._publish("run_finished", job, self.run(run_id))

    # -- executing -------------------------------------------------------------

    def _start_thread(self, target, *args) -> None:
        threading.Thread(target=target, args=args, name=f"memtui-run-{args[0]}", daemon=True).start()

    def _spawn(self, name: str, reason: str) -> None:
        self._start_thread(self._execute_guarded, name, reason)

    def _execute_guarded(self, name: str, reason: str) -> None:
        """A background run: a database failure becomes the engine's problem, not a dead thread."""
        try:
            self._execute(name, reason)
        except DB_ERRORS as exc:
            self._set_problem(_db_problem(self.store.label, exc))
        except EngineError as exc:  # stopping, or the job was deleted meanwhile
            log.info("run of %s not started: %s", name, exc)
        except Exception:
            log.exception("run of %s could not start", name)
        finally:
            self.store.db.close()  # this thread's connection: don't leave it for the garbage collector

    def _run_guarded(self, name: str, run_id: int) -> None:
        try:
            self._run_begun(name, run_id)
        except DB_ERRORS as exc:
            self._set_problem(_db_problem(self.store.label, exc))
        except Exception:
            log.exception("run #%d of %s could not be recorded", run_id, name)
        finally:
            self.store.db.close()

    def _execute(self, name: str, reason: str, scheduled_for: datetime | None = None) -> RunInfo:
        """Run job ``name`` once under its lease and record everything about it."""
        with self.store.atomic():
            run_id, holder = self._begin_run(name, reason, scheduled_for, self.clock())
        if holder is not None:
            info = self.run(run_id)
            self._publish("run_finished", name, info)
            return info
        return self._run_begun(name, run_id)

    def _run_begun(self, name: str, run_id: int) -> RunInfo:
        """Execute a run whose row and lease exist; whatever happens, the run ends recorded or
        abandoned, and this engine lets go of it."""
        heartbeat = None if self.started else self._start_heartbeat()
        try:
            with self._lock:
                cancel = self._running[run_id].cancel
            self._publish("run_started", name, self.run(run_id))
            status, result, error, trace = "success", {}, None, None
            t0 = time.perf_counter()
            try:
                d = self._definition(name)
                result = KINDS[d.kind].run(self._context(d, run_id, cancel=cancel)) or {}
            except SkipRun as skip:
                status, result, error = "skipped", skip.result, skip.reason
            except Exception as exc:
                status, error, trace = "failed", redact(_one_line(exc)), redact(tb.format_exc())
            duration_ms = round((time.perf_counter() - t0) * 1000, 3)  # to the microsecond
            try:
                self._finish_run(name, run_id, status, result, error, trace, duration_ms)
            except Exception as exc:  # busy past the timeout, disk full: don't leave it "running"
                self._abandon(run_id, name, "failed", f"could not record the outcome: {redact(_one_line(exc))}")
                raise
        finally:
            if heartbeat is not None:
                heartbeat.set()
            self._forget(run_id)
        info = self.run(run_id)
        self._publish("run_finished", name, info)
        if self.started:
            self._apply_changes()
        return info

    def _begin_run(self, name: str, reason: str, scheduled_for: datetime | None, now: datetime):
        """Take the lease and insert the run row, inside the caller's transaction.

        Returns (run id, holder): holder is set when the job was busy (the row says skipped)."""
        if self._stop.is_set():
            raise EngineError("the engine is stopping; no new runs")
        ts = now.timestamp()
        scheduled_ts = scheduled_for.timestamp() if scheduled_for else None
        self.store.execute("INSERT OR IGNORE INTO job_state (name) VALUES (?)", (name,))  # a hand-made job
        taken = self.store.execute(
            "UPDATE job_state SET lease_owner = ?, lease_expires_at = ? WHERE name = ?"
            " AND (lease_owner IS NULL OR lease_expires_at < ?)",
            (self.owner, ts + self.config.engine.lease_ttl_s, name, ts),
        ).rowcount == 1
        if taken:
            run_id = self.store.execute(
                "INSERT INTO run (job, reason, scheduled_for, started_at, status, owner)"
                " VALUES (?, ?, ?, ?, 'running', ?)", (name, reason, scheduled_ts, ts, self.owner),
            ).lastrowid
            self.store.execute("UPDATE job_state SET lease_run_id = ? WHERE name = ?", (run_id, name))
            with self._lock:
                self._running[run_id] = _Active(name, ts, threading.Event())
            return run_id, None
        owner, since = self.store.execute(
            "SELECT s.lease_owner, r.started_at FROM job_state s LEFT JOIN run r ON r.id = s.lease_run_id"
            " WHERE s.name = ?", (name,)
        ).fetchone()
        where = "in this process" if owner == self.owner else f"in {owner}"
        since_text = f" since {from_ts(since).isoformat(timespec='seconds')}" if since else ""
        error = f"already running {where}{since_text}"
        run_id = self.store.execute(
            "INSERT INTO run (job, reason, scheduled_for, started_at, finished_at, duration_ms, status,"
            " result, error, owner) VALUES (?, ?, ?, ?, ?, 0, 'skipped', ?, ?, ?)",
            (name, reason, scheduled_ts, ts, ts, json.dumps({"busy": True, "holder": owner}), error,
             self.owner),
        ).lastrowid
        self.store.execute("UPDATE job_state SET runs = runs + 1, last_run_at = ?, last_status = 'skipped',"
                           " last_duration_ms = 0 WHERE name = ?", (ts, name))
        return run_id, owner

    def _finish_run(self, name, run_id, status, result, error, trace, duration_ms) -> None:
        ts = self.clock().timestamp()
        kind = KINDS.get(self._definition(name).kind)
        counters = kind.counters if kind and status == "success" else ()
        with self.store.atomic():
            finished = self.store.execute(
                "UPDATE run SET finished_at = ?, duration_ms = ?, status = ?, result = ?, error = ?, traceback = ?"
                " WHERE id = ? AND status = 'running'",
                (ts, duration_ms, status, json.dumps(result, default=str), error, trace, run_id),
            ).rowcount == 1
            if finished:
                self._count_outcome(name, status, ts, duration_ms, result, counters)
            self._release_lease(name, run_id)

    def _count_outcome(self, name: str, status: str, ts: float, duration_ms: int | None, result: dict,
                       counters: tuple[str, ...]) -> None:
        """Counters, totals and failure backoff for a finished run; inside the caller's transaction."""
        row = self.store.execute("SELECT consecutive_failures, totals FROM job_state WHERE name = ?",
                                 (name,)).fetchone()
        failures = row[0] + 1 if status == "failed" else 0
        totals = json.loads(row[1] or "{}")
        for key in counters:
            if isinstance(result.get(key), (int, float)):
                totals[key] = totals.get(key, 0) + result[key]
        backoff = None
        if failures:
            # 2.0 ** (capped exponent): a job failing for weeks must not overflow the float.
            delay = min(self.config.engine.backoff_base_s * 2.0 ** min(failures - 1, 60),
                        self.config.engine.backoff_cap_s)
            backoff = ts + delay
        self.store.execute(
            "UPDATE job_state SET runs = runs + 1, errors = errors + ?, last_run_at = ?, last_status = ?,"
            " last_duration_ms = ?, consecutive_failures = ?, backoff_until = ?, totals = ?,"
            " next_run_at = CASE WHEN ? IS NOT NULL AND next_run_at IS NOT NULL"
            "   THEN MAX(next_run_at, ?) ELSE next_run_at END"
            " WHERE name = ?",
            (status == "failed", ts, status, duration_ms, failures, backoff,
             json.dumps(totals, sort_keys=True), backoff, backoff, name),
        )
        if not failures and row[0]:
            # This run ends a backoff that had pushed the cursor out: back onto the schedule (else the
            # next sync would take the late cursor for a clock that went back).
            d = self._definition(name)
            natural = d.next_due(self.clock()) if d.enabled and not self.paused else None
            if natural is not None:
                self.store.execute("UPDATE job_state SET next_run_at = ? WHERE name = ? AND next_run_at > ?",
                                   (natural, name, natural))

    def _start_heartbeat(self) -> threading.Event:
        """Renew this engine's leases while a run goes on without the sync loop (CLI runs)."""
        done = threading.Event()
        period = self.config.engine.lease_ttl_s / 3

        def beat() -> None:
            while not done.wait(period):
                try:
                    self._renew_leases()
                except Exception:
                    log.exception("lease renewal failed")

        threading.Thread(target=beat, name="memtui-lease", daemon=True).start()
        return done


def _db_problem(path, exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    hint = ""
    if "readonly" in text or "read-only" in text:
        hint = " (check the file's permissions)"
    elif "full" in text:
        hint = " (free some disk space)"
    return f"{path}: {text}{hint}"


def open_engine(db_path: str | Path, config: Config | None = None, clock: Clock = system_clock, *,
                create: bool = True) -> Engine:
    """An engine (not started) over the store at ``db_path``; ``create=False`` refuses a missing file."""
    return Engine(Store.open(db_path, create=create), config, clock)
