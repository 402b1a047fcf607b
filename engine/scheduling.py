"""The schedule: cursors in the database, APScheduler alarms at them, and claiming a due time.

Each job's next due time is ``job_state.next_run_at``, its *cursor*. Whoever
changes a definition (this engine, the CLI, another engine on another host)
writes the new cursor in the same transaction, and every running engine adopts
stored cursors within one poll (``_apply_changes``; on PostgreSQL at once, woken
by NOTIFY). APScheduler is only the alarm clock: one ``DateTrigger`` alarm per
job at its cursor, translated from the engine's clock to wall time.

When an alarm fires, the engine claims that due time by moving the cursor on
with a compare-and-set UPDATE (``... WHERE next_run_at = due``): of two engines
only one wins a due time. In the same transaction it records a ``missed`` row
when the alarm is later than the grace time (then the run is a ``catch-up``),
takes the job's lease and writes the run row. On PostgreSQL (READ COMMITTED) the
UPDATE re-checks its WHERE on the row it locks, so the loser sees the moved
cursor and claims nothing.

After the clock jumps back a cursor can sit far beyond its schedule;
``_repair_cursors`` brings it back, again by compare-and-set.

Part of the Engine (a mixin): uses ``store``, ``clock``, ``config``,
``_scheduler``/``_alarms`` (APScheduler and the alarm per job), ``_lock``,
``_apply_lock``, ``_seen``/``_seen_paused`` (what was last told), ``_stop``,
``problem``, ``_publish``, ``_begin_run`` (leases.py).
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from apscheduler.jobstores.base import JobLookupError
from apscheduler.triggers.date import DateTrigger
from peewee import Case, fn

from memtui.engine.clock import from_ts
from memtui.engine.definitions import Definition
from memtui.engine.runner import db_problem
from memtui.engine.types import AuditEntry, EngineError
from memtui.models import DB_ERRORS

log = logging.getLogger("memtui.engine")
UTC = timezone.utc
# Audit ids are read again this far back: on PostgreSQL a row can commit after one with a higher
# id (ids come from a sequence, commits in any order), and must still be told, once.
AUDIT_LOOKBACK = 100


class SchedulingMixin:
    """Cursors, alarms, claims, and adopting what other processes stored."""

    def _cursor(self, d: Definition, now: datetime, paused: bool | None = None) -> float | None:
        """The due time to store for ``d``: its next fire time, or None when it must not fire.

        A failing job's backoff holds across disable/enable, pause/resume and retime: none of
        them is a request to retry at once (run-now is)."""
        paused = self.paused if paused is None else paused
        if not d.enabled or paused:
            return None
        due = d.next_due(now)
        JobState = self.store.m.JobState
        backoff_until = JobState.select(JobState.backoff_until).where(JobState.name == d.name).scalar()
        if due is not None and backoff_until and backoff_until > due:
            due = backoff_until
        return due

    # -- adopting the stored state -------------------------------------------------

    def _apply_changes(self) -> None:
        """Make alarms match the stored definitions and cursors; publish what changed.

        One thread at a time reads and applies, so an older snapshot never lands after a newer
        one; events go out after the locks are released (a subscriber may touch the database)."""
        JobState = self.store.m.JobState
        events: list[tuple[str, str | None, AuditEntry | None]] = []
        with self._apply_lock:
            for entry in self._new_audit_entries():
                events.append(("audit", entry.job, entry))
            definitions = self._definitions()
            states = {row[0]: row[1:] for row in JobState.select(
                JobState.name, JobState.next_run_at, JobState.runs, JobState.last_status, JobState.last_run_at,
                JobState.lease_owner, JobState.consecutive_failures).tuples()}
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

    def _audit_high_water(self) -> None:
        """Take every audit row written so far as already told (history, not news)."""
        AuditLog = self.store.m.AuditLog
        self._audit_seen = AuditLog.select(fn.COALESCE(fn.MAX(AuditLog.id), 0)).scalar()
        self._audit_told = {row_id for (row_id,) in AuditLog.select(AuditLog.id).where(
            AuditLog.id > self._audit_seen - AUDIT_LOOKBACK).tuples()}

    def _new_audit_entries(self) -> list[AuditEntry]:
        """Audit rows written since the last look, by anyone: each change is told once."""
        AuditLog = self.store.m.AuditLog
        floor = self._audit_seen - AUDIT_LOOKBACK
        ids = [row_id for (row_id,) in AuditLog.select(AuditLog.id).where(AuditLog.id > floor).tuples()
               if row_id not in self._audit_told]
        if not ids:
            return []
        rows = list(AuditLog.select().where(AuditLog.id.in_(ids)).order_by(AuditLog.id))
        self._audit_told.update(row.id for row in rows)
        self._audit_seen = max(self._audit_seen, *(row.id for row in rows))
        self._audit_told = {row_id for row_id in self._audit_told if row_id > self._audit_seen - AUDIT_LOOKBACK}
        return [AuditEntry(from_ts(row.at), row.action, row.job, row.old_value, row.new_value, row.source, id=row.id)
                for row in rows]

    # -- alarms ----------------------------------------------------------------------

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
            self._set_problem(db_problem(self.store.label, exc))
            return
        except EngineError as exc:  # stopping, or the job was deleted meanwhile
            log.info("alarm of %s not taken: %s", name, exc)
            return
        except Exception:
            log.exception("alarm of %s failed", name)
            return
        if begun is not None:  # first: a claimed run must start whatever happens next
            self._start_thread(self._run_guarded, name, begun)
        try:
            self._apply_changes()  # the next alarm: ours, or whatever another process stored
        except DB_ERRORS as exc:
            self._set_problem(db_problem(self.store.label, exc))

    # -- claiming a due time ----------------------------------------------------------

    def _claim(self, name: str, due_ts: float) -> int | None:
        """In one transaction: move the cursor on (compare-and-set, so of two engines only one
        wins a due time), record a miss when late, take the lease and write the run row.
        Returns the id of a run to execute, or None."""
        # The alarm entry stays until the claim is decided: a sync in between then sees the same due
        # time and leaves it alone instead of re-adding an alarm that is still running.
        if self._stop.is_set() or self.problem is not None:
            return None
        JobState = self.store.m.JobState
        d = self._definition(name)
        schedule = d.schedulable()
        if schedule is None:
            return None
        due = from_ts(due_ts)
        with self.store.atomic():
            state = self._lock_state(name)  # the backoff read here is the one the cursor moves past
            now = self.clock()  # after any wait for the lock: lateness is judged when the claim is made
            next_ts = d.next_due(now, after=due)  # strictly after the due time: never the same one again
            if next_ts is not None and schedule.is_interval and next_ts - now.timestamp() < schedule.interval_s / 2:
                # A run this late stands in for the grid point just ahead too: an interval job never runs
                # twice within half its interval (a start-up 29.8 s late ran "every 30s" again 0.2 s later).
                # Calendar schedules keep every stated time ("at 03:00" stays at 03:00).
                next_ts = d.next_due(now, after=from_ts(next_ts))
            if state is not None and state.backoff_until and next_ts is not None:
                next_ts = max(next_ts, state.backoff_until)
            claimed = JobState.update(next_run_at=next_ts).where(
                (JobState.name == name) & (JobState.next_run_at == due_ts)).execute() == 1
            if not claimed:
                return None  # another engine ran this due time, or the job was changed meanwhile
            missed_id = None
            reason = "scheduled"
            if (now - due).total_seconds() > self.config.engine.misfire_grace_s:
                missed_id = self._insert_missed(name, due, now, schedule.count_between(due, now))
                reason = "catch-up"
            run_id, holder, started = self._begin_run(name, reason, due)
        if holder is None:
            self._track(run_id, name, started.timestamp())
        if missed_id is not None:
            self._publish("run_finished", name, self.run(missed_id))
        if holder is not None:
            self._publish("run_finished", name, self.run(run_id))
            return None
        return run_id

    def _insert_missed(self, name: str, due: datetime, now: datetime, count: int) -> int:
        return self.store.m.Run.insert(
            job=name, reason="scheduled", scheduled_for=due.timestamp(), started_at=now.timestamp(),
            finished_at=now.timestamp(), duration_ms=0, status="missed",
            result=json.dumps({"missed": count, "first_missed": due.isoformat()}),
            error=f"{count} run(s) missed since {due.isoformat(timespec='seconds')}; one catch-up run follows",
            owner=self.owner,
        ).execute()

    def _repair_cursors(self) -> None:
        """After the clock jumps back, a cursor can sit far in the future: bring it back.

        Only a cursor beyond the fire time *after* the next one is taken for a clock that went
        back. One step ahead is what another engine leaves when it has just claimed the next due
        time: read by an engine whose clock lags a little (hosts are never exactly in step), that
        cursor must stand, or the due time it claimed would be handed out and run a second time."""
        JobState = self.store.m.JobState
        now = self.clock()
        cap = now.timestamp() + self.config.engine.backoff_cap_s
        states = {row[0]: row[1:] for row in JobState.select(
            JobState.name, JobState.next_run_at, JobState.backoff_until).where(
            JobState.next_run_at.is_null(False)).tuples()}
        for d in self._definitions().values():
            schedule = d.schedulable()
            if not d.enabled or d.name not in states or schedule is None:
                continue
            cursor, backoff_until = states[d.name]
            natural = d.next_due(now)
            if natural is None:
                continue
            following = d.next_due(now, after=from_ts(natural)) or natural
            latest = max(following + schedule.effective_jitter_s, min(backoff_until or 0, cap)) + 1
            if cursor > latest:
                log.warning("%s was due at %s, beyond its schedule: the clock went back; rescheduling",
                            d.name, from_ts(cursor).isoformat(timespec="seconds"))
                # A backoff is capped too (a job without one keeps none).
                capped = Case(None, [(JobState.backoff_until.is_null(False),
                                      self.store.least(JobState.backoff_until, cap))], JobState.backoff_until)
                with self.store.atomic():
                    JobState.update(next_run_at=natural, backoff_until=capped).where(
                        (JobState.name == d.name) & (JobState.next_run_at == cursor)).execute()


__all__ = ["AUDIT_LOOKBACK", "SchedulingMixin"]
