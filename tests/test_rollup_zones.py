"""Rollups across a change of rollup-day's time zone, across DST, from a 0.1 store, and demo marks.

Issue 16.3: the checkpoint was a bare date, so after ``retime rollup-day … --tz
OTHER`` the next day was cut at the new zone's midnight and some messages fell
in no day summary, or in two. Every test here sends one message an hour (alice
and bob taking turns), runs the rollups before and after a change, and checks
the summaries tile time: each message is in exactly one day summary of its
sender (by ``period_start <= created_at < period_end``), each day summary in
exactly one week and one month summary (by its start), with no overlapping or
missing periods. The clock is the conftest FakeClock, moved by each test. Every
test runs on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from memtui.engine.jobs.rollup import at_midnight, period_end, period_start
from tests.factories import snapshot
from tests.llm_mock import model  # noqa: F401  (a fixture)

pytestmark = pytest.mark.both_backends

UTC = timezone.utc
ROLLUPS = ("rollup-day", "rollup-week", "rollup-month")
SENDERS = ("alice", "bob")
HOUR = 3600


def hourly(store, first: datetime, hours: int = 72, demo=lambda i: False) -> None:
    """One message an hour from ``first``, alice and bob taking turns."""
    cids = {}
    for sender in SENDERS:
        cids[sender] = store.execute(
            "INSERT INTO conversation (channel, sender, status, started_at, updated_at) VALUES ('chat', ?, 'closed',"
            " ?, ?) RETURNING id", (sender, first.timestamp(), first.timestamp())).fetchone()[0]
    for i in range(hours):
        sender = SENDERS[i % 2]
        store.execute(
            "INSERT INTO message (conversation_id, sender, role, content, created_at, demo) VALUES (?, ?, 'user', ?,"
            " ?, ?)", (cids[sender], sender, f"{sender.title()} said thing number {i}.",
                       (first + timedelta(hours=i)).timestamp(), bool(demo(i))))


def run_all(engine, jobs=ROLLUPS) -> None:
    for job in jobs:
        run = engine.run_job(job)
        assert run.status == "success", (job, run.error)


def rows(store, level: str) -> list[tuple]:
    """(sender, period_start, period_end, source_count, demo), in order."""
    return store.execute("SELECT sender, period_start, period_end, source_count, demo FROM summary WHERE level = ?"
                         " ORDER BY period_start, sender", (level,)).fetchall()


def until(store, job: str) -> float | None:
    row = store.execute("SELECT value FROM job_checkpoint WHERE job = ?", (job,)).fetchone()
    return json.loads(row[0]).get("until") if row else None


def messages(store) -> list[tuple]:
    return store.execute("SELECT sender, created_at FROM message ORDER BY created_at").fetchall()


def assert_tiled(items: list[tuple], summaries: list[tuple], what: str) -> None:
    """Each (sender, instant) of ``items`` lies in exactly one of its sender's ``summaries``;
    ``summaries`` count exactly their items, and each sender's periods follow on without gaps."""
    counted = sum(s[3] for s in summaries)
    assert counted == len(items), f"{what}: {len(items)} sources counted {counted} times"
    assert all(s[2] is not None for s in summaries), f"{what}: a summary without period_end"
    for sender, at in items:
        holders = [s for s in summaries if s[0] == sender and s[1] <= at < s[2]]
        assert len(holders) == 1, f"{what}: {sender} at {datetime.fromtimestamp(at, UTC)} is in {len(holders)}"
    for s in summaries:
        inside = sum(1 for sender, at in items if sender == s[0] and s[1] <= at < s[2])
        assert inside == s[3], f"{what}: {s} holds {inside}"
    for sender in SENDERS:
        mine = [s for s in summaries if s[0] == sender]
        for before, after in zip(mine, mine[1:]):
            assert after[1] == before[2], f"{what}: {sender}'s periods {before[1:3]} and {after[1:3]} do not meet"


def assert_everything_tiled(store) -> None:
    days = rows(store, "day")
    assert_tiled(messages(store), days, "days")
    for level in ("week", "month"):
        assert_tiled([(s[0], s[1]) for s in days], rows(store, level), level + "s")


def local_bounds(level: str, ts: float, tz) -> tuple[float, float]:
    """The calendar period of ``tz`` holding the instant ``ts``: local midnights as instants."""
    first = period_start(level, datetime.fromtimestamp(ts, tz).date())
    return at_midnight(first, tz).timestamp(), at_midnight(period_end(level, first), tz).timestamp()


def assert_calendar_periods_except_after(store, change: float, tz_before, tz_after) -> None:
    """Every period is a calendar period of the zone at its time, except the one starting at ``change``."""
    for level in ("day", "week", "month"):
        for sender, start, end, _, _ in rows(store, level):
            if start == change:
                continue
            tz = tz_before if start < change else tz_after
            assert (start, end) == local_bounds(level, start, tz), (level, sender, start, end)


