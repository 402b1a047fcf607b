"""The control API: seeding, enable, disable, retime, pause, resume, run now, make due.

Each change is one transaction that writes the definition, the job's new cursor
(scheduling.py) and an ``audit_log`` row with its source (cli, ui, api), and
announces itself to the other engines (``store.notify_change``: NOTIFY on
PostgreSQL; they poll anyway). Then this engine applies it to its own alarms at
once. A time zone given here, or found missing, is resolved to a concrete IANA
name (definitions.py), never stored as "local".

Part of the Engine (a mixin): uses ``store``, ``clock``, ``config``,
``_definition(s)``, ``_cursor``, ``_apply_changes``, ``_spawn``/``_execute``
(runner.py), ``problem``/``_set_problem``.
"""
from __future__ import annotations

import threading

from memtui.engine.definitions import concrete_zone, local_zone_name
from memtui.engine.jobs import DEFAULT_JOBS, KINDS
from memtui.engine.schedule import Schedule, ScheduleError
from memtui.engine.types import EngineError, JobInfo, RunInfo
from memtui.models import StoreError


class ControlMixin:
    """What a person or a program asks of the jobs."""

    def _seed(self) -> None:
        """Insert the default jobs missing from the table; the table wins afterwards."""
        JobDefinition, JobState = self.store.m.JobDefinition, self.store.m.JobState
        now = self.clock()
        ts = now.timestamp()
        with self.store.atomic():
            existing = {name for (name,) in JobDefinition.select(JobDefinition.name).tuples()}
            for spec in DEFAULT_JOBS.values():
                if spec.name in existing:
                    continue
                overrides = self.config.job_definition(spec.name)
                schedule = Schedule.parse(overrides.get("schedule", spec.schedule),
                                          concrete_zone(overrides.get("timezone")),
                                          overrides.get("jitter", spec.jitter_s))
                # Ignored when another engine seeding the same new database wrote it a moment ago.
                JobDefinition.insert(
                    name=spec.name, kind=spec.kind, enabled=bool(overrides.get("enabled", spec.enabled)),
                    schedule=schedule.spec, timezone=schedule.timezone, jitter_s=schedule.jitter_s, config="{}",
                    created_at=ts, updated_at=ts,
                ).on_conflict_ignore().execute()
                JobState.insert(name=spec.name, next_run_at=self._cursor(self._definition(spec.name), now)
                                ).on_conflict_ignore().execute()
            # A definition written with plain SQL: its zone made concrete (as migration 0003 did), and a
            # state row (no schedule until retimed).
            JobDefinition.update(timezone=local_zone_name()).where(
                JobDefinition.timezone.is_null() | (JobDefinition.timezone == "")).execute()
            JobState.insert_from(JobDefinition.select(JobDefinition.name), [JobState.name]).on_conflict_ignore(
            ).execute()

    def _audit(self, action: str, job: str | None, old, new, source: str) -> None:
        self.store.m.AuditLog.insert(
            at=self.clock().timestamp(), action=action, job=job, old_value=None if old is None else str(old),
            new_value=None if new is None else str(new), source=source,
        ).execute()

    # -- enable / disable / retime ------------------------------------------------------

    def enable(self, name: str, source: str = "api") -> JobInfo:
        return self._set_enabled(name, True, source)

    def disable(self, name: str, source: str = "api") -> JobInfo:
        return self._set_enabled(name, False, source)

    def toggle(self, name: str, source: str = "api") -> JobInfo:
        return self._set_enabled(name, not self._definition(name).enabled, source)

    def _set_enabled(self, name: str, enabled: bool, source: str) -> JobInfo:
        JobDefinition, JobState = self.store.m.JobDefinition, self.store.m.JobState
        now = self.clock()
        with self.store.atomic():
            d = self._definition(name)
            if d.enabled != enabled:
                JobDefinition.update(enabled=enabled, updated_at=now.timestamp()).where(
                    JobDefinition.name == name).execute()
                JobState.update(next_run_at=self._cursor(self._definition(name), now)).where(
                    JobState.name == name).execute()
            self._audit("enable" if enabled else "disable", name, d.enabled, enabled, source)
            self.store.notify_change()
        self._apply_changes()
        return self.job(name)

    def retime(self, name: str, spec: str, tz: str | None = None, source: str = "api",
               jitter_s: int | None = None) -> JobInfo:
        """Give job ``name`` a new schedule. ``tz=None`` keeps its time zone; ``tz=""`` is this
        process's local zone, stored by its name."""
        JobDefinition, JobState = self.store.m.JobDefinition, self.store.m.JobState
        now = self.clock()
        with self.store.atomic():
            d = self._definition(name)
            try:
                schedule = Schedule.parse(spec, concrete_zone(d.timezone if tz is None else tz),
                                          d.jitter_s if jitter_s is None else jitter_s)
            except ScheduleError as exc:
                raise EngineError(str(exc)) from None
            JobDefinition.update(schedule=schedule.spec, timezone=schedule.timezone, jitter_s=schedule.jitter_s,
                                 updated_at=now.timestamp()).where(JobDefinition.name == name).execute()
            JobState.update(next_run_at=self._cursor(self._definition(name), now)).where(
                JobState.name == name).execute()
            old = d.schedule + (f" {d.timezone}" if d.timezone else "")
            self._audit("retime", name, old, f"{schedule.spec} {schedule.timezone}", source)
            self.store.notify_change()
        self._apply_changes()
        return self.job(name)

    # -- pause / resume ---------------------------------------------------------------------

    def pause_all(self, source: str = "api") -> None:
        """Stop every job from firing; each job's own enabled flag is kept."""
        JobState = self.store.m.JobState
        with self.store.atomic():
            was = self.paused
            self.store.set_setting("paused", "1")
            self._lock_states()
            JobState.update(next_run_at=None).execute()
            self._audit("pause_all", None, was, True, source)
            self.store.notify_change()
        self._apply_changes()

    def resume_all(self, source: str = "api") -> None:
        """Schedule again exactly the jobs that are enabled, each at its next point on its own grid."""
        JobState = self.store.m.JobState
        now = self.clock()
        with self.store.atomic():
            was = self.paused
            self.store.set_setting("paused", "0")
            self._lock_states()
            for d in self._definitions().values():
                JobState.update(next_run_at=self._cursor(d, now, paused=False)).where(
                    JobState.name == d.name).execute()
            self._audit("resume_all", None, was, False, source)
            self.store.notify_change()
        self._apply_changes()

    # -- running on request ---------------------------------------------------------------------

    def run_now(self, name: str, source: str = "api") -> None:
        """Start job ``name`` in the background now; the schedule is not shifted.

        If it is already running the run is recorded as skipped, with the reason. While the jobs
        are held (the database is gone, read-only or full) it writes nothing and says why."""
        self._refuse_while_held()
        self._definition(name)
        with self.store.atomic():
            self._audit("run_now", name, None, None, source)
            self.store.notify_change()
        self._apply_changes()  # the change is told before the run it starts, not at the next poll
        self._spawn(name, "manual")

    def make_due(self, names: list[str]) -> None:
        """Make these enabled jobs due now: they run as ordinary scheduled runs (``memtui --demo``
        uses it so there is activity at once; nobody pressed run-now, so nothing is audited)."""
        JobState = self.store.m.JobState
        now = self.clock().timestamp()
        with self.store.atomic():
            for name in sorted(names):  # several state rows: in name order, like every writer
                d = self._definition(name)
                if d.enabled and not self.paused:
                    JobState.update(next_run_at=now).where(JobState.name == name).execute()
            self.store.notify_change()
        self._apply_changes()

    def run_job(self, name: str, reason: str = "manual") -> RunInfo:
        """Run job ``name`` in the calling thread and return its run record."""
        # The definition read to refuse an unknown job is the one the run uses: read once, not thrice.
        return self._execute(name, reason, definition=self._definition(name))

    def dry_run(self, name: str) -> dict:
        """What job ``name`` would do now, computed without writing anything (no run row either)."""
        d = self._definition(name)
        kind = KINDS.get(d.kind)
        if kind is None or not kind.dry_run:
            raise EngineError(f"job {name!r} has no dry run (jobs that do: "
                              f"{', '.join(n for n, k in self._kinds_by_job().items() if k.dry_run)})")
        return kind.run(self._context(d, run_id=None, dry_run=True, cancel=threading.Event()))

    def _kinds_by_job(self) -> dict:
        return {name: KINDS[d.kind] for name, d in self._definitions().items() if d.kind in KINDS}

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
        self.store.limit_lock_wait(seconds)


__all__ = ["ControlMixin"]
