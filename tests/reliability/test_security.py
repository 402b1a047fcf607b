"""Security: owner-only database files, warnings for an exposed config, and no API key anywhere.

The key tests plant fake keys in the environment, make every path that could
carry them run — a model error quoting the keys, a provider that echoes the
Authorization header back in a 401 (a local HTTP server, as OpenAI's API does
with "Incorrect API key provided: sk-..."), a successful call, the CLI, the
headless engine as a real process, the dashboard's details screen — and then
search the database file and its WAL, every run row, everything printed and the
screenshot for the keys and for their random parts.
"""
from __future__ import annotations

import contextlib
import html
import io
import json
import os
import re
import secrets
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from memtui.engine import Engine
from memtui.engine.config import Config, LLMSettings, load_config
from memtui.models import Store
from memtui.tui.cli import main

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60  # seconds; only reached when something is broken


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


# == owner-only files ============================================================================

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o000], ids=["umask-022", "umask-002", "umask-000"])
def test_database_wal_and_shm_are_owner_only_after_a_run(tmp_path, clock, umask):
    db = tmp_path / "new-dir" / "memtui.db"
    old = os.umask(umask)
    try:
        store = Store.open(db)
        engine = Engine(store, Config(), clock)
        try:
            engine.remember("a note to promote", importance=9, confidence=0.9, keep=True)
            assert engine.run_job("promote").status == "success"
            files = [Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm")]
            for path in files:
                assert path.exists(), f"{path.name} missing while the store is open"
            assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(0o600) for p in files}
        finally:
            engine.stop(timeout=5)
            engine.close()
    finally:
        os.umask(old)
    assert mode(db) == 0o600


# == a config file holding a secret =============================================================

SECRET_CONFIGS = {
    "key-shaped value": '[llm]\nmodel = "gpt-4o-mini"\napi_base = "https://proxy.example/v1?key=sk-memtuiconf1234567890"\n',
    "secret-named key": '[llm.options]\nproxy_password = "hunter2hunter2"\n',
}


@pytest.mark.parametrize("file_mode, warns", [(0o644, True), (0o640, True), (0o604, True), (0o600, False),
                                              (0o400, False)], ids=["0644", "0640", "0604", "0600", "0400"])
@pytest.mark.parametrize("name", list(SECRET_CONFIGS))
def test_a_config_holding_a_secret_warns_when_others_can_read_it(tmp_path, name, file_mode, warns):
    path = tmp_path / "config.toml"
    path.write_text(SECRET_CONFIGS[name])
    os.chmod(path, file_mode)
    config = load_config(path)
    assert len(config.warnings) == (1 if warns else 0), config.warnings
    for warning in config.warnings:
        assert str(path) in warning and "chmod 600" in warning and "\n" not in warning

    code, out, err = run_cli("pause", "--config", path, "--db", tmp_path / "memtui.db")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("memtui: warning: ")]
    assert len(warnings) == (1 if warns else 0), err
    assert "hunter2hunter2" not in out + err and "sk-memtuiconf" not in out + err  # never echoes the secret