# -- issue 16.3: changing rollup-day's zone ---------------------------------------------------------------

# Sunday 1 August 2027 begins a week and a month, so all three rollups have a checkpoint at the change.
FIRST = datetime(2027, 7, 30, tzinfo=UTC)
BEFORE = datetime(2027, 8, 1, 12, tzinfo=UTC)  # after 1 August began in every zone below, before the 2nd did
AFTER = datetime(2027, 9, 2, 12, tzinfo=UTC)  # August is over everywhere
ZONE_CHANGES = {
    # old code: 4 messages in no day summary
    "UTC to America/New_York": ("UTC", "America/New_York", timedelta(hours=28)),
    # old code: 4 messages in two
    "America/New_York to UTC": ("America/New_York", "UTC", timedelta(hours=20)),
    # old code: 16 messages in none
    "Asia/Tokyo to America/Los_Angeles": ("Asia/Tokyo", "America/Los_Angeles", timedelta(hours=16)),
}


@pytest.mark.parametrize("old, new, transition", ZONE_CHANGES.values(), ids=ZONE_CHANGES.keys())
def test_changing_rollup_days_zone_keeps_every_message_in_exactly_one_day_week_and_month(
        make_engine, store, clock, old, new, transition):
    hourly(store, FIRST)
    clock.set(BEFORE)
    engine = make_engine(tz=old)
    run_all(engine)
    checkpoints = [until(store, job) for job in ROLLUPS]

    clock.set(BEFORE + timedelta(hours=1))
    engine.retime("rollup-day", "0 1 * * *", tz=new)
    clock.set(AFTER)
    run_all(engine)

    days = rows(store, "day")
    assert sum(d[3] for d in days) == 72
    assert_everything_tiled(store)
    change = at_midnight(date(2027, 8, 1), ZoneInfo(old)).timestamp()
    assert checkpoints == [change] * 3  # before the change day, week and month all ended at 1 August
    # the first day after the change starts exactly at the checkpoint and runs to a midnight of the new zone
    transitional = [d for d in days if d[1] == change]
    assert {d[0] for d in transitional} == set(SENDERS)
    assert transitional[0][2] - change == transition.total_seconds()
    assert_calendar_periods_except_after(store, change, ZoneInfo(old), ZoneInfo(new))

    # losing the checkpoints does not make periods overlap: the jobs go on from the last summary's end
    before = store.execute("SELECT * FROM summary ORDER BY id").fetchall()
    store.execute("DELETE FROM job_checkpoint")
    run_all(engine)
    assert store.execute("SELECT * FROM summary ORDER BY id").fetchall() == before


def test_changing_the_zone_twice_between_runs_still_tiles(make_engine, store, clock):
    hourly(store, FIRST, hours=24 * 6)
    clock.set(BEFORE)
    engine = make_engine(tz="Asia/Tokyo")
    run_all(engine)
    for step, zone in enumerate(("America/Los_Angeles", "Pacific/Kiritimati", "Etc/GMT+12", "Europe/Berlin")):
        clock.set(BEFORE + timedelta(hours=1 + 31 * step))
        engine.retime("rollup-day", "0 1 * * *", tz=zone)
        clock.advance(hours=30)
        run_all(engine)
    clock.set(AFTER)
    run_all(engine)
    assert_everything_tiled(store)
    assert sum(d[3] for d in rows(store, "day")) == 24 * 6


def test_the_model_is_told_the_exact_bounds_of_the_period_after_a_change(model, make_engine, store, clock):
    hourly(store, FIRST)
    script = model("A summary.")
    clock.set(BEFORE)
    engine = make_engine(script.config(), tz="UTC")
    run_all(engine, ("rollup-day",))
    assert script.user_messages[0].startswith("Summarize for alice, the day starting 2027-07-30 (UTC):\n")
    engine.retime("rollup-day", "0 1 * * *", tz="America/New_York")
    clock.set(datetime(2027, 8, 2, 12, tzinfo=UTC))
    run_all(engine, ("rollup-day",))
    assert script.user_messages[-2].startswith(
        "Summarize for alice, the day of 2027-08-01 (America/New_York), here from 2027-07-31 20:00 to 2027-08-02 00:00"
        " because the time zone changed:\n- Alice said thing number 48.")


# -- DST: 23 and 25 hour days ---------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
DST_FALL = datetime(2026, 10, 24, tzinfo=UTC)  # Berlin falls back on Sunday 25 October 2026
DST_CASES = {
    "Berlin throughout": ("Europe/Berlin", "Europe/Berlin"),
    "UTC to Berlin on the DST Sunday": ("UTC", "Europe/Berlin"),
    "Berlin to UTC on the DST Sunday": ("Europe/Berlin", "UTC"),
}


