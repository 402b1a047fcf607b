"""Schedule specs: parsing, validation, words, and the APScheduler triggers behind them.

A spec is an interval (``30s``, ``5m``, ``2h``, ``1d``, ``1h30m``) or a 5-field
cron expression. Intervals use APScheduler's ``IntervalTrigger``. Cron uses
cronsim, which follows crontab(5) in every field (0 and 7 are Sunday, a
restricted day-of-month and day-of-week match either) where APScheduler's
``CronTrigger.from_crontab`` does not, wrapped as an APScheduler trigger.
Everything is checked here, because APScheduler accepts a zero or negative
interval silently.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import cached_property
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cronsim import CronSim, CronSimError

ACCEPTED = "an interval such as 30s, 5m, 2h, 1d or 1h30m, or a 5-field cron expression such as '0 2 * * 0'"
MAX_INTERVAL_S = 366 * 86400
MAX_JITTER_S = 86400
_INTERVAL = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
# crontab(5)'s nicknames; @reboot has no meaning for a scheduler that is already up.
_NICKNAMES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """A spec, time zone or jitter that cannot be used; the message is one line."""


def local_zone() -> tzinfo:
    from tzlocal import get_localzone

    return get_localzone()


def parse_zone(name: str | None) -> tzinfo:
    if name is None or name == "":
        return local_zone()
    try:
        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError for paths, TypeError...
        raise ScheduleError(
            f"unknown time zone {name!r}; use an IANA name such as UTC or Europe/Berlin"
        ) from None


def parse_interval(spec: str) -> int | None:
    """Seconds for an interval spec, None when ``spec`` is not interval-shaped."""
    match = _INTERVAL.match(spec)
    if not match or not any(match.groups()):
        return None
    if any(g and len(g) > 9 for g in match.groups()):
        return MAX_INTERVAL_S + 1  # absurdly long; also keeps int() away from huge digit strings
    return sum(int(v or 0) * mult for v, mult in zip(match.groups(), (86400, 3600, 60, 1)))


def interval_words(seconds: int) -> str:
    parts = []
    for unit, size in _UNITS:
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return "every " + " ".join(parts)


class CrontabTrigger(BaseTrigger):
    """An APScheduler trigger firing on a crontab(5) expression, evaluated by cronsim."""

    def __init__(self, expression: str, timezone: tzinfo, jitter: int | None = None):
        self.expression = expression
        self.timezone = timezone
        self.jitter = jitter
        CronSim(expression, datetime.now(timezone))  # raises CronSimError when invalid

    def get_next_fire_time(self, previous_fire_time, now):
        start = (previous_fire_time or now).astimezone(self.timezone)
        try:
            fire = next(CronSim(self.expression, start))
        except StopIteration:  # e.g. Feb 30th: never fires
            return None
        return self._apply_jitter(fire, self.jitter, now)

    def __str__(self):
        return f"cron[{self.expression}]"


@dataclass(frozen=True)
class Schedule:
    """A validated schedule: spec, time zone name (None = local) and jitter."""

    spec: str
    timezone: str | None = None
    jitter_s: int = 0

    @classmethod
    def parse(cls, spec: str, timezone: str | None = None, jitter_s: int = 0) -> "Schedule":
        if not isinstance(spec, str):
            raise ScheduleError(f"schedule must be text: {ACCEPTED}")
        spec = " ".join(spec.split())
        if not spec:
            raise ScheduleError(f"empty schedule; expected {ACCEPTED}")
        if not isinstance(jitter_s, int) or isinstance(jitter_s, bool) or not 0 <= jitter_s <= MAX_JITTER_S:
            raise ScheduleError(f"jitter must be whole seconds from 0 to {MAX_JITTER_S}")
        parse_zone(timezone)
        seconds = parse_interval(spec.lower())
        if seconds is not None:
            if seconds <= 0:
                raise ScheduleError(f"interval {spec!r} must be longer than zero; expected {ACCEPTED}")
            if seconds > MAX_INTERVAL_S:
                raise ScheduleError(f"interval {spec!r} is longer than 366 days")
            return cls(spec.lower(), timezone or None, jitter_s)
        expression = _NICKNAMES.get(spec.lower(), spec)
        if len(expression.split()) != 5:
            raise ScheduleError(f"cannot read {spec!r}; expected {ACCEPTED}")
        try:
            CronSim(expression, datetime.now(parse_zone(timezone)))
        except (CronSimError, ValueError) as exc:
            raise ScheduleError(f"bad cron expression {spec!r}: {exc}; expected {ACCEPTED}") from None
        return cls(spec, timezone or None, jitter_s)

    @cached_property
    def interval_s(self) -> int | None:
        return parse_interval(self.spec)

    @property
    def is_interval(self) -> bool:
        return self.interval_s is not None

    @cached_property
    def cron_expression(self) -> str | None:
        return None if self.is_interval else _NICKNAMES.get(self.spec.lower(), self.spec)

    @cached_property
    def tz(self) -> tzinfo:
        return parse_zone(self.timezone)

    def describe(self, jitter: bool = True) -> str:
        """The schedule in words: 'every 30 s', 'at 02:00 on Sunday (Europe/Berlin), jitter 5 min'."""
        if self.is_interval:
            words = interval_words(self.interval_s)
        else:
            text = CronSim(self.cron_expression, datetime.now(self.tz)).explain()
            words = text[:1].lower() + text[1:]
            if self.timezone:
                words += f" ({self.timezone})"
        if jitter and self.jitter_s:
            words += f", jitter {interval_words(self.jitter_s)[6:]}"
        return words

    def trigger(self, anchor: datetime | None, now: datetime, jitter: bool = True) -> BaseTrigger:
        """The APScheduler trigger; intervals run on a grid anchored at ``anchor``."""
        jitter_s = self.jitter_s if jitter and self.jitter_s else None
        if self.is_interval:
            step = timedelta(seconds=self.interval_s)
            start = anchor if anchor is not None else now + step
            return IntervalTrigger(seconds=self.interval_s, start_date=start, timezone=self.tz, jitter=jitter_s)
        return CrontabTrigger(self.cron_expression, self.tz, jitter_s)

    def next_after(self, now: datetime, anchor: datetime | None = None, jitter: bool = True) -> datetime | None:
        """The first fire time strictly after ``now`` (None if the expression never fires).

        Intervals run on the grid anchor + k·interval, for every whole k: an anchor
        ahead of ``now`` (the clock went back) is walked back onto the grid."""
        if anchor is not None and self.is_interval and anchor > now:
            step = timedelta(seconds=self.interval_s)
            anchor -= step * math.ceil((anchor - now) / step)
        trigger = self.trigger(anchor, now, jitter)
        fire = trigger.get_next_fire_time(None, now)
        while fire is not None and fire <= now:
            fire = trigger.get_next_fire_time(fire, now)
        return fire

    def preview(self, now: datetime, count: int = 3) -> list[datetime]:
        """The next ``count`` fire times without jitter, in the schedule's zone."""
        times: list[datetime] = []
        fire = now
        for _ in range(count):
            nxt = self.next_after(fire, anchor=times[-1] if times and self.is_interval else None, jitter=False)
            if nxt is None:
                break
            times.append(nxt.astimezone(self.tz))
            fire = nxt
        return times

    def count_between(self, first_due: datetime, now: datetime, cap: int = 100_000) -> int:
        """How many fire times fall in [first_due, now]; at most ``cap``."""
        if first_due > now:
            return 0
        if self.is_interval:
            return min(cap, int((now - first_due).total_seconds() // self.interval_s) + 1)
        count = 1
        it = CronSim(self.cron_expression, first_due.astimezone(self.tz))
        for fire in it:
            if fire > now or count >= cap:
                break
            count += 1
        return count
