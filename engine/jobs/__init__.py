"""The job registry: every job kind by name, and the jobs seeded on first start.

Adding a kind: write its module here, then add it to ``KINDS`` and, if it should
exist by default, to ``DEFAULT_JOBS``.
"""
from __future__ import annotations

from typing import Any, Mapping

from memtui.engine.config import ConfigError, build
from memtui.engine.jobs import compact, consolidate, decay, dedupe, profile, promote, rollup
from memtui.engine.jobs.base import JobContext, JobKind, JobSpec, SkipRun

KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (promote.KIND, consolidate.KIND, decay.KIND, dedupe.KIND, rollup.KIND, profile.KIND, compact.KIND)
}

DEFAULT_JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec("promote", "promote", "30s"),
        JobSpec("consolidate", "consolidate", "10m"),
        JobSpec("decay", "decay", "1h"),
        JobSpec("dedupe", "dedupe", "15m"),
        JobSpec("rollup-day", "rollup", "0 1 * * *", jitter_s=300, params={"level": "day"}),
        JobSpec("rollup-week", "rollup", "0 2 * * 0", jitter_s=300, params={"level": "week"}),
        JobSpec("rollup-month", "rollup", "0 3 1 * *", jitter_s=300, params={"level": "month"}),
        JobSpec("profile", "profile", "1h"),
        JobSpec("compact", "compact", "0 4 * * 0"),
    )
}


def config_for(name: str, params: Mapping[str, Any], where: str | None = None):
    """The typed config of job ``name``: its seeded params overlaid with ``params``."""
    spec = DEFAULT_JOBS.get(name)
    if spec is None:
        raise ConfigError(f"unknown job {name!r}")
    merged = {**spec.params, **params}
    return build(KINDS[spec.kind].config, merged, where or f"[jobs.{name}]")


def config_of_kind(definitions, kind: str, file_params=lambda name: {}):
    """The typed config the job of ``kind`` runs with (the one named after the kind first, of
    ``definitions``: engine.definitions.Definition rows), its stored config over ``file_params(name)``;
    the kind's defaults when there is none or it does not read."""
    import json

    for d in sorted(definitions, key=lambda d: (d.name != kind, d.name)):
        if d.kind == kind:
            try:
                params = {**file_params(d.name), **json.loads(d.config or "{}")}
                return config_for(d.name, params) if d.name in DEFAULT_JOBS else KINDS[kind].config(**params)
            except (ConfigError, TypeError, ValueError):
                break
    return KINDS[kind].config()


__all__ = ["KINDS", "config_of_kind", "DEFAULT_JOBS", "JobContext", "JobKind", "JobSpec", "SkipRun", "config_for"]
