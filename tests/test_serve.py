"""``memtui serve``: the dashboard in a real browser, and the guards around a page with no login.

The browser test starts ``memtui serve`` on a free port, opens it in Debian's
Chromium through Playwright (``executable_path``: Playwright's own browser
download cannot run on these machines, and is never installed), waits for the
served dashboard's engine to show up in the database, presses ``d`` on the
selected job and checks the database: the job is disabled and the audit log
says the UI did it. The terminal is drawn on a canvas, so the test asserts on
effects, never on page text. A screenshot is saved in the test's folder; with
``MEMTUI_UPDATE_SCREENSHOTS=1`` it is also copied to screenshots/browser.png.

Without /usr/bin/chromium the browser test skips on a developer machine and
fails in CI (``$CI`` set; .ci/run installs Chromium and sets it).
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memtui.tui import cli
from memtui.tui.serve import is_loopback, served_command, url_for

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the command line: refused before anything is created -----------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_a_host_beyond_this_machine_needs_public(host, tmp_path, capsys):
    db = tmp_path / "memtui.db"
    assert cli.main(["serve", "--db", str(db), "--host", host]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--public" in err and "no login" in err
    assert not db.exists()


def test_a_taken_port_is_one_line(tmp_path, capsys):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert cli.main(["serve", "--db", str(tmp_path / "memtui.db"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"memtui: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_bad_port_is_refused(port, capsys):
    assert cli.main(["serve", "--port", port]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_public_warns_and_serves(tmp_path, monkeypatch, capsys):
    called = {}
    monkeypatch.setattr("memtui.tui.serve.serve", lambda db, **kw: called.update(db=db, **kw) or 0)
    db = tmp_path / "memtui.db"
    port = free_port()
    assert cli.main(["serve", "--db", str(db), "--host", "0.0.0.0", "--port", str(port), "--public"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "no login" in err and f"0.0.0.0:{port}" in err
    assert called == {"db": db, "label": str(db), "host": "0.0.0.0", "port": port, "config": None, "public": True}
    assert db.exists()  # created and migrated before serving, as `memtui --db` would


def test_loopback_serves_without_a_warning(tmp_path, monkeypatch, capsys):
    called = {}
    monkeypatch.setattr("memtui.tui.serve.serve", lambda db, **kw: called.update(db=db, **kw) or 0)
    assert cli.main(["serve", "--db", str(tmp_path / "memtui.db"), "--port", str(free_port())]) == 0
    assert capsys.readouterr().err == ""
    assert called["host"] == "127.0.0.1" and called["public"] is False


def test_loopback_names():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.example.com"))
    assert url_for("::1", 8000) == "http://[::1]:8000" and url_for("127.0.0.1", 80) == "http://127.0.0.1:80"


def test_the_served_command_is_this_memtui_with_the_database_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    command, env = served_command(Path("sub/memtui.db"), "conf.toml")
    assert shlex.split(command) == [sys.executable, "-m", "memtui", "--db", str(tmp_path / "sub" / "memtui.db"),
                                    "--config", str(tmp_path / "conf.toml")]
    assert env == {}


def test_a_url_password_never_reaches_the_command_line():
    url = "postgresql://memtui:s3cret@db.example:5432/memtui"
    command, env = served_command(url)
    assert "s3cret" not in command and "--db" not in command
    assert env == {"MEMTUI_DB": url}  # the dashboards read it from their environment


# -- the real thing: a browser, a key, the database -------------------------------------------------

def _rows(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db, timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def _wait(what: str, check, timeout: float, proc: subprocess.Popen | None, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"memtui serve exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}; memtui serve said:\n{log.read_text()[-3000:]}")


def test_the_dashboard_in_a_browser_disables_a_job(tmp_path):
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} not found (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the browser test")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    db = tmp_path / "memtui.db"
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "xdg-state"), "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    demo = subprocess.run([sys.executable, "-m", "memtui", "demo", "--db", str(db)], capture_output=True, text=True,
                          env=env, timeout=60)  # something to look at in the screenshot
    assert demo.returncode == 0, demo.stderr
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "memtui", "serve", "--db", str(db), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    shot = tmp_path / "browser.png"
    try:
        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        _wait("the server to listen", listening, 20, proc, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
                # the served dashboard started its engine: its heartbeat row is in the database
                _wait("the served dashboard's engine", lambda: _rows(
                    db, "SELECT id FROM engine_instance WHERE stopped_at IS NULL"), 30, proc, log)
                page.wait_for_selector("body.-first-byte", timeout=20_000)  # the terminal got its first bytes
                page.wait_for_selector(".textual-terminal canvas, .textual-terminal .xterm", timeout=10_000)
                time.sleep(1.5)  # the app mounts and selects the first job after its first frame
                page.click(".textual-terminal")

                def disabled():
                    return _rows(db, "SELECT job, action FROM audit_log WHERE source = 'ui'")

                deadline = time.monotonic() + 20
                found = []
                while not found and time.monotonic() < deadline:  # again if the app was not listening yet
                    page.keyboard.press("d")
                    end = time.monotonic() + 4
                    while not found and time.monotonic() < end:
                        found = disabled()
                        time.sleep(0.2)
                if not found:
                    page.screenshot(path=str(shot))
                    pytest.fail(f"no audit row from the UI after pressing d (screenshot: {shot}); "
                                f"memtui serve said:\n{log.read_text()[-3000:]}")
                time.sleep(1.0)  # the toast and the table redraw
                page.screenshot(path=str(shot))

                # SIGTERM (or ctrl-c) with the page still open: the server quits every dashboard it
                # serves, and each stops its engine, rather than leaving them running on their own
                proc.send_signal(signal.SIGTERM)
                _wait("memtui serve to stop", lambda: proc.poll() is not None, 20, None, log)
                assert proc.returncode == 0, log.read_text()[-3000:]
                assert _rows(db, "SELECT id FROM engine_instance WHERE stopped_at IS NULL") == []
            finally:
                browser.close()
        job, action = found[0]
        assert action == "disable" and job == "promote", found  # the jobs table opens on its first job
        assert _rows(db, "SELECT enabled FROM job_definition WHERE name = ?", job) == [(0,)]
        assert shot.stat().st_size > 10_000
        if os.environ.get("MEMTUI_UPDATE_SCREENSHOTS"):
            (ROOT / "screenshots").mkdir(exist_ok=True)
            shutil.copyfile(shot, ROOT / "screenshots" / "browser.png")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
