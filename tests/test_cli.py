"""The memtui command line: every subcommand, JSON output, and bad input (one line, exit 2, nothing changed).

Runs on both backends: ``db_target`` is a SQLite path or a fresh PostgreSQL database's URL, and the
database is read back through a Store. Tests about SQLite files (modes, folders, /dev/null, FIFOs,
typo'd paths) stay SQLite-only."""
from __future__ import annotations

import argparse
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib.metadata import version

import pytest

from memtui.engine.jobs import DEFAULT_JOBS, KINDS
from memtui.engine.jobs.base import JobKind, JobSpec
from memtui.engine import Config, Engine, Schedule
from memtui.engine.definitions import local_zone_name
from memtui.models import Store
from memtui.tui.cli import build_parser, main
from tests.factories import assert_one_line_error, snapshot
from tests.targets import another_target, files_beside, has_store

pytestmark = pytest.mark.both_backends

MEMTUI = os.path.join(os.path.dirname(sys.executable), "memtui")
JOB_KEYS = {"name", "kind", "enabled", "schedule", "next_run", "last_run", "last_status", "runs", "errors"}


@pytest.fixture
def db(db_target, cli) -> str:
    """A database created by the CLI itself (a command that writes: listing never creates one)."""
    assert cli("remember", "seed the store", "--db", db_target).code == 0
    return db_target


def files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def dump(target) -> dict:
    """The job tables' rows, read through a Store that neither creates nor migrates anything."""
    store = Store.open(target, create=False, migrate=False)
    try:
        rows = snapshot(store)
        return {t: rows[t] for t in ("job_definition", "job_state", "run", "audit_log", "setting")}
    finally:
        store.close()


def jobs_json(cli, path) -> dict[str, dict]:
    result = cli("jobs", "--json", "--db", path)
    assert result.code == 0, result.err
    assert result.err == ""
    return {j["name"]: j for j in json.loads(result.out)}


