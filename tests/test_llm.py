"""engine/llm.py and engine/redact.py: litellm only when a model is configured, retries, the token budget,
refusals, and no secret reaching a run row; the tests with a store run on SQLite and on PostgreSQL.

The model is litellm itself answering from ``mock_response`` (tests/llm_mock.py).
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memtui.engine import Engine
from memtui.engine.config import ConfigError, LLMSettings
from memtui.engine.llm import BudgetExhausted, LLMClient, LLMError
from memtui.engine.redact import MASK, redact
from tests.factories import snapshot
from tests.llm_mock import MODEL, REFUSAL, ops, model  # noqa: F401  (model is a fixture)

pytestmark = pytest.mark.both_backends

ROOT = Path(__file__).resolve().parent.parent
MEMTUI = os.path.join(os.path.dirname(sys.executable), "memtui")
NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
FAKE_KEY = "sk-test-4f9Qz7LmN2xR8vT1bY6cK3wE5hJ0pA"


def add_attr(store, entity, key, value, days_ago=1.0):
    store.execute("INSERT INTO profile_attribute (entity, category, key, value, source, updated_at)"
                  " VALUES (?, 'other', ?, ?, 'agent', ?)",
                  (entity, key, value, (NOW - timedelta(days=days_ago)).timestamp()))


def dump(store) -> str:
    """Every row of every table, as text (to look for a secret anywhere in the database)."""
    return repr(snapshot(store))


@pytest.fixture
def make_engine(store, clock):
    made = []

    def make(config=None) -> Engine:
        engine = Engine(store, config, clock)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.stop(timeout=5)


def subprocess_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MEMTUI_MODEL", "MEMTUI_CONFIG", "MEMTUI_DB")}
    env.update(extra)
    return env


# -- no model, no litellm ------------------------------------------------------------------

def test_jobs_without_a_model_never_import_litellm(db_target):
    db = db_target
    env = subprocess_env()
    demo = subprocess.run([MEMTUI, "demo", "--db", str(db)], capture_output=True, text=True, timeout=60, env=env)
    assert demo.returncode == 0, demo.stderr

    script = textwrap.dedent(f"""
        import json, sys
        from memtui.engine import open_engine
        from memtui.engine.config import load_config
        engine = open_engine({str(db)!r}, load_config())
        assert engine.config.llm.model is None
        out = {{}}
        for job in ("profile", "rollup-day"):
            run = engine.run_job(job)
            out[job] = [run.status, run.result, run.error]
        out["litellm imported"] = "litellm" in sys.modules or any(m.startswith("litellm.") for m in sys.modules)
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["profile"][0] == "success", out
    assert out["profile"][1]["path"] == "rules" and out["profile"][1]["entities_checked"] > 0
    assert out["rollup-day"][0] == "success", out
    assert out["rollup-day"][1]["path"] == "extractive" and out["rollup-day"][1]["summaries_written"] > 0
    assert out["litellm imported"] is False

    # and the command line itself: python reports every import with PYTHONPROFILEIMPORTTIME
    for job in ("profile", "rollup-day"):
        cli = subprocess.run([MEMTUI, "run", job, "--db", str(db)], capture_output=True, text=True, timeout=120,
                             env=subprocess_env(PYTHONPROFILEIMPORTTIME="1"))
        assert cli.returncode == 0, cli.stderr[-2000:]
        assert "memtui.engine.jobs.profile" in cli.stderr  # the import report is there
        assert "litellm" not in cli.stderr


# -- retries -----------------------------------------------------------------------------------

class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def llm_log():
    """What memtui.llm logs (a handler of its own: the CLI's headless mode stops propagation to the root)."""
    logger = logging.getLogger("memtui.llm")
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize("error", ["litellm.RateLimitError", "litellm.InternalServerError"])
def test_a_transient_error_is_retried_with_backoff_then_fails(model, llm_log, error):
    script = model(error)
    client = LLMClient(script.settings(retries=2, retry_backoff_s=0))
    with pytest.raises(LLMError) as raised:
        client.complete("system", "user")
    assert len(script.calls) == 3
    retrying = [m for m in llm_log if "retrying" in m]
    assert len(retrying) == 2 and retrying[0].endswith("(1/3)") and retrying[1].endswith("(2/3)")
    assert str(raised.value).startswith(f"{MODEL}: ")
    assert not isinstance(raised.value, BudgetExhausted)


