"""``memtui mcp``: an agent's memory and jobs as an MCP server, on the official ``mcp`` Python SDK.

Tools (typed, documented input schemas; every result is structured content plus a readable text):

- ``remember(text, sender, kind, importance, confidence, keep)``: add a short-term memory; the same words
  again from the same sender are a use of the memory already kept, not a copy (engine/memory.py);
- ``recall(query, sender, limit)``: memories holding every word of the query, best first (reinforces them);
- ``used(id, long_term)``: the agent used a memory: record the access (restores one that faded);
- ``forget(id, long_term)``: a long-term memory is soft-deleted and no longer recalled (a use of its id
  or the same words stored again restore it), a pending one is dropped before it is ever promoted; each
  leaves a ``memory_history`` row, so ``why`` still tells it (engine/memory.py ``forget``);
- ``why(id, long_term)``: a memory's story (``memtui why``);
- ``status()``: the jobs (next run, last status, runs and errors), the memory counts, the live engines;
- with ``allow_control`` only: ``run_job(name)``, ``enable(name)``, ``disable(name)``.

Ids: ``remember`` answers with the id of a pending memory, which every tool follows into long-term memory
once promote has moved it there; ``recall`` answers long-term memories by their own id, with
``long_term: true``. Each result names a memory by the pair (``id``, ``long_term``) that the other tools take.

Bad arguments come back as MCP tool errors of one line that say what is wrong ("importance must be a
number from 0 to 10 (got 11)", "no memory with id 99"); the server answers the next call as before. Every
write is one transaction (the engine's own operations, or one of this module's, in Peewee), so an
error never leaves half of one behind. Database work runs on worker threads, each with its own
connection, so concurrent calls do not hold up the protocol.

The SDK's high-level server is ``mcp.server.mcpserver.MCPServer`` in mcp 2 and
``mcp.server.fastmcp.FastMCP`` in mcp 1 (1.23 on): both are supported. Importing this module loads
neither Textual nor litellm; litellm loads only if ``run_job`` runs a job that asks the model.
"""
import functools
import json
import logging
import os
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Callable, Literal

import anyio
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

try:  # mcp 2.x
    from mcp.server.mcpserver import MCPServer as _SDKServer
    from mcp.server.mcpserver.exceptions import ToolError

    SDK_MAJOR = 2
except ImportError:  # mcp 1.x (2.x keeps a mcp.server.fastmcp that only raises, so it is tried second)
    from mcp.server.fastmcp import FastMCP as _SDKServer  # type: ignore[no-redef]
    from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

    SDK_MAJOR = 1

from memtui.engine import Engine, EngineError, JobInfo, ScheduleError, StoreError
from memtui.engine import memory as ops
from memtui.engine.agent import Memory
from memtui.engine.redact import redact
from memtui.engine.report import fmt_number, run_line
from memtui.engine.runner import db_problem
from memtui.engine.story import describe as describe_story
from memtui.models import DB_ERRORS
from memtui.models.text import content_key, tokens

log = logging.getLogger("memtui.mcp")

FORGET_REASON = "forgotten on request (mcp)"
# The audit_log's source column is CHECKed to 'cli', 'ui' or 'api' (models/migrations): a program's
# request through the MCP server is an 'api' change.
AUDIT_SOURCE = "api"
DB_THREADS = 4  # tool calls doing database work at once; the rest wait their turn
CONTROL_TOOLS = ("run_job", "enable", "disable")

INSTRUCTIONS = """\
memtui keeps this agent's memory. Store what is worth keeping with `remember` (the same words again are \
counted as a use, never stored twice); look things up with `recall` before answering (recalling a memory \
reinforces it); call `used` when you relied on a memory. `forget` retires a memory that is wrong or no \
longer wanted; `why` tells where a memory is and what the jobs will do with it; `status` shows the \
memory jobs (promote, decay, dedupe, rollups…) that a running memtui engine runs on their schedules. \
A memory is named by its `id` and `long_term` flag, exactly as a result gives them."""