def parse_iso(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    assert when.utcoffset() is not None, f"{text!r} has no UTC offset"
    return when


# -- jobs ------------------------------------------------------------------------------

def test_jobs_text_lists_every_job(cli, db):
    result = cli("jobs", "--db", db)
    assert result.code == 0 and result.err == ""
    lines = result.out.splitlines()
    assert lines[0].split() == ["NAME", "ENABLED", "SCHEDULE", "NEXT", "LEFT", "LAST", "STATUS", "RUNS", "ERRORS"]
    names = [line.split()[0] for line in lines[1:]]
    assert sorted(names) == sorted(DEFAULT_JOBS)
    compact = next(line for line in lines if line.startswith("compact "))
    assert "at 04:00 on Sunday" in compact
    assert compact.split()[-2:] == ["0", "0"]


def test_jobs_json_has_the_documented_keys_and_offsets(cli, db):
    before = datetime.now(timezone.utc)
    jobs = jobs_json(cli, db)
    assert sorted(jobs) == sorted(DEFAULT_JOBS)
    for job in jobs.values():
        assert JOB_KEYS <= set(job)
    compact = jobs["compact"]
    assert (compact["name"], compact["kind"], compact["enabled"], compact["schedule"]) == \
        ("compact", "compact", True, "0 4 * * 0")
    assert (compact["last_run"], compact["last_status"], compact["runs"], compact["errors"]) == (None, None, 0, 0)
    next_run = parse_iso(compact["next_run"])
    assert before < next_run <= before + timedelta(days=7, minutes=1)
    assert next_run.astimezone().weekday() == 6 and next_run.astimezone().strftime("%H:%M") == "04:00"


def test_db_option_works_before_and_after_the_subcommand(cli, db_target, tmp_path):
    a = db_target
    with another_target(db_target, tmp_path, "b") as b:
        assert cli("--db", a, "disable", "decay").code == 0
        assert cli("disable", "compact", "--db", b).code == 0
        assert jobs_json(cli, a)["decay"]["enabled"] is False and jobs_json(cli, a)["compact"]["enabled"] is True
        assert jobs_json(cli, b)["compact"]["enabled"] is False and jobs_json(cli, b)["decay"]["enabled"] is True


# -- run -----------------------------------------------------------------------------

def test_run_prints_one_line_and_records_the_run(cli, db):
    result = cli("run", "compact", "--db", db)
    assert result.code == 0, result.err
    assert result.err == ""
    assert len(result.out.splitlines()) == 1
    assert result.out.startswith("compact success in ") and " ms (manual) — " in result.out
    assert "old runs pruned 0" in result.out and "…" not in result.out  # the whole result, in words

    compact = jobs_json(cli, db)["compact"]
    assert (compact["runs"], compact["errors"], compact["last_status"]) == (1, 0, "success")
    assert abs((parse_iso(compact["last_run"]) - datetime.now(timezone.utc)).total_seconds()) < 60


def test_run_json(cli, db):
    result = cli("run", "compact", "--json", "--db", db)
    assert result.code == 0 and result.err == ""
    run = json.loads(result.out)
    assert (run["job"], run["status"], run["reason"], run["error"]) == ("compact", "success", "manual", None)
    assert isinstance(run["id"], int) and isinstance(run["duration_ms"], float) and run["duration_ms"] > 0
    parse_iso(run["started"])
    parse_iso(run["finished"])
    assert run["result"]["runs_pruned_by_cap"] == 0


@dataclass(frozen=True)
class _NoConfig:
    pass


def _boom(ctx):
    raise RuntimeError("kaboom")


def test_run_of_a_failing_job_exits_1(cli, db_target, monkeypatch):
    monkeypatch.setitem(KINDS, "boom", JobKind("boom", _boom, _NoConfig, "always fails"))
    monkeypatch.setitem(DEFAULT_JOBS, "boom", JobSpec("boom", "boom", "30s"))
    path = db_target
    result = cli("run", "boom", "--db", path)
    assert result.code == 1
    assert result.out.startswith("boom failed after ") and "(manual) — RuntimeError: kaboom" in result.out
    assert "RuntimeError: kaboom" in result.out
    result = cli("run", "boom", "--json", "--db", path)
    assert result.code == 1
    assert json.loads(result.out)["status"] == "failed"
    assert "RuntimeError: kaboom" in json.loads(result.out)["traceback"]
    boom = jobs_json(cli, path)["boom"]
    assert (boom["runs"], boom["errors"], boom["last_status"]) == (2, 2, "failed")


# -- enable / disable / retime ---------------------------------------------------------

def test_disable_and_enable(cli, db):
    result = cli("disable", "compact", "--db", db)
    assert result.code == 0 and result.err == ""
    assert result.out.splitlines()[1].split()[:2] == ["compact", "no"]
    compact = jobs_json(cli, db)["compact"]
    assert compact["enabled"] is False and compact["next_run"] is None

    result = cli("enable", "compact", "--db", db)
    assert result.code == 0
    assert result.out.splitlines()[1].split()[:2] == ["compact", "yes"]
    compact = jobs_json(cli, db)["compact"]
    assert compact["enabled"] is True
    assert parse_iso(compact["next_run"]) > datetime.now(timezone.utc)

    audit = dump(db)["audit_log"]
    assert [(a[2], a[3], a[4], a[5], a[6]) for a in audit] == [
        ("disable", "compact", "True", "False", "cli"), ("enable", "compact", "False", "True", "cli"),
    ]


def test_retime(cli, db):
    before = datetime.now(timezone.utc)
    result = cli("retime", "compact", "2h", "--db", db)
    assert result.code == 0 and result.err == ""
    assert "every 2 h" in result.out
    compact = jobs_json(cli, db)["compact"]
    assert compact["schedule"] == "2h"
    delta = (parse_iso(compact["next_run"]) - before).total_seconds()
    assert 7200 - 5 < delta < 7200 + 60

    result = cli("retime", "compact", "30 2 * * *", "--tz", "Europe/Berlin", "--db", db)
    assert result.code == 0
    assert "(Europe/Berlin)" in result.out
    compact = jobs_json(cli, db)["compact"]
    assert (compact["schedule"], compact["timezone"]) == ("30 2 * * *", "Europe/Berlin")
    expected = Schedule.parse("30 2 * * *", "Europe/Berlin").next_after(before)
    assert parse_iso(compact["next_run"]) == expected
    audit = dump(db)["audit_log"]
    local = local_zone_name()  # a job's zone is stored by name: the one this process seeded it in
    assert [(a[2], a[4], a[5], a[6]) for a in audit] == [
        ("retime", f"0 4 * * 0 {local}", f"2h {local}", "cli"),
        ("retime", f"2h {local}", "30 2 * * * Europe/Berlin", "cli"),
    ]


# -- history ----------------------------------------------------------------------------

def test_history_text_and_json(cli, db):
    result = cli("history", "--db", db)
    assert (result.code, result.out.strip()) == (0, "no runs yet")
    assert json.loads(cli("history", "compact", "--json", "--db", db).out) == []
    assert cli("run", "compact", "--db", db).code == 0
    assert cli("run", "compact", "--db", db).code == 0

    result = cli("history", "--db", db)
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].split() == ["RUN", "JOB", "STATUS", "REASON", "STARTED", "DURATION", "RESULT"]
    assert [line.split()[:4] for line in lines[1:]] == [["2", "compact", "success", "manual"],
                                                          ["1", "compact", "success", "manual"]]

    runs = json.loads(cli("history", "--json", "--db", db).out)
    assert [(r["id"], r["job"], r["status"]) for r in runs] == [(2, "compact", "success"), (1, "compact", "success")]
    runs = json.loads(cli("history", "compact", "--limit", "1", "--json", "--db", db).out)
    assert [r["id"] for r in runs] == [2]


