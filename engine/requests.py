"""Requests any process leaves in the database for the engine that can act on them: run now, cancel.

A dashboard attached to a headless engine has no scheduler of its own, and a
``memtui cancel`` has no run of its own: they write a request and the engine
that can act on it does, at its next sync — at once, since the request is
announced (NOTIFY on PostgreSQL, a change counter on SQLite; models/) and
polling is the guarantee.

- Run now: ``job_state.run_requested_at``. Every started engine looks; the
  first takes it with a compare-and-set UPDATE that clears it (one engine, one
  run), then runs the job as any run-now (its lease still guards against a run
  already going on).
- Cancel: ``run.cancel_requested_at`` on the running run. Only the run's owner
  can stop it: it sets the run's stop flag, the job raises at its next check
  point (``JobContext.check``), and the run ends ``cancelled``, saying who asked
  (runner.py). A job that reaches no check point before its timeout is failed as
  a timeout, as always. Both requests are audited by whoever asks.

Part of the Engine (a mixin): uses ``store``, ``clock``, ``owner``,
``_running``/``_lock``, ``_audit``, ``_definition``, ``_lock_state``, ``_spawn``,
``started``, ``problem``, ``_publish``.
"""
from __future__ import annotations

import logging

from memtui.engine.types import EngineError

log = logging.getLogger("memtui.engine")


class RequestsMixin:
    """Asking for a run or a cancel through the database, and acting on what was asked."""

    def request_run(self, name: str, source: str = "api") -> None:
        """Ask the live engines serving this store to run job ``name`` now (the first to see it
        runs it); audited as a run-now. Used where this process runs no jobs itself."""
        self._definition(name)
        JobState = self.store.m.JobState
        with self.store.atomic():
            JobState.insert(name=name).on_conflict_ignore().execute()  # a job written with plain SQL
            JobState.update(run_requested_at=self.clock().timestamp(), run_requested_by=source).where(
                JobState.name == name).execute()
            self._audit("run_now", name, None, None, source)
            self.store.notify_change()

    def cancel(self, name: str, source: str = "api") -> int:
        """Ask whichever engine runs job ``name`` now to stop that run; returns the run's id.

        The run ends ``cancelled`` at its next check point. EngineError when the job is not running."""
        self._definition(name)
        Run = self.store.m.Run
        with self.store.atomic():
            state = self._lock_state(name)
            run_id = state.lease_run_id if state is not None and state.lease_owner else None
            asked = run_id is not None and Run.update(
                cancel_requested_at=self.clock().timestamp(), cancel_requested_by=source).where(
                (Run.id == run_id) & (Run.status == "running")).execute() == 1
            if not asked:
                raise EngineError(f"{name} is not running; nothing to cancel")
            self._audit("cancel", name, None, f"run #{run_id}", source)
            self.store.notify_change()
        self._apply_cancels()  # a run of this process stops without waiting for the next sync
        return run_id

    # -- acting on requests (sync loop; a CLI run's heartbeat for cancels) ---------------------

    def _take_requests(self) -> None:
        self._apply_cancels()
        if self.started and self.problem is None:  # run-now works while paused, as the key does
            self._take_run_requests()

    def _take_run_requests(self) -> None:
        JobState = self.store.m.JobState
        asked = list(JobState.select(JobState.name, JobState.run_requested_at, JobState.run_requested_by)
                     .where(JobState.run_requested_at.is_null(False)).order_by(JobState.name).tuples())
        for name, at, by in asked:
            with self.store.atomic():
                taken = JobState.update(run_requested_at=None, run_requested_by=None).where(
                    (JobState.name == name) & (JobState.run_requested_at == at)).execute() == 1
            if taken:
                log.info("run of %s asked from %s: starting it here", name, by or "another process")
                self._spawn(name, "manual")

    def _apply_cancels(self) -> None:
        """Tell this engine's runs that someone asked to stop them."""
        with self._lock:
            mine = list(self._running)
        if not mine:
            return
        Run = self.store.m.Run
        asked = list(Run.select(Run.id, Run.cancel_requested_by).where(
            Run.id.in_(mine) & Run.cancel_requested_at.is_null(False) & (Run.status == "running")).tuples())
        for run_id, by in asked:
            with self._lock:
                active = self._running.get(run_id)
                if active is None or active.cancelled_by is not None:
                    continue
                active.cancelled_by = by or "api"
            active.cancel.set()  # the job raises at its next ctx.check()


__all__ = ["RequestsMixin"]