def test_a_config_without_a_secret_does_not_warn_even_if_world_readable(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[llm]\nmodel = "gpt-4o-mini"\n[jobs.promote]\nschedule = "1m"\n')
    os.chmod(path, 0o644)
    assert load_config(path).warnings == ()


# == no API key anywhere =========================================================================

@pytest.fixture
def planted(monkeypatch) -> dict[str, str]:
    """Fake keys in the environment: one key-shaped, one only recognizable by its variable's name."""
    keys = {
        "OPENAI_API_KEY": f"sk-memtui-test-{secrets.token_hex(12)}",
        "ANTHROPIC_API_KEY": f"memtui-anthropic-{secrets.token_hex(12)}",
    }
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return keys


def needles(keys: dict[str, str]) -> list[str]:
    """Each key, and its random part alone (a partly masked key still leaks that)."""
    found = []
    for value in keys.values():
        found += [value, value.rsplit("-", 1)[1]]
    return found


class _EchoKey(BaseHTTPRequestHandler):
    """A provider that answers 401 and quotes the credentials it was sent, as real APIs do."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        auth = self.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ") or self.headers.get("x-api-key", "")
        body = json.dumps({"error": {
            "message": f"Incorrect API key provided: {key}. You sent the header 'Authorization: {auth}'.",
            "type": "invalid_request_error", "code": "invalid_api_key"}}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKey)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def add_profile(store, entity: str, values: list[tuple[str, str]], when) -> None:
    for key, value in values:
        store.execute("INSERT INTO profile_attribute (entity, category, key, value, confidence, source, updated_at)"
                      " VALUES (?, 'location', ?, ?, 0.5, 'agent', ?)", (entity, key, value, when.timestamp()))


def add_day_of_messages(store, when) -> None:
    cid = store.execute("INSERT INTO conversation (channel, sender, status, started_at, updated_at)"
                        " VALUES ('chat', 'alice', 'closed', ?, ?)", (when.timestamp(), when.timestamp())).lastrowid
    for text in ("I moved to Munich last week.", "Please book the usual table at Sora."):
        store.execute("INSERT INTO message (conversation_id, sender, role, content, created_at)"
                      " VALUES (?, 'alice', 'user', ?, ?)", (cid, text, when.timestamp()))


def db_bytes(db: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (db, Path(f"{db}-wal")) if p.exists()}


def run_rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT id, job, status, result, error, traceback FROM run ORDER BY id").fetchall()
    finally:
        con.close()


def assert_nowhere(keys: dict[str, str], texts: dict[str, str], blobs: dict[str, bytes]) -> None:
    leaks = []
    for needle in needles(keys):
        leaks += [f"{needle!r} in {where}" for where, text in texts.items() if needle in (text or "")]
        leaks += [f"{needle!r} in {where}" for where, blob in blobs.items() if needle.encode() in blob]
    assert not leaks, "secret found: " + "; ".join(leaks)


def _llm(model: str, **kwargs) -> Config:
    return Config(llm=LLMSettings(model=model, retries=0, **kwargs))


def memtui_process(*argv, env: dict, umask: int = 0o022, timeout: float = WAIT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memtui", *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout, umask=umask)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_no_key_in_the_database_runs_cli_output_or_dashboard(tmp_path, clock, planted, echo_server, capfd):
    from memtui.tui.app import MemtuiApp
    from memtui.tui.screens import DetailsScreen
    from tests.factories import static_text

    db = tmp_path / "secret.db"
    store = Store.open(db)
    add_profile(store, "alice", [("city", "Berlin"), ("city", "Munich")], clock() - timedelta(days=3))
    add_day_of_messages(store, clock() - timedelta(days=2))
    key, other = planted["OPENAI_API_KEY"], planted["ANTHROPIC_API_KEY"]
    failing = Exception(f"bad key {key} (and {other}); header 'Authorization: Bearer {key}'")
    answer = json.dumps({"operations": [{"op": "keep", "id": "a1"}, {"op": "update", "id": "a2", "value": "München"}]})  # a real change: a no-op is not counted
    runs = []
    try:
        # the model raises an error quoting both keys: through profile and rollup-day
        engine = Engine(store, _llm("gpt-4o-mini", options={"mock_response": failing}), clock)
        runs += [engine.run_job("profile"), engine.run_job("rollup-day")]
        # a provider echoing the key back in a 401
        engine = Engine(store, _llm("openai/gpt-4o-mini", api_base=echo_server), clock)
        runs.append(engine.run_job("profile"))
        assert "authentication failed" in runs[-1].error, runs[-1].error
        # and successes
        engine = Engine(store, _llm("gpt-4o-mini", options={"mock_response": answer}), clock)
        runs.append(engine.run_job("profile"))
        engine = Engine(store, _llm("gpt-4o-mini", options={"mock_response": "Alice moved to Munich."}), clock)
        runs.append(engine.run_job("rollup-day"))
        assert [r.status for r in runs] == ["failed", "failed", "failed", "success", "success"], \
            [(r.job, r.status, r.error) for r in runs]
        assert runs[3].result["updated"] == 1, runs[3].result

        # the CLI, as separate processes with the keys in their environment
        add_profile(store, "bob", [("diet", "vegetarian"), ("diet", "vegan")], clock() - timedelta(days=1))
        config = tmp_path / "config.toml"
        config.write_text(f'[llm]\nmodel = "openai/gpt-4o-mini"\napi_base = "{echo_server}"\nretries = 0\n')
        env = {**os.environ}
        outputs = {}
        for argv in (["run", "profile"], ["run", "profile", "--json"], ["jobs", "--json"], ["history", "--json"],
                     ["history", "profile"]):
            done = memtui_process(*argv, "--db", db, "--config", config, env=env)
            outputs[f"memtui {' '.join(argv)} stdout"] = done.stdout
            outputs[f"memtui {' '.join(argv)} stderr"] = done.stderr
            assert done.returncode == (1 if argv[0] == "run" else 0), (argv, done.stdout, done.stderr)
        assert "authentication failed" in outputs["memtui run profile stdout"]

        # the dashboard, on the details of the failed job
        engine = Engine(store, _llm("openai/gpt-4o-mini", api_base=echo_server), clock)
        app = MemtuiApp(engine, model="openai/gpt-4o-mini")
        async with app.run_test(size=(220, 80)) as pilot:
            await pilot.pause()
            table = app.jobs_table
            table.move_cursor(row=table.get_row_index("profile"))
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, DetailsScreen)
            details = static_text(app.screen, "#details")
            assert "authentication failed" in details and "Traceback" in details, details
            screenshot = app.export_screenshot()
        outputs["details screen"] = details
        outputs["screenshot"] = screenshot
        outputs["screenshot text"] = html.unescape(re.sub(r"<[^>]+>", "", screenshot)).replace("\xa0", " ")

        outputs["history rows"] = json.dumps([r.to_json() for r in engine.history(limit=1000)])
        blobs = db_bytes(db)  # while open: the WAL still holds the recent pages
    finally:
        store.close()
    blobs.update({f"{name} after close": blob for name, blob in db_bytes(db).items()})
    for row in run_rows(db):
        outputs[f"run {row[0]} ({row[1]}, {row[2]})"] = " | ".join(str(v) for v in row[3:])
    captured = capfd.readouterr()
    outputs["test process stdout"], outputs["test process stderr"] = captured.out, captured.err
    assert len(run_rows(db)) >= 7
    assert_nowhere(planted, outputs, blobs)


def test_headless_engine_with_a_provider_echoing_the_key(tmp_path, clock, planted, echo_server):
    """The engine as a service: a model call every second fails with the key quoted; nothing shows it."""
    db = tmp_path / "headless.db"
    store = Store.open(db)
    add_profile(store, "alice", [("city", "Berlin"), ("city", "Munich")], clock() - timedelta(days=3))
    store.close()
    config = tmp_path / "config.toml"
    config.write_text(f'[engine]\npoll_interval_s = 0.2\nbackoff_base_s = 1\n\n'
                      f'[llm]\nmodel = "openai/gpt-4o-mini"\napi_base = "{echo_server}"\nretries = 0\n\n'
                      f'[jobs.profile]\nschedule = "1s"\n')
    proc = subprocess.Popen([sys.executable, "-m", "memtui", "--no-ui", "--db", db, "--config", config],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, umask=0o002)
    try:
        deadline = time.monotonic() + WAIT
        failed = 0
        while time.monotonic() < deadline and failed < 2 and proc.poll() is None:
            time.sleep(0.5)
            with contextlib.suppress(sqlite3.Error):
                failed = sum(1 for row in run_rows(db) if row[1] == "profile" and row[2] == "failed")
        assert failed >= 2, "the engine never ran profile twice"
        files = {p.name: oct(mode(p)) for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()}
        assert files == {name: oct(0o600) for name in files} and len(files) == 3, files
        blobs = db_bytes(db)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "authentication failed" in err, err
    texts = {"engine stdout": out, "engine stderr": err}
    for row in run_rows(db):
        texts[f"run {row[0]} ({row[1]}, {row[2]})"] = " | ".join(str(v) for v in row[3:])
    blobs.update({f"{name} after stop": blob for name, blob in db_bytes(db).items()})
    assert_nowhere(planted, texts, blobs)


def test_a_model_answer_quoting_a_key_is_not_recorded_verbatim(tmp_path, clock, planted):
    """A misbehaving provider or proxy puts the key into the answer itself; the rejection reason
    recorded in the run's result must not carry it (redact.py: everything recorded about a failure)."""
    key = planted["OPENAI_API_KEY"]
    answer = json.dumps({"operations": [{"op": "keep", "id": key}, {"op": "keep", "id": "a2"}]})
    store = Store.open(tmp_path / "answer.db")
    try:
        add_profile(store, "alice", [("city", "Berlin"), ("city", "Munich")], clock() - timedelta(days=3))
        run = Engine(store, _llm("gpt-4o-mini", options={"mock_response": answer}), clock).run_job("profile")
        assert run.status == "success" and run.result["rejected"] == 1, run
        texts = {"result": json.dumps(run.result), "error": run.error or "", "traceback": run.traceback or ""}
    finally:
        store.close()
    assert_nowhere(planted, texts, db_bytes(tmp_path / "answer.db"))
