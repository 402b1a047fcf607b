"""`memtui --no-ui` as a real process: log lines, other processes' commands, signals, crash recovery.

SQLite only (the files are read with sqlite3); a crashed run is recognised by its expired lease,
so the crash test gives the crashing process a short lease TTL (5 s, the least allowed)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MEMTUI = os.path.join(os.path.dirname(sys.executable), "memtui")
TIMEOUT = 20  # seconds; only reached when something is broken


class Lines:
    """Collects a pipe's lines on a thread so the test can wait for one with a timeout."""

    def __init__(self, pipe):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe):
        for line in pipe:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        pipe.close()

    def wait_for(self, fragment: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if fragment in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line with {fragment!r} within {timeout} s; got: {self.lines}")
                self._cond.wait(left)

    def text(self) -> str:
        self._thread.join(TIMEOUT)
        with self._cond:
            return "\n".join(self.lines)


@pytest.fixture
def spawn():
    """Start processes; any still alive at the end are killed (by their own pid)."""
    procs: list[subprocess.Popen] = []

    def start(*argv, **kwargs) -> subprocess.Popen:
        # SIGHUP as a terminal leaves it, whatever this test run inherited (under nohup: ignored)
        kwargs.setdefault("preexec_fn", hangups(signal.SIG_DFL))
        proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)


def hangups(disposition):
    """A preexec_fn giving the child this SIGHUP disposition."""
    return lambda: signal.signal(signal.SIGHUP, disposition)


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "fast.toml"
    path.write_text("[engine]\npoll_interval_s = 0.2\n")
    return path


