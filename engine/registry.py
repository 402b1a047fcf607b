"""The engines serving one database: each started engine's ``engine_instance`` row and heartbeat.

A started engine registers itself (id = its lease owner string ``host:pid:token``,
host, pid, memtui version, start time), renews its heartbeat from the sync loop at
least every third of a lease TTL, and sets ``stopped_at`` on a clean stop. Any
engine can then tell which others are alive, on any host, without a PID check
(a PID means nothing on another machine): an engine is gone when it stopped or
its heartbeat is older than one lease TTL. Rows of engines gone for more than a
day are pruned when an engine starts.

A ``memtui run`` process is not an engine and does not register; its run is
alive while the run's lease is renewed (see engine/leases.py).

Times are the engine's clock (the injected one in tests), like leases.
"""
from __future__ import annotations

import os
import socket
from collections import defaultdict
from functools import lru_cache
from importlib import metadata

from peewee import fn

from memtui.engine.clock import Clock, from_ts
from memtui.engine.types import EngineInfo
from memtui.models import Store

PRUNE_AFTER_S = 86400.0  # an engine gone this long is forgotten


@lru_cache(maxsize=1)
def memtui_version() -> str:
    try:
        return metadata.version("memtui")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def host_and_pid(owner: str) -> tuple[str, int]:
    """The host and pid an owner string ``host:pid:token`` names (this process's if it names none)."""
    parts = owner.rsplit(":", 2)
    if len(parts) == 3 and parts[0] and parts[1].isdigit():
        return parts[0], int(parts[1])
    return socket.gethostname(), os.getpid()


class EngineRegistry:
    """This engine's row in ``engine_instance``, and what the rows say about every engine."""

    def __init__(self, store: Store, clock: Clock, owner: str, lease_ttl_s: float):
        self.store = store
        self.clock = clock
        self.owner = owner
        self.lease_ttl_s = lease_ttl_s
        self.registered = False
        self._started_at: float | None = None
        self._last_beat: float | None = None

    def register(self) -> None:
        """Write this engine's row (started now, beating now), and forget engines long gone."""
        EngineInstance = self.store.m.EngineInstance
        now = self.clock().timestamp()
        self._started_at = now
        with self.store.atomic():
            gone_since = fn.COALESCE(EngineInstance.stopped_at, EngineInstance.heartbeat_at)
            EngineInstance.delete().where(gone_since < now - PRUNE_AFTER_S).execute()
            self._write(now)
        self.registered = True

    def beat(self) -> None:
        """Renew the heartbeat when a third of a lease TTL has passed since the last one."""
        now = self.clock().timestamp()
        # 0.9: a sync loop whose period is exactly a third of the TTL must not skip every other beat
        # by a hair (a dashboard calls an engine silent after one beat period and two syncs).
        if self._last_beat is not None and now - self._last_beat < 0.9 * self.lease_ttl_s / 3:
            return
        with self.store.atomic():
            self._write(now)
        self.registered = True

    def _write(self, now: float) -> None:
        # An upsert: a row lost meanwhile (the database restored from a backup) comes back.
        EngineInstance = self.store.m.EngineInstance
        host, pid = host_and_pid(self.owner)
        EngineInstance.insert(
            id=self.owner, host=host, pid=pid, version=memtui_version(),
            started_at=self._started_at if self._started_at is not None else now, heartbeat_at=now,
        ).on_conflict(conflict_target=[EngineInstance.id],
                      update={EngineInstance.heartbeat_at: now, EngineInstance.stopped_at: None}).execute()
        self._last_beat = now

    def stopped(self) -> None:
        """A clean stop: this engine's runs are ended or handed back, so nobody waits for it."""
        if not self.registered:
            return
        EngineInstance = self.store.m.EngineInstance
        with self.store.atomic():
            EngineInstance.update(stopped_at=self.clock().timestamp()).where(
                EngineInstance.id == self.owner).execute()

    def gone_engines(self, now: float, owner: str | None = None) -> set[str]:
        """The registered engines (or just ``owner``, if registered) that stopped or stopped beating.
        An owner that never registered (a ``memtui run`` process) is never in it: its lease says."""
        EngineInstance = self.store.m.EngineInstance
        query = EngineInstance.select(EngineInstance.id, EngineInstance.heartbeat_at, EngineInstance.stopped_at)
        if owner is not None:
            query = query.where(EngineInstance.id == owner)
        return {row.id for row in query if not self._alive(row, now)}

    def _alive(self, row, now: float) -> bool:
        return row.stopped_at is None and now - row.heartbeat_at <= self.lease_ttl_s

    def engines(self, include_gone: bool = False) -> list[EngineInfo]:
        """Every registered engine (only the live ones unless ``include_gone``), oldest first."""
        EngineInstance, JobState = self.store.m.EngineInstance, self.store.m.JobState
        now = self.clock().timestamp()
        rows = list(EngineInstance.select().order_by(EngineInstance.started_at, EngineInstance.id))
        held = defaultdict(list)
        leases = (JobState.select(JobState.lease_owner, JobState.name)
                  .where(JobState.lease_owner.in_([row.id for row in rows]) & (JobState.lease_expires_at >= now))
                  .order_by(JobState.name).tuples()) if rows else ()
        for owner, job in leases:
            held[owner].append(job)
        infos = [EngineInfo(
            id=row.id, host=row.host, pid=row.pid, version=row.version, started=from_ts(row.started_at),
            heartbeat=from_ts(row.heartbeat_at), stopped=from_ts(row.stopped_at), running=held[row.id],
            alive=self._alive(row, now), this=row.id == self.owner,
        ) for row in rows]
        return infos if include_gone else [info for info in infos if info.alive]


__all__ = ["EngineRegistry", "PRUNE_AFTER_S", "host_and_pid", "memtui_version"]
