"""What a job kind is: its typed config, its run function, and the context a run gets.

A job kind is one module under engine/jobs/ that defines ``KIND = JobKind(...)``.
``run(ctx)`` does the work and returns a small JSON-able dict (the run's result,
whose numbers the engine also adds up into per-job totals), or raises
``SkipRun`` to record the run as skipped with a reason. Any other exception
fails the run; the engine records its message and traceback.

Jobs query through the store's bound models (``ctx.store.m``), with Peewee's
query builder, and never know the backend; what differs goes through the Store
(``greatest``, ``round_to``, ``for_update``, ``maintain``…). Big writes go in
bounded transactions, in id order: ``in_batches`` for a listed set of ids,
``delete_while`` for "all rows matching this".
"""
from __future__ import annotations

import copy
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable

from peewee import OP, SQL, Expression, Node, Select, Value, fn

from memtui.engine.clock import Clock
from memtui.models import Store


class JobCancelled(Exception):
    """Raised by ``JobContext.check`` when the engine asked the run to stop (timeout, shutdown)."""


class SkipRun(Exception):
    """Raised by a job that decided not to work this time (a gate said no)."""

    def __init__(self, reason: str, result: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.result = result or {}


@dataclass
class JobContext:
    store: Store
    clock: Clock
    config: Any
    job: str
    run_id: int | None = None
    dry_run: bool = False
    llm: Any = None  # LLMSettings
    tz: tzinfo = timezone.utc  # the job's schedule time zone
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("memtui.jobs"))
    cancel: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Call between batches: stops the run here if the engine asked it to stop."""
        if self.cancel.is_set():
            raise JobCancelled("the engine asked this run to stop")

    def now(self) -> datetime:
        return self.clock()

    def load_checkpoint(self) -> dict:
        Checkpoint = self.store.m.JobCheckpoint
        value = Checkpoint.select(Checkpoint.value).where(Checkpoint.job == self.job).scalar()
        return json.loads(value) if value else {}

    def save_checkpoint(self, value: dict) -> None:
        """Write the checkpoint; call inside the transaction that did the work it records."""
        Checkpoint = self.store.m.JobCheckpoint
        Checkpoint.insert(job=self.job, value=json.dumps(value, sort_keys=True),
                          updated_at=self.clock().timestamp()).on_conflict(
            conflict_target=[Checkpoint.job], preserve=[Checkpoint.value, Checkpoint.updated_at],
        ).as_rowcount().execute()


class IdList(Node):
    """Row ids as the right-hand side of ``column.in_(...)``: ``(?, ?, …)``, or one array parameter
    where the store binds a list as one value (``Store.in_ids``; PostgreSQL's ``column = ANY(?)``).

    Peewee renders a plain list element by element, through a Value node and the
    column's converter each, about 3 µs an id: for a batch of 1000 that is more
    than the statement itself takes to run on SQLite. The ids are ints already,
    so they are bound as they are, in the backend's own placeholder style. The
    node notes where among the parameters of each rendering its ids went
    (``placed``: the context, the index of its first parameter, and the store's
    encoding when it bound them as one array parameter), so ``in_batches`` can
    bind the next chunk's ids to the same rendered statement."""

    def __init__(self, ids: list[int]):
        self.ids = ids
        # (rendering context, index of its first parameter, the array encoding or None: one parameter an id)
        self.placed: list[tuple[Any, int, Callable[[list[int]], Any] | None]] = []

    def __sql__(self, ctx):
        encode = ctx.state.ids_as_array  # set by Store.in_ids where the ids go as one array parameter
        if ctx.state.value_literals:  # query_to_string and friends: ints are safe to inline
            if encode:
                return ctx.value(encode(self.ids), False)
            return ctx.literal("(" + ", ".join(str(int(i)) for i in self.ids) + ")")
        self.placed.append((ctx, len(ctx._values), encode))
        if encode:
            ctx._values.append(encode(self.ids))
            return ctx.literal(ctx.state.param or "?")
        ctx.literal("(" + ", ".join([ctx.state.param or "?"] * len(self.ids)) + ")")
        ctx._values.extend(self.ids)
        return ctx


def id_in(column, ids: list[int]):
    """``column IN (ids)``, with the ids bound as they are (see IdList)."""
    return column.in_(IdList(ids))


Statement = Callable[[IdList], Any]  # a chunk's ids -> the Peewee query (INSERT, UPDATE, DELETE) to run on them


def in_batches(ctx: JobContext, ids: list[int], size: int, *statements: Statement) -> int:
    """Run each statement for every chunk of ``ids``, one transaction per chunk.

    A statement is a function of the chunk's ids, returning a Peewee query that
    uses them once (``Model.id.in_(chunk)``, written by the store as its
    ``in_ids``: ``IN (?, …)`` on SQLite, ``= ANY(?)`` on PostgreSQL). Between
    chunks the run may be told to stop. Returns the summed rowcount of the last
    statement. Chunks go in id order: rows with neighbouring ids share pages, so
    each page is rewritten once instead of once per chunk (2-3x less I/O than
    score or sender order, measured in bench/). Each statement is built and
    rendered once per chunk length (all full chunks share one) and then bound to
    each chunk's ids: Peewee takes up to a millisecond to render one, a tenth of
    what a 1000-row chunk takes SQLite to write, and that added up to several
    percent of promote's time."""
    ids = sorted(ids)
    rendered: dict[int, list[tuple[str, list, int, Callable | None]]] = {}
    changed = 0
    for start in range(0, len(ids), size):
        chunk = ids[start:start + size]
        n = len(chunk)
        if n not in rendered:
            rendered[n] = [_render(ctx, statement, chunk) for statement in statements]
        ctx.check()
        with ctx.store.atomic():
            for sql, params, at, encode in rendered[n]:
                bound = [*params[:at], encode(chunk), *params[at + 1:]] if encode else \
                    [*params[:at], *chunk, *params[at + n:]]
                cursor = ctx.store.db.execute_sql(sql, bound)
        changed += cursor.rowcount
    return changed


def _render(ctx: JobContext, statement: Statement, chunk: list[int]) -> tuple[str, list, int, Callable | None]:
    """(SQL, parameters, where the chunk's ids start among them, and the store's encoding when they are
    one array parameter) of ``statement`` for ``chunk``."""
    ids = IdList(chunk)
    context = ctx.store.db.get_sql_context()
    sql, params = context.parse(_in_ids(statement(ids), ids, ctx.store))
    # Peewee also renders an IN's right-hand side on a scratch context, to see whether it is empty.
    at = [(index, encode) for ctx, index, encode in ids.placed if ctx is context]
    if len(at) != 1:
        raise ValueError("a batched statement must use its chunk's ids exactly once")
    return sql, params, *at[0]


def _in_ids(query, ids: IdList, store: Store):
    """``query`` with its ``column.in_(ids)`` written as ``store.in_ids(column, ids)``, in the WHERE of
    the statement and of the SELECT an INSERT copies from (the query is the statement function's own,
    built for this rendering, so it is changed in place). Anywhere else the ids stay ``IN (?, …)``:
    slower to bind on PostgreSQL, as right."""
    where = getattr(query, "_where", None)
    if where is not None:
        query._where = _spelt(where, ids, store)
    source = getattr(query, "_insert", None)
    if isinstance(source, Node) and getattr(source, "_where", None) is not None:
        _in_ids(source, ids, store)
    for cte in getattr(query, "_cte_list", None) or ():  # the write a WITH makes (write_with_history)
        _in_ids(cte._query, ids, store)
    return query


def _spelt(node, ids: IdList, store: Store):
    """``node`` with each ``column IN ids`` in its tree of expressions replaced by ``store.in_ids``;
    the nodes on the way are copied, never changed (a statement function may share them)."""
    if not isinstance(node, Expression):
        return node
    if node.op == OP.IN and node.rhs is ids:
        return store.in_ids(node.lhs, ids)
    lhs, rhs = _spelt(node.lhs, ids, store), _spelt(node.rhs, ids, store)
    if lhs is node.lhs and rhs is node.rhs:
        return node
    node = copy.copy(node)
    node.lhs, node.rhs = lhs, rhs
    return node


def delete_while(ctx: JobContext, model, where, size: int) -> int:
    """Remove the rows of ``model`` matching the expression ``where``, ``size`` per transaction, until
    none match. The DELETE tests ``where`` itself too, not only the ids its subquery picked: on
    PostgreSQL a row changed by another writer meanwhile is tested again as it is now."""
    total = 0
    while True:
        ctx.check()
        with ctx.store.atomic():
            batch = model.select(model.id).where(where).limit(size)
            deleted = model.delete().where(model.id.in_(batch) & where).execute()
        total += deleted
        if deleted < size:
            return total


def raw_rows(ctx: JobContext, query) -> list[tuple]:
    """The rows of ``query`` as the driver returns them, for long listings of ids and scores.

    Peewee's row wrappers pass every value through its field's converter, about
    1.5 µs a row: as long again as SQLite takes to read it. Ids and floats need no
    converting; a flag would (SQLite returns 0/1), so read flags with ``.tuples()``."""
    return ctx.store.db.execute(query).fetchall()


def raw_ids(ctx: JobContext, query) -> list[int]:
    """The first column of ``query``'s rows (the ids it lists), as ``raw_rows`` reads them."""
    return [row[0] for row in ctx.store.db.execute(query)]


def history_of(ctx: JobContext, model, where, action: str, reason: str, now_ts: float):
    """The INSERT … SELECT that writes a memory_history row (``action``, ``reason``, this run) for each row
    of memory table ``model`` matching ``where``, locking those rows until the transaction ends where the
    backend needs it: the write that follows in the same transaction then moves exactly these rows."""
    History = ctx.store.m.MemoryHistory
    tier = "pending" if model is ctx.store.m.PendingMemory else "long_term"
    rows = ctx.store.for_update(model.select(
        model.id, Value(tier), Value(action), model.content, Value(reason), Value(ctx.run_id), Value(now_ts),
        model.demo).where(where))
    return History.insert_from(rows, [History.memory_id, History.tier, History.action, History.old_text,
                                      History.reason, History.run_id, History.at, History.demo])


def write_with_history(ctx: JobContext, model, where: Callable[[IdList], Any], write: Callable[[Any], Any],
                       action: str, reason: str, now_ts: float) -> tuple[Statement, ...]:
    """The statements, for ``in_batches``, that write the rows of memory table ``model`` matching
    ``where(chunk)`` — ``write(condition)`` is that model's UPDATE or DELETE — and record a memory_history
    row (``action``, ``reason``, this run) for each row written, in the chunk's transaction; the rowcount
    of the last one is the number of rows written.

    On PostgreSQL that is one statement, ``WITH written AS (UPDATE … RETURNING …) INSERT INTO
    memory_history SELECT … FROM written``: the history is made of exactly the rows the write changed (a
    row another transaction changed meanwhile is tested again by the write, and left alone it gets no
    history row), with no row locks taken beforehand: locking them first wrote each row once more (and,
    after a checkpoint, logged its page whole), 12-17 ms for decay's 1,000 soft deletes at a million
    memories. Elsewhere (SQLite, where a write transaction holds the whole file, so nothing changes between
    two statements) the history's INSERT … SELECT, then the write."""
    if ctx.store.kind != "postgresql":
        return (lambda chunk: history_of(ctx, model, where(chunk), action, reason, now_ts),
                lambda chunk: write(where(chunk)))
    History = ctx.store.m.MemoryHistory
    tier = "pending" if model is ctx.store.m.PendingMemory else "long_term"

    def statement(chunk):
        written = write(where(chunk)).returning(model.id, model.content, model.demo).cte("written")
        # A bare Select: the WITH belongs at the top of the INSERT (PostgreSQL wants a writing WITH there).
        rows = Select((written,), (written.c.id, Value(tier), Value(action), written.c.content, Value(reason),
                                   Value(ctx.run_id), Value(now_ts), written.c.demo))
        return History.insert_from(rows, [History.memory_id, History.tier, History.action, History.old_text,
                                          History.reason, History.run_id, History.at, History.demo]
                                   ).with_cte(written).returning()
    return (statement,)


def count_rows(model, where=None) -> int:
    """How many rows of ``model`` match ``where`` (all of them without one): one count(*)."""
    query = model.select(fn.COUNT(SQL("*")))
    return (query.where(where) if where is not None else query).scalar()


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Callable[[JobContext], dict]
    config: type
    summary: str
    counters: tuple[str, ...] = ()  # result keys the engine adds up into the job's totals
    dry_run: bool = False  # run(ctx) honours ctx.dry_run: computes, reports, writes nothing


@dataclass(frozen=True)
class JobSpec:
    """A job as seeded on first start: its name, its kind and default schedule."""

    name: str
    kind: str
    schedule: str
    jitter_s: int = 0
    params: dict = field(default_factory=dict)
    enabled: bool = True