# -- argument types: what the input schemas say ------------------------------------------------------

MemoryId = Annotated[int, Field(ge=1, description=(
    "The memory's id, as a result gave it (remember, recall, used, forget, why)."))]
LongTerm = Annotated[bool, Field(description=(
    "false (default): id is the id remember returned, followed into long-term memory once promoted. "
    "true: id is a long-term memory's own id, as recall returns it (long_term: true)."))]
JobName = Annotated[str, Field(min_length=1, description="The job's name, as status lists it (e.g. promote).")]


# -- structured results: what the output schemas say ------------------------------------------------

class MemoryRef(BaseModel):
    id: int = Field(description="Pass it back, with long_term, to used, forget and why.")
    long_term: bool = Field(description="true: id is a long-term memory's own id; false: the id remember returned.")


class Remembered(MemoryRef):
    tier: Literal["pending", "long_term"] = Field(description="Where the memory is now.")
    repeat: bool = Field(description="The same words from the same sender were kept already: counted as a use "
                                     "of that memory, not stored again.")


class RecalledMemory(MemoryRef):
    text: str
    kind: str
    sender: str
    importance: float
    tier: Literal["pending", "long_term"]
    last_used: str | None = Field(description="ISO 8601, UTC.")
    decayed: bool = Field(description="It had faded (soft-deleted); recalling it restored it.")


class Recalled(BaseModel):
    memories: list[RecalledMemory] = Field(description="Most relevant first.")


class Used(MemoryRef):
    tier: Literal["pending", "long_term"] = Field(description="Where the use was recorded.")


class Forgotten(MemoryRef):
    tier: Literal["pending", "long_term"] = Field(description="Where the memory was.")
    action: Literal["expire", "soft_delete", "none"] = Field(description=(
        "expire: the pending memory was deleted and is never promoted; soft_delete: the long-term memory "
        "is soft-deleted (restorable until decay deletes it for good); none: it was soft-deleted already."))
    memory_id: int = Field(description="The row forgotten: the pending id, or the long-term memory's own id.")
    unpinned: bool = Field(default=False, description="It had been kept (pinned); forgetting lifts that.")


class Story(BaseModel):
    story: dict[str, Any] = Field(description="The memory's story as data (memtui why --json).")
    lines: list[str] = Field(description="The same in words (memtui why).")


class Job(BaseModel):
    name: str
    kind: str
    enabled: bool
    schedule: str = Field(description="The schedule in words.")
    next_run: str | None = Field(description="ISO 8601, UTC; null while disabled or paused.")
    last_run: str | None
    last_status: str | None = Field(description="success, failed, skipped, missed or interrupted.")
    running: bool
    runs: int
    errors: int
    backoff_until: str | None
    totals: dict[str, Any] = Field(description="What the job's runs have done, added up (e.g. promoted).")


class EngineSeen(BaseModel):
    host: str
    pid: int
    version: str
    heartbeat: str
    running: list[str]


class Status(BaseModel):
    database: str
    paused: bool = Field(description="Every job is paused (memtui pause).")
    engines: list[EngineSeen] = Field(description="Live engines running the jobs; none: the jobs wait for one "
                                                   "(memtui --no-ui).")
    memories: dict[str, int] = Field(description="pending, long_term (live), faded (soft-deleted), superseded.")
    jobs: list[Job]


class Ran(BaseModel):
    run: dict[str, Any] = Field(description="The run record (memtui run --json).")


class JobChanged(BaseModel):
    job: Job


# -- errors -------------------------------------------------------------------------------------

class _Refused(Exception):
    """A request this module refuses; the message is one line for the caller."""


_EXPECTED_ERRORS = (ops.MemoryInputError, EngineError, ScheduleError, StoreError, _Refused)


