"""Leases: who may run a job now, and recognising runs whose engine is gone.

A job's lease is three columns of its ``job_state`` row (owner, run id, expiry).
A run starts only by taking it with a compare-and-set UPDATE (free, or expired),
in the same transaction as its ``run`` row, so a job never runs twice at once,
across processes and hosts. The holder renews it: a started engine from its sync
loop, a ``memtui run`` process from a heartbeat thread (runner.py). When a lease
cannot be taken the attempt is recorded as a skipped run saying who holds it.

Recovery: a run left ``running`` is ended as ``interrupted`` by whichever engine
sees it first, when its lease has expired, or it no longer holds its job's
lease, or its owner is a registered engine that stopped or whose heartbeat is
older than one lease TTL (registry.py). Never by a PID check: a PID means
nothing on another host. A run held by a live lease is never touched. The
decision is re-checked inside the transaction that ends the run, with the
``job_state`` row locked, and the end is a compare-and-set on
``status = 'running'``, so several engines recovering at once end a run once.

Lock order, everywhere on PostgreSQL: the ``job_state`` row first, then ``run``
rows; several ``job_state`` rows in name order. Nothing then waits in a cycle.

Part of the Engine (a mixin): uses ``store``, ``clock``, ``config``, ``owner``,
``_registry``, ``_running``/``_lock`` (runs this engine executes), ``_stop``.
"""
from __future__ import annotations

import json
import threading

from peewee import JOIN

from memtui.engine.clock import from_ts
from memtui.engine.runner import ActiveRun
from memtui.engine.types import EngineError

INTERRUPTED = "the process running it stopped before it finished"


