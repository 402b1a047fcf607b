"""A job's time zone is stored by name, resolved once where it is seeded or retimed, never "local".

The process's local zone is what tzlocal reports; each test sets it, so a process
"in Berlin" and one "in Tokyo" can share a database here. Runs on SQLite and on a
fresh PostgreSQL database.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from zoneinfo import ZoneInfo

import pytest
import tzlocal

from memtui.engine import Engine, schedule
from memtui.engine.config import Config, parse_config
from memtui.engine.definitions import local_zone_name
from memtui.engine.jobs import DEFAULT_JOBS
from memtui.models import Store

pytestmark = pytest.mark.both_backends

UTC = timezone.utc
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def local_zone(monkeypatch):
    """``local_zone(name)``: the zone this process is in from now on."""
    def move_to(name):
        monkeypatch.setattr(schedule, "local_zone", lambda: ZoneInfo(name))

    return move_to


def zones(store) -> dict[str, str | None]:
    JobDefinition = store.m.JobDefinition
    return dict(JobDefinition.select(JobDefinition.name, JobDefinition.timezone).tuples())


def cursor(store, name) -> datetime:
    JobState = store.m.JobState
    return datetime.fromtimestamp(JobState.select(JobState.next_run_at).where(JobState.name == name).scalar(), UTC)


def test_seeded_jobs_are_stored_with_the_seeding_process_zone_by_name(store, clock, local_zone):
    local_zone("Europe/Berlin")
    engine = Engine(store, Config(), clock)
    assert zones(store) == {name: "Europe/Berlin" for name in DEFAULT_JOBS}
    assert engine.job("compact").timezone == "Europe/Berlin"
    assert cursor(store, "compact") == datetime(2026, 6, 7, 2, 0, tzinfo=UTC)  # Sunday 04:00 in Berlin (CEST)


def test_a_zone_in_the_config_seeds_that_zone(store, clock, local_zone):
    local_zone("Europe/Berlin")
    Engine(store, parse_config({"jobs": {"compact": {"timezone": "America/New_York"}}}), clock)
    assert zones(store)["compact"] == "America/New_York"
    assert zones(store)["decay"] == "Europe/Berlin"


def test_a_process_in_another_zone_keeps_the_stored_zone_and_cursor(store, db_target, clock, local_zone, caplog):
    """The bug this fixes: a CLI under another TZ computed a cron cursor in its own zone, and the
    engine then "repaired" it with a clock-went-back warning."""
    local_zone("Europe/Berlin")
    engine = Engine(store, Config(), clock)
    engine.retime("compact", "0 3 * * *", source="ui")
    assert zones(store)["compact"] == "Europe/Berlin"
    berlin_3am = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)
    assert cursor(store, "compact") == berlin_3am

    local_zone("Asia/Tokyo")  # the CLI, elsewhere
    cli_store = Store.open(db_target)
    try:
        cli = Engine(cli_store, Config(), clock)
        job = cli.retime("compact", "0 3 * * *", source="cli")  # tz=None: keep the stored zone
        assert job.timezone == "Europe/Berlin"
        cli.disable("compact", "cli")
        cli.enable("compact", "cli")
    finally:
        cli_store.close()
    assert zones(store)["compact"] == "Europe/Berlin"
    assert cursor(store, "compact") == berlin_3am
    with caplog.at_level(logging.WARNING, logger="memtui.engine"):
        engine.sync()
    assert "clock went back" not in caplog.text
    assert cursor(store, "compact") == berlin_3am


def test_retime_with_a_blank_zone_stores_the_local_zone_by_name(store, clock, local_zone):
    local_zone("Europe/Berlin")
    engine = Engine(store, Config(), clock)
    local_zone("Asia/Tokyo")
    job = engine.retime("compact", "0 3 * * *", tz="", source="ui")  # the dashboard's "blank: local"
    assert job.timezone == zones(store)["compact"] == "Asia/Tokyo"
    assert engine.audit_log()[0].new_value == "0 3 * * * Asia/Tokyo"
    assert cursor(store, "compact") == datetime(2026, 6, 1, 18, 0, tzinfo=UTC)  # 03:00 JST on the 2nd


def no_zone_configured():
    raise RuntimeError("no zone configured")


@pytest.mark.parametrize("zone, name", [
    (lambda: timezone.utc, lambda: None), (lambda: None, lambda: ""), (no_zone_configured, no_zone_configured),
    (no_zone_configured, lambda: "Not/A_Zone"),
], ids=["unnamed-zone", "nothing", "errors", "unknown-name"])
def test_without_a_usable_local_zone_jobs_are_stored_in_utc(store, clock, monkeypatch, zone, name):
    monkeypatch.setattr(schedule, "local_zone", zone)
    monkeypatch.setattr(tzlocal, "get_localzone_name", name)
    assert local_zone_name() == "UTC"
    Engine(store, Config(), clock)
    assert set(zones(store).values()) == {"UTC"}


def test_a_zone_read_from_a_file_is_named_by_tzlocal(monkeypatch):
    monkeypatch.setattr(schedule, "local_zone", lambda: timezone(timedelta(hours=1)))  # no name
    monkeypatch.setattr(tzlocal, "get_localzone_name", lambda: "Europe/Berlin")
    assert local_zone_name() == "Europe/Berlin"


def test_a_schedule_in_words_names_its_zone_unless_it_is_the_readers(store, clock, local_zone):
    local_zone("Europe/Berlin")
    engine = Engine(store, Config(), clock)
    engine.retime("compact", "0 3 * * *")
    engine.retime("decay", "0 3 * * *", tz="Asia/Tokyo")
    assert engine.job("compact").schedule_text == "at 03:00 every day"
    assert engine.job("decay").schedule_text == "at 03:00 every day (Asia/Tokyo)"
    local_zone("Asia/Tokyo")  # the same jobs, read in Tokyo
    assert engine.job("compact").schedule_text == "at 03:00 every day (Europe/Berlin)"
    assert engine.job("decay").schedule_text == "at 03:00 every day"


def test_a_null_zone_written_by_hand_is_read_as_utc_and_named_at_the_next_start(store, db_target, clock,
                                                                                local_zone):
    local_zone("Asia/Tokyo")  # a NULL must not mean Tokyo just because this process is there
    engine = Engine(store, Config(), clock)
    engine.retime("compact", "0 3 * * *", tz="UTC")
    JobDefinition = store.m.JobDefinition
    JobDefinition.update(timezone=None).where(JobDefinition.name == "compact").execute()
    assert engine.job("compact").timezone == "UTC"
    assert engine._definition("compact").next_due(clock()) == (T0 + timedelta(hours=15)).timestamp()  # 03:00 UTC

    local_zone("Europe/Berlin")
    restarted = Store.open(db_target)
    try:
        Engine(restarted, Config(), clock)  # resolves it once, as migration 0003 did
    finally:
        restarted.close()
    assert zones(store)["compact"] == "Europe/Berlin"
    assert None not in zones(store).values()