def _shown(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _number(value: float) -> str:
    return f"{value:g}"


def _expected(prop: dict) -> str:
    """What a JSON schema property accepts, in words: 'a number from 0 to 10', 'non-empty text'."""
    options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
    nullable = len(options) < len(prop.get("anyOf", [prop]))
    p = options[0] if options else prop
    kind = p.get("type")
    if "enum" in p:
        words = "one of " + ", ".join(_shown(v) for v in p["enum"])
    elif kind in ("integer", "number"):
        words = "a whole number" if kind == "integer" else "a number"
        low, high = p.get("minimum"), p.get("maximum")
        if low is not None and high is not None:
            words += f" from {_number(low)} to {_number(high)}"
        elif low is not None:
            words += f" of at least {_number(low)}"
        elif high is not None:
            words += f" of at most {_number(high)}"
    elif kind == "string":
        words = "non-empty text" if p.get("minLength") else "text"
    elif kind == "boolean":
        words = "true or false"
    else:
        words = f"of type {kind}" if kind else "a valid value"
    return words + (" (or null)" if nullable else "")


def explain(errors: list[dict], schema: dict) -> str:
    """Pydantic's errors for a tool's arguments as one line a person (or a model) can act on."""
    props = schema.get("properties", {})
    said: list[str] = []
    for error in errors:
        field = str(error["loc"][0]) if error.get("loc") else "arguments"
        expected = _expected(props[field]) if field in props else None
        if error.get("type") == "missing":
            text = f"{field} is required" + (f": {expected}" if expected else "")
        elif expected:
            text = f"{field} must be {expected} (got {_shown(error.get('input'))})"
        else:
            text = f"{field}: {error.get('msg', 'invalid')}"
        if text not in said:
            said.append(text)
    return "; ".join(said) or "invalid arguments"


# -- the server ---------------------------------------------------------------------------------------

class MemtuiMCP(_SDKServer):
    """The SDK's high-level server, with tool errors in one line: the SDK's own messages for bad
    arguments are pydantic's, several lines long and prefixed, and name types rather than ranges."""

    _schemas: dict[str, dict] | None = None

    async def _input_schema(self, name: str) -> dict | None:
        if self._schemas is None:
            self._schemas = {tool.name: tool.model_dump(by_alias=True)["inputSchema"]
                             for tool in await self.list_tools()}
        return self._schemas.get(name)

    async def call_tool(self, name: str, arguments: dict[str, Any], *args, **kwargs):
        schema = await self._input_schema(name)
        if schema is None:
            raise ToolError(f"unknown tool {name!r} (tools: {', '.join(sorted(self._schemas or {}))})")
        unknown = sorted(set(arguments or {}) - set(schema.get("properties", {})))
        if unknown:
            takes = ", ".join(schema.get("properties", {})) or "no arguments"
            raise ToolError(f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                            f"({name} takes: {takes})")
        try:
            return await super().call_tool(name, arguments, *args, **kwargs)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(explain(cause.errors(), schema)) from None
            if isinstance(cause, ToolError):  # raised by a tool below: its own line, without the SDK's prefix
                raise ToolError(str(cause)) from None
            if cause is None:
                raise
            log.error("tool %s failed unexpectedly", name, exc_info=cause)
            raise ToolError(f"unexpected error in {name}: {type(cause).__name__}: "
                            f"{redact(' '.join(str(cause).split()))[:200]} (please report it)") from None


class _Tools:
    """The tool bodies: each runs on a worker thread (its own database connection) as one short
    transaction, or a few reads."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.store = engine.store
        self.memory = Memory(engine.store, engine.clock)
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, fn: Callable, *args) -> CallToolResult:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(DB_THREADS)
        return await anyio.to_thread.run_sync(functools.partial(self._guarded, fn, *args), limiter=self._limiter)

    def _guarded(self, fn: Callable, *args) -> CallToolResult:
        try:
            return fn(*args)
        except _EXPECTED_ERRORS as exc:
            raise ToolError(" ".join(str(exc).split())) from None
        except DB_ERRORS as exc:
            raise ToolError(db_problem(self.store.label, exc)) from None

    # -- memories ---------------------------------------------------------------------------

    def remember(self, text: str, sender: str, kind: str, importance: float, confidence: float,
                 keep: bool) -> CallToolResult:
        mid = self.engine.remember(text, sender=sender, kind=kind, importance=importance, confidence=confidence,
                                   keep=keep)
        long_term = False
        if mid.tier == "long_term":
            # remember names a long-term memory by the pending id it came from when it has one (followed by
            # used, forget and why), else by its own id: say which, so the caller can pass it back.
            LongTermModel = self.store.m.LongTermMemory
            long_term = not LongTermModel.select(LongTermModel.id).where(
                (LongTermModel.source_pending_id == int(mid)) & (LongTermModel.sender == sender)
                & (LongTermModel.content_key == content_key(text))).exists()
        if not mid.repeat:
            said = f"remembered as #{mid} (pending; " + (
                "marked keep: the next promote run moves it to long-term memory)" if keep
                else "promote moves it to long-term memory once it scores high enough)")
        else:
            where = "long-term memory" if mid.tier == "long_term" else "pending memory"
            said = f"a repeat of {where} #{mid}: counted as a use, not stored again"
        return _result(said, Remembered(id=int(mid), long_term=long_term, tier=mid.tier, repeat=mid.repeat))

    def recall(self, query: str, sender: str | None, limit: int) -> CallToolResult:
        if not any(any(ch.isalnum() for ch in word) for word in tokens(query)):
            raise _Refused(f"query must hold at least one word to search for (got {_shown(query)})")
        hits = self.memory.recall(query, sender=sender, limit=limit)
        memories = [RecalledMemory(
            id=hit.id, long_term=hit.tier == "long_term", text=hit.content, kind=hit.kind, sender=hit.sender,
            importance=hit.importance, tier=hit.tier, last_used=_iso(hit.last_used), decayed=hit.decayed)
            for hit in hits]
        if not memories:
            said = f"no memory matches {_shown(query)}" + (f" from sender {_shown(sender)}" if sender is not None
                                                          else "")
        else:
            said = "\n".join(
                f"#{m.id} ({'long-term' if m.long_term else 'pending'}{', faded: restored' if m.decayed else ''}) "
                f"{m.text}  [{m.kind}" + (f" · {m.sender}" if m.sender else "")
                + f" · importance {fmt_number(m.importance)}]" for m in memories)
        return _result(said, Recalled(memories=memories))

    def used(self, memory_id: int, long_term: bool) -> CallToolResult:
        if long_term:
            with self.store.atomic():
                # as record_access does for a pending id that promote moved: one more recall of it
                # (a memory merged into another passes it on; one that faded is restored)
                if not ops.reinforce_where(self.store, self.engine.clock().timestamp(),
                                      self.store.m.LongTermMemory.id == memory_id, "used"):
                    raise _Refused(f"no long-term memory with id {memory_id}")
            tier = "long_term"
        else:
            tier = self.engine.record_access(memory_id)
        what = "long-term" if long_term else "pending" if tier == "pending" else "long-term (promoted from it)"
        said = f"use recorded: memory #{memory_id}, {what}"
        return _result(said, Used(id=memory_id, long_term=long_term, tier=tier))

    def forget(self, memory_id: int, long_term: bool) -> CallToolResult:
        try:
            forgot = ops.forget(self.store, self.engine.clock(), memory_id, long_term=long_term, reason=FORGET_REASON)
        except ops.MemoryInputError as exc:
            raise _Refused(str(exc)) from None
        if forgot.tier == "pending":
            return _result(f"forgot pending memory #{memory_id}: deleted, it will never be promoted",
                           Forgotten(id=memory_id, long_term=False, tier="pending", action="expire",
                                     memory_id=memory_id))
        if not forgot.done:
            return _result(f"long-term memory #{forgot.memory_id} was already soft-deleted; nothing changed",
                           Forgotten(id=memory_id, long_term=long_term, tier="long_term", action="none",
                                     memory_id=forgot.memory_id))
        said = (f"forgot long-term memory #{forgot.memory_id}: soft-deleted"
                + (" and no longer kept (it was pinned)" if forgot.unpinned else "")
                + "; recall no longer offers it; a use of its id or the same words stored again restore it, "
                  "else decay deletes it for good after its grace period")
        return _result(said, Forgotten(id=memory_id, long_term=long_term, tier="long_term", action="soft_delete",
                                       memory_id=forgot.memory_id, unpinned=forgot.unpinned))

    def why(self, memory_id: int, long_term: bool) -> CallToolResult:
        try:
            told = self.engine.story(memory_id, long_term=long_term)
        except ops.MemoryInputError as exc:  # the command line's hint, in this server's words
            raise _Refused(str(exc).replace("add --long-term", "pass long_term true")) from None
        data = json.loads(json.dumps(asdict(told), default=lambda v: v.isoformat() if isinstance(v, datetime)
                                     else str(v)))
        lines = describe_story(told)
        return _result("\n".join(lines), Story(story=data, lines=lines))

    # -- jobs -----------------------------------------------------------------------------------

    def status(self) -> CallToolResult:
        from memtui.tui.cli import jobs_table  # the table `memtui jobs` prints (no Textual)

        engine = self.engine
        jobs = engine.jobs()
        Pending, LongTermModel = self.store.m.PendingMemory, self.store.m.LongTermMemory
        live = LongTermModel.superseded_by.is_null()
        memories = {
            "pending": Pending.select().count(),
            "long_term": LongTermModel.select().where(live & LongTermModel.deleted_at.is_null()).count(),
            "faded": LongTermModel.select().where(live & LongTermModel.deleted_at.is_null(False)).count(),
            "superseded": LongTermModel.select().where(~live).count(),
        }
        engines = [EngineSeen(host=e.host, pid=e.pid, version=e.version, heartbeat=_iso(e.heartbeat),
                              running=list(e.running)) for e in engine.engines()]
        paused = engine.paused
        head = [f"{self.store.label}: " + ", ".join(f"{n} {k.replace('_', '-')}" for k, n in memories.items()),
                ("engines: " + ", ".join(f"{e.host} pid {e.pid}" for e in engines)) if engines
                else "no engine running: the jobs run when one does (memtui --no-ui)"]
        if paused:
            head.append("every job is paused (memtui resume)")
        said = "\n".join(head) + "\n" + jobs_table(jobs, engine.clock())
        return _result(said, Status(database=self.store.label, paused=paused, engines=engines, memories=memories,
                                    jobs=[_job(j) for j in jobs]))

    def run_job(self, name: str) -> CallToolResult:
        run = self.engine.run_job(name)
        record = {k: v for k, v in run.to_json().items() if k != "traceback"}
        return _result(run_line(run), Ran(run=record))

    def toggle(self, name: str, enabled: bool) -> CallToolResult:
        job = (self.engine.enable if enabled else self.engine.disable)(name, AUDIT_SOURCE)
        return _result(f"{job.name}: {'enabled' if job.enabled else 'disabled'}"
                       + (f", next run {_iso(job.next_run)}" if job.next_run else ""), JobChanged(job=_job(job)))


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def _job(j: JobInfo) -> Job:
    return Job(name=j.name, kind=j.kind, enabled=j.enabled, schedule=j.schedule_detail or j.schedule_text,
               next_run=_iso(j.next_run), last_run=_iso(j.last_run), last_status=j.last_status, running=j.running,
               runs=j.runs, errors=j.errors, backoff_until=_iso(j.backoff_until), totals=j.totals)


def _result(text: str, data: BaseModel) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structuredContent=data.model_dump(mode="json"))


def _hints(title: str, *, read_only: bool = False, destructive: bool = False, idempotent: bool = False,
           open_world: bool = False) -> dict:
    return {"title": title, "annotations": ToolAnnotations(
        title=title, readOnlyHint=read_only, destructiveHint=destructive, idempotentHint=idempotent,
        openWorldHint=open_world)}


def build_server(engine: Engine, *, allow_control: bool = False, host: str = "127.0.0.1",
                 port: int | None = None) -> MemtuiMCP:
    """The MCP server over ``engine``'s store (an engine not started: the jobs are a running engine's to
    run; ``run_job`` runs one here, now). ``host`` and ``port`` matter only for streamable HTTP."""
    from memtui import __version__

    if SDK_MAJOR >= 2:
        server = MemtuiMCP("memtui", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")
    else:
        import warnings

        with warnings.catch_warnings():  # mcp 1.x's settings under a newer pydantic-settings: noise on stderr
            warnings.filterwarnings("ignore", message=".*has an incomplete definition")
            server = MemtuiMCP("memtui", instructions=INSTRUCTIONS, log_level="WARNING", host=host,
                               port=port or 8000)
    tools = _Tools(engine)

    @server.tool(**_hints("Remember"))
    async def remember(
        text: Annotated[str, Field(min_length=1, description="What to remember, in a sentence.")],
        sender: Annotated[str, Field(description=(
            "Whose memory it is (a user or channel id); recall can filter by it. Empty: nobody's in particular."
        ))] = "",
        kind: Annotated[str, Field(min_length=1, description=(
            "What sort of memory: note (default), preference, fact, event… free text."))] = "note",
        importance: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False, description=(
            "How much it matters, 0 to 10 (default 5): weighs in promotion and recall ranking, slows decay."
        ))] = 5.0,
        confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, description=(
            "How sure you are of it, 0 to 1 (default 0.5)."))] = 0.5,
        keep: Annotated[bool, Field(description=(
            "true: promote it to long-term memory at the next promote run whatever its score, pinned "
            "(decay never retires it)."))] = False,
    ) -> Annotated[CallToolResult, Remembered]:
        """Add a short-term (pending) memory. The promote job moves it to long-term memory when it scores
        high enough (uses, recency, confidence, importance), or at once with keep. The same words again
        from the same sender are not stored twice: they count as a use of the memory already kept, whose
        id comes back with repeat true."""
        return await tools.run(tools.remember, text, sender, kind, importance, confidence, keep)

    @server.tool(**_hints("Recall"))
    async def recall(
        query: Annotated[str, Field(min_length=1, description=(
            "Words to look for: a memory must hold every one (each also as a prefix: aisle finds aisles); "
            "case and accents do not matter."))],
        sender: Annotated[str | None, Field(description=(
            "Only this sender's memories (\"\" is the memories stored without one); omit for everyone's."
        ))] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many memories (default 10).")] = 10,
    ) -> Annotated[CallToolResult, Recalled]:
        """Find memories by their words, most relevant first (relevance weighted by importance; faded
        memories after the rest). Recalling a memory reinforces it, since being recalled is what keeps a
        memory alive; a faded one is restored."""
        return await tools.run(tools.recall, query, sender, limit)

    @server.tool(**_hints("Record a use"))
    async def used(id: MemoryId, long_term: LongTerm = False) -> Annotated[CallToolResult, Used]:
        """Say that a memory was used (you relied on it): it scores higher for promotion, or, in long-term
        memory, counts as a recall that keeps it from decaying (a faded one is restored)."""
        return await tools.run(tools.used, id, long_term)

    @server.tool(**_hints("Forget", destructive=True, idempotent=True))
    async def forget(id: MemoryId, long_term: LongTerm = False) -> Annotated[CallToolResult, Forgotten]:
        """Forget a memory that is wrong or no longer wanted. A pending memory is deleted and never
        promoted. A long-term memory is soft-deleted, as decay does with a faded one (and no longer kept if
        it was pinned): a use, a recall or the same words stored again restore it, otherwise decay deletes
        it for good after its grace period. why still tells what happened to it."""
        return await tools.run(tools.forget, id, long_term)

    @server.tool(**_hints("Why", read_only=True, idempotent=True))
    async def why(id: MemoryId, long_term: LongTerm = False) -> Annotated[CallToolResult, Story]:
        """A memory's story: where it is (pending, long-term, or gone) and why; its promotion score term by
        term against the threshold and when it expires; or its retention now, when decay retires it, and
        what was merged into it or replaced it."""
        return await tools.run(tools.why, id, long_term)

    @server.tool(**_hints("Job status", read_only=True, idempotent=True))
    async def status() -> Annotated[CallToolResult, Status]:
        """The memory jobs: for each, whether it is enabled, its schedule, next run, last run and status,
        runs and errors, and what its runs have done; the memory counts; and the engines running the jobs
        (the jobs run only while a memtui engine runs: memtui --no-ui, or the dashboard)."""
        return await tools.run(tools.status)

    if allow_control:
        names = ", ".join(job.name for job in engine.jobs())

        @server.tool(**_hints("Run a job now", destructive=True, open_world=True))
        async def run_job(name: Annotated[str, Field(min_length=1, description=(
                f"The job to run: {names}."))]) -> Annotated[CallToolResult, Ran]:
            """Run one memory job now, here, and answer with its run (status, duration, what it did). Its
            schedule is not shifted; if an engine is running the same job, the run is skipped and says so.
            Jobs that ask a model (rollups, profile, dedupe with a model) may take a while."""
            return await tools.run(tools.run_job, name)

        @server.tool(**_hints("Enable a job", idempotent=True))
        async def enable(name: JobName) -> Annotated[CallToolResult, JobChanged]:
            """Enable a job: the engines schedule it again (recorded in the audit log)."""
            return await tools.run(tools.toggle, name, True)

        @server.tool(**_hints("Disable a job", idempotent=True))
        async def disable(name: JobName) -> Annotated[CallToolResult, JobChanged]:
            """Disable a job: no engine runs it on its schedule until it is enabled (recorded in the audit
            log)."""
            return await tools.run(tools.toggle, name, False)

    return server


# -- running ------------------------------------------------------------------------------------

def _log_to_stderr() -> None:
    """Every log line to stderr, one line each: in stdio mode stdout is the protocol. Set before the SDK
    configures logging, which then leaves it as it is."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING)