class LeaseMixin:
    """Taking, renewing and releasing job leases; ending runs whose holder is gone."""

    def _lock_state(self, job: str):
        """Inside a transaction: lock job ``job``'s state row until it ends (PostgreSQL; SQLite's
        write transaction holds the whole file already). Returns the row, or None."""
        JobState = self.store.m.JobState
        return self.store.for_update(JobState.select().where(JobState.name == job)).first()

    def _lock_states(self) -> None:
        """Inside a transaction: lock every state row, in name order, before UPDATEs that touch
        several of them (pause, resume): two such transactions then never wait for each other in a cycle."""
        JobState = self.store.m.JobState
        list(self.store.for_update(JobState.select(JobState.name).order_by(JobState.name)))

    def _begin_run(self, name: str, reason: str, scheduled_for):
        """Take the lease and insert the run row, inside the caller's transaction.

        Returns (run id, holder, start time): holder is set when the job was busy (the row says
        skipped). The start time is read once the job's state row is locked: a claim that waited
        for the lock (a long run's last write holds SQLite's) then neither records a start before
        the run it follows ended nor gets a lease that is already partly spent."""
        if self._stop.is_set():
            raise EngineError("the engine is stopping; no new runs")
        JobState, Run = self.store.m.JobState, self.store.m.Run
        scheduled_ts = scheduled_for.timestamp() if scheduled_for else None
        before = self._lock_state(name)  # whose lease this claim may replace
        if before is None:  # a job written with plain SQL has no state row yet: only then insert one
            JobState.insert(name=name).on_conflict_ignore().execute()
            before = self._lock_state(name)
        now = self.clock()
        ts = now.timestamp()
        taken = JobState.update(lease_owner=self.owner, lease_expires_at=ts + self.config.engine.lease_ttl_s).where(
            (JobState.name == name) & (JobState.lease_owner.is_null() | (JobState.lease_expires_at < ts))
        ).execute() == 1
        if taken and before is not None and before.lease_owner is not None and before.lease_run_id is not None:
            # An expired lease: its run's engine is gone (or lost it). End that run in this transaction,
            # so the history never shows it "running" beside the run that replaces it.
            self._end_run(before.lease_run_id, name, "interrupted", INTERRUPTED, ts)
        if taken:
            run_id = Run.insert(**self._running_row(name, reason, scheduled_ts, ts)).execute()
            JobState.update(lease_run_id=run_id).where(JobState.name == name).execute()
            return run_id, None, now
        holder, since = (JobState.select(JobState.lease_owner, Run.started_at)
                         .join(Run, JOIN.LEFT_OUTER, on=(Run.id == JobState.lease_run_id))
                         .where(JobState.name == name).tuples().get())
        where = "in this process" if holder == self.owner else f"in {holder}"
        since_text = f" since {from_ts(since).isoformat(timespec='seconds')}" if since else ""
        run_id = Run.insert(job=name, reason=reason, scheduled_for=scheduled_ts, started_at=ts, finished_at=ts,
                            duration_ms=0, status="skipped", result=json.dumps({"busy": True, "holder": holder}),
                            error=f"already running {where}{since_text}", owner=self.owner).execute()
        JobState.update(runs=JobState.runs + 1, last_run_at=ts, last_status="skipped", last_duration_ms=0).where(
            JobState.name == name).execute()
        return run_id, holder, now

    def _running_row(self, name: str, reason: str, scheduled_ts: float | None, ts: float) -> dict:
        """The columns of the run row a claim that took the lease inserts (runner.py builds the
        run_started event from them too, rather than reading the row back)."""
        return dict(job=name, reason=reason, scheduled_for=scheduled_ts, started_at=ts, status="running",
                    owner=self.owner)

    def _track(self, run_id: int, name: str, started_ts: float) -> None:
        """Count a run as this engine's, once the transaction that began it has committed (a
        rolled-back claim must not leave a run that stop() would wait for)."""
        with self._lock:
            self._running[run_id] = ActiveRun(name, started_ts, threading.Event())

    def _renew_leases(self) -> None:
        """Push the expiry of every lease this engine holds one lease TTL past now."""
        with self._lock:
            mine = list(self._running)
        if not mine:
            return
        JobState = self.store.m.JobState
        held = (JobState.lease_owner == self.owner) & JobState.lease_run_id.in_(mine)
        with self.store.atomic():
            list(self.store.for_update(JobState.select(JobState.name).where(held).order_by(JobState.name)))
            expires = self.clock().timestamp() + self.config.engine.lease_ttl_s  # after any wait for the lock
            JobState.update(lease_expires_at=expires).where(held).execute()

    def _release_lease(self, job: str, run_id: int) -> None:
        """Free ``job`` if ``run_id`` still holds it; inside the caller's transaction."""
        JobState = self.store.m.JobState
        JobState.update(lease_owner=None, lease_run_id=None, lease_expires_at=None).where(
            (JobState.name == job) & (JobState.lease_run_id == run_id)).execute()

    def _lease_is_live(self, lease: tuple, run_id: int, owner: str, now: float, gone: set[str]) -> bool:
        """Whether run ``run_id`` of ``owner`` still holds its job's lease, unexpired, for an owner
        not known to be gone. ``lease``: the job's (lease owner, lease run id, lease expiry)."""
        lease_owner, lease_run_id, lease_expires_at = lease
        if lease_owner != owner or lease_run_id != run_id:
            return False  # the lease was freed or taken by another run: nothing keeps this row running
        if (lease_expires_at or 0) < now:
            return False
        return owner not in gone

    def recover_interrupted(self) -> int:
        """End as interrupted every run left ``running`` by a process that is gone, free its lease,
        and return how many this call ended. Safe with several engines doing it at once."""
        Run, JobState = self.store.m.Run, self.store.m.JobState
        now = self.clock().timestamp()
        running = list(Run.select(Run.id, Run.job, Run.owner, JobState.lease_owner, JobState.lease_run_id,
                                  JobState.lease_expires_at)
                       .join(JobState, JOIN.LEFT_OUTER, on=(JobState.name == Run.job))
                       .where(Run.status == "running").order_by(Run.id).tuples())
        if not running:
            return 0
        gone = self._registry.gone_engines(now)
        ended = 0
        for run_id, job, owner, *lease in running:
            with self._lock:
                if run_id in self._running:
                    continue  # ours, alive: its lease is renewed by this very loop
            if self._lease_is_live(tuple(lease), run_id, owner, now, gone):
                continue  # a first look without a transaction: most runs seen here are alive
            if self._recover(run_id, job, owner):
                ended += 1
        return ended

    def _recover(self, run_id: int, job: str, owner: str) -> bool:
        """End run ``run_id`` as interrupted if, looked at again with its job's state row locked
        (and the time read again after that lock), it is still not held by a live lease."""
        with self.store.atomic():
            state = self._lock_state(job)
            now = self.clock().timestamp()
            lease = (state.lease_owner, state.lease_run_id, state.lease_expires_at) if state else (None,) * 3
            if self._lease_is_live(lease, run_id, owner, now, self._registry.gone_engines(now, owner)):
                return False  # renewed since the first look
            ended = self._end_run(run_id, job, "interrupted", INTERRUPTED, now)
            self._release_lease(job, run_id)
        if ended:
            self._publish("run_finished", job, self.run(run_id))
        return ended


__all__ = ["INTERRUPTED", "LeaseMixin"]