# -- pause / resume -----------------------------------------------------------------------

def test_pause_and_resume_keep_enabled_flags(cli, db):
    assert cli("disable", "compact", "--db", db).code == 0
    flags = {n: j["enabled"] for n, j in jobs_json(cli, db).items()}

    result = cli("pause", "--db", db)
    assert result.code == 0 and result.err == ""
    assert "(paused)" in result.out
    jobs = jobs_json(cli, db)
    assert {n: j["enabled"] for n, j in jobs.items()} == flags
    assert all(j["next_run"] is None for j in jobs.values())
    assert all(j["paused"] is True for j in jobs.values())

    result = cli("resume", "--db", db)
    assert result.code == 0
    assert "(paused)" not in result.out
    jobs = jobs_json(cli, db)
    assert {n: j["enabled"] for n, j in jobs.items()} == flags
    assert jobs["compact"]["next_run"] is None
    for name, job in jobs.items():
        if job["enabled"]:
            assert parse_iso(job["next_run"]) > datetime.now(timezone.utc), name
    assert [a[2] for a in dump(db)["audit_log"]] == ["disable", "pause_all", "resume_all"]


# -- engines ------------------------------------------------------------------------------------

ENGINE_KEYS = {"id", "host", "pid", "version", "started", "heartbeat", "stopped", "running", "alive"}


