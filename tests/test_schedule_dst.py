"""Fire times across DST changes: every due time exactly once, with and without jitter, and never a hang.

Walks ``Schedule.next_after`` from one due time to the next across both 2027
changes in New York, Berlin and Lord Howe (a 30-minute shift), checks it against a
reference written here without cronsim, fuzzes it with hypothesis, and drives the
engine through the New York fall-back night (issue 16.1: an hourly job with jitter
ran one due time 15 times there, then hung). Every check runs under a SIGALRM
deadline, so a regression fails instead of hanging the suite.
"""
from __future__ import annotations

import json
import signal
import time
from contextlib import contextmanager
from datetime import date, datetime, time as dtime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings, strategies as st

from memtui.engine.clock import from_ts
from memtui.engine.schedule import Schedule
from tests.kinds import fire

UTC = timezone.utc
NY = ZoneInfo("America/New_York")


class Hang(BaseException):
    """Raised by the deadline; a BaseException so the engine's ``except Exception`` cannot swallow it."""


@contextmanager
def deadline(seconds: float):
    """Fail (not hang) when the block runs longer than ``seconds``; SIGALRM interrupts a pure-Python spin."""
    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Hang as exc:
        pytest.fail(f"hung: {exc}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- an independent reference: crontab(5) across DST as Debian cron (and cronsim) define it ------

def _field(text: str, size: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        lo, hi = (0, size - 1) if base == "*" else (int(base), int(base))
        values.update(range(lo, hi + 1, int(step or 1)))
    return values


def _exists(wall: datetime, tz) -> bool:
    return wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def reference(expr: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """Fire times in (start, end], UTC. A job at a fixed time (minute and hour both not '*...')
    runs once on a fall-back night (the first of the two) and, when its time is skipped in
    spring, at the first wall time that exists after it; any other job runs at every real
    instant whose wall time matches, so twice in a repeated hour and never in a skipped one."""
    tz = ZoneInfo(zone)
    minute, hour = expr.split()[:2]
    minutes, hours = _field(minute, 60), _field(hour, 24)
    fires: set[datetime] = set()
    if not minute.startswith("*") and not hour.startswith("*"):
        day = start.astimezone(tz).date() - timedelta(days=1)
        while day <= end.astimezone(tz).date() + timedelta(days=1):
            for h in hours:
                for m in minutes:
                    wall = datetime.combine(day, dtime(h, m))
                    while not _exists(wall, tz):
                        wall += timedelta(minutes=1)
                    fires.add(wall.replace(tzinfo=tz, fold=0).astimezone(UTC))
            day += timedelta(days=1)
    else:
        t = start.replace(second=0, microsecond=0)
        while t <= end:
            local = t.astimezone(tz)
            if local.minute in minutes and local.hour in hours:
                fires.add(t)
            t += timedelta(minutes=1)
    return sorted(f for f in fires if start < f <= end)


# -- every due time of both transition days, exactly once -----------------------------------------

TRANSITION_DAYS = {  # 2027: (spring forward, fall back), local dates
    "America/New_York": (date(2027, 3, 14), date(2027, 11, 7)),
    "Europe/Berlin": (date(2027, 3, 28), date(2027, 10, 31)),
    "Australia/Lord_Howe": (date(2027, 10, 3), date(2027, 4, 4)),  # 30 minutes each way
}
EXPRESSIONS = ["0 * * * *", "30 1 * * *", "*/15 * * * *", "0 2 * * *"]
CASES = [(zone, day, expr) for zone, days in TRANSITION_DAYS.items() for day in days for expr in EXPRESSIONS]


def walk(schedule: Schedule, start: datetime, end: datetime, key: str = "") -> list[datetime]:
    """next_after from due time to due time (as the engine's claim does) until past ``end``; ``key``: the
    job's name, which the jitter is drawn from."""
    out, now = [], start
    slowest = 0.0
    while True:
        began = time.perf_counter()
        due = schedule.next_after(now, key=key)
        slowest = max(slowest, time.perf_counter() - began)
        assert due is not None and due > now.astimezone(UTC), f"{due} not after {now}"
        if due > end:
            break
        out.append(due.astimezone(UTC))
        now = due
    assert slowest < 0.5, f"a next_after call took {slowest:.2f} s"
    return out


@pytest.mark.parametrize("jitter_s", [0, 300, 3000])
@pytest.mark.parametrize("zone, day, expr", CASES, ids=[f"{z}-{d}-{e}" for z, d, e in CASES])
def test_walking_a_transition_day_meets_every_due_time_exactly_once(zone, day, expr, jitter_s):
    tz = ZoneInfo(zone)
    start = datetime.combine(day, dtime(0), tz).astimezone(UTC) - timedelta(hours=2)
    end = datetime.combine(day + timedelta(days=1), dtime(0), tz).astimezone(UTC) + timedelta(hours=2)
    schedule = Schedule.parse(expr, zone, jitter_s=jitter_s)
    expected = reference(expr, zone, start, end + timedelta(days=1))
    with deadline(5):
        walked = walk(schedule, start, end, key=f"{zone} {day} {expr} {jitter_s}")
    # due time i belongs to fire time i and comes before fire time i + 1: none missed, none twice
    for i, due in enumerate(walked):
        assert expected[i] <= due < expected[i + 1], (i, due, expected[i])
    if not jitter_s:
        assert walked == [e for e in expected if e <= end]
    jitter = timedelta(seconds=schedule.effective_jitter_s)
    assert all(due - fire <= jitter for due, fire in zip(walked, expected))
    assert len(walked) >= len([e for e in expected if e <= end - jitter])
    with deadline(5):
        # in UTC: an ambiguous local time compares unequal to every datetime of another zone (PEP 495)
        preview = Schedule.parse(expr, zone).preview(start, len(walked))
        assert [t.astimezone(UTC) for t in preview] == expected[:len(walked)]


def labels(times, tz) -> list[str]:
    return [t.astimezone(tz).strftime("%H:%M%z") for t in times]


@pytest.mark.parametrize("zone, after, expr, local", [
    ("America/New_York", datetime(2027, 11, 6, 23, 59), "0 * * * *",
     ["00:00-0400", "01:00-0400", "01:00-0500", "02:00-0500", "03:00-0500"]),
    ("America/New_York", datetime(2027, 3, 13, 23, 59), "0 * * * *", ["00:00-0500", "01:00-0500", "03:00-0400"]),
    ("America/New_York", datetime(2027, 11, 6, 23, 59), "30 1 * * *", ["01:30-0400", "01:30-0500"]),
    ("America/New_York", datetime(2027, 3, 13, 23, 59), "0 2 * * *", ["03:00-0400", "02:00-0400"]),
    ("Europe/Berlin", datetime(2027, 10, 30, 23, 59), "0 * * * *",
     ["00:00+0200", "01:00+0200", "02:00+0200", "02:00+0100", "03:00+0100"]),
    ("Europe/Berlin", datetime(2027, 3, 27, 23, 59), "0 2 * * *", ["03:00+0200", "02:00+0200"]),
    ("Australia/Lord_Howe", datetime(2027, 4, 4, 1, 10), "*/15 * * * *",
     ["01:15+1100", "01:30+1100", "01:45+1100", "01:30+1030", "01:45+1030", "02:00+1030"]),
    ("Australia/Lord_Howe", datetime(2027, 10, 2, 23, 59), "0 2 * * *", ["02:30+1100", "02:00+1100"]),
    ("Australia/Lord_Howe", datetime(2027, 10, 2, 23, 59), "0 * * * *", ["00:00+1030", "01:00+1030", "03:00+1100"]),
])
def test_the_night_of_the_change_by_hand(zone, after, expr, local):
    # A once-a-day job's second label is the next day's run: the night of the change had exactly one.
    tz = ZoneInfo(zone)
    schedule = Schedule.parse(expr, zone)
    times, now = [], after.replace(tzinfo=tz)
    with deadline(5):
        for _ in local:
            now = schedule.next_after(now)
            times.append(now)
    assert labels(times, tz) == local
    assert all(a.astimezone(UTC) < b.astimezone(UTC) for a, b in zip(times, times[1:]))


def test_issue_16_1_hourly_cron_with_jitter_returns_after_the_second_one_oclock():
    now = datetime(2027, 11, 7, 5, 10, tzinfo=UTC)  # 01:10 EDT; next is 01:00 EST, the second 01:00
    schedule = Schedule.parse("0 * * * *", "America/New_York", jitter_s=300)
    with deadline(5):
        for n in range(50):
            due = schedule.next_after(now, key=f"job-{n}")
            assert datetime(2027, 11, 7, 6, tzinfo=UTC) <= due <= datetime(2027, 11, 7, 6, 5, tzinfo=UTC)
            local = due.astimezone(NY)
            assert (local.hour, local.utcoffset(), local.fold) == (1, timedelta(hours=-5), 1)


def test_interval_with_jitter_in_a_dst_zone_keeps_real_time_steps():
    schedule = Schedule.parse("1h", "America/New_York", jitter_s=300)
    anchor = datetime(2027, 11, 7, 0, 0, tzinfo=NY)  # 00:00 EDT, given in the zone itself
    with deadline(5):
        due = schedule.next_after(datetime(2027, 11, 7, 1, 30, tzinfo=NY), anchor=anchor)  # 01:30 EDT
    assert datetime(2027, 11, 7, 6, tzinfo=UTC) <= due <= datetime(2027, 11, 7, 6, 5, tzinfo=UTC)  # 01:00 EST


# -- hypothesis: any zone, any instant of 2027, any jitter -----------------------------------------

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Antarctica/Troll",
         "Pacific/Chatham", "America/Santiago", "Africa/Casablanca", "Asia/Kolkata"]
SPECS = ["0 * * * *", "30 1 * * *", "*/15 * * * *", "0 2 * * *", "30 * * * *", "0 0 * * *", "45 2 * * *",
         "0,30 0-3 * * *", "*/7 1-3 * * *", "0 9 * * 1-5", "0 2 * * 0", "1h", "30m", "90m", "1d", "7m"]
YEAR = datetime(2027, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=None)
def transitions(zone: str) -> tuple[datetime, ...]:
    """The instants in 2027 when ``zone``'s UTC offset changes (to the half hour)."""
    tz, out = ZoneInfo(zone), []
    t, offset = YEAR, YEAR.astimezone(ZoneInfo(zone)).utcoffset()
    while t.year == 2027:
        t += timedelta(minutes=30)
        if t.astimezone(tz).utcoffset() != offset:
            out.append(t)
            offset = t.astimezone(tz).utcoffset()
    return tuple(out)


@st.composite
def instants(draw, zone: str) -> datetime:
    near = transitions(zone)
    if near and draw(st.booleans()):  # half the draws within four hours of a change
        return draw(st.sampled_from(near)) + timedelta(seconds=draw(st.integers(-4 * 3600, 4 * 3600)))
    return YEAR + timedelta(seconds=draw(st.integers(0, 365 * 86400 - 1)),
                            microseconds=draw(st.integers(0, 999_999)))


@st.composite
def cases(draw):
    zone = draw(st.sampled_from(ZONES))
    now = draw(instants(zone))
    if draw(st.booleans()):  # callers may pass times in the schedule's own zone: same tzinfo, fold matters
        now = now.astimezone(ZoneInfo(zone))
    return zone, now


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(case=cases(), spec=st.sampled_from(SPECS), jitter_s=st.sampled_from([0, 1, 59, 300, 1799, 3600, 86400]),
       seed=st.integers(0, 2**32 - 1))
@example(case=("America/New_York", datetime(2027, 11, 7, 5, 10, tzinfo=UTC)), spec="0 * * * *", jitter_s=300,
         seed=0)
def test_next_after_always_moves_forward_and_meets_each_fire_time_once(case, spec, jitter_s, seed):
    zone, now = case
    schedule = Schedule.parse(spec, zone, jitter_s=jitter_s)
    anchor = now if schedule.is_interval else None  # the walk stays on the grid preview uses
    with deadline(5):
        # compared and shifted in UTC only: in-zone datetimes compare by wall time and lose fold
        fires = [t.astimezone(UTC) for t in schedule.preview(now, 7)]
        assert len(fires) == 7 and fires[0] > now.astimezone(UTC)
        assert all(a < b for a, b in zip(fires, fires[1:]))
        t, walked = now, []
        for i in range(6):
            due = schedule.next_after(t, anchor=anchor, key=str(seed))
            assert due > t.astimezone(UTC)
            assert fires[i] <= due < fires[i + 1]  # its own fire time, before the next one
            walked.append(due)
            t = due
        assert schedule.count_between(fires[0], fires[5]) == 6
    jitter = timedelta(seconds=schedule.effective_jitter_s)
    assert all(due.tzinfo is UTC and due - fire <= jitter for due, fire in zip(walked, fires))


# -- the engine through the New York fall-back night ---------------------------------------------

@pytest.mark.both_backends
def test_engine_runs_each_hourly_due_time_once_through_the_new_york_fall_back_night(engine, store, clock):
    JobState, Run = store.m.JobState, store.m.Run
    clock.set(datetime(2027, 11, 7, 3, 30, tzinfo=UTC))  # 23:30 EDT on the 6th
    with deadline(8):
        engine.retime("compact", "0 * * * *", tz="America/New_York", jitter_s=300)
        while True:
            cursor = JobState.select(JobState.next_run_at).where(JobState.name == "compact").scalar()
            if cursor >= datetime(2027, 11, 7, 10, 30, tzinfo=UTC).timestamp():
                break
            clock.set(from_ts(cursor))
            fire(engine, "compact", cursor)
            fire(engine, "compact", cursor)  # a second alarm for the same due time claims nothing
    rows = list(Run.select(Run.scheduled_for, Run.status, Run.reason, Run.result).where(Run.job == "compact")
                .order_by(Run.id).tuples())
    assert [(status, reason) for _, status, reason, _ in rows] == [("success", "scheduled")] * len(rows), rows
    hours = [from_ts(r[0]).replace(minute=0, second=0, microsecond=0) for r in rows]
    # 00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 ... 05:00 EST: each once, none missed
    assert hours == [datetime(2027, 11, 7, h, tzinfo=UTC) for h in range(4, 11)]
    assert all(0 <= r[0] - h.timestamp() <= 300 for r, h in zip(rows, hours))
    assert all(json.loads(r[3] or "{}").get("missed") is None for r in rows)
