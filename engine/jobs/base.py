"""What a job kind is: its typed config, its run function, and the context a run gets.

A job kind is one module under engine/jobs/ that defines ``KIND = JobKind(...)``.
``run(ctx)`` does the work and returns a small JSON-able dict (the run's result,
whose numbers the engine also adds up into per-job totals), or raises
``SkipRun`` to record the run as skipped with a reason. Any other exception
fails the run; the engine records its message and traceback.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable

from memtui.engine.clock import Clock
from memtui.models import Store


class JobCancelled(Exception):
    """Raised by ``JobContext.check`` when the engine asked the run to stop (timeout, shutdown)."""


class SkipRun(Exception):
    """Raised by a job that decided not to work this time (a gate said no)."""

    def __init__(self, reason: str, result: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.result = result or {}


@dataclass
class JobContext:
    store: Store
    clock: Clock
    config: Any
    job: str
    run_id: int | None = None
    dry_run: bool = False
    llm: Any = None  # LLMSettings
    tz: tzinfo = timezone.utc  # the job's schedule time zone
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("memtui.jobs"))
    cancel: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Call between batches: stops the run here if the engine asked it to stop."""
        if self.cancel.is_set():
            raise JobCancelled("the engine asked this run to stop")

    def now(self) -> datetime:
        return self.clock()

    def load_checkpoint(self) -> dict:
        row = self.store.execute("SELECT value FROM job_checkpoint WHERE job = ?", (self.job,)).fetchone()
        return json.loads(row[0]) if row else {}

    def save_checkpoint(self, value: dict) -> None:
        """Write the checkpoint; call inside the transaction that did the work it records."""
        self.store.execute(
            "INSERT INTO job_checkpoint (job, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (job) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (self.job, json.dumps(value, sort_keys=True), self.clock().timestamp()),
        )


def in_batches(ctx: JobContext, ids: list[int], size: int, *statements: tuple[str, tuple]) -> int:
    """Run each (sql, params) for every chunk of ``ids``, one transaction per chunk.

    The SQL has an ``{ids}`` slot for the chunk; ``params`` come before the ids.
    Between chunks the run may be told to stop. Returns the summed rowcount of
    the last statement. Chunks go in id order: rows with neighbouring ids share
    pages, so each page is rewritten once instead of once per chunk (2-3x less
    I/O than score or sender order, measured in bench/)."""
    ids = sorted(ids)
    changed = 0
    for start in range(0, len(ids), size):
        chunk = ids[start:start + size]
        marks = ",".join("?" * len(chunk))
        ctx.check()
        with ctx.store.atomic():
            for sql, params in statements:
                count = ctx.store.execute(sql.format(ids=marks), (*params, *chunk)).rowcount
        changed += count
    return changed


def delete_while(ctx: JobContext, table: str, where: str, params: tuple, size: int) -> int:
    """Delete rows of ``table`` matching ``where``, ``size`` per transaction, until none match."""
    total = 0
    while True:
        ctx.check()
        with ctx.store.atomic():
            deleted = ctx.store.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {where} LIMIT ?)", (*params, size),
            ).rowcount
        total += deleted
        if deleted < size:
            return total


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Callable[[JobContext], dict]
    config: type
    summary: str
    counters: tuple[str, ...] = ()  # result keys the engine adds up into the job's totals
    dry_run: bool = False  # run(ctx) honours ctx.dry_run: computes, reports, writes nothing


@dataclass(frozen=True)
class JobSpec:
    """A job as seeded on first start: its name, its kind and default schedule."""

    name: str
    kind: str
    schedule: str
    jitter_s: int = 0
    params: dict = field(default_factory=dict)
    enabled: bool = True
