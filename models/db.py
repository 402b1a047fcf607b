"""Opening a memtui store, and the small interface the engine uses without knowing the backend.

``Store.open(target)`` is the only way in. ``target`` is a path (SQLite, the
embedded default), ``sqlite:///path``, or ``postgresql://user:pass@host:port/name``
(several engines and agents on one server). It refuses what is not a memtui
store, or one whose schema is newer than this version knows, before writing to
it, and applies the migrations (``playhouse.migrations``, models/migrations/).

Queries are written once, with Peewee's query builder on the bound models
(``store.m.Run.select()…``); Peewee supplies each backend's SQL. What differs
and Peewee does not express sits behind the methods below, implemented once per
backend in models/sqlite.py and models/postgres.py:

- ``atomic()``: one write transaction, all or nothing;
- ``check()`` / ``probe_write()``: is the store usable (a file deleted, read-only, full; a server gone);
- ``greatest``/``least``/``round_to``/``contains_words``: SQL functions spelt differently;
- ``in_ids(column, ids)``: "column is one of these ids", bound the way the backend takes a list fastest;
- ``for_update(query)`` / ``lock_for_rewrite(*models)``: row and table locks where the backend
  needs them (SQLite's write transaction already locks the whole file);
- ``limit_lock_wait(seconds)``: how long the calling thread's statements wait for another writer;
- ``notify_change()`` / ``change_listener()``: tell other engines at once that definitions or
  cursors changed (PostgreSQL NOTIFY; SQLite has no channel, and polling is the guarantee anyway);
- ``maintain(vacuum_free_ratio)``: planner statistics, checkpoint, vacuum; ``refresh_statistics(model)``
  after a job rewrote much of a table;
- ``text_search(model, query, any_word)`` / ``matching(select, model, query)`` / ``sync_search()``:
  full-text search over a memory table,
  ranked (FTS5's BM25 on SQLite, ``ts_rank`` on PostgreSQL), on text folded as recall folds it;
  ``serialize(key)``: writers of the same key one at a time (remember's repeat check);
- ``label``: where the store is, fit for a log line (a URL's password is never shown).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

from peewee import DatabaseError, InterfaceError, OperationalError
from playhouse.migrations import Runner

from memtui.models import schema

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Every error a backend's driver raises for an unusable store, for callers that catch them.
DB_ERRORS: tuple[type[BaseException], ...] = (OperationalError, DatabaseError, InterfaceError)
try:
    import sqlite3

    DB_ERRORS += (sqlite3.Error,)
except ImportError:  # pragma: no cover - CPython always has it
    pass


class StoreError(Exception):
    """A database that cannot be used; the message is one line for the user."""


def shown(path) -> str:
    """A path fit for a one-line message: control characters written as escapes."""
    return re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", lambda m: repr(m.group())[1:-1], str(path))


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_url(target) -> bool:
    return isinstance(target, str) and re.match(r"^[a-z][a-z0-9+.-]*://", target) is not None


class Store:
    """One open memtui store and its models bound to it. Subclasses: SqliteStore, PostgresStore."""

    kind = "?"

    def __init__(self, db, label: str):
        self.db = db
        self.label = label  # for messages and logs; never holds a password
        self.m: SimpleNamespace = schema.bind(db)

    # -- opening ------------------------------------------------------------------

    @classmethod
    def open(cls, target: str | os.PathLike, *, migrate: bool = True, create: bool = True) -> "Store":
        """Open the store at ``target`` (a path or a URL). ``create=False`` (commands that only
        read) refuses a store that does not exist yet instead of creating it."""
        if is_url(target):
            scheme = str(target).split("://", 1)[0]
            if scheme in ("postgresql", "postgres"):
                from memtui.models.postgres import PostgresStore

                return PostgresStore.open_url(str(target), migrate=migrate, create=create)
            if scheme == "sqlite":
                from memtui.models.sqlite import SqliteStore

                return SqliteStore.open_path(str(target)[len("sqlite:///"):] if str(target).startswith(
                    "sqlite:///") else _bad_sqlite_url(str(target)), migrate=migrate, create=create)
            raise StoreError(f"{scheme}://…: unknown kind of database; use a path, sqlite:///PATH "
                             "or postgresql://USER@HOST:PORT/NAME")
        from memtui.models.sqlite import SqliteStore

        return SqliteStore.open_path(target, migrate=migrate, create=create)

    def _migrate(self) -> None:
        """Apply the migrations this store lacks, once, even with several processes opening it."""
        runner = Runner(self.db, directory=str(MIGRATIONS_DIR))
        with self.atomic():
            self._lock_migrations()
            status = runner.status()
            unknown = [m.name for m in status if m.path is None]
            if unknown:
                raise StoreError(
                    f"{self.label}: schema is newer than this memtui knows "
                    f"(migration {unknown[-1]}); upgrade memtui (left untouched)")
            if any(m.applied is None for m in status):
                runner.up()

    def _lock_migrations(self) -> None:
        """Inside the migration transaction: keep a second process out until it commits."""

    # -- the interface --------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The database file (SQLite), or None for a server."""
        return None

    def close(self) -> None:
        self.db.close()

    def atomic(self):
        """One write transaction, committed whole or rolled back."""
        return self.db.atomic()

    def check(self) -> None:
        """Raise StoreError when the store cannot be used now (cheap; the engine calls it each poll)."""

    def probe_write(self) -> None:
        """A real write, as a run would make it, on a fresh connection; raises while it fails."""
        raise NotImplementedError

    def execute(self, sql: str, params=()):
        """Raw SQL with ``?`` placeholders, for tests and for the backend code in models/ only:
        memtui's engine and UI query through the models."""
        return self.db.execute_sql(sql, params)

    def greatest(self, *args):
        """The largest argument. NULLs differ: SQLite's is NULL if any argument is, PostgreSQL's
        GREATEST skips them; pass non-NULL arguments (or guard with a CASE)."""
        raise NotImplementedError

    def least(self, *args):
        """The smallest argument; NULLs differ as for ``greatest``."""
        raise NotImplementedError

    def round_to(self, expr, digits: int):
        raise NotImplementedError

    def in_ids(self, column, ids):
        """``column`` is one of ``ids`` (integers), bound as they are: Peewee's ``column.in_(list)``
        passes each id through a Value and the column's converter, about 3 µs an id. SQLite:
        ``column IN (?, ?, …)``, one parameter an id. PostgreSQL: ``column = ANY(?)``, one array
        parameter, so a batch binds one value and its statement text does not grow with it (measured
        in bench/: promote's 1000-id batches, 2.6 s -> 1.1 s for 285 expiry batches). ``ids`` is a
        list, or a node that binds them itself (engine/jobs/base.py's IdList, which notes where its
        parameters went so that ``in_batches`` can bind a rendered statement to the next chunk; on
        PostgreSQL it is rendered with the state ``ids_as_array`` holding the function that makes the
        one parameter of a list of ids)."""
        raise NotImplementedError

    def contains_words(self, column, words: list[str]):
        """True where ``column``, folded (case and accents), holds every one of ``words`` (folded)."""
        from peewee import fn

        from memtui.models.text import WORD_SEPARATOR

        return fn.memtui_contains(column, WORD_SEPARATOR.join(words))

    def text_search(self, model, query: str, any_word: bool = False, within=None, limit: int | None = None):
        """The rows of memory table ``model`` (PendingMemory or LongTermMemory) whose text holds every word
        of ``query`` (``any_word``: one of them), each word also as a prefix ("aisle" finds "aisles"),
        compared as ``memtui_fold`` folds them: a query of columns ``id`` and ``relevance`` (higher is more
        relevant), to join to the table; None when ``query`` has no word at all. ``within``: only the ids
        this subquery lists; ``limit``: only the most relevant, best first."""
        raise NotImplementedError

    def matching(self, select, model, query: str):
        """``select``, a query over memory table ``model``, narrowed to the rows whose text holds every
        word of ``query`` as ``text_search`` finds them, and the relevance to rank them by in it (higher
        is more relevant): ``(select, relevance)``, or None when ``query`` has no word at all. Here it
        joins ``text_search``'s hits; a backend whose index is a column of the table itself matches
        and ranks in place, reading each matching row once instead of twice."""
        hits = self.text_search(model, query)
        if hits is None:
            return None
        hits = hits.alias(f"{model._meta.table_name}_hit")
        return select.join(hits, on=(hits.c.id == model.id)), hits.c.relevance

    def sync_search(self) -> None:
        """Bring the search index up to date with the memory tables (before reading it)."""

    def serialize(self, key: str) -> None:
        """Inside a write transaction: another transaction serializing the same ``key`` waits until this
        one ends. SQLite's write transaction locks the whole file already."""

    def pending_change_mark(self) -> int:
        """A mark for what promote has seen: every write to a pending memory committed after this call
        has ``pending_memory.changed`` above it (migration 0008). Call it before reading what changed, in
        a write transaction of its own or of the caller's (SQLite keeps the mark for the trigger)."""
        raise NotImplementedError

    def for_update(self, query):
        """``query`` locking the rows it reads until the transaction ends, where the backend needs it."""
        return query

    def lock_for_rewrite(self, *models) -> None:
        """Inside a transaction that checks tables and then rewrites them: keep other writers out."""

    def maintain(self, vacuum_free_ratio: float) -> dict:
        """Refresh planner statistics, checkpoint, and reclaim free space when worth it."""
        raise NotImplementedError

    def checkpoint_log(self) -> None:
        """Copy what the write-ahead log holds back into the database, without waiting for anyone
        (the engine's sync loop calls it; SQLite). A no-op where the server does it (PostgreSQL)."""

    def refresh_statistics(self, model) -> None:
        """After a job rewrote a large share of ``model``'s rows: refresh what the planner knows of them,
        where it plans from statistics that would otherwise lag (PostgreSQL, whose autovacuum may be
        off or late). SQLite picks its indexes without them here: nothing to do."""

    def limit_lock_wait(self, seconds: float) -> None:
        """Statements on the calling thread's connection wait at most ``seconds`` for a lock another
        writer holds, then fail (a UI thread must not freeze for the store's full busy timeout)."""
        raise NotImplementedError

    def notify_change(self) -> None:
        """Inside a transaction that changed job definitions or cursors: wake the other engines on
        commit instead of at their next poll. A no-op where the backend has no such channel."""

    def change_listener(self) -> "ChangeListener | None":
        """A listener for ``notify_change`` from any process, on a connection of its own; None
        where the backend has no such channel (then polling alone picks changes up)."""
        return None

    # -- small conveniences on the models ---------------------------------------------------

    def setting(self, key: str, default: str | None = None) -> str | None:
        row = self.m.Setting.get_or_none(self.m.Setting.key == key)
        return row.value if row else default

    def set_setting(self, key: str, value: str) -> None:
        Setting = self.m.Setting
        Setting.insert(key=key, value=value).on_conflict(
            conflict_target=[Setting.key], update={Setting.value: value}).execute()


class ChangeListener:
    """Waits for ``notify_change`` from other processes (see ``Store.change_listener``)."""

    def wait(self, timeout: float) -> bool:
        """True when a change was announced within ``timeout`` seconds (all pending ones are consumed)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _bad_sqlite_url(url: str):
    raise StoreError(f"{shown(url)}: a SQLite URL has three slashes and a path: sqlite:///path/to/memtui.db")


__all__ = ["ChangeListener", "DB_ERRORS", "MIGRATIONS_DIR", "Store", "StoreError", "is_url", "one_line", "shown"]