def test_engines_lists_the_live_engines_and_what_each_runs(cli, db, monkeypatch):
    """Two engines on one database (as two hosts would be): each listed with its host, pid, version,
    start, heartbeat and the job it is running; a stopped one only with --all. The command itself
    is no engine and is not listed."""
    started, release = threading.Event(), threading.Event()

    def slow(ctx):
        started.set()
        release.wait(30)
        return {}

    monkeypatch.setitem(KINDS, "slow", JobKind("slow", slow, _NoConfig, "waits to be released"))
    monkeypatch.setitem(DEFAULT_JOBS, "slow", JobSpec("slow", "slow", "6h"))
    assert cli("engines", "--db", db).out.strip() == "no engine running"
    engines = [Engine(Store.open(db), Config()) for _ in range(2)]
    try:
        for engine in engines:
            engine.start()
        engines[0].run_now("slow")
        assert started.wait(10)

        result = cli("engines", "--json", "--db", db)
        assert result.code == 0 and result.err == ""
        listed = json.loads(result.out)
        assert len(listed) == 2 and all(ENGINE_KEYS <= set(e) for e in listed)
        assert {(e["host"], e["pid"], e["version"], e["alive"], e["stopped"]) for e in listed} == {
            (socket.gethostname(), os.getpid(), version("memtui"), True, None)}
        assert sorted(e["running"] for e in listed) == [[], ["slow"]]
        for e in listed:
            assert parse_iso(e["started"]) <= parse_iso(e["heartbeat"]) <= datetime.now(timezone.utc)

        result = cli("engines", "--db", db)
        lines = result.out.splitlines()
        assert lines[0].split() == ["HOST", "PID", "VERSION", "STARTED", "HEARTBEAT", "RUNNING"]
        assert len(lines) == 3 and all(str(os.getpid()) in line for line in lines[1:])
        assert sorted(line.split()[-1] for line in lines[1:]) == ["-", "slow"]

        release.set()
        assert engines[1].stop(timeout=10)
        assert len(json.loads(cli("engines", "--json", "--db", db).out)) == 1
        everyone = json.loads(cli("engines", "--all", "--json", "--db", db).out)
        assert sorted((e["alive"], e["stopped"] is not None) for e in everyone) == [(False, True), (True, False)]
        lines = cli("engines", "--all", "--db", db).out.splitlines()
        assert lines[0].split()[-1] == "STATUS"
        assert sorted(line.split()[-1] for line in lines[1:]) == ["live", "stopped"]
    finally:
        release.set()
        for engine in engines:
            engine.stop(timeout=10)
            engine.close()


def test_an_engine_that_stopped_beating_is_gone(cli, db):
    """An engine on another host that died an hour ago (its row left as it was): not live, listed by --all."""
    store = Store.open(db)
    try:
        an_hour_ago = datetime.now(timezone.utc).timestamp() - 3600
        store.execute("INSERT INTO engine_instance (id, host, pid, version, started_at, heartbeat_at)"
                      " VALUES ('elsewhere:42:x', 'elsewhere', 42, '0.2.0', ?, ?)", (an_hour_ago - 60, an_hour_ago))
    finally:
        store.close()
    assert cli("engines", "--db", db).out.strip() == "no engine running"
    result = cli("engines", "--all", "--db", db)
    assert result.code == 0
    row = result.out.splitlines()[1].split()
    assert (row[0], row[1], row[2], row[-1]) == ("elsewhere", "42", "0.2.0", "gone")
    assert "1h ago" in result.out
    [gone] = json.loads(cli("engines", "--all", "--json", "--db", db).out)
    assert (gone["id"], gone["alive"], gone["stopped"], gone["running"]) == ("elsewhere:42:x", False, None, [])


# -- where the database is --------------------------------------------------------------------

@pytest.mark.sqlite_only  # about files: where they are made, their mode
def test_memtui_db_environment_variable(cli, tmp_path, monkeypatch):
    env_db = tmp_path / "from-env" / "env.db"
    monkeypatch.setenv("MEMTUI_DB", str(env_db))
    assert_one_line_error(cli("jobs"), f"no memtui database at {env_db}")  # a path given is never made by a listing
    assert not env_db.parent.exists()
    assert cli("remember", "from the environment").code == 0
    assert env_db.is_file()
    assert stat.S_IMODE(env_db.stat().st_mode) == 0o600

    flag_db = tmp_path / "flag.db"
    assert cli("disable", "compact", "--db", flag_db).code == 0  # --db wins over MEMTUI_DB
    assert jobs_json(cli, flag_db)["compact"]["enabled"] is False
    env_jobs = {j["name"]: j for j in json.loads(cli("jobs", "--json").out)}
    assert env_jobs["compact"]["enabled"] is True  # the env database was not the one disabled
    assert [a[2] for a in dump(env_db)["audit_log"]] == []


