"""Running a job once and recording it: the run's thread, its outcome, counters, backoff, timeout.

Every execution, scheduled or manual, ends here once its lease is taken and its
``run`` row written (leases.py): the job is called with a ``JobContext``, its
outcome recorded (status, result, error, traceback, duration), the job's
counters, totals and failure backoff updated, the lease released and events
published — whatever happens, the run ends recorded or abandoned and this engine
lets go of it. Every recording is a compare-and-set on ``status = 'running'``,
so a run that was already ended (timed out, recovered by another engine after
its lease expired) keeps its first ending.

A run that takes longer than its timeout is failed and asked to stop; its lease
is kept one lease TTL more so its successor never overlaps a run that stops at
its next batch. A run started without the sync loop (``memtui run``) renews its
own lease from a heartbeat thread.

Part of the Engine (a mixin): uses ``store``, ``clock``, ``config``, ``_running``
(runs this engine executes, by run id), ``_lock``/``_idle``, ``_publish``.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import traceback as tb
from dataclasses import dataclass

from peewee import Case

from memtui.engine.jobs import KINDS, SkipRun
from memtui.engine.jobs.base import JobCancelled
from memtui.engine.redact import redact
from memtui.engine.types import EngineError, RunInfo
from memtui.models import DB_ERRORS

log = logging.getLogger("memtui.engine")


@dataclass
class ActiveRun:
    """A run this engine is executing: its job, start (clock seconds) and stop flag."""

    job: str
    started_ts: float
    cancel: threading.Event
    timed_out_at: float | None = None  # clock seconds when the timeout failed it
    cancelled_by: str | None = None  # who asked to stop it (cli, ui, api): it then ends "cancelled"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def db_problem(label, exc: BaseException) -> str:
    """Why the jobs are held, for the log and the dashboard, from a database error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    hint = ""
    if "readonly" in text or "read-only" in text:
        hint = " (check the file's permissions)"
    elif "full" in text:
        hint = " (free some disk space)"
    return f"{label}: {text}{hint}"