def test_retry_delays_double(model):
    script = model("litellm.RateLimitError")
    delays = []
    client = LLMClient(script.settings(retries=3, retry_backoff_s=1.5), sleep=delays.append)
    with pytest.raises(LLMError, match="rate limited"):
        client.complete("system", "user")
    assert delays == [1.5, 3.0, 6.0]
    assert len(script.calls) == 4 and client.calls == 0


def test_a_final_error_is_not_retried(model):
    script = model("litellm.ContextWindowExceededError")
    delays = []
    client = LLMClient(script.settings(retries=3, retry_backoff_s=1), sleep=delays.append)
    with pytest.raises(LLMError, match="prompt too long for the model"):
        client.complete("system", "user")
    assert len(script.calls) == 1 and delays == []


def test_a_job_retries_the_model_then_fails(model, make_engine, store):
    add_attr(store, "alice", "k1", "tea", 2)
    add_attr(store, "alice", "k2", "Tea", 1)
    script = model("litellm.RateLimitError")
    run = make_engine(script.config(retries=2)).run_job("profile")
    assert run.status == "failed"
    assert run.error == f"LLMError: {MODEL}: rate limited: this is a mock rate limit error"
    assert len(script.calls) == 3


def test_an_answer_counts_tokens_and_calls(model):
    client = LLMClient(model("hello there").settings())
    assert client.complete("system", "user") == "hello there"
    assert client.calls == 1 and client.tokens_used > 0


def test_a_refusal_and_an_empty_answer_are_errors(model):
    with pytest.raises(LLMError, match="refused: content filtered"):
        LLMClient(model(REFUSAL).settings()).complete("system", "user")
    empty = {**REFUSAL, "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": "   "}}]}
    with pytest.raises(LLMError, match="empty answer"):
        LLMClient(model(empty).settings()).complete("system", "user")


def test_no_model_no_call():
    with pytest.raises(LLMError, match="no model configured"):
        LLMClient(LLMSettings()).complete("system", "user")


def test_options_cannot_carry_a_key_or_override_the_model():
    for key in ("api_key", "model", "messages"):
        with pytest.raises(ConfigError, match="cannot be set here"):
            LLMSettings(model=MODEL, options={key: "x"})


# -- the token budget ---------------------------------------------------------------------------

def test_a_spent_budget_stops_the_next_call(model):
    client = LLMClient(model("fine").settings(token_budget=1))
    assert client.complete("system", "user") == "fine"
    with pytest.raises(BudgetExhausted, match="token budget of 1 used up"):
        client.complete("system", "user")


def test_profile_stops_early_when_the_budget_is_spent_and_continues_next_run(model, make_engine, store):
    for entity in ("alice", "bob"):
        add_attr(store, entity, "k1", "tea", 2)
        add_attr(store, entity, "k2", "Tea", 1)
    script = model(ops({"op": "merge", "ids": ["a1", "a2"], "value": "tea"}))
    engine = make_engine(script.config(token_budget=1))

    run = engine.run_job("profile")
    assert run.status == "success", run.error
    assert run.result["budget_exhausted"] == "token budget of 1 used up"
    assert run.result["merged"] == 1 and len(script.calls) == 1
    assert store.execute("SELECT entity, count(*) FROM profile_attribute GROUP BY entity ORDER BY entity"
                         ).fetchall() == [("alice", 1), ("bob", 2)]

    nxt = engine.run_job("profile")  # a new run has a new budget; bob was not forgotten
    assert nxt.result["entities_checked"] == 1 and nxt.result["merged"] == 1


def test_rollup_stops_early_when_the_budget_is_spent_and_continues_next_run(model, make_engine, store):
    cid = store.execute("INSERT INTO conversation (sender, status, started_at, updated_at)"
                        " VALUES ('alice', 'closed', 0, 0) RETURNING id").fetchone()[0]
    for day in (28, 29, 30):
        store.execute("INSERT INTO message (conversation_id, sender, content, created_at) VALUES (?, 'alice', ?, ?)",
                      (cid, f"Alice on the {day}th.", datetime(2026, 5, day, 10, tzinfo=timezone.utc).timestamp()))
    script = model("A summary.")
    engine = make_engine(script.config(token_budget=1))
    engine.retime("rollup-day", "0 1 * * *", tz="UTC")

    run = engine.run_job("rollup-day")
    assert run.status == "success", run.error
    assert run.result["budget_exhausted"] == "token budget of 1 used up"
    assert run.result["summaries_written"] == 1
    nxt = engine.run_job("rollup-day")
    assert nxt.result["summaries_written"] == 1
    assert store.execute("SELECT count(*) FROM summary").fetchone()[0] == 2