def test_memtui_db_and_db_take_a_url(cli, db_target, tmp_path, monkeypatch):
    """A PostgreSQL URL, or a SQLite file as sqlite:///PATH: the same rules as a path."""
    url = db_target if "://" in db_target else f"sqlite:///{db_target}"
    monkeypatch.setenv("MEMTUI_DB", url)
    assert_one_line_error(cli("jobs"), f"no memtui database at {db_target}")  # a listing creates nothing
    assert not has_store(url)
    assert cli("remember", "from the environment").code == 0
    assert cli("disable", "compact").code == 0
    assert jobs_json(cli, url)["compact"]["enabled"] is False
    assert jobs_json(cli, db_target)["compact"]["enabled"] is False  # the very same database
    with another_target(db_target, tmp_path, "flag") as flag:
        assert cli("disable", "decay", "--db", flag).code == 0  # --db wins over MEMTUI_DB
        assert jobs_json(cli, flag)["decay"]["enabled"] is False
    assert jobs_json(cli, url)["decay"]["enabled"] is True


@pytest.mark.sqlite_only  # about the default file
def test_default_database_goes_to_the_xdg_data_dir_owner_only(cli, tmp_path):
    result = cli("jobs")
    assert result.code == 0, result.err
    path = tmp_path / "xdg-data" / "memtui" / "memtui.db"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "compact" in result.out


def test_config_file_applies_on_first_start(cli, db_target, tmp_path):
    cfg = tmp_path / "memtui.toml"
    cfg.write_text('[jobs.compact]\nschedule = "6h"\ntimezone = "UTC"\nruns_per_job = 50\n')
    path = db_target
    assert cli("pause", "--db", path, "--config", cfg).code == 0
    jobs = json.loads(cli("jobs", "--json", "--db", path, "--config", cfg).out)
    compact = {j["name"]: j for j in jobs}["compact"]
    assert (compact["schedule"], compact["timezone"]) == ("6h", "UTC")
    assert compact["config"]["runs_per_job"] == 50


def test_memtui_config_environment_variable(cli, db_target, tmp_path, monkeypatch):
    cfg = tmp_path / "env.toml"
    cfg.write_text('[jobs.compact]\nschedule = "3h"\n')
    monkeypatch.setenv("MEMTUI_CONFIG", str(cfg))
    path = db_target
    assert cli("remember", "x", "--db", path).code == 0
    assert jobs_json(cli, path)["compact"]["schedule"] == "3h"


# -- version and help ------------------------------------------------------------------------

