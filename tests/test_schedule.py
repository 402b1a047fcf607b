"""Schedule specs: intervals, crontab(5) semantics, time zones, DST, anchors, counting, jitter."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from memtui.engine.schedule import MAX_JITTER_S, Schedule, ScheduleError

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def as_utc(times):
    return [t.astimezone(UTC) for t in times]


# -- intervals ------------------------------------------------------------------

@pytest.mark.parametrize("spec, seconds, words", [
    ("30s", 30, "every 30 s"),
    ("5m", 300, "every 5 min"),
    ("2h", 7200, "every 2 h"),
    ("1d", 86400, "every 1 d"),
    ("1h30m", 5400, "every 1 h 30 min"),
    ("90s", 90, "every 1 min 30 s"),
    ("1d2h3m4s", 93784, "every 1 d 2 h 3 min 4 s"),
    ("366d", 366 * 86400, "every 366 d"),
])
def test_interval_parses_to_seconds_and_words(spec, seconds, words):
    schedule = Schedule.parse(spec, "UTC")
    assert schedule.is_interval
    assert schedule.interval_s == seconds
    assert schedule.cron_expression is None
    assert schedule.describe() == words
    assert schedule.next_after(NOW) == NOW + timedelta(seconds=seconds)


def test_interval_spec_is_normalised_to_lower_case_without_spaces_around():
    schedule = Schedule.parse("  5M ", "UTC")
    assert schedule.spec == "5m"
    assert schedule.interval_s == 300


def test_timezone_none_or_empty_means_local_and_is_stored_as_none():
    assert Schedule.parse("5m").timezone is None
    assert Schedule.parse("5m", "").timezone is None
    assert Schedule.parse("5m", "Europe/Berlin").timezone == "Europe/Berlin"


ACCEPTED_HINTS = ("30s, 5m, 2h, 1d or 1h30m", "5-field cron")


@pytest.mark.parametrize("spec", ["0s", "0m", "0h", "0d", "0h0m0s"])
def test_zero_interval_is_rejected_saying_what_is_accepted(spec):
    with pytest.raises(ScheduleError) as err:
        Schedule.parse(spec)
    message = str(err.value)
    assert "longer than zero" in message
    for hint in ACCEPTED_HINTS:
        assert hint in message
    assert "\n" not in message


@pytest.mark.parametrize("spec", ["-5m", "-1s", "-0 * * * *"])
def test_negative_interval_is_rejected_saying_what_is_accepted(spec):
    with pytest.raises(ScheduleError) as err:
        Schedule.parse(spec)
    for hint in ACCEPTED_HINTS:
        assert hint in str(err.value)


@pytest.mark.parametrize("spec", [
    "abc", "5x", "5 m", "1m30", "every 5 minutes", "1 2 3", "* * * *", "* * * * * *",
    "@reboot", "@every 5m", "", "   ", "m", "s",
])
def test_garbage_is_rejected_saying_what_is_accepted(spec):
    with pytest.raises(ScheduleError) as err:
        Schedule.parse(spec)
    message = str(err.value)
    for hint in ACCEPTED_HINTS:
        assert hint in message
    assert "\n" not in message


def test_non_text_spec_is_rejected():
    with pytest.raises(ScheduleError):
        Schedule.parse(None)  # type: ignore[arg-type]
    with pytest.raises(ScheduleError):
        Schedule.parse(300)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["367d", "400d", "9000h", "1000000000s"])
def test_interval_longer_than_366_days_is_rejected_naming_the_limit(spec):
    with pytest.raises(ScheduleError) as err:
        Schedule.parse(spec)
    assert "366 days" in str(err.value)


@pytest.mark.parametrize("spec", ["9" * 5000 + "s", "1" * 4400 + "d"], ids=["5000-digit-s", "4400-digit-d"])
def test_absurdly_long_digit_spec_is_a_schedule_error_not_a_crash(spec):
    # Python refuses int() on more than 4300 digits with a bare ValueError; that must
    # still come out as a ScheduleError (one line, what is accepted), not a traceback.
    with pytest.raises(ScheduleError) as err:
        Schedule.parse(spec)
    assert type(err.value) is ScheduleError
    assert "\n" not in str(err.value)


# -- cron: crontab(5) semantics ---------------------------------------------------

@pytest.mark.parametrize("spec", ["0 0 * * 0", "0 0 * * 7", "0 0 * * SUN", "0 0 * * sun"])
def test_day_of_week_0_and_7_are_both_sunday(spec):
    times = Schedule.parse(spec, "UTC").preview(NOW, 3)
    assert as_utc(times) == [utc(2026, 6, 7), utc(2026, 6, 14), utc(2026, 6, 21)]
    assert all(t.weekday() == 6 for t in times)


def test_restricted_day_of_month_and_day_of_week_match_either():
    # crontab(5): "0 0 1 * 1" runs on the 1st of the month AND on every Monday.
    times = Schedule.parse("0 0 1 * 1", "UTC").preview(NOW, 6)
    assert as_utc(times) == [
        utc(2026, 6, 8), utc(2026, 6, 15), utc(2026, 6, 22), utc(2026, 6, 29),
        utc(2026, 7, 1),  # a Wednesday: the 1st
        utc(2026, 7, 6),
    ]


def test_star_day_of_week_does_not_widen_a_restricted_day_of_month():
    times = Schedule.parse("0 0 1 * *", "UTC").preview(NOW, 3)
    assert as_utc(times) == [utc(2026, 7, 1), utc(2026, 8, 1), utc(2026, 9, 1)]


def test_ranges_steps_and_lists():
    assert as_utc(Schedule.parse("0 9-17/4 * * 1-5", "UTC").preview(NOW, 5)) == [
        utc(2026, 6, 1, 13), utc(2026, 6, 1, 17), utc(2026, 6, 2, 9), utc(2026, 6, 2, 13), utc(2026, 6, 2, 17),
    ]
    assert as_utc(Schedule.parse("15,45 */6 * * *", "UTC").preview(NOW, 4)) == [
        utc(2026, 6, 1, 12, 15), utc(2026, 6, 1, 12, 45), utc(2026, 6, 1, 18, 15), utc(2026, 6, 1, 18, 45),
    ]
    assert as_utc(Schedule.parse("*/15 * * * *", "UTC").preview(NOW, 3)) == [
        utc(2026, 6, 1, 12, 15), utc(2026, 6, 1, 12, 30), utc(2026, 6, 1, 12, 45),
    ]
    # weekend only, by range over Saturday..Sunday written 6-7
    assert as_utc(Schedule.parse("0 8 * * 6-7", "UTC").preview(NOW, 3)) == [
        utc(2026, 6, 6, 8), utc(2026, 6, 7, 8), utc(2026, 6, 13, 8),
    ]


@pytest.mark.parametrize("nickname, first", [
    ("@hourly", utc(2026, 6, 1, 13)),
    ("@daily", utc(2026, 6, 2)),
    ("@midnight", utc(2026, 6, 2)),
    ("@weekly", utc(2026, 6, 7)),
    ("@monthly", utc(2026, 7, 1)),
    ("@yearly", utc(2027, 1, 1)),
    ("@annually", utc(2027, 1, 1)),
])
def test_nicknames(nickname, first):
    schedule = Schedule.parse(nickname, "UTC")
    assert not schedule.is_interval
    assert schedule.next_after(NOW) == first


@pytest.mark.parametrize("spec, field", [
    ("60 * * * *", "minute"),
    ("* 24 * * *", "hour"),
    ("0 0 32 * *", "day-of-month"),
    ("0 0 0 * *", "day-of-month"),
    ("0 0 * 13 *", "month"),
    ("0 0 * * 8", "day-of-week"),
    ("*/0 * * * *", "minute"),
])
def test_out_of_range_cron_fields_are_rejected(spec, field):
    with pytest.raises(ScheduleError) as err:
        Schedule.parse(spec, "UTC")
    message = str(err.value)
    assert spec in message
    assert field in message.lower()
    assert "5-field cron" in message


def test_cron_describe_names_time_day_and_zone():
    assert Schedule.parse("0 4 * * 0", "Europe/Berlin").describe() == "at 04:00 on Sunday (Europe/Berlin)"
    assert Schedule.parse("@daily", "UTC").describe() == "at 00:00 every day (UTC)"
    assert Schedule.parse("0 4 * * 0").describe() == "at 04:00 on Sunday"  # local zone: not named


def test_cron_spec_whitespace_is_collapsed():
    assert Schedule.parse("  0   4 * *  0 ", "UTC").spec == "0 4 * * 0"


# -- time zones and DST ------------------------------------------------------------

def test_cron_is_evaluated_in_its_time_zone():
    schedule = Schedule.parse("0 9 * * *", "Europe/Berlin")
    assert schedule.next_after(NOW) == utc(2026, 6, 2, 7)  # 09:00 CEST
    assert schedule.next_after(NOW).astimezone(BERLIN).hour == 9
    assert Schedule.parse("0 9 * * *", "America/New_York").next_after(NOW) == utc(2026, 6, 1, 13)


def test_spring_forward_skipped_time_runs_once_right_after_the_change():
    # 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day.
    times = Schedule.parse("30 2 * * *", "Europe/Berlin").preview(utc(2026, 3, 27, 12), 4)
    assert as_utc(times) == [
        utc(2026, 3, 28, 1, 30),   # 02:30 CET
        utc(2026, 3, 29, 1, 0),    # 03:00 CEST, once
        utc(2026, 3, 30, 0, 30),   # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]
    assert [t.astimezone(BERLIN).strftime("%H:%M") for t in times] == ["02:30", "03:00", "02:30", "02:30"]


def test_spring_forward_wall_clock_time_kept_so_the_day_is_23_hours():
    times = Schedule.parse("0 1 * * *", "Europe/Berlin").preview(utc(2026, 3, 27, 12), 4)
    assert as_utc(times) == [
        utc(2026, 3, 28, 0), utc(2026, 3, 29, 0),  # 01:00 CET
        utc(2026, 3, 29, 23), utc(2026, 3, 30, 23),  # 01:00 CEST
    ]
    assert times[2].astimezone(UTC) - times[1].astimezone(UTC) == timedelta(hours=23)


def test_fall_back_repeated_time_runs_once():
    # 2026-10-25 03:00 CEST goes back to 02:00 CET: 02:30 happens twice; cron runs once.
    times = Schedule.parse("30 2 * * *", "Europe/Berlin").preview(utc(2026, 10, 24, 12), 3)
    assert as_utc(times) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), utc(2026, 10, 27, 1, 30)]
    times = Schedule.parse("0 1 * * *", "Europe/Berlin").preview(utc(2026, 10, 24, 12), 3)
    assert as_utc(times) == [utc(2026, 10, 24, 23), utc(2026, 10, 26, 0), utc(2026, 10, 27, 0)]
    assert times[1].astimezone(UTC) - times[0].astimezone(UTC) == timedelta(hours=25)


def test_count_between_across_a_dst_change():
    schedule = Schedule.parse("30 2 * * *", "Europe/Berlin")
    # 28th 02:30 CET, 29th 03:00 CEST, 30th 02:30 CEST
    assert schedule.count_between(utc(2026, 3, 28, 1, 30), utc(2026, 3, 30, 12)) == 3


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe/Berlinn", "../../etc/passwd", "UTC+5"])
def test_unknown_time_zone_is_rejected(zone):
    with pytest.raises(ScheduleError) as err:
        Schedule.parse("0 3 * * *", zone)
    assert "unknown time zone" in str(err.value)
    assert repr(zone) in str(err.value)
    with pytest.raises(ScheduleError):
        Schedule.parse("5m", zone)


# -- next_after, anchors, preview, count_between ------------------------------------

def test_next_after_is_strictly_after_now_for_cron():
    hourly = Schedule.parse("0 * * * *", "UTC")
    assert hourly.next_after(utc(2026, 6, 1, 12)) == utc(2026, 6, 1, 13)
    assert hourly.next_after(utc(2026, 6, 1, 11, 59, 59)) == utc(2026, 6, 1, 12)
    assert hourly.next_after(utc(2026, 6, 1, 12, 0, 0) + timedelta(microseconds=1)) == utc(2026, 6, 1, 13)


def test_next_after_is_strictly_after_now_for_an_interval_on_its_grid():
    five = Schedule.parse("5m", "UTC")
    # anchor exactly now: the grid point "now" is not after now
    assert five.next_after(NOW, anchor=NOW) == NOW + timedelta(minutes=5)
    # now exactly on a later grid point
    assert five.next_after(NOW, anchor=NOW - timedelta(minutes=10)) == NOW + timedelta(minutes=5)


def test_interval_without_anchor_is_one_step_from_now():
    assert Schedule.parse("1h30m", "UTC").next_after(NOW) == NOW + timedelta(minutes=90)


def test_interval_runs_on_a_grid_anchored_at_the_anchor():
    five = Schedule.parse("5m", "UTC")
    assert five.next_after(NOW, anchor=utc(2026, 6, 1, 11, 57)) == utc(2026, 6, 1, 12, 2)
    hourly = Schedule.parse("1h", "UTC")
    assert hourly.next_after(NOW, anchor=utc(2026, 5, 20, 0, 0, 7)) == utc(2026, 6, 1, 12, 0, 7)
    # the grid runs both ways: an anchor in the future (the clock went back) still gives the next point
    assert five.next_after(NOW, anchor=utc(2026, 6, 1, 12, 7)) == utc(2026, 6, 1, 12, 2)


def test_preview_returns_n_increasing_times_in_the_schedules_zone():
    times = Schedule.parse("0 3 * * *", "Europe/Berlin").preview(NOW, 4)
    assert len(times) == 4
    assert times == sorted(times) and len(set(times)) == 4
    assert all(t.utcoffset() == timedelta(hours=2) for t in times)
    assert [t.hour for t in times] == [3, 3, 3, 3]
    assert times[0].astimezone(UTC) == utc(2026, 6, 2, 1)

    interval = Schedule.parse("1h30m", "UTC").preview(NOW, 3)
    assert as_utc(interval) == [utc(2026, 6, 1, 13, 30), utc(2026, 6, 1, 15), utc(2026, 6, 1, 16, 30)]
    assert Schedule.parse("5m", "UTC").preview(NOW, 0) == []


def test_count_between_for_intervals():
    five = Schedule.parse("5m", "UTC")
    assert five.count_between(utc(2026, 6, 1, 11), NOW) == 13  # 11:00, 11:05, ..., 12:00
    assert five.count_between(utc(2026, 6, 1, 11, 1), NOW) == 12
    assert five.count_between(NOW, NOW) == 1
    assert five.count_between(NOW + timedelta(seconds=1), NOW) == 0
    assert Schedule.parse("1s", "UTC").count_between(utc(2026, 1, 1), NOW, cap=1000) == 1000


def test_count_between_for_cron():
    hourly = Schedule.parse("0 * * * *", "UTC")
    assert hourly.count_between(utc(2026, 6, 1, 9), NOW) == 4  # 9, 10, 11, 12
    assert hourly.count_between(utc(2026, 6, 1, 9), NOW - timedelta(seconds=1)) == 3
    assert hourly.count_between(utc(2026, 6, 1, 13), NOW) == 0
    assert Schedule.parse("0 0 * * 1", "UTC").count_between(utc(2026, 5, 4), NOW) == 5  # Mondays in May + Jun 1
    assert Schedule.parse("* * * * *", "UTC").count_between(utc(2026, 5, 1), NOW, cap=50) == 50


# -- jitter --------------------------------------------------------------------------

@pytest.mark.parametrize("spec, base", [("1h", utc(2026, 6, 1, 13)), ("0 * * * *", utc(2026, 6, 1, 13))])
def test_jitter_delays_within_bounds_and_preview_ignores_it(spec, base):
    random.seed(20260601)
    schedule = Schedule.parse(spec, "UTC", jitter_s=600)
    samples = [schedule.next_after(NOW) for _ in range(200)]
    assert all(base <= s <= base + timedelta(seconds=600) for s in samples)
    assert len(set(samples)) > 100  # really randomised
    assert schedule.next_after(NOW, jitter=False) == base
    assert as_utc(schedule.preview(NOW, 2)) == [base, base + timedelta(hours=1)]
    assert schedule.describe().endswith(", jitter 10 min")


@pytest.mark.parametrize("jitter", [-1, MAX_JITTER_S + 1, 1.5, True, "10"])
def test_bad_jitter_is_rejected(jitter):
    with pytest.raises(ScheduleError) as err:
        Schedule.parse("1h", "UTC", jitter_s=jitter)
    assert "jitter" in str(err.value)


def test_jitter_limits_accepted():
    assert Schedule.parse("1h", "UTC", jitter_s=0).jitter_s == 0
    assert Schedule.parse("1h", "UTC", jitter_s=MAX_JITTER_S).jitter_s == MAX_JITTER_S