def memtui(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([MEMTUI, *map(str, argv)], capture_output=True, text=True, timeout=60, cwd=ROOT)


def start_headless(spawn, db, config_file, **kwargs):
    proc = spawn(MEMTUI, "--no-ui", "--db", db, "--config", config_file, **kwargs)
    log = Lines(proc.stderr)
    line = log.wait_for("engine running")
    return proc, log, line


def stop(proc, log, sig=signal.SIGTERM) -> str:
    proc.send_signal(sig)
    assert proc.wait(timeout=10) == 0
    return log.text()


def query(db, sql, params=()):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_headless_runs_logs_and_follows_other_processes_then_stops_on_sigterm(spawn, tmp_path, config_file):
    db = tmp_path / "headless.db"
    proc, log, running = start_headless(spawn, db, config_file)
    assert str(db) in running
    assert "compact" in running

    # another process runs a job while the engine is up: no lock errors, exit 0
    result = memtui("run", "compact", "--db", db)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("compact success in ") and "(manual)" in result.stdout

    # changes made by other processes are adopted within a poll, each told once with its source
    assert memtui("pause", "--db", db).returncode == 0
    log.wait_for("all jobs paused (cli)")
    assert memtui("resume", "--db", db).returncode == 0
    log.wait_for("all jobs resumed (cli)")

    # a schedule changed elsewhere fires here, one log line per run
    assert memtui("retime", "compact", "1s", "--db", db).returncode == 0
    log.wait_for("compact retimed: 0 4 * * 0")
    line = log.wait_for("compact success")
    assert "(manual)" not in line  # a scheduled run
    assert memtui("disable", "compact", "--db", db).returncode == 0
    log.wait_for("compact disabled (cli)")
    assert memtui("enable", "decay", "--db", db).returncode == 0  # already on: still a change someone made
    log.wait_for("decay already enabled (cli)")

    text = stop(proc, log)
    assert text.splitlines()[-1].endswith("stopped")
    assert "Traceback" not in text
    for change in ("all jobs paused (cli)", "all jobs resumed (cli)", "compact disabled (cli)"):
        assert text.count(change) == 1, change
    statuses = query(db, "SELECT reason, status FROM run WHERE job = 'compact' ORDER BY id")
    assert statuses[0] == ("manual", "success")
    assert ("scheduled", "success") in statuses
    assert query(db, "SELECT count(*) FROM run WHERE status = 'running'") == [(0,)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_headless_exits_0_on_sigterm_sigint_and_sighup(spawn, tmp_path, config_file, sig):
    db = tmp_path / "sig.db"
    proc, log, _ = start_headless(spawn, db, config_file)
    [(pid, stopped)] = query(db, "SELECT pid, stopped_at FROM engine_instance")
    assert (pid, stopped) == (proc.pid, None)  # registered while it runs
    t0 = time.monotonic()
    text = stop(proc, log, sig)
    assert time.monotonic() - t0 < 5
    assert text.splitlines()[-1].endswith("stopped")
    assert "Traceback" not in text
    [(pid, stopped)] = query(db, "SELECT pid, stopped_at FROM engine_instance")
    assert pid == proc.pid and stopped is not None  # a clean stop says so: nobody waits for its heartbeat


def test_started_in_the_background_it_still_stops_on_sigint(spawn, tmp_path, config_file):
    """A shell starts a background job (``memtui --no-ui &``) with SIGINT ignored; ``kill -INT`` still stops
    the engine cleanly, as it did before hangups were handled (only nohup's ignored SIGHUP is kept)."""
    def background():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    db = tmp_path / "bg.db"
    proc, log, _ = start_headless(spawn, db, config_file, preexec_fn=background)
    text = stop(proc, log, signal.SIGINT)
    assert text.splitlines()[-1].endswith("stopped")


def test_under_nohup_a_hangup_is_still_ignored(spawn, tmp_path, config_file):
    """``nohup memtui --no-ui &`` asks for hangups to be ignored: the engine keeps that, and runs on."""
    db = tmp_path / "nohup.db"
    proc, log, _ = start_headless(spawn, db, config_file, preexec_fn=hangups(signal.SIG_IGN))
    proc.send_signal(signal.SIGHUP)
    assert memtui("disable", "compact", "--db", db).returncode == 0
    log.wait_for("compact disabled (cli)")  # picked up after the hangup: still serving
    assert proc.poll() is None
    text = stop(proc, log)
    assert text.splitlines()[-1].endswith("stopped")


CRASHING_WORKER = textwrap.dedent("""
    import sys, time
    import memtui.engine.jobs as jobs
    from memtui.engine import Config, Engine
    from memtui.engine.config import EngineSettings
    from memtui.engine.jobs.base import JobKind
    from memtui.engine.jobs.compact import CompactConfig

    def hang(ctx):
        print("started", flush=True)
        time.sleep(120)

    jobs.KINDS["compact"] = JobKind("compact", hang, CompactConfig, "hangs")
    Engine(sys.argv[1], Config(engine=EngineSettings(lease_ttl_s=5.0))).run_job("compact")
""")


def test_a_run_left_running_by_a_sigkilled_process_is_interrupted_once_its_lease_expires(spawn, tmp_path,
                                                                                         config_file):
    db = tmp_path / "crash.db"
    worker = spawn(sys.executable, "-c", CRASHING_WORKER, db)
    Lines(worker.stdout).wait_for("started")
    [(run_id, status, owner)] = query(db, "SELECT id, status, owner FROM run WHERE job = 'compact'")
    assert status == "running"
    assert owner.split(":")[1] == str(worker.pid)
    assert query(db, "SELECT lease_run_id FROM job_state WHERE name = 'compact'") == [(run_id,)]

    worker.send_signal(signal.SIGKILL)
    worker.wait(TIMEOUT)

    # the dead run still holds the job until its lease expires (no PID check: it could be another host's)
    assert query(db, "SELECT status FROM run WHERE id = ?", (run_id,)) == [("running",)]

    proc, log, _ = start_headless(spawn, db, config_file)
    line = log.wait_for("compact interrupted")  # within the 5 s lease TTL and a poll
    assert "the process running it stopped before it finished" in line
    stop(proc, log)

    [(status, error, finished)] = query(db, "SELECT status, error, finished_at FROM run WHERE id = ?", (run_id,))
    assert status == "interrupted"
    assert error == "the process running it stopped before it finished"
    assert finished is not None
    assert query(db, "SELECT lease_owner, lease_run_id, last_status FROM job_state WHERE name = 'compact'") == \
        [(None, None, "interrupted")]
    assert memtui("run", "compact", "--db", db).returncode == 0  # the job is free again


HANGING_HEADLESS = textwrap.dedent("""
    import sys, time
    import memtui.engine.jobs as jobs
    from memtui.engine.jobs.base import JobKind
    from memtui.engine.jobs.compact import CompactConfig

    def hang(ctx):
        print("hanging", file=sys.stderr, flush=True)
        time.sleep(120)

    jobs.KINDS["compact"] = JobKind("compact", hang, CompactConfig, "hangs")
    from memtui.tui.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_sigterm_with_a_job_still_running_marks_it_interrupted_and_exits_0(spawn, tmp_path):
    db = tmp_path / "hang.db"
    cfg = tmp_path / "hang.toml"
    cfg.write_text("[engine]\npoll_interval_s = 0.2\nstop_timeout_s = 0.5\n")
    proc = spawn(sys.executable, "-c", HANGING_HEADLESS, "--no-ui", "--db", db, "--config", cfg)
    log = Lines(proc.stderr)
    log.wait_for("engine running")
    assert memtui("retime", "compact", "1s", "--db", db).returncode == 0
    log.wait_for("hanging")

    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5
    text = log.text()
    assert "stopping: waiting up to 0.5 s for compact" in text
    assert "compact interrupted" in text
    assert text.splitlines()[-1].endswith("stopped; unfinished runs were marked interrupted")
    [(status, error)] = query(db, "SELECT status, error FROM run WHERE job = 'compact'")
    assert status == "interrupted"
    assert "engine stopped after waiting 0.5 s" in error
    assert query(db, "SELECT lease_owner FROM job_state WHERE name = 'compact'") == [(None,)]