@pytest.mark.parametrize("old, new", DST_CASES.values(), ids=DST_CASES.keys())
def test_the_last_sunday_of_october_in_berlin(make_engine, store, clock, old, new):
    hourly(store, DST_FALL)
    clock.set(datetime(2026, 10, 25, 12, tzinfo=UTC))  # the 25-hour day is in progress in Berlin
    engine = make_engine(tz=old)
    run_all(engine, ("rollup-day",))
    clock.advance(minutes=30)
    engine.retime("rollup-day", "0 1 * * *", tz=new)
    clock.set(datetime(2026, 11, 2, 12, tzinfo=UTC))
    run_all(engine)

    assert_everything_tiled(store)
    days = rows(store, "day")
    assert sum(d[3] for d in days) == 72
    if old == new:
        long_day = [d for d in days if d[1] == datetime(2026, 10, 24, 22, tzinfo=UTC).timestamp()]
        assert [d[2] - d[1] for d in long_day] == [25 * HOUR, 25 * HOUR]  # midnight to midnight, not +24 h
        assert sum(d[3] for d in long_day) == 25
        assert [d[2] - d[1] for d in days if d[1] > long_day[0][1]][:2] == [24 * HOUR, 24 * HOUR]


def test_the_last_sunday_of_march_in_berlin_lasts_23_hours(make_engine, store, clock):
    hourly(store, datetime(2026, 3, 28, tzinfo=UTC))
    clock.set(datetime(2026, 4, 2, 12, tzinfo=UTC))
    engine = make_engine(tz="Europe/Berlin")
    run_all(engine, ("rollup-day",))
    assert_tiled(messages(store), rows(store, "day"), "days")
    short = [d for d in rows(store, "day") if d[1] == datetime(2026, 3, 28, 23, tzinfo=UTC).timestamp()]
    assert [d[2] - d[1] for d in short] == [23 * HOUR, 23 * HOUR]


# -- a store written by 0.1 -------------------------------------------------------------------------------

def downgrade_to_0_1(store) -> None:
    """What 0.1 would have left: no period_end, no demo marks, checkpoints as local dates of rollup-day's zone."""
    zone = ZoneInfo(store.execute("SELECT timezone FROM job_definition WHERE name = 'rollup-day'").fetchone()[0])
    store.execute("UPDATE summary SET period_end = NULL, demo = FALSE")
    for job, value in store.execute("SELECT job, value FROM job_checkpoint").fetchall():
        instant = json.loads(value).get("until")
        if instant is None:  # already 0.1's (the test runs on 0.1's rollup)
            continue
        old = {"next": datetime.fromtimestamp(instant, zone).date().isoformat(), "in_progress": False}
        store.execute("UPDATE job_checkpoint SET value = ? WHERE job = ?", (json.dumps(old), job))


def fill_legacy_ends(store, zone) -> None:
    """Give 0.1's summaries the end they had (the calendar period of ``zone``), for the coverage check."""
    for sid, level, start in store.execute("SELECT id, level, period_start FROM summary WHERE period_end IS NULL"):
        store.execute("UPDATE summary SET period_end = ? WHERE id = ?", (local_bounds(level, start, zone)[1], sid))


@pytest.mark.parametrize("retime_after_upgrade", [False, True], ids=["same zone", "retimed after the upgrade"])
def test_a_0_1_checkpoint_continues_seamlessly(make_engine, store, clock, retime_after_upgrade):
    hourly(store, FIRST)
    clock.set(BEFORE)
    engine = make_engine(tz="America/New_York")
    run_all(engine)
    downgrade_to_0_1(store)
    assert json.loads(store.execute("SELECT value FROM job_checkpoint WHERE job = 'rollup-week'").fetchone()[0]) \
        == {"next": "2027-08-01", "in_progress": False}
    midnight = at_midnight(date(2027, 8, 1), ZoneInfo("America/New_York")).timestamp()

    clock.set(BEFORE + timedelta(hours=2))
    if retime_after_upgrade:  # the date was written in New York time; the audit log remembers
        engine.retime("rollup-day", "0 1 * * *", tz="Asia/Tokyo")
    clock.set(AFTER)
    run_all(engine)

    fill_legacy_ends(store, ZoneInfo("America/New_York"))
    assert_everything_tiled(store)
    new = store.execute("SELECT level, min(period_start) FROM summary WHERE created_at > ? GROUP BY level"
                        " ORDER BY level", (BEFORE.timestamp(),)).fetchall()
    assert new == [("day", midnight), ("month", midnight), ("week", midnight)]  # each went on where 0.1 stopped
    assert all(until(store, job) > midnight for job in ROLLUPS)  # saved back as instants


