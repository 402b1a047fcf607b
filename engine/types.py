"""Plain dataclasses the engine hands out (jobs, runs, events, engines) and its one error.

Callers (the CLI, the dashboard, an agent) never see ORM rows, so nothing
outside the engine can lazily touch the database from the wrong thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RUN_STATUSES = ("running", "success", "failed", "skipped", "missed", "interrupted", "cancelled")
RUN_REASONS = ("scheduled", "manual", "catch-up")


class EngineError(Exception):
    """A request the engine refuses (unknown job, bad spec); the message is one line."""


@dataclass(frozen=True)
class JobInfo:
    name: str
    kind: str
    enabled: bool
    schedule: str
    schedule_text: str  # in words, without the jitter (jitter_s says it)
    timezone: str  # an IANA name, resolved when the job was seeded or retimed; never "local"
    jitter_s: int
    next_run: datetime | None
    last_run: datetime | None
    last_status: str | None
    last_duration_ms: float | None  # fractional milliseconds
    runs: int
    errors: int
    consecutive_failures: int
    backoff_until: datetime | None
    running: bool
    paused: bool
    totals: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    schedule_detail: str = ""  # in words with the jitter as applied: "at 01:00 every day (UTC), up to 5 min later"

    def to_json(self) -> dict[str, Any]:
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {
            "name": self.name, "kind": self.kind, "enabled": self.enabled,
            "schedule": self.schedule, "schedule_text": self.schedule_detail or self.schedule_text,
            "timezone": self.timezone, "jitter_s": self.jitter_s,
            "next_run": iso(self.next_run), "last_run": iso(self.last_run),
            "last_status": self.last_status, "last_duration_ms": self.last_duration_ms,
            "runs": self.runs, "errors": self.errors,
            "consecutive_failures": self.consecutive_failures,
            "backoff_until": iso(self.backoff_until), "running": self.running,
            "paused": self.paused, "totals": self.totals, "config": self.config,
        }


@dataclass(frozen=True)
class RunInfo:
    id: int
    job: str
    reason: str
    scheduled_for: datetime | None
    started: datetime
    finished: datetime | None
    duration_ms: float | None  # fractional milliseconds
    status: str
    result: dict[str, Any] | None
    error: str | None
    traceback: str | None
    owner: str

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_json(self) -> dict[str, Any]:
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {
            "id": self.id, "job": self.job, "reason": self.reason,
            "scheduled_for": iso(self.scheduled_for), "started": iso(self.started),
            "finished": iso(self.finished), "duration_ms": self.duration_ms,
            "status": self.status, "result": self.result, "error": self.error,
            "traceback": self.traceback,
        }


@dataclass(frozen=True)
class Event:
    """Something the engine did. ``kind`` is one of run_started, run_finished,
    job_changed, paused, resumed, state_changed (another process changed the store),
    health (jobs held or resumed: ``Engine.problem`` says why), and audit (a change
    recorded in the audit log by anyone — this process, the CLI, another dashboard —
    picked up by this engine; ``audit`` holds it), and engines (while attached: an
    engine serving the store started, stopped or beat)."""

    kind: str
    job: str | None = None
    run: RunInfo | None = None
    at: datetime | None = None
    audit: AuditEntry | None = None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    action: str
    job: str | None
    old_value: str | None
    new_value: str | None
    source: str
    id: int | None = field(default=None, compare=False)  # the audit_log row


@dataclass(frozen=True)
class EngineInfo:
    """An engine process serving the database (``Engine.engines()``): its ``engine_instance`` row.

    ``alive``: it has beaten within one lease TTL and has not stopped. An engine that died
    (SIGKILL, power cut, another host gone) stays listed as not alive until pruned a day later."""

    id: str  # its lease owner string, host:pid:token (the ``owner`` of its runs)
    host: str
    pid: int
    version: str
    started: datetime
    heartbeat: datetime
    stopped: datetime | None  # set by a clean stop
    running: list[str]  # jobs whose lease it holds now
    alive: bool
    this: bool  # the engine that was asked

    def to_json(self) -> dict[str, Any]:
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        return {
            "id": self.id, "host": self.host, "pid": self.pid, "version": self.version,
            "started": iso(self.started), "heartbeat": iso(self.heartbeat), "stopped": iso(self.stopped),
            "running": list(self.running), "alive": self.alive, "this": self.this,
        }