# -- secrets ---------------------------------------------------------------------------------

def test_redact_masks_secret_environment_values_and_key_shaped_strings(monkeypatch):
    monkeypatch.setenv("ACME_API_KEY", "acme-5ecr3t-value")
    monkeypatch.setenv("GITHUB_TOKEN", "tok_0123456789abcdef")
    monkeypatch.setenv("DB_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to mask safely
    monkeypatch.setenv("MEMTUI_HOME_DIR", "/home/alice")  # not a secret name
    text = ("acme said acme-5ecr3t-value; gh tok_0123456789abcdef; db hunter2hunter2; abc; /home/alice; "
            "openai sk-proj-AbCdEf0123456789; anthropic sk-ant-api03-xyzXYZ012345; google AIzaSyA1234567890abcdefghij; "
            "github ghp_abcdefghijklmnopqrstuvwxyz0123; slack xoxb-1234567890-abc; auth Bearer eyJhbGciOi.J9x_y-z")
    masked = redact(text)
    for secret in ("acme-5ecr3t-value", "tok_0123456789abcdef", "hunter2hunter2", "sk-proj-AbCdEf0123456789",
                   "sk-ant-api03-xyzXYZ012345", "AIzaSyA1234567890abcdefghij", "ghp_abcdefghijklmnopqrstuvwxyz0123",
                   "xoxb-1234567890-abc", "eyJhbGciOi.J9x_y-z"):
        assert secret not in masked
    assert masked.count(MASK) == 9
    assert "; abc;" in masked and "/home/alice" in masked and "sk-" not in masked
    assert redact(None) is None and redact("") == ""
    assert redact("nothing to hide") == "nothing to hide"


def test_redact_leaves_no_tail_of_a_longer_secret(monkeypatch):
    monkeypatch.setenv("A_TOKEN", "abcdef123456")
    monkeypatch.setenv("B_TOKEN", "abcdef123456789xyz")
    assert redact("x abcdef123456789xyz y abcdef123456 z") == f"x {MASK} y {MASK} z"


def _failing_profile_run(model, make_engine, store, message: str):
    add_attr(store, "alice", "k1", "tea", 2)
    add_attr(store, "alice", "k2", "Tea", 1)
    return make_engine(model(Exception(message)).config()).run_job("profile")


def test_a_key_in_an_error_never_reaches_the_run_row(model, make_engine, store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    run = _failing_profile_run(model, make_engine, store,
                               f"Incorrect API key provided: {FAKE_KEY}. You can find your key at https://x")
    assert run.status == "failed"
    assert MASK in run.error and "provider error" in run.error
    assert FAKE_KEY not in run.error and FAKE_KEY not in (run.traceback or "")
    assert FAKE_KEY[8:] not in dump(store)  # nowhere in the database, not even its tail


def test_a_non_key_shaped_secret_in_an_error_never_reaches_the_run_row(model, make_engine, store, monkeypatch):
    secret = "Zx81-corp-9f8e7d6c5b4a3928"
    monkeypatch.setenv("CORP_GATEWAY_TOKEN", secret)
    run = _failing_profile_run(model, make_engine, store, f"gateway rejected token {secret} for user alice")
    assert run.status == "failed" and MASK in run.error
    assert secret not in dump(store)


def test_a_secret_cut_by_the_error_length_limit_leaves_no_fragment(model, make_engine, store, monkeypatch):
    """Errors are shortened to a bounded line; wherever the cut falls, no piece of the secret may remain.

    The secret is planted at several offsets so that the cut falls before, inside and after it."""
    secret = "Zx81-corp-9f8e7d6c5b4a3928-q7w6e5r4t3y2"
    monkeypatch.setenv("CORP_GATEWAY_TOKEN", secret)
    add_attr(store, "alice", "k1", "tea", 2)
    add_attr(store, "alice", "k2", "Tea", 1)
    script = model("unused")
    engine = make_engine(script.config())
    fragments = [secret[i:i + 10] for i in range(len(secret) - 9)]
    leaks = {}
    for pad in range(200, 300, 8):
        script.then(Exception("e" * pad + f" token {secret} rejected"))
        run = engine.run_job("profile")
        assert run.status == "failed"
        stored = (run.error or "") + (run.traceback or "")
        if any(f in stored for f in fragments):
            leaks[pad] = run.error[-60:]
    assert not leaks, f"part of the secret stays in run.error/run.traceback: {leaks}"