def test_version():
    proc = subprocess.run([MEMTUI, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"memtui {version('memtui')}"
    assert proc.stderr == ""


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("jobs", "run", "enable", "disable", "retime", "history", "pause", "resume", "engines", "--no-ui",
                    "--db", "PATH|URL", "--config", "--version"):
        assert command in out


def test_each_command_s_own_help_says_what_it_does(capsys):
    """``memtui mcp --help`` opened with its usage and options alone; it says what the command is for,
    in the words the main help uses for it."""
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    listed = {choice.dest: " ".join(choice.help.split()) for choice in commands._choices_actions}
    assert len(listed) >= 15
    for name, said in listed.items():
        with pytest.raises(SystemExit):
            main([name, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert said[0].upper() + said[1:] + "." in out, name


# -- bad input: one line, exit 2, nothing changed ----------------------------------------------

BAD_INPUT = [
    # unknown job
    (["enable", "nosuch"], ["unknown job 'nosuch'", "compact"]),
    (["disable", "nosuch"], ["unknown job 'nosuch'"]),
    (["run", "nosuch"], ["unknown job 'nosuch'"]),
    (["retime", "nosuch", "5m"], ["unknown job 'nosuch'"]),
    (["history", "nosuch"], ["unknown job 'nosuch'"]),
    # bad spec
    (["retime", "compact", "0s"], ["longer than zero"]),
    (["retime", "compact", "--", "-5m"], ["cannot read '-5m'", "5-field cron"]),
    (["retime", "compact", "every day"], ["5-field cron"]),
    (["retime", "compact", "61 * * * *"], ["minute"]),
    (["retime", "compact", "400d"], ["366 days"]),
    (["retime", "compact", ""], ["empty schedule"]),
    (["retime", "compact", "9" * 5000 + "s"], []),
    # bad time zone
    (["retime", "compact", "0 3 * * *", "--tz", "Mars/Olympus_Mons"], ["unknown time zone 'Mars/Olympus_Mons'"]),
    (["retime", "compact", "5m", "--tz", "Europe/Berlinn"], ["unknown time zone"]),
    # unknown argument / bad usage
    (["jobs", "--bogus"], ["--bogus", "see 'memtui jobs --help'"]),
    (["--bogus"], ["--bogus", "see 'memtui --help'"]),
    (["--bogus", "jobs"], ["--bogus", "see 'memtui --help'"]),
    (["frobnicate"], ["frobnicate"]),
    (["run"], ["name", "see 'memtui run --help'"]),
    (["retime", "compact"], ["spec"]),
    (["retime", "compact", "-5m"], ["cannot read '-5m'", "5-field cron"]),
    (["retime", "compact", "--tz", "UTC", "-5m"], ["cannot read '-5m'"]),
    (["history", "--limit", "0"], ["--limit"]),
    (["history", "--limit", "many"], ["--limit"]),
    (["run", "compact", "extra"], ["extra", "see 'memtui run --help'"]),
]


@pytest.mark.parametrize("argv, fragments", BAD_INPUT, ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else "")
def test_bad_input_is_one_line_exit_2_and_changes_nothing(cli, db, argv, fragments):
    before_files, before_rows = files_beside(db), dump(db)
    result = cli("--db", db, *argv)
    assert_one_line_error(result, *fragments)
    assert result.out == ""
    assert files_beside(db) == before_files
    assert dump(db) == before_rows


def test_only_retime_arguments_are_read_as_a_dashed_schedule(cli, db):
    """The word "retime" elsewhere (a sender, a memory's text, a job name) changes nothing."""
    result = cli("remember", "--sender", "retime", "--db", db, "--", "-x")
    assert result.code == 0, result.err
    assert cli("remember", "retime", "--keep", "--db", db).code == 0
    store = Store.open(db, create=False)
    try:
        Pending = store.m.PendingMemory
        rows = list(Pending.select(Pending.sender, Pending.content, Pending.remember)
                    .order_by(Pending.id.desc()).limit(2).tuples())
    finally:
        store.close()
    assert rows == [("", "retime", True), ("retime", "-x", False)]
    assert_one_line_error(cli("history", "retime", "--limit", "5", "--db", db), "unknown job 'retime'")
    assert cli("retime", "compact", "--t", "UTC", "2h", "--db", db).code == 0  # an abbreviated --tz
    assert cli("retime", "compact", "--tz", "UTC", "3h", "--db", db).code == 0  # options before the spec
    assert cli("--db", db, "retime", "compact", "4h", "--tz", "UTC").code == 0


BAD_CONFIGS = {
    "not-toml": (b"[engine\npoll_interval_s = 1\n", "not valid TOML"),
    "not-utf8": (b"\xff\xfe[engine]\n", "cannot read"),
    "negative": (b"[engine]\nbackoff_base_s = -1\n", "backoff_base_s"),
    "too-big": (b"[engine]\npoll_interval_s = 1000\n", "poll_interval_s"),
    "infinite": (b"[engine]\nbackoff_cap_s = inf\n", "backoff_cap_s"),
    "nan-poll": (b"[engine]\npoll_interval_s = nan\n", "poll_interval_s"),
    "nan-grace": (b"[engine]\nmisfire_grace_s = nan\n", "misfire_grace_s"),
    "nan-job-param": (b"[jobs.compact]\nvacuum_free_ratio = nan\n", "vacuum_free_ratio"),
    "wrong-type": (b'[engine]\npoll_interval_s = "fast"\n', "poll_interval_s"),
    "bool-for-number": (b"[engine]\nbackoff_cap_s = true\n", "backoff_cap_s"),
    "unknown-key": (b"[engine]\nturbo = true\n", "turbo"),
    "unknown-table": (b"[server]\nport = 1\n", "server"),
    "unknown-job": (b'[jobs.nosuch]\nschedule = "5m"\n', "nosuch"),
    "bad-schedule": (b'[jobs.compact]\nschedule = "0s"\n', "schedule"),
    "bad-zone": (b'[jobs.compact]\ntimezone = "Mars/Olympus_Mons"\n', "time zone"),
    "bad-enabled": (b'[jobs.compact]\nenabled = "yes"\n', "enabled"),
    "bad-param": (b"[jobs.compact]\nruns_per_job = 1\n", "runs_per_job"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_malformed_config_is_one_line_naming_the_file_and_key(cli, db, tmp_path, case):
    content, fragment = BAD_CONFIGS[case]
    path = tmp_path / "configs" / f"{case}.toml"
    path.parent.mkdir()
    path.write_bytes(content)
    before_files, before_rows = files_beside(db), dump(db)
    for argv in (["jobs"], ["run", "compact"], ["disable", "compact"], ["pause"]):
        result = cli(*argv, "--db", db, "--config", path)
        assert_one_line_error(result, str(path), fragment)
    assert files_beside(db) == before_files
    assert dump(db) == before_rows


def test_missing_or_unreadable_config_file(cli, db, tmp_path):
    missing = tmp_path / "nowhere.toml"
    assert_one_line_error(cli("jobs", "--db", db, "--config", missing), str(missing), "not found")
    directory = tmp_path / "a-dir.toml"
    directory.mkdir()
    assert_one_line_error(cli("jobs", "--db", db, "--config", directory), str(directory))


def test_malformed_config_from_the_environment(cli, db, tmp_path, monkeypatch):
    bad = tmp_path / "env-bad.toml"
    bad.write_text("[engine]\nbackoff_base_s = -1\n")
    monkeypatch.setenv("MEMTUI_CONFIG", str(bad))
    assert_one_line_error(cli("jobs", "--db", db), str(bad), "backoff_base_s")


def test_a_malformed_config_does_not_create_the_database(cli, db_target, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine\n")
    for argv in (["jobs"], ["remember", "x"]):
        assert_one_line_error(cli(*argv, "--db", db_target, "--config", bad), str(bad))
    assert not has_store(db_target)
    assert "://" in db_target or not os.path.exists(db_target)


@pytest.mark.sqlite_only  # about files
def test_unusable_database_paths(cli, tmp_path):
    directory = tmp_path / "a-directory"
    directory.mkdir()
    assert_one_line_error(cli("jobs", "--db", directory), str(directory), "is a directory")
    assert list(directory.iterdir()) == []

    text = tmp_path / "notes.txt"
    text.write_text("my notes, not a database\n" * 10)
    before = files(tmp_path)
    for argv in (["jobs"], ["run", "compact"], ["pause"], ["enable", "compact"]):
        assert_one_line_error(cli(*argv, "--db", text), str(text), "not a SQLite database")
    assert files(tmp_path) == before

    under_file = text / "memtui.db"
    assert_one_line_error(cli("jobs", "--db", under_file), str(under_file))
    assert files(tmp_path) == before


READ_ONLY_COMMANDS = [["jobs"], ["jobs", "--json"], ["history"], ["history", "promote"],
                      ["run", "profile", "--dry-run"], ["engines"], ["engines", "--all", "--json"]]


@pytest.mark.parametrize("argv", READ_ONLY_COMMANDS, ids=" ".join)
def test_a_command_that_only_reads_creates_no_store(cli, db_target, argv):
    """On SQLite no file at the path; on PostgreSQL the database exists, and memtui's tables are not put in."""
    assert_one_line_error(cli("--db", db_target, *argv), f"no memtui database at {db_target}")
    assert not has_store(db_target)


@pytest.mark.sqlite_only  # about files and folders
@pytest.mark.parametrize("argv", READ_ONLY_COMMANDS, ids=" ".join)
def test_a_command_that_only_reads_never_creates_a_database_or_a_folder(cli, tmp_path, argv):
    typo = tmp_path / "nonexistent" / "dir" / "x.db"
    assert_one_line_error(cli("--db", typo, *argv), f"no memtui database at {typo}")
    assert not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / "xdg-data" / "memtui").exists(), "nor the default database"


@pytest.mark.sqlite_only  # about files and folders
def test_a_command_that_writes_creates_missing_folders_owner_only(cli, tmp_path):
    path = tmp_path / "new" / "deeper" / "memtui.db"
    assert cli("remember", "first memory", "--db", path).code == 0
    for folder in (tmp_path / "new", tmp_path / "new" / "deeper"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.sqlite_only  # about files
def test_the_database_and_its_log_files_are_owner_only(tmp_path):
    path = tmp_path / "m.db"
    store = Store.open(path)
    try:
        Engine(store).remember("a write, so the -wal and -shm files exist")
        for name in (path, f"{path}-wal", f"{path}-shm"):
            assert os.path.exists(name) and stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
    finally:
        store.close()


@pytest.mark.sqlite_only  # about files
@pytest.mark.parametrize("special", ["/dev/null", "fifo"])
def test_a_path_that_is_not_a_regular_file_is_refused_as_such(cli, tmp_path, special):
    if special == "fifo":
        special = tmp_path / "pipe"
        os.mkfifo(special)
    for argv in (["jobs"], ["remember", "x"], ["run", "compact"]):
        assert_one_line_error(cli(*argv, "--db", special), f"{special}: not a regular file")


def test_an_empty_db_path_is_refused_not_replaced_by_the_default(cli, tmp_path):
    # `memtui --db "$UNSET_VAR" disable compact` must not quietly edit the user's real database
    result = cli("disable", "compact", "--db", "")
    assert_one_line_error(result)
    assert not (tmp_path / "xdg-data" / "memtui" / "memtui.db").exists()


def test_newer_schema_database_is_refused_unchanged(cli, db):
    store = Store.open(db)
    try:
        store.execute("INSERT INTO schema_migration (name, applied) VALUES ('9999_future', '2030-01-01')")
    finally:
        store.close()
    before_files, before_rows = files_beside(db), dump(db)
    assert_one_line_error(cli("jobs", "--db", db), "newer", "9999_future")
    assert_one_line_error(cli("run", "compact", "--db", db), "newer")
    assert files_beside(db) == before_files
    assert dump(db) == before_rows


@pytest.mark.sqlite_only  # a real process on a file: the in-process tests above cover both backends
@pytest.mark.parametrize("case", ["unknown job", "bad spec", "bad tz", "directory db", "bad config", "unknown arg"])
def test_bad_input_in_a_real_process_prints_no_traceback(tmp_path, case):
    db = tmp_path / "p.db"
    store = Store.open(db)
    Engine(store, Config())
    store.close()
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("[engine]\nbackoff_base_s = -1\n")
    argv = {
        "unknown job": ["run", "nosuch", "--db", db],
        "bad spec": ["retime", "compact", "0m", "--db", db],
        "bad tz": ["retime", "compact", "0 3 * * *", "--tz", "Nowhere/Land", "--db", db],
        "directory db": ["jobs", "--db", tmp_path],
        "bad config": ["jobs", "--db", db, "--config", bad_cfg],
        "unknown arg": ["jobs", "--frobnicate", "--db", db],
    }[case]
    before = files(tmp_path)
    proc = subprocess.run([MEMTUI, *map(str, argv)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("memtui: ")
    assert files(tmp_path) == before