def test_a_0_1_checkpoint_is_saved_as_an_instant_on_first_read(make_engine, store, clock):
    hourly(store, FIRST)
    clock.set(BEFORE)
    engine = make_engine(tz="Asia/Tokyo")
    run_all(engine, ("rollup-day",))
    downgrade_to_0_1(store)
    clock.advance(hours=1)  # nothing closed since: the run only translates the checkpoint
    result = engine.run_job("rollup-day").result
    assert result["summaries_written"] == 0
    value = json.loads(store.execute("SELECT value FROM job_checkpoint WHERE job = 'rollup-day'").fetchone()[0])
    assert value == {"until": datetime(2027, 8, 1, tzinfo=ZoneInfo("Asia/Tokyo")).timestamp(), "in_progress": False}


# -- demo marks ---------------------------------------------------------------------------------------------

def test_a_summary_is_demo_only_when_every_source_is(make_engine, store, clock):
    # all demo but one message of alice's, at 14:00 UTC on 31 July
    hourly(store, FIRST, demo=lambda i: i != 38)
    clock.set(AFTER)
    run_all(make_engine(tz="UTC"))
    marks = {(level, datetime.fromtimestamp(s[1], UTC).date().isoformat(), s[0]): s[4]
             for level in ("day", "week", "month") for s in rows(store, level)}
    assert marks == {
        ("day", "2027-07-30", "alice"): 1, ("day", "2027-07-30", "bob"): 1,
        ("day", "2027-07-31", "alice"): 0, ("day", "2027-07-31", "bob"): 1,
        ("day", "2027-08-01", "alice"): 1, ("day", "2027-08-01", "bob"): 1,
        ("week", "2027-07-25", "alice"): 0, ("week", "2027-07-25", "bob"): 1,
        ("week", "2027-08-01", "alice"): 1, ("week", "2027-08-01", "bob"): 1,
        ("month", "2027-07-01", "alice"): 0, ("month", "2027-07-01", "bob"): 1,
        ("month", "2027-08-01", "alice"): 1, ("month", "2027-08-01", "bob"): 1,
    }


# -- the dry run -------------------------------------------------------------------------------------------

def test_the_dry_run_after_a_zone_change_reports_the_periods_the_run_writes(make_engine, store, clock):
    hourly(store, FIRST)
    clock.set(BEFORE)
    engine = make_engine(tz="UTC")
    run_all(engine)
    downgrade_to_0_1(store)  # the dry run must not save the translated checkpoint either
    clock.set(BEFORE + timedelta(hours=1))
    engine.retime("rollup-day", "0 1 * * *", tz="America/New_York")
    clock.set(datetime(2027, 8, 4, 12, tzinfo=UTC))

    before = snapshot(store)
    planned = engine.dry_run("rollup-day")["would_write"]
    assert snapshot(store) == before
    assert planned[:2] == [  # the day after the change: 20:00 on 31 July (New York) to midnight on 2 August
        {"period": "2027-08-01", "start": "2027-07-31T20:00:00-04:00", "end": "2027-08-02T00:00:00-04:00",
         "sender": s, "sources": 12} for s in SENDERS]
    assert len(planned) == 2  # the days after it hold no messages

    run_all(engine, ("rollup-day",))
    written = store.execute("SELECT sender, period_start, period_end, source_count FROM summary"
                            " WHERE period_end IS NOT NULL ORDER BY period_start, sender").fetchall()
    start, end = datetime(2027, 8, 1, tzinfo=UTC).timestamp(), datetime(2027, 8, 2, 4, tzinfo=UTC).timestamp()
    assert written == [(s, start, end, 12) for s in SENDERS]

    # the week after the change, cut in rollup-day's new zone, starts where 0.1's week checkpoint ended
    clock.set(datetime(2027, 8, 9, 12, tzinfo=UTC))
    run_all(engine, ("rollup-day",))
    before = snapshot(store)
    planned = engine.dry_run("rollup-week")["would_write"]
    assert snapshot(store) == before
    assert planned == [{"period": "2027-08-01", "start": "2027-07-31T20:00:00-04:00",
                        "end": "2027-08-08T00:00:00-04:00", "sender": s, "sources": 1} for s in SENDERS]
    run_all(engine, ("rollup-week",))
    assert store.execute("SELECT sender, period_start, period_end, source_count FROM summary WHERE level = 'week'"
                         " AND period_end IS NOT NULL ORDER BY sender").fetchall() == [
        (s, start, datetime(2027, 8, 8, 4, tzinfo=UTC).timestamp(), 1) for s in SENDERS]
