"""Schedule specs: intervals, crontab(5) semantics, time zones, DST, anchors, counting, jitter."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from memtui.engine import schedule as schedule_module
from memtui.engine.schedule import MAX_JITTER_S, Schedule, ScheduleError
from tests.test_schedule_dst import deadline

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
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
    schedule = Schedule.parse(spec, "UTC", jitter_s=600)
    samples = [schedule.next_after(NOW, key=f"job-{n}") for n in range(200)]
    assert all(base <= s <= base + timedelta(seconds=600) for s in samples)
    assert len(set(samples)) > 100  # jobs with the same schedule spread apart
    # one job's fire is delayed alike whoever computes it, whenever: a resume does not move it
    anchor = NOW if schedule.is_interval else None  # the same grid, read from later on
    assert {schedule.next_after(NOW + timedelta(minutes=m), anchor, key="job-7") for m in range(0, 50, 7)} \
        == {samples[7]}
    assert schedule.next_after(base + timedelta(hours=1), key="job-7") != samples[7] + timedelta(hours=1)
    assert schedule.next_after(NOW, jitter=False) == base
    assert as_utc(schedule.preview(NOW, 2)) == [base, base + timedelta(hours=1)]
    assert schedule.describe().endswith(", up to 10 min later")


@pytest.mark.parametrize("jitter", [-1, MAX_JITTER_S + 1, 1.5, True, "10"])
def test_bad_jitter_is_rejected(jitter):
    with pytest.raises(ScheduleError) as err:
        Schedule.parse("1h", "UTC", jitter_s=jitter)
    assert "jitter" in str(err.value)


def test_jitter_limits_accepted():
    assert Schedule.parse("1h", "UTC", jitter_s=0).jitter_s == 0
    assert Schedule.parse("1h", "UTC", jitter_s=MAX_JITTER_S).jitter_s == MAX_JITTER_S


def test_jitter_only_delays_and_describe_says_so():
    # "01:00 daily" with jitter runs at 01:00 to 01:05, never before: the words say "later", not "±"
    schedule = Schedule.parse("0 1 * * *", "UTC", jitter_s=300)
    assert schedule.describe() == "at 01:00 every day (UTC), up to 5 min later"
    assert schedule.describe(jitter=False) == "at 01:00 every day (UTC)"
    assert Schedule.parse("5m", "UTC", jitter_s=90).describe() == "every 5 min, up to 1 min 30 s later"
    assert Schedule.parse("5m", "UTC").describe() == "every 5 min"
    due = [schedule.next_after(NOW, key=f"job-{n}") for n in range(100)]
    assert all(utc(2026, 6, 2, 1) <= d <= utc(2026, 6, 2, 1, 5) for d in due)


# -- effective jitter (issue 10): never as long as the gap it jitters -----------------------

@pytest.mark.parametrize("spec, jitter, effective", [
    ("1s", 300, 0), ("3s", 300, 1), ("1m", 300, 30), ("10m", 300, 300), ("1h", 300, 300), ("1h", 0, 0),
    ("1d", MAX_JITTER_S, 43200),
    ("0 * * * *", 300, 300), ("0 * * * *", 3600, 1800), ("*/15 * * * *", 3600, 450), ("* * * * *", 300, 30),
    ("0,5 * * * *", 300, 150),          # the shortest gap counts, not the usual one
    ("0 0,23 * * *", MAX_JITTER_S, 1800),  # 23:00 to the next day's 00:00 is one hour
    ("0 9 * * 1-5", MAX_JITTER_S, 43200),  # Monday to Tuesday
    ("0 2 * * 0", MAX_JITTER_S, MAX_JITTER_S),  # weekly: a day of jitter fits
    ("@yearly", MAX_JITTER_S, MAX_JITTER_S),
])
def test_effective_jitter_is_at_most_half_the_time_between_fires(spec, jitter, effective):
    assert Schedule.parse(spec, "UTC", jitter_s=jitter).effective_jitter_s == effective


def test_a_job_retimed_to_1s_drops_its_300s_jitter_and_says_so():
    schedule = Schedule.parse("1s", "UTC", jitter_s=300)
    assert all(schedule.next_after(NOW, key=f"job-{n}") == NOW + timedelta(seconds=1) for n in range(20))
    assert schedule.describe() == "every 1 s, no jitter: 5 min set, but jitter is capped at half the interval"
    one_min = Schedule.parse("1m", "UTC", jitter_s=300)
    assert one_min.describe() == "every 1 min, up to 30 s later: 5 min set, but jitter is capped at half the interval"
    assert all(NOW + timedelta(minutes=1) <= one_min.next_after(NOW, key=f"job-{n}")
               <= NOW + timedelta(minutes=1, seconds=30) for n in range(50))
    assert Schedule.parse("*/15 * * * *", "UTC", jitter_s=3600).describe().endswith(
        ", up to 7 min 30 s later: 1 h set, but jitter is capped at half the shortest time between runs")


@pytest.mark.parametrize("spec", ["* * * * *", "0,5 * * * *", "1m", "7s"])
def test_a_jittered_due_time_never_reaches_the_next_fire_so_none_is_skipped(spec):
    schedule = Schedule.parse(spec, "UTC", jitter_s=MAX_JITTER_S)
    anchor = NOW if schedule.is_interval else None
    expected = [t.astimezone(UTC) for t in schedule.preview(NOW, 200)]
    due, walked = NOW, []
    with deadline(5):
        for _ in range(200):
            due = schedule.next_after(due, anchor=anchor)
            walked.append(due)
    for i, (fire, d) in enumerate(zip(expected, walked)):
        assert fire <= d and (i + 1 == len(expected) or d < expected[i + 1]), i
    assert all(d - fire <= timedelta(seconds=schedule.effective_jitter_s) for fire, d in zip(expected, walked))


# -- compared in UTC: a zone's own datetimes compare by wall time and lose fold in arithmetic -----

def test_next_after_returns_a_utc_instant():
    due = Schedule.parse("0 9 * * *", "Europe/Berlin", jitter_s=60).next_after(NOW)
    assert due.tzinfo is UTC
    assert utc(2026, 6, 2, 7) <= due <= utc(2026, 6, 2, 7, 1)


def test_preview_from_a_time_in_the_zone_keeps_both_one_oclocks_of_the_fall_back_night():
    times = Schedule.parse("0 * * * *", "America/New_York").preview(datetime(2027, 11, 7, 0, 30, tzinfo=NEW_YORK), 4)
    assert [t.strftime("%H:%M%z") for t in times] == ["01:00-0400", "01:00-0500", "02:00-0500", "03:00-0500"]
    assert as_utc(times) == [utc(2027, 11, 7, 5), utc(2027, 11, 7, 6), utc(2027, 11, 7, 7), utc(2027, 11, 7, 8)]


def test_interval_given_times_in_its_zone_steps_in_real_time_across_fall_back():
    hourly = Schedule.parse("1h", "America/New_York")
    # 00:00 EDT anchor, 01:30 EDT now: the next grid point is 01:00 EST, one real hour after 01:00 EDT
    due = hourly.next_after(datetime(2027, 11, 7, 1, 30, tzinfo=NEW_YORK),
                            anchor=datetime(2027, 11, 7, tzinfo=NEW_YORK))
    assert due == utc(2027, 11, 7, 6)
    assert as_utc(hourly.preview(datetime(2027, 11, 7, 0, 30, tzinfo=NEW_YORK), 3)) == [
        utc(2027, 11, 7, 5, 30), utc(2027, 11, 7, 6, 30), utc(2027, 11, 7, 7, 30)]


def test_count_between_compares_instants_not_wall_times():
    hourly = Schedule.parse("0 * * * *", "America/New_York")
    # 00:00 EDT .. 01:30 EDT holds 00:00 and 01:00 EDT; 01:00 EST is later than 01:30 EDT
    first_due, now = datetime(2027, 11, 7, 0, tzinfo=NEW_YORK), datetime(2027, 11, 7, 1, 30, tzinfo=NEW_YORK)
    assert hourly.count_between(first_due, now) == 2
    # a fixed-time job ran in the first 01:xx (EDT); a due time in the second (EST) has nothing after it that night
    fixed = Schedule.parse("15,30,45 1 * * *", "America/New_York")
    assert fixed.count_between(utc(2027, 11, 7, 6, 10), utc(2027, 11, 7, 6, 50)) == 1
    assert fixed.next_after(utc(2027, 11, 7, 6, 10)) == utc(2027, 11, 8, 6, 15)  # 01:15 EST the next day


def test_a_cron_iterator_that_stops_advancing_is_a_schedule_error_not_a_hang(monkeypatch):
    class Stuck:
        def __init__(self, expression, start):
            self.start = start

        def __iter__(self):
            return self

        def __next__(self):
            return self.start  # never later than where it began

    schedule = Schedule.parse("0 * * * *", "UTC")
    monkeypatch.setattr(schedule_module, "CronSim", Stuck)
    with deadline(5), pytest.raises(ScheduleError, match="stopped advancing"):
        schedule.next_after(NOW)
    with deadline(5), pytest.raises(ScheduleError, match="stopped advancing"):
        schedule.count_between(NOW, NOW + timedelta(hours=1))


def test_trigger_gives_apscheduler_the_same_fire_times():
    trigger = Schedule.parse("0 * * * *", "America/New_York").trigger(None, NOW)
    assert trigger.get_next_fire_time(None, utc(2027, 11, 7, 5, 10)) == utc(2027, 11, 7, 6)
    interval = Schedule.parse("5m", "UTC").trigger(None, NOW)
    assert interval.get_next_fire_time(None, NOW) == NOW + timedelta(minutes=5)
    assert interval.get_next_fire_time(NOW + timedelta(minutes=5), NOW) == NOW + timedelta(minutes=10)


def test_a_schedule_is_read_once_and_a_bad_one_is_refused_every_time(monkeypatch):
    """The dashboard describes every job's schedule on each update: a schedule read before is the
    same object (no cron parser built again), and what is refused is refused each time it is asked."""
    built = []
    real = schedule_module.CronSim
    monkeypatch.setattr(schedule_module, "CronSim", lambda *a: built.append(a) or real(*a))
    schedule_module._read_once.cache_clear()  # another test may have read this one already
    schedule_module._explain.cache_clear()
    first = Schedule.parse("0 3 1 * *", "Europe/Berlin", 60)
    words = first.describe()
    assert built, "the first reading builds cronsim's parser"
    built.clear()
    again = Schedule.parse("0 3 1 * *", "Europe/Berlin", 60)
    assert again is first and again.describe() == words and built == []
    for _ in range(2):
        with pytest.raises(ScheduleError):
            Schedule.parse("0 3 1 * *", "Europe/Berlin", True)  # a bool is not a number of seconds
        with pytest.raises(ScheduleError):
            Schedule.parse("0 25 * * *")
        with pytest.raises(ScheduleError):
            Schedule.parse("0 3 1 * *", "Nowhere/Atlantis")