class RunnerMixin:
    """Executing runs on threads of their own and recording how they ended."""

    # -- threads ----------------------------------------------------------------

    def _start_thread(self, target, *args) -> None:
        threading.Thread(target=target, args=args, name=f"memtui-run-{args[0]}", daemon=True).start()

    def _spawn(self, name: str, reason: str) -> None:
        self._start_thread(self._execute_guarded, name, reason)

    def _execute_guarded(self, name: str, reason: str) -> None:
        """A background run: a database failure becomes the engine's problem, not a dead thread."""
        try:
            self._execute(name, reason)
        except DB_ERRORS as exc:
            self._set_problem(db_problem(self.store.label, exc))
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
            self._set_problem(db_problem(self.store.label, exc))
        except Exception:
            log.exception("run #%d of %s could not be recorded", run_id, name)
        finally:
            self.store.db.close()

    # -- one run ------------------------------------------------------------------

    def _execute(self, name: str, reason: str, scheduled_for=None, definition=None) -> RunInfo:
        """Run job ``name`` once under its lease and record everything about it. ``definition``:
        the job's, when the caller has just read it (else the run reads it as it starts)."""
        with self.store.atomic():
            run_id, holder, now = self._begin_run(name, reason, scheduled_for)
        if holder is None:
            self._track(run_id, name, now.timestamp())
        if holder is not None:
            info = self.run(run_id)
            self._publish("run_finished", name, info)
            return info
        # The row as _begin_run inserted it, without reading it back: what a read would return
        # (floats and text come back as written, on SQLite and PostgreSQL alike).
        scheduled_ts = scheduled_for.timestamp() if scheduled_for else None
        started = self._run_info(self.store.m.Run(
            id=run_id, **self._running_row(name, reason, scheduled_ts, now.timestamp())))
        return self._run_begun(name, run_id, definition, started)

    def _run_begun(self, name: str, run_id: int, definition=None, started: RunInfo | None = None) -> RunInfo:
        """Execute a run whose row and lease exist; whatever happens, the run ends recorded or
        abandoned, and this engine lets go of it. ``definition`` and ``started`` (the run as it
        began), when the caller has them, save reading them again."""
        heartbeat = None if self.started else self._start_heartbeat()
        try:
            with self._lock:
                cancel = self._running[run_id].cancel
            self._publish("run_started", name, started or self.run(run_id))
            status, result, error, trace = "success", {}, None, None
            d = definition
            t0 = time.perf_counter()
            try:
                d = d or self._definition(name)  # a failed read fails the run, as a failed job does
                result = KINDS[d.kind].run(self._context(d, run_id, cancel=cancel)) or {}
            except SkipRun as skip:
                status, result, error = "skipped", skip.result, skip.reason
            except JobCancelled as exc:
                with self._lock:
                    by = self._running[run_id].cancelled_by
                if by is not None:  # asked for (requests.py); else the timeout or a stopping engine asked
                    status, error = "cancelled", f"cancelled on request ({by}); stopped at a check point"
                else:
                    status, error, trace = "failed", redact(one_line(exc)), redact(tb.format_exc())
            except Exception as exc:
                status, error, trace = "failed", redact(one_line(exc)), redact(tb.format_exc())
            duration_ms = round((time.perf_counter() - t0) * 1000, 3)  # to the microsecond
            try:
                self._finish_run(name, run_id, status, result, error, trace, duration_ms, d)
            except Exception as exc:  # busy past the timeout, disk full: don't leave it "running"
                self._abandon(run_id, name, "failed", f"could not record the outcome: {redact(one_line(exc))}")
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

    def _finish_run(self, name, run_id, status, result, error, trace, duration_ms, definition=None) -> None:
        """Record how the run ended. ``definition``: the one it ran with (read here when it has none:
        the run could not read it, and this read fails the same way, so the run is abandoned)."""
        Run = self.store.m.Run
        kind = KINDS.get((definition or self._definition(name)).kind)
        counters = kind.counters if kind and status == "success" else ()
        with self.store.atomic():
            state = self._lock_state(name)
            ts = self.clock().timestamp()  # after any wait for the lock, as the next run's start is
            finished = Run.update(finished_at=ts, duration_ms=duration_ms, status=status,
                                  result=json.dumps(result, default=str), error=error, traceback=trace).where(
                (Run.id == run_id) & (Run.status == "running")).execute() == 1
            if finished:
                self._count_outcome(name, status, ts, duration_ms, result, counters, state)
            self._release_lease(name, run_id)

    def _count_outcome(self, name: str, status: str, ts: float, duration_ms: float | None, result: dict,
                       counters: tuple[str, ...], state=None) -> None:
        """Counters, totals and failure backoff for a finished run; inside the caller's transaction,
        which holds the job's state row (read, then written from what was read). ``state``: that row
        as the caller locked it, when it did (nothing it reads has been written since); else locked here."""
        JobState = self.store.m.JobState
        row = state if state is not None else self._lock_state(name)
        if status == "cancelled":  # neither a failure nor a success: counters and backoff stay as they were
            JobState.update(runs=JobState.runs + 1, last_run_at=ts, last_status=status,
                            last_duration_ms=duration_ms).where(JobState.name == name).execute()
            return
        failures = row.consecutive_failures + 1 if status == "failed" else 0
        totals = json.loads(row.totals or "{}")
        for key in counters:
            if isinstance(result.get(key), (int, float)):
                totals[key] = totals.get(key, 0) + result[key]
        changes = {
            JobState.runs: JobState.runs + 1, JobState.errors: JobState.errors + int(status == "failed"),
            JobState.last_run_at: ts, JobState.last_status: status, JobState.last_duration_ms: duration_ms,
            JobState.consecutive_failures: failures, JobState.totals: json.dumps(totals, sort_keys=True),
            JobState.backoff_until: None,
        }
        if failures:
            # 2.0 ** (capped exponent): a job failing for weeks must not overflow the float.
            delay = min(self.config.engine.backoff_base_s * 2.0 ** min(failures - 1, 60),
                        self.config.engine.backoff_cap_s)
            backoff = ts + delay
            changes[JobState.backoff_until] = backoff
            # The cursor waits out the backoff (a job without a cursor keeps none).
            changes[JobState.next_run_at] = Case(None, [(JobState.next_run_at.is_null(False), self.store.greatest(
                JobState.next_run_at, backoff))], JobState.next_run_at)
        JobState.update(changes).where(JobState.name == name).execute()
        if not failures and row.consecutive_failures:
            # This run ends a backoff that had pushed the cursor out: back onto the schedule (else the
            # next sync would take the late cursor for a clock that went back).
            d = self._definition(name)
            natural = d.next_due(self.clock()) if d.enabled and not self.paused else None
            if natural is not None:
                JobState.update(next_run_at=natural).where(
                    (JobState.name == name) & (JobState.next_run_at > natural)).execute()

    def _end_run(self, run_id: int, job: str, status: str, why: str, now: float) -> bool:
        """Mark a run that will not finish by itself ended; inside the caller's transaction, which
        holds the job's state row. False when it had ended already (compare-and-set)."""
        Run, JobState = self.store.m.Run, self.store.m.JobState
        ended = Run.update(status=status, finished_at=now, error=why,
                           duration_ms=self.store.round_to((now - Run.started_at) * 1000, 3)).where(
            (Run.id == run_id) & (Run.status == "running")).execute() == 1
        if ended:
            JobState.update(last_status=status).where(JobState.name == job).execute()
        return ended

    def _interrupt(self, run_id: int, job: str, why: str) -> None:
        self._abandon(run_id, job, "interrupted", why)

    def _abandon(self, run_id: int, job: str, status: str, why: str, count_failure: bool = False,
                 release: bool = True) -> None:
        """End a run of this engine that will not finish by itself (stopped, timed out, unrecordable)."""
        now = self.clock().timestamp()
        with self.store.atomic():
            state = self._lock_state(job)
            ended = self._end_run(run_id, job, status, why, now)  # writes last_status only
            if ended and count_failure:
                self._count_outcome(job, "failed", now, None, {}, (), state)
            if release:
                self._release_lease(job, run_id)
        if release:
            self._forget(run_id)
        if ended:
            self._publish("run_finished", job, self.run(run_id))

    def _forget(self, run_id: int) -> None:
        with self._idle:
            self._running.pop(run_id, None)
            self._idle.notify_all()

    # -- timeouts and heartbeat -------------------------------------------------------

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

    def _start_heartbeat(self) -> threading.Event:
        """Renew this engine's leases while a run goes on without the sync loop (CLI runs), and
        look for a request to cancel it as often as the sync loop would."""
        done = threading.Event()
        period = self.config.engine.lease_ttl_s / 3
        look = min(period, self.config.engine.poll_interval_s)

        def beat() -> None:
            next_renewal = time.monotonic() + period
            while not done.wait(look):
                try:
                    self._apply_cancels()
                    if time.monotonic() >= next_renewal:
                        next_renewal += period
                        self._renew_leases()
                except Exception:
                    log.exception("lease renewal failed")

        threading.Thread(target=beat, name="memtui-lease", daemon=True).start()
        return done


__all__ = ["ActiveRun", "RunnerMixin", "db_problem", "one_line"]
