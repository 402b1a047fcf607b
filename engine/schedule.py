"""Schedule specs: parsing, validation, words, fire times and jitter.

A spec is an interval (``30s``, ``5m``, ``2h``, ``1d``, ``1h30m``) or a 5-field
cron expression. Cron uses cronsim, which follows crontab(5) in every field (0
and 7 are Sunday, a restricted day-of-month and day-of-week match either) and
Debian cron across DST changes, where APScheduler's ``CronTrigger.from_crontab``
does not; ``Schedule.trigger`` wraps the fire times for APScheduler. Everything is
checked here: APScheduler would accept a zero or negative interval silently.

Fire times are computed and compared as UTC instants, and jitter is added to the
instant: wall-clock arithmetic on an aware datetime drops ``fold``, and two
datetimes of one zone compare by wall time, so on a DST fall-back night a jittered
fire once landed an hour early and the "next fire" loop spun forever. Jitter only
ever delays (0 to N seconds after the stated time) and is capped so it never
reaches the next fire time (see ``Schedule.effective_jitter_s``).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import cached_property, lru_cache
from itertools import islice
from typing import Iterator
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from cronsim import CronSim, CronSimError

UTC = timezone.utc
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
# cronsim may hand back times at or before its start (a fixed-time job started inside a
# repeated fall-back hour, a skipped spring-forward time moved onto one that also fires).
# At most a day of minutes can do that in a row; more means cronsim is stuck.
_MAX_STALLED_STEPS = 1440
# Wall-clock days walked to find how close together a cron expression's days can be: two
# leap-year cycles; the day patterns that matter for jitter (1 or 2 days apart) show early.
_DAY_WALK = (datetime(2000, 1, 1), datetime(2008, 1, 1))


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


def duration_words(seconds: int) -> str:
    """'1 h 30 min', '45 s'."""
    parts = []
    for unit, size in _UNITS:
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts) or "0 s"


def interval_words(seconds: int) -> str:
    return "every " + duration_words(seconds)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


@lru_cache(maxsize=512)
def cron_min_gap_s(expression: str) -> int | None:
    """The shortest wall-clock time between two consecutive fires of ``expression``, in
    seconds; None when no two fires were found (e.g. only on February 29th).

    Wall clock, so without DST: a change can bring two fires closer for one night, which
    ``Schedule.next_after`` handles fire by fire."""
    sim = CronSim(expression, _DAY_WALK[0])
    day_times = sorted(h * 60 + m for h in sim.hours for m in sim.minutes)  # minutes after midnight
    gaps = [b - a for a, b in zip(day_times, day_times[1:])]
    # The last fire of one matching day and the first of the next: find the closest two days.
    minute, hour, dom, month, dow = expression.split()
    days_apart = None
    previous = None
    try:
        for day in CronSim(f"0 0 {dom} {month} {dow}", _DAY_WALK[0] - timedelta(seconds=1)):
            if day >= _DAY_WALK[1]:
                break
            if previous is not None:
                apart = (day - previous).days
                days_apart = apart if days_apart is None else min(days_apart, apart)
                if days_apart == 1:
                    break
            previous = day
    except (StopIteration, CronSimError):
        pass
    if days_apart is not None:
        gaps.append(days_apart * 1440 - (day_times[-1] - day_times[0]))
    return min(gaps) * 60 if gaps else None


class ScheduleTrigger(BaseTrigger):
    """An APScheduler trigger firing when a Schedule says (``Schedule.next_after``)."""

    def __init__(self, schedule: "Schedule", anchor: datetime | None, jitter: bool = True):
        self.schedule = schedule
        self.anchor = anchor
        self.jitter = jitter

    def get_next_fire_time(self, previous_fire_time, now):
        return self.schedule.next_after(previous_fire_time or now, self.anchor, self.jitter)

    def __str__(self):
        return f"schedule[{self.schedule.spec}]"


def _spread(key: str, fire: datetime) -> float:
    """A number in [0, 1) that ``key`` and ``fire`` always give alike, and that differs between keys."""
    digest = hashlib.blake2b(f"{key}\0{fire.timestamp()!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


@lru_cache(maxsize=256, typed=True)
def _read_once(cls, spec: str, timezone: str | None, jitter_s: int) -> "Schedule":
    return cls._read(spec, timezone, jitter_s)  # an error is raised each time, never kept


@lru_cache(maxsize=256)
def _explain(expression: str) -> str:
    """A valid cron expression in words (cronsim's; what it says does not depend on the start)."""
    return CronSim(expression, datetime.now(timezone.utc)).explain()


@dataclass(frozen=True)
class Schedule:
    """A validated schedule: spec, time zone name (None = local) and jitter."""

    spec: str
    timezone: str | None = None
    jitter_s: int = 0

    @classmethod
    def parse(cls, spec: str, timezone: str | None = None, jitter_s: int = 0) -> "Schedule":
        """The schedule, validated; ScheduleError saying what is wrong. A schedule is immutable, so
        each one is read once and kept (``_read_once``): the dashboard lists every job's schedule in words
        on each update, and reading one builds a cron parser or two."""
        if isinstance(spec, str) and isinstance(timezone, (str, type(None))) and type(jitter_s) is int:
            return _read_once(cls, spec, timezone, jitter_s)
        return cls._read(spec, timezone, jitter_s)  # raises, saying which is wrong

    @classmethod
    def _read(cls, spec: str, timezone: str | None = None, jitter_s: int = 0) -> "Schedule":
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

    @cached_property
    def effective_jitter_s(self) -> int:
        """The most jitter actually added: ``jitter_s``, capped at half the time between fires
        (the interval, or the shortest gap of the cron expression).

        Below the whole gap so a delayed run never reaches the next fire time (which would then
        be skipped); half so consecutive runs stay at least half a gap apart, and 'every 1 min'
        never runs twice within a second."""
        if not self.jitter_s:
            return 0
        gap = self.interval_s if self.is_interval else cron_min_gap_s(self.cron_expression)
        return self.jitter_s if gap is None else min(self.jitter_s, gap // 2)

    def describe(self, jitter: bool = True, local_zone: str | None = None) -> str:
        """The schedule in words: 'every 30 s', 'at 02:00 on Sunday (Europe/Berlin), up to 5 min later'.

        A cron schedule names its zone unless it is ``local_zone`` (the reader's own: a person
        reads unlabelled times in their own zone)."""
        if self.is_interval:
            words = interval_words(self.interval_s)
        else:
            text = _explain(self.cron_expression)
            words = text[:1].lower() + text[1:]
            if self.timezone and self.timezone != local_zone:
                words += f" ({self.timezone})"
        if jitter and self.jitter_s:
            applied = self.effective_jitter_s
            words += f", up to {duration_words(applied)} later" if applied else ", no jitter"
            if applied < self.jitter_s:
                gap = "the interval" if self.is_interval else "the shortest time between runs"
                words += f": {duration_words(self.jitter_s)} set, but jitter is capped at half {gap}"
        return words

    def trigger(self, anchor: datetime | None, now: datetime, jitter: bool = True) -> BaseTrigger:
        """An APScheduler trigger with these fire times; intervals run on a grid anchored at
        ``anchor`` (default: ``now``, so the first fire is one interval later)."""
        return ScheduleTrigger(self, anchor if anchor is not None or not self.is_interval else now, jitter)

    # -- fire times ---------------------------------------------------------------

    def _cron_after(self, start: datetime) -> Iterator[datetime]:
        """The cron fire times strictly after ``start``, as UTC instants, each strictly later
        than the one before; ScheduleError if cronsim stops advancing."""
        last = _utc(start)
        fires = CronSim(self.cron_expression, last.astimezone(self.tz))
        stalled = 0
        while True:
            try:
                fire = _utc(next(fires))
            except StopIteration:  # e.g. Feb 30th: never fires
                return
            if fire > last:
                stalled = 0
                last = fire
                yield fire
                continue
            stalled += 1
            if stalled > _MAX_STALLED_STEPS:
                raise ScheduleError(f"cron {self.cron_expression!r} in {self.timezone or 'local time'} stopped "
                                    f"advancing at {last.isoformat()}; cannot compute the next fire time")

    def _fires_after(self, now: datetime, anchor: datetime | None) -> Iterator[datetime]:
        """The fire times (no jitter) strictly after ``now``, in UTC, each later than the last."""
        if not self.is_interval:
            yield from self._cron_after(now)
            return
        step = timedelta(seconds=self.interval_s)
        if anchor is None:
            fire = now + step
        else:  # the grid anchor + k·step for every whole k, so an anchor ahead of now works too
            fire = _utc(anchor) + step * ((now - _utc(anchor)) // step + 1)
        while True:
            yield fire
            fire += step

    def next_after(self, now: datetime, anchor: datetime | None = None, jitter: bool = True,
                   key: str = "") -> datetime | None:
        """The first fire time strictly after ``now``, jitter included, as a UTC instant (None if
        the expression never fires). UTC, so comparing two results compares instants: two
        datetimes with the same zone object compare by wall time, ignoring ``fold``.

        Intervals run on the grid anchor + k·interval, for every whole k: an anchor
        ahead of ``now`` (the clock went back) is walked back onto the grid. Jitter delays
        a fire by 0 to ``effective_jitter_s`` seconds, and by less than half the time to the
        following fire (a DST change can bring two cron fires closer), so walking
        ``next_after`` from one due time to the next meets every fire time exactly once.

        The delay is drawn from ``key`` (the job's name) and the fire time, not at random: the same
        fire of the same job is always delayed alike, so pausing and resuming, or another engine
        computing it, does not move it (it moved by a minute on each resume), while jobs with the same
        schedule still spread apart."""
        fires = self._fires_after(_utc(now), anchor)
        fire = next(fires, None)
        if fire is None:
            return None
        cap = self.effective_jitter_s if jitter else 0
        if cap > 0:
            following = next(fires, None)
            if following is not None:
                cap = min(cap, (following - fire).total_seconds() / 2)
            fire += timedelta(seconds=cap * _spread(key, fire))  # added to the instant: DST-proof
        return fire

    def preview(self, now: datetime, count: int = 3) -> list[datetime]:
        """The next ``count`` fire times without jitter, in the schedule's zone (to show them;
        compare them in UTC)."""
        return [t.astimezone(self.tz) for t in islice(self._fires_after(_utc(now), None), max(count, 0))]

    def count_between(self, first_due: datetime, now: datetime, cap: int = 100_000) -> int:
        """How many fire times fall in [first_due, now]; at most ``cap``.

        ``first_due`` counts as one (it is a due time, maybe delayed by jitter)."""
        first_due, now = _utc(first_due), _utc(now)
        if first_due > now:
            return 0
        if self.is_interval:
            return min(cap, int((now - first_due).total_seconds() // self.interval_s) + 1)
        count = 1
        for fire in self._cron_after(first_due):
            if fire > now or count >= cap:
                break
            count += 1
        return count
