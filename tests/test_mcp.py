"""`memtui mcp`: the MCP server as a real subprocess, driven by the SDK's own client over stdio.

Each test starts ``memtui mcp --db …`` and talks to it with ``mcp.client.stdio.stdio_client`` and
``ClientSession``: the tools and their schemas, every tool's effect in the database, a bad argument to
every tool (an error result of one line, nothing written, the server answers the next call), job control
only with ``--allow-control``, and concurrent calls while a headless engine runs its jobs on the same
database. On SQLite and PostgreSQL. Results are read in their wire form (``model_dump(by_alias=True)``:
isError, structuredContent, inputSchema), the same under mcp 1 and mcp 2.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from memtui.engine import open_engine
from memtui.models import Store
from memtui.models.text import content_key
from tests.factories import snapshot

pytestmark = pytest.mark.both_backends

ROOT = Path(__file__).resolve().parent.parent
MEMTUI = os.path.join(os.path.dirname(sys.executable), "memtui")
TIMEOUT = 30  # seconds; only reached when something is broken
CORE_TOOLS = {"remember", "recall", "used", "forget", "why", "status"}
CONTROL_TOOLS = {"run_job", "enable", "disable"}


# -- helpers ------------------------------------------------------------------------------------

def server_env() -> dict[str, str]:
    """What the server process needs beyond the SDK's safe defaults: this test's isolated config and data
    dirs (conftest), and litellm kept offline should anything load it."""
    keys = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "LITELLM_LOCAL_MODEL_COST_MAP", "PYTHONPATH")
    return {k: os.environ[k] for k in keys if k in os.environ}


def wire(result) -> dict:
    """A result as it travels (camelCase: isError, structuredContent, inputSchema), under mcp 1 or 2."""
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


def text_of(result: dict) -> str:
    return "\n".join(block["text"] for block in result["content"] if block["type"] == "text")


class Client:
    """A connected ClientSession with a few shorthands."""

    def __init__(self, session: ClientSession):
        self.session = session

    async def tools(self) -> dict[str, dict]:
        return {tool.name: wire(tool) for tool in (await self.session.list_tools()).tools}

    async def call(self, tool: str, /, **arguments) -> dict:
        return wire(await self.session.call_tool(tool, arguments))

    async def ok(self, tool: str, /, **arguments) -> dict:
        result = await self.call(tool, **arguments)
        assert not result.get("isError"), f"{tool}({arguments}): {text_of(result)}"
        return result["structuredContent"]

    async def error(self, tool: str, /, **arguments) -> str:
        result = await self.call(tool, **arguments)
        assert result.get("isError"), f"{tool}({arguments}) should have failed: {text_of(result)}"
        return text_of(result)


def with_server(db: str, body, *flags: str, errlog_path: Path | None = None):
    """Start ``memtui mcp --db DB FLAGS…``, run ``await body(client)``, close it; returns what body returned."""
    params = StdioServerParameters(command=MEMTUI, args=["mcp", "--db", str(db), *flags], env=server_env(),
                                   cwd=str(ROOT))

    async def main():
        with open(errlog_path or os.devnull, "w") as errlog:
            with anyio.fail_after(TIMEOUT * 2):
                async with stdio_client(params, errlog=errlog) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        return await body(Client(session))

    return anyio.run(main)


@contextmanager
def opened(db: str):
    store = Store.open(db)
    try:
        yield store
    finally:
        store.close()


def history(store, memory_id: int, tier: str) -> list[tuple[str, str]]:
    History = store.m.MemoryHistory
    return list(History.select(History.action, History.reason)
                .where((History.memory_id == memory_id) & (History.tier == tier)).order_by(History.id).tuples())


def promote_now(db: str) -> None:
    engine = open_engine(db)
    try:
        assert engine.run_job("promote").status == "success"
    finally:
        engine.close()


# -- the tools and their schemas -------------------------------------------------------------------

def test_the_tools_have_documented_typed_bounded_input_schemas(db_target, tmp_path):
    errlog = tmp_path / "server.err"

    async def body(client: Client):
        return await client.tools()

    tools = with_server(db_target, body, errlog_path=errlog)
    assert set(tools) == CORE_TOOLS  # no job control without --allow-control
    for name, tool in tools.items():
        assert tool.get("description"), name
        assert tool.get("outputSchema", {}).get("type") == "object", name  # structured results, typed
        schema = tool["inputSchema"]
        assert schema["type"] == "object"
        for prop, spec in schema["properties"].items():
            assert spec.get("description"), f"{name}.{prop} is undocumented"

    remember = tools["remember"]["inputSchema"]
    props = remember["properties"]
    assert set(props) == {"text", "sender", "kind", "importance", "confidence", "keep"}
    assert remember["required"] == ["text"]
    assert props["text"]["type"] == "string" and props["text"]["minLength"] == 1
    assert (props["importance"]["type"], props["importance"]["minimum"], props["importance"]["maximum"]) == (
        "number", 0, 10)
    assert (props["confidence"]["type"], props["confidence"]["minimum"], props["confidence"]["maximum"]) == (
        "number", 0, 1)
    assert props["keep"]["type"] == "boolean" and props["keep"]["default"] is False
    assert props["importance"]["default"] == 5 and props["confidence"]["default"] == 0.5

    recall = tools["recall"]["inputSchema"]
    assert set(recall["properties"]) == {"query", "sender", "limit"} and recall["required"] == ["query"]
    limit = recall["properties"]["limit"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == ("integer", 1, 100, 10)

    for name in ("used", "forget", "why"):
        schema = tools[name]["inputSchema"]
        assert set(schema["properties"]) == {"id", "long_term"} and schema["required"] == ["id"]
        assert schema["properties"]["id"]["type"] == "integer" and schema["properties"]["id"]["minimum"] == 1
    assert tools["status"]["inputSchema"]["properties"] == {}
    assert tools["why"]["annotations"]["readOnlyHint"] is True
    assert tools["forget"]["annotations"]["destructiveHint"] is True

    err = errlog.read_text()
    assert "memtui mcp: serving" in err and "Traceback" not in err


def test_every_tool_does_what_it_says_in_the_database(db_target):
    async def body(client: Client):
        out = {}
        out["new"] = await client.ok("remember", text="Alice prefers aisle seats", sender="alice", kind="preference",
                                     importance=7, confidence=0.9)
        out["repeat"] = await client.ok("remember", text="alice prefers  AISLE seats!", sender="alice")
        out["kept"] = await client.ok("remember", text="Bob's birthday is on 3 May", sender="bob", keep=True)
        out["other"] = await client.ok("remember", text="The office wifi password rotates monthly")
        out["recall"] = await client.ok("recall", query="aisle", sender="alice", limit=5)
        out["recall_none"] = await client.call("recall", query="aisle", sender="bob")
        out["used"] = await client.ok("used", id=out["new"]["id"])
        out["why_pending"] = await client.call("why", id=out["new"]["id"])
        out["why_missing"] = await client.error("why", id=987654)
        out["status"] = await client.call("status")
        return out

    out = with_server(db_target, body)
    new, repeat = out["new"], out["repeat"]
    assert new == {"id": new["id"], "long_term": False, "tier": "pending", "repeat": False}
    # a repeated memory is a use, not a copy
    assert repeat == {"id": new["id"], "long_term": False, "tier": "pending", "repeat": True}
    hits = out["recall"]["memories"]
    assert [(h["id"], h["text"], h["tier"], h["long_term"]) for h in hits] == [
        (new["id"], "Alice prefers aisle seats", "pending", False)]
    assert hits[0]["importance"] == 7 and hits[0]["kind"] == "preference" and hits[0]["sender"] == "alice"
    assert out["recall_none"]["structuredContent"] == {"memories": []}
    assert "no memory matches" in text_of(out["recall_none"])
    assert out["used"] == {"id": new["id"], "long_term": False, "tier": "pending"}
    why = out["why_pending"]
    assert why["structuredContent"]["story"]["tier"] == "pending"
    assert text_of(why).startswith(f"#{new['id']} short-term (pending promotion): Alice prefers aisle seats")
    assert why["structuredContent"]["lines"] == text_of(why).splitlines()
    # the command line's hint in this server's words: no "--long-term" to an agent
    assert out["why_missing"] == "no memory with id 987654; for a long-term memory's own id, pass long_term true"

    status = out["status"]["structuredContent"]
    jobs = {job["name"]: job for job in status["jobs"]}
    assert {"promote", "decay", "dedupe", "compact"} <= set(jobs)
    assert jobs["promote"]["enabled"] and jobs["promote"]["next_run"]  # the next run, as the engines keep it
    assert jobs["promote"]["last_status"] is None and jobs["promote"]["runs"] == 0
    assert status["memories"] == {"pending": 3, "long_term": 0, "faded": 0, "superseded": 0}
    assert status["engines"] == [] and "no engine running" in text_of(out["status"])
    assert "promote" in text_of(out["status"]) and "NEXT" in text_of(out["status"])

    with opened(db_target) as store:
        Pending = store.m.PendingMemory
        rows = list(Pending.select(Pending.content, Pending.sender, Pending.kind, Pending.importance,
                                   Pending.confidence, Pending.access_count, Pending.remember)
                    .where(Pending.sender == "alice").tuples())
        # one row; uses: the repeat, the recall, used
        assert rows == [("Alice prefers aisle seats", "alice", "preference", 7.0, 0.9, 3, False)]
        assert Pending.get_by_id(out["kept"]["id"]).remember is True
    promote_now(db_target)  # keep=True: moved to long-term memory, pinned
    first = out

    async def after_promotion(client: Client):
        out = {}
        out["recall"] = await client.ok("recall", query="birthday", sender="bob")
        kept = out["recall"]["memories"][0]
        out["used_pending_id"] = await client.ok("used", id=first["kept"]["id"])  # followed into long-term
        out["used_long_term"] = await client.ok("used", id=kept["id"], long_term=True)
        out["repeat_long_term"] = await client.ok("remember", text="bob's birthday is on 3 MAY.", sender="bob")
        out["forget_long_term"] = await client.ok("forget", id=kept["id"], long_term=True)
        out["forget_again"] = await client.ok("forget", id=kept["id"], long_term=True)
        out["why_forgotten"] = await client.call("why", id=kept["id"], long_term=True)
        out["forget_pending"] = await client.ok("forget", id=first["other"]["id"])
        out["why_gone"] = await client.call("why", id=first["other"]["id"])
        out["recall_after_forget"] = await client.ok("recall", query="birthday")
        out["use_restores"] = await client.ok("used", id=kept["id"], long_term=True)
        out["recall_after_use"] = await client.ok("recall", query="birthday")
        return kept, out

    kept, out = with_server(db_target, after_promotion)
    assert kept["tier"] == "long_term" and kept["long_term"] is True and kept["id"] >= 1
    assert out["used_pending_id"] == {"id": first["kept"]["id"], "long_term": False, "tier": "long_term"}
    assert out["used_long_term"] == {"id": kept["id"], "long_term": True, "tier": "long_term"}
    # a repeat of a promoted memory is a use of it, named by the pending id it came from
    assert out["repeat_long_term"] == {"id": first["kept"]["id"], "long_term": False, "tier": "long_term",
                                       "repeat": True}
    assert out["forget_long_term"] == {"id": kept["id"], "long_term": True, "tier": "long_term",
                                       "action": "soft_delete", "memory_id": kept["id"], "unpinned": True}
    assert out["forget_again"]["action"] == "none"
    assert "forgotten on request on " in text_of(out["why_forgotten"])
    assert "recall no longer offers it" in text_of(out["why_forgotten"])
    assert "forgotten on request (mcp)" in text_of(out["why_forgotten"])
    assert out["forget_pending"] == {"id": first["other"]["id"], "long_term": False, "tier": "pending",
                                     "action": "expire", "memory_id": first["other"]["id"], "unpinned": False}
    assert text_of(out["why_gone"]).startswith(f"#{first['other']['id']} gone: The office wifi")
    assert "forgotten on request (mcp)" in text_of(out["why_gone"])
    assert out["recall_after_forget"]["memories"] == []  # forgotten: not offered, not even among the faded
    assert out["use_restores"]["tier"] == "long_term"  # a use of its id brings it back
    assert [(m["id"], m["decayed"]) for m in out["recall_after_use"]["memories"]] == [(kept["id"], False)]

    with opened(db_target) as store:
        LongTermModel, Pending = store.m.LongTermMemory, store.m.PendingMemory
        row = LongTermModel.get_by_id(kept["id"])
        # recall, used (×2), the repeat, the use that restored it, the last recall: six uses; not pinned any more
        assert (row.recall_count, row.deleted_at, row.pinned) == (6, None, False)
        assert history(store, kept["id"], "long_term") == [
            ("forget", "forgotten on request (mcp)"), ("restore", "used again")]
        assert not Pending.select().where(Pending.id == first["other"]["id"]).exists()
        assert history(store, first["other"]["id"], "pending") == [("expire", "forgotten on request (mcp)")]
        assert LongTermModel.select().where(LongTermModel.content_key == content_key("Bob's birthday is on 3 May")
                                            ).count() == 1


# -- bad arguments ----------------------------------------------------------------------------------

BAD_CALLS = [
    ("remember", {"text": "x", "importance": 11}, "importance must be a number from 0 to 10 (got 11)"),
    ("remember", {"text": "x", "importance": -0.5}, "importance must be a number from 0 to 10 (got -0.5)"),
    ("remember", {"text": "x", "importance": "high"}, "importance must be a number from 0 to 10"),
    ("remember", {"text": "x", "confidence": 2}, "confidence must be a number from 0 to 1 (got 2)"),
    ("remember", {"text": ""}, "text must be non-empty text"),
    ("remember", {"text": "   "}, "memory content must be non-empty text"),
    ("remember", {"importance": 3}, "text is required"),
    ("remember", {"text": "x", "keep": "maybe"}, "keep must be true or false"),
    ("remember", {"text": "x", "importanc": 3}, "unknown argument importanc"),
    ("recall", {"query": "aisle", "limit": 0}, "limit must be a whole number from 1 to 100 (got 0)"),
    ("recall", {"query": "aisle", "limit": 101}, "limit must be a whole number from 1 to 100 (got 101)"),
    ("recall", {"query": "?!"}, "query must hold at least one word"),
    ("recall", {}, "query is required"),
    ("used", {"id": 99}, "no memory with id 99"),
    ("used", {"id": 99, "long_term": True}, "no long-term memory with id 99"),
    ("used", {"id": 0}, "id must be a whole number of at least 1 (got 0)"),
    ("used", {"id": "seven"}, "id must be a whole number"),
    ("forget", {"id": 99}, "no memory with id 99"),
    ("forget", {"id": 99, "long_term": True}, "no long-term memory with id 99"),
    ("forget", {}, "id is required"),
    ("why", {"id": 99}, "no memory with id 99"),
    ("why", {"id": 1.5}, "id must be a whole number"),
    ("status", {"verbose": True}, "unknown argument verbose (status takes: no arguments)"),
    ("run_job", {"name": "nosuch"}, "unknown job 'nosuch'"),
    ("run_job", {}, "name is required"),
    ("enable", {"name": "nosuch"}, "unknown job 'nosuch'"),
    ("disable", {"name": ""}, "name must be non-empty text"),
    ("nosuch_tool", {}, "nosuch_tool"),
]


def test_a_bad_argument_to_every_tool_is_a_one_line_error_and_nothing_is_written(db_target):
    assert {name for name, _, _ in BAD_CALLS} >= CORE_TOOLS | CONTROL_TOOLS

    async def body(client: Client):
        await client.ok("remember", text="a memory that is there", sender="alice")
        with opened(db_target) as store:
            before = snapshot(store)
        said = []
        for name, arguments, _ in BAD_CALLS:
            said.append(await client.error(name, **arguments))
            await client.ok("status")  # the server answers the next call as before
        with opened(db_target) as store:
            after = snapshot(store)
        return said, before, after

    said, before, after = with_server(db_target, body, "--allow-control")
    for (name, arguments, fragment), text in zip(BAD_CALLS, said):
        assert fragment in text, (name, arguments, text)
        assert "\n" not in text and "Traceback" not in text and "validation error" not in text, text
    assert after == before


# -- job control ------------------------------------------------------------------------------------

def test_job_control_only_with_allow_control_and_audited(db_target):
    async def without(client: Client):
        return set(await client.tools()), await client.error("enable", name="compact")

    names, refused = with_server(db_target, without)
    assert names == CORE_TOOLS and "enable" in refused

    async def body(client: Client):
        assert set(await client.tools()) == CORE_TOOLS | CONTROL_TOOLS
        kept = await client.ok("remember", text="Carol is vegetarian", sender="carol", keep=True)
        out = {"kept": kept}
        out["disable"] = await client.ok("disable", name="compact")
        out["enable"] = await client.ok("enable", name="compact")
        out["run"] = await client.call("run_job", name="promote")
        out["recall"] = await client.ok("recall", query="vegetarian")
        out["status"] = await client.ok("status")
        return out

    out = with_server(db_target, body, "--allow-control")
    assert out["disable"]["job"]["name"] == "compact" and out["disable"]["job"]["enabled"] is False
    assert out["disable"]["job"]["next_run"] is None
    assert out["enable"]["job"]["enabled"] is True and out["enable"]["job"]["next_run"]
    run = out["run"]["structuredContent"]["run"]
    assert (run["job"], run["status"], run["reason"], run["result"]["promoted"]) == ("promote", "success", "manual", 1)
    assert text_of(out["run"]).startswith("promote success in ")
    assert [(m["text"], m["tier"]) for m in out["recall"]["memories"]] == [("Carol is vegetarian", "long_term")]
    promote = next(job for job in out["status"]["jobs"] if job["name"] == "promote")
    assert (promote["last_status"], promote["runs"], promote["totals"].get("promoted")) == ("success", 1, 1)

    with opened(db_target) as store:
        AuditLog = store.m.AuditLog
        audit = list(AuditLog.select(AuditLog.action, AuditLog.job, AuditLog.new_value, AuditLog.source)
                     .order_by(AuditLog.id).tuples())
    # audit_log.source is CHECKed to cli, ui or api: a program's change through MCP is an api change
    assert audit == [("disable", "compact", "False", "api"), ("enable", "compact", "True", "api")]


# -- concurrency beside a running engine ----------------------------------------------------------------

def test_concurrent_calls_while_an_engine_runs_its_jobs(db_target, tmp_path):
    engine = open_engine(db_target)
    engine.retime("promote", "1s", source="cli")
    engine.close()
    config = tmp_path / "fast.toml"
    config.write_text("[engine]\npoll_interval_s = 0.2\n")
    errlog = tmp_path / "server.err"
    texts = [f"fact number {i}: the {word} is blue" for i, word in enumerate(
        ["sky", "sea", "door", "car", "pen", "cup", "hat", "bag", "box", "kite"])]
    headless = subprocess.Popen([MEMTUI, "--no-ui", "--db", str(db_target), "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        def promote_runs() -> int:
            with opened(db_target) as store:
                State = store.m.JobState
                return State.select(State.runs).where(State.name == "promote").scalar() or 0

        def wait_for_runs(at_least: int) -> None:
            deadline = time.monotonic() + TIMEOUT
            while promote_runs() < at_least:
                assert headless.poll() is None, headless.stderr.read()
                assert time.monotonic() < deadline, "promote did not run"
                time.sleep(0.1)

        wait_for_runs(1)  # the engine is up and running its jobs

        async def body(client: Client):
            results = []

            async def call(tool, /, **arguments):
                results.append((tool, arguments, await client.call(tool, **arguments)))

            for round_ in range(2):
                async with anyio.create_task_group() as tg:
                    for i, text in enumerate(texts):
                        # each text twice at once (the second is a use, not a copy), half of them kept
                        for _ in range(2):
                            tg.start_soon(lambda t=text, k=i % 2 == 0: call(
                                "remember", text=t, sender="dana", keep=k, importance=6))
                        tg.start_soon(lambda w=text.split()[4]: call("recall", query=w, sender="dana"))
                    tg.start_soon(lambda: call("status"))
                await anyio.to_thread.run_sync(wait_for_runs, promote_runs() + 1)  # a promote run in between
            return results

        results = with_server(db_target, body, errlog_path=errlog)
        errors = [(name, arguments, text_of(result)) for name, arguments, result in results if result.get("isError")]
        assert errors == []
        assert len(results) == 2 * (3 * len(texts) + 1)
        assert headless.poll() is None
    finally:
        headless.send_signal(signal.SIGTERM)
        try:
            code = headless.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            headless.kill()
            raise
    assert code == 0
    engine_log = headless.stderr.read()
    assert "Traceback" not in engine_log, engine_log
    assert "Traceback" not in errlog.read_text()

    with opened(db_target) as store:
        Pending, LongTermModel, Run = store.m.PendingMemory, store.m.LongTermMemory, store.m.Run
        statuses = {status for (status,) in Run.select(Run.status).where(Run.job == "promote").tuples()}
        assert statuses == {"success"}, engine_log
        for i, text in enumerate(texts):
            key = content_key(text)
            pending = Pending.select().where(Pending.content_key == key).count()
            long_term = LongTermModel.select().where(LongTermModel.content_key == key).count()
            assert pending + long_term == 1, (text, pending, long_term)  # exactly once, wherever it is
            if i % 2 == 0:
                assert long_term == 1, text  # kept: promoted by the running engine


# -- what the server process loads, its other transport, its command line --------------------------------

@pytest.mark.sqlite_only
def test_the_server_loads_neither_textual_nor_litellm(tmp_path):
    probe = textwrap.dedent(f"""
        import asyncio, json, sys
        from memtui.engine import open_engine
        from memtui.mcp_server import build_server
        server = build_server(open_engine({str(tmp_path / "probe.db")!r}), allow_control=True)
        async def calls():
            for name, arguments in (("remember", {{"text": "a note"}}), ("recall", {{"query": "note"}}),
                                    ("why", {{"id": 1}}), ("status", {{}}), ("disable", {{"name": "compact"}})):
                await server.call_tool(name, arguments)
        asyncio.run(calls())
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "litellm"))))
    """)
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


@pytest.mark.sqlite_only
def test_a_crash_or_a_database_error_in_a_tool_is_one_line_and_the_server_goes_on(tmp_path, monkeypatch):
    from peewee import OperationalError

    from memtui import mcp_server

    engine = open_engine(tmp_path / "crash.db")
    server = mcp_server.build_server(engine)
    real_status = mcp_server._Tools.status
    failures = iter([RuntimeError("boom\nsecond line"), OperationalError("database is locked")])

    def failing(self):
        raise next(failures)

    async def main():
        said = []
        monkeypatch.setattr(mcp_server._Tools, "status", failing)
        for _ in range(2):
            with pytest.raises(mcp_server.ToolError) as raised:
                await server.call_tool("status", {})
            said.append(str(raised.value))
        monkeypatch.setattr(mcp_server._Tools, "status", real_status)
        return said, await server.call_tool("status", {})

    try:
        (crash, locked), result = anyio.run(main)
    finally:
        engine.close()
    assert crash == "unexpected error in status: RuntimeError: boom second line (please report it)"
    assert locked == f"{tmp_path / 'crash.db'}: database is locked"
    assert not wire(result).get("isError") and wire(result)["structuredContent"]["jobs"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.sqlite_only
def test_streamable_http_on_loopback(tmp_path):
    try:
        from mcp.client.streamable_http import streamable_http_client as http_client
    except ImportError:  # mcp 1.x before 1.24
        from mcp.client.streamable_http import streamablehttp_client as http_client

    db, port = tmp_path / "http.db", free_port()
    proc = subprocess.Popen([MEMTUI, "mcp", "--http", str(port), "--db", str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **server_env()})
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:  # until it listens
            assert proc.poll() is None, proc.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.1)

        async def main():
            with anyio.fail_after(TIMEOUT):
                async with http_client(f"http://127.0.0.1:{port}/mcp") as streams:
                    async with ClientSession(streams[0], streams[1]) as session:
                        await session.initialize()
                        client = Client(session)
                        return set(await client.tools()), await client.ok("remember", text="over http")

        tools, remembered = anyio.run(main)
        assert tools == CORE_TOOLS and remembered["repeat"] is False
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert f"at http://127.0.0.1:{port}/mcp" in err
    with opened(str(db)) as store:
        assert [p.content for p in store.m.PendingMemory.select()] == ["over http"]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("argv, fragment", [
    (["mcp", "--host", "0.0.0.0"], "--host is for --http PORT"),
    (["mcp", "--http", "0"], "a port is from 1 to 65535"),
    (["mcp", "--http", "web"], "not a port number"),
    (["mcp", "--http", "{taken}"], "cannot listen on 127.0.0.1:{taken}"),
])
def test_bad_mcp_command_lines_are_one_line_and_create_nothing(cli, tmp_path, argv, fragment):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = [a.replace("{taken}", port) for a in argv]
        db = tmp_path / "sub" / "never.db"
        result = cli(*argv, "--db", db)
    assert result.code == 2 and result.out == ""
    assert result.err.count("\n") == 1 and fragment.replace("{taken}", port) in result.err, result.err
    assert not db.parent.exists()


@pytest.mark.sqlite_only
def test_a_host_beyond_loopback_is_warned_about(cli, tmp_path, monkeypatch):
    served = {}

    def fake_serve(engine, **kwargs):
        served.update(kwargs)
        return 0

    class Listener:  # the port check, without opening a port on every interface
        def close(self):
            pass

    monkeypatch.setattr("memtui.mcp_server.serve", fake_serve)
    monkeypatch.setattr("memtui.tui.cli.socket.create_server", lambda *a, **k: Listener())
    result = cli("mcp", "--http", "8765", "--host", "0.0.0.0", "--allow-control", "--db", tmp_path / "m.db")
    assert result.code == 0, result.err
    assert served == {"http_port": 8765, "host": "0.0.0.0", "allow_control": True}
    assert "warning: listening on 0.0.0.0:8765" in result.err and "no login" in result.err

    served.clear()
    result = cli("mcp", "--http", "8765", "--db", tmp_path / "m.db")
    assert served == {"http_port": 8765, "host": "127.0.0.1", "allow_control": False}
    assert "warning" not in result.err