async def _run_stdio_v1(server) -> None:
    """mcp 1's stdio transport, on a private copy of stdout; file descriptor 1 then points at stderr, so
    nothing printed by accident can corrupt the protocol (mcp 2's transport does this itself)."""
    from io import TextIOWrapper

    from mcp.server.stdio import stdio_server

    wire = os.dup(1)
    os.dup2(2, 1)
    out = anyio.wrap_file(TextIOWrapper(os.fdopen(wire, "wb"), encoding="utf-8"))
    try:
        async with stdio_server(stdout=out) as (read_stream, write_stream):
            lowlevel = server._mcp_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    except* (anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass  # the client hung up with a call still running (its write is whole); early 1.x say it so


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve(engine: Engine, *, http_port: int | None = None, host: str = "127.0.0.1",
          allow_control: bool = False) -> int:
    """Serve until the client hangs up (stdio) or the process is stopped (HTTP); closes the store."""
    _log_to_stderr()
    server = build_server(engine, allow_control=allow_control, host=host, port=http_port)
    control = f"; job control on ({', '.join(CONTROL_TOOLS)})" if allow_control else ""
    try:
        if http_port is None:
            print(f"memtui mcp: serving {engine.store.label} over stdio{control}", file=sys.stderr, flush=True)
            if SDK_MAJOR >= 2:
                server.run("stdio")
            else:
                anyio.run(_run_stdio_v1, server)
        else:
            print(f"memtui mcp: serving {engine.store.label} at http://{url_host(host)}:{http_port}/mcp{control}",
                  file=sys.stderr, flush=True)
            if SDK_MAJOR >= 2:
                server.run("streamable-http", host=host, port=http_port)
            else:
                server.run("streamable-http")
    finally:
        engine.close()
    return 0


__all__ = ["FORGET_REASON", "MemtuiMCP", "SDK_MAJOR", "build_server", "explain", "serve"]
