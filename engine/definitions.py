"""Job definitions as the engine reads them, and the time zone a job is stored with.

A job's definition (kind, enabled, schedule, zone, jitter, config) lives in the
``job_definition`` table, the one truth for every engine and command on the
database; the engine reads it fresh each poll and never caches it across one.

A job's zone is a concrete IANA name (``Europe/Berlin``), resolved once, by the
process that seeds or retimes the job (``concrete_zone``). It is never NULL for
"local to whichever process reads it": engines on hosts in different zones
would each compute another cursor and "repair" each other's. A NULL can only
come from a row written with plain SQL; it is read as UTC, the same on every
host, until the next engine start gives it its own zone (as migration 0003 did).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import tzlocal

from memtui.engine import schedule
from memtui.engine.clock import from_ts
from memtui.engine.jobs import KINDS
from memtui.engine.schedule import Schedule, ScheduleError
from memtui.engine.types import EngineError
from memtui.models import Store

ZONE_OF_NULL = "UTC"  # how a NULL zone (a row written by hand) is read, on every host alike


def local_zone_name() -> str:
    """This process's time zone as an IANA name, or UTC when it has none usable.

    Asks ``schedule.local_zone()`` first (one place to pin the local zone, as tests do), then
    tzlocal for the name alone (a zone read from a file may carry none)."""
    candidates = []
    try:
        candidates.append(getattr(schedule.local_zone(), "key", None))  # a ZoneInfo knows its name
    except Exception:  # no zone configured, or one tzlocal cannot read
        pass
    try:
        candidates.append(tzlocal.get_localzone_name())
    except Exception:
        pass
    for name in candidates:
        if isinstance(name, str) and name:
            try:
                ZoneInfo(name)
            except Exception:  # a name this machine's zone database does not know
                continue
            return name
    return "UTC"


def concrete_zone(name: str | None) -> str:
    """The zone to store for a job: ``name``, or this process's local zone when none is given."""
    return name or local_zone_name()


@dataclass(frozen=True)
class Definition:
    """One ``job_definition`` row, as read at one moment."""

    name: str
    kind: str
    enabled: bool
    schedule: str
    timezone: str | None  # None only for a row written with plain SQL: read as UTC
    jitter_s: int
    config: str
    updated_at: float  # interval grids are anchored here: a retime starts a new grid

    @classmethod
    def from_row(cls, row) -> "Definition":
        return cls(row.name, row.kind, bool(row.enabled), row.schedule, row.timezone, row.jitter_s, row.config,
                   row.updated_at)

    @property
    def zone(self) -> str:
        return self.timezone or ZONE_OF_NULL

    def parsed(self) -> Schedule:
        return Schedule.parse(self.schedule, self.zone, self.jitter_s)

    def words(self, jitter: bool = True) -> str:
        """The schedule in words. The zone is named only when it is not this process's: a person
        reads unlabelled times in their own zone, and a job elsewhere says where."""
        return self.parsed().describe(jitter=jitter, local_zone=local_zone_name())

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
                                  if schedule.is_interval else None, key=self.name)
        return due.timestamp() if due else None


def _columns(store: Store) -> tuple:
    JobDefinition = store.m.JobDefinition
    return (JobDefinition.name, JobDefinition.kind, JobDefinition.enabled, JobDefinition.schedule,
            JobDefinition.timezone, JobDefinition.jitter_s, JobDefinition.config, JobDefinition.updated_at)


def read_definitions(store: Store) -> dict[str, Definition]:
    JobDefinition = store.m.JobDefinition
    rows = JobDefinition.select(*_columns(store)).order_by(JobDefinition.name)
    return {row.name: Definition.from_row(row) for row in rows}


def read_definition(store: Store, name: str) -> Definition:
    """Job ``name``'s definition; EngineError naming the known jobs when there is none."""
    JobDefinition = store.m.JobDefinition
    row = JobDefinition.select(*_columns(store)).where(JobDefinition.name == name).first()
    if row is None:
        known = ", ".join(read_definitions(store)) or "none"
        raise EngineError(f"unknown job {name!r} (known: {known})")
    return Definition.from_row(row)


__all__ = ["Definition", "ZONE_OF_NULL", "concrete_zone", "local_zone_name", "read_definition",
           "read_definitions"]
