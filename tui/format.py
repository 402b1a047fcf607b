"""Text formatting shared by the command line and the dashboard: times, durations, results.

Durations and run results come from engine/report.py, so the dashboard, the
command line and the logs use the same words.
"""
from __future__ import annotations

from datetime import datetime

from memtui.engine.report import describe_result, fmt_duration  # noqa: F401 (re-exported for the dashboard)

_UNITS = ((86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s"))


def fmt_time(when: datetime | None) -> str:
    """A full local timestamp, or '-'."""
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def fmt_short_time(when: datetime | None, now: datetime) -> str:
    """'14:05:09' today, 'Sun 02:00' within a week, '2026-12-01' beyond; '-' for none."""
    if when is None:
        return "-"
    local, today = when.astimezone(), now.astimezone()
    if local.date() == today.date():
        return local.strftime("%H:%M:%S")
    if abs((local - today).days) < 6:
        return local.strftime("%a %H:%M")
    return local.strftime("%Y-%m-%d")


def fmt_delta(seconds: float) -> str:
    """A compact duration: '45s', '3m 20s', '2h 5m', '3d 4h'."""
    seconds = int(abs(seconds))
    for size, unit, sub_size, sub_unit in _UNITS:
        if seconds >= size:
            rest = (seconds % size) // sub_size
            return f"{seconds // size}{unit}" + (f" {rest}{sub_unit}" if rest else "")
    return f"{seconds}s"

