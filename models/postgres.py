"""The PostgreSQL store (several engines and agents on one server): connecting, locking, maintenance.

Opened from a URL, ``postgresql://user:password@host:5432/name``, through
psycopg 3 (the ``postgres`` extra). The password goes to the driver and nowhere
else: the store's ``label`` and every message show the URL without it.

Transactions are PostgreSQL's default, READ COMMITTED. The engine's claims are
compare-and-set UPDATEs, which re-check their WHERE on the row they lock, so
that is enough for them; a job that reads rows and then rewrites them locks
those rows first (``for_update``), and ``memtui demo``, which checks whole
tables and then rewrites them, locks the tables (``lock_for_rewrite``).
Migrations run under an advisory lock, so engines starting together migrate
once. A change to job definitions or cursors is announced with NOTIFY on commit
(``notify_change``), and each running engine LISTENs on a connection of its own
(``change_listener``), so it adopts the change at once instead of at its next
poll. Case- and accent-folding is the SQL function ``memtui_fold`` that
migration 0003 creates, the same folding SQLite gets from models/text.py.
"""
from __future__ import annotations

import re
import shlex
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from peewee import (OP, Cast, Column, DatabaseError, Expression, InterfaceError, Node, OperationalError,
                    PostgresqlDatabase, fn)

from memtui.models.db import ChangeListener, Store, StoreError, one_line, shown

MIGRATION_LOCK = 0x6D656D74  # "memt": pg_advisory_xact_lock key for migrations
CHANGES_CHANNEL = "memtui_changes"  # NOTIFY channel: job definitions or cursors changed
CONNECT_TIMEOUT_S = 10


def redact_url(url: str) -> str:
    """The URL with its password (``user:password@`` or a ``password=`` parameter) replaced by ***:
    what may be shown or logged. Host and port are kept as written ([::1], a port that is no number)."""
    scheme, sep, rest = url.partition("://")
    # The user part ends at the URL's last @: a password may hold an unencoded / # ? (or @) that
    # urlsplit would read as the start of the path, and so show.
    userinfo, at, tail = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:***@{tail}"
    try:
        parts = urlsplit(f"{scheme}{sep}{rest}")
    except ValueError:  # e.g. an unclosed [ in an IPv6 host: show nothing of the netloc
        return "postgresql://…"
    parts = parts._replace(query=re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query))
    return urlunsplit(parts)


def _driver_available() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


class _Database(PostgresqlDatabase):
    """Peewee's PostgresqlDatabase that reopens a connection the server closed (a restart, a
    failover, a dropped network). Peewee keeps one connection per thread and never reopens it
    itself, so without this an engine's threads would stay on dead connections for good. Only
    between transactions: inside one, the error must reach the caller, whose work is rolled back."""

    def _reopen_if_broken(self) -> None:
        if self.is_closed() or self.in_transaction() or self.is_connection_usable():
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone anyway
            self._state.reset()

    def execute_sql(self, sql, params=None, *args, **kwargs):
        self._reopen_if_broken()
        return super().execute_sql(sql, params, *args, **kwargs)

    def begin(self, *args, **kwargs):
        self._reopen_if_broken()
        return super().begin(*args, **kwargs)


def createdb_command(params: dict) -> str:
    """The ``createdb`` line that makes the database ``params`` name, as the user they name (never a password)."""
    words = ["createdb"]
    for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user")):
        if params.get(key):
            words += [flag, str(params[key])]
    return " ".join(shlex.quote(word) for word in words + [params["database"]])


class PostgresStore(Store):
    """A memtui store in a PostgreSQL database."""

    kind = "postgresql"

    @classmethod
    def open_url(cls, url: str, *, migrate: bool = True, create: bool = True) -> "PostgresStore":
        label = shown(redact_url(url))
        if not _driver_available():
            raise StoreError(f"{label}: PostgreSQL needs the psycopg driver: pip install 'memtui[postgres]'")
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. an unclosed [ around an IPv6 host
            raise StoreError(f"{label}: not a valid URL ({exc})") from None
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise StoreError(f"{label}: no database name; use postgresql://USER@HOST:PORT/NAME")
        params = {"database": name, "connect_timeout": CONNECT_TIMEOUT_S,
                  "application_name": "memtui"}
        if parts.username:
            params["user"] = unquote(parts.username)
        if parts.password is not None:
            params["password"] = unquote(parts.password)
        if parts.hostname:
            params["host"] = parts.hostname
        try:
            if parts.port:
                params["port"] = parts.port
        except ValueError:
            raise StoreError(f"{label}: the port is not a number") from None
        # libpq's own parameters (sslmode=require, sslrootcert=…, options=…) go to the driver as given.
        params.update(parse_qsl(parts.query, keep_blank_values=True))
        db = _Database(**params)
        store = cls(db, label)
        try:
            db.connect()
            encoding = db.execute_sql("SHOW server_encoding").fetchone()[0]
            if isinstance(encoding, bytes):  # SQL_ASCII: the driver hands back undecoded bytes
                encoding = encoding.decode("ascii", "replace")
            if encoding.upper() not in ("UTF8", "UTF-8"):  # memories are Unicode text, in any language
                raise StoreError(f"{label}: the database's encoding is {encoding}; memtui needs UTF8"
                                 " (CREATE DATABASE … ENCODING 'UTF8')")
            if not create and not store._has_schema():
                raise StoreError(f"no memtui database at {label} (the database exists, memtui's tables don't)")
            if migrate:
                store._migrate()
        except (OperationalError, DatabaseError, InterfaceError) as exc:
            db.close()
            said = _scrub(one_line(exc), params.get("password"))
            if f'database "{name}" does not exist' in said:  # the server answered: only the database is missing
                said += f"; create it first: {createdb_command(params)}"
            raise StoreError(f"{label}: {said}") from None
        except StoreError:
            db.close()
            raise
        return store

    def _has_schema(self) -> bool:
        return self.db.table_exists("schema_migration")

    def _lock_migrations(self) -> None:
        self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))

    def execute(self, sql: str, params=()):
        # Tests and models/ write placeholders as ? (SQLite's); psycopg's are %s.
        return self.db.execute_sql(sql.replace("%", "%%").replace("?", "%s"), params)

    def check(self) -> None:
        """A server that went away shows on the next statement; there is no file to look at."""

    def probe_write(self) -> None:
        db = PostgresqlDatabase(self.db.database, **self.db.connect_params)
        try:
            with db.atomic():
                db.execute_sql("INSERT INTO run (job, reason, started_at, status, error, owner)"
                               " VALUES ('-', 'manual', 0, 'skipped', %s, 'probe')", ("x" * 8192,))
                db.execute_sql("DELETE FROM run WHERE owner = 'probe'")
        finally:
            db.close()

    # -- SQL that PostgreSQL spells its own way ---------------------------------------------

    def greatest(self, *args):
        return fn.GREATEST(*args)

    def least(self, *args):
        return fn.LEAST(*args)

    def round_to(self, expr, digits: int):
        # round(double precision, int) does not exist: numeric has the two-argument form.
        return Cast(fn.ROUND(Cast(expr, "numeric"), digits), "double precision")

    def in_ids(self, column, ids):
        # One array parameter, whatever the number of ids: one value to bind, and a statement text that
        # does not grow with the list (the server parses it once). The ids' index is used as for IN.
        return Expression(column, OP.EQ, _AnyOf(ids))

    def pending_change_mark(self) -> int:
        # The trigger stores the writing transaction's id. The mark is one below every transaction that
        # may still commit a change the run's later reads cannot see: those open at a snapshot and still open
        # when a later statement looks (one that ended meanwhile is visible to any later read). A transaction
        # above the snapshot's xmax began after it. The snapshot is the server's, over every database and
        # every kind of process: one open in another database, or autovacuum's ANALYZE of a table, would hold
        # the mark back (runs re-scoring all that changed since it began) and neither can write a pending
        # memory, so the ones pg_stat_activity shows are left out too (it is read once per transaction, at
        # its first look: after the snapshot; one it cannot see is not left out).
        snapshot = self.db.execute_sql("SELECT pg_current_snapshot()::text").fetchone()[0]
        return int(self.db.execute_sql(
            "SELECT COALESCE(MIN(x::text::bigint), pg_snapshot_xmax(%s::pg_snapshot)::text::bigint) - 1"
            " FROM pg_snapshot_xip(%s::pg_snapshot) AS x WHERE pg_xact_status(x) = 'in progress'"
            " AND mod(x::text::bigint, 4294967296) NOT IN ("
            " SELECT backend_xid::text::bigint FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
            " AND (datname IS DISTINCT FROM current_database() OR backend_type LIKE 'autovacuum%%'))",
            (snapshot, snapshot)).fetchone()[0])

    def for_update(self, query):
        return query.for_update()

    @staticmethod
    def _match(model, query: str, any_word: bool = False):
        """(the matching condition, its relevance) for ``query`` on ``model``'s rows; None when it has no word."""
        if not any(ch.isalnum() for ch in query):
            return None
        # The column of migration 0005, kept by a trigger (not in the models: the database writes it).
        vector = Column(model, "search")
        terms = fn.memtui_search_query(query, "|" if any_word else "&")
        return Expression(vector, "@@", terms), fn.ts_rank(vector, terms)

    def matching(self, select, model, query: str):
        # In place, not a join of the table to its own hits: the join read each matching row twice (its
        # heap page for the match, then the primary key and the page again), 150 against 85 ms for a name
        # in 0.5 % of 2,000,000 memories once other searches had pushed them out of shared_buffers.
        matched = self._match(model, query)
        if matched is None:
            return None
        condition, relevance = matched
        return select.where(condition), relevance

    def text_search(self, model, query: str, any_word: bool = False, within=None, limit: int | None = None):
        matched = self._match(model, query, any_word)
        if matched is None:
            return None
        condition, relevance = matched
        hits = model.select(model.id.alias("id"), relevance.alias("relevance")).where(condition)
        if within is not None:
            hits = hits.where(model.id.in_(within))
        if limit is not None:
            hits = hits.order_by(relevance.desc(), model.id).limit(limit)
        return hits

    def serialize(self, key: str) -> None:
        # Held until the transaction ends; hashtextextended spreads keys over 64 bits.
        self.db.execute_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))

    def lock_for_rewrite(self, *models) -> None:
        # EXCLUSIVE: readers go on, writers wait until this transaction ends.
        names = ", ".join(f'"{model._meta.table_name}"' for model in models)
        self.db.execute_sql(f"LOCK TABLE {names} IN EXCLUSIVE MODE")

    def limit_lock_wait(self, seconds: float) -> None:
        # For the session of the calling thread's connection (Peewee's connections are per thread).
        self.db.execute_sql(f"SET lock_timeout = {int(seconds * 1000)}")

    def notify_change(self) -> None:
        # Peewee has no NOTIFY; it is delivered when the caller's transaction commits, never before.
        self.db.execute_sql("SELECT pg_notify(%s, '')", (CHANGES_CHANNEL,))

    def change_listener(self) -> "_Listener":
        import psycopg

        conn = psycopg.connect(dbname=self.db.database, autocommit=True, **self.db.connect_params)
        try:
            conn.execute(f"LISTEN {CHANGES_CHANNEL}")
        except Exception:
            conn.close()
            raise
        return _Listener(conn)

    def refresh_statistics(self, model) -> None:
        # A job that rewrote millions of rows leaves pg_stats describing the table as it was: the planner
        # may then scan the table instead of a partial index (promote's old flags: 3 s against 40 ms at
        # 10M rows) until autovacuum analyzes it, and autovacuum may be off.
        with self.atomic():
            self.db.execute_sql(f'ANALYZE "{model._meta.table_name}"')

    def maintain(self, vacuum_free_ratio: float) -> dict:
        """VACUUM (ANALYZE) every table: it reclaims dead rows for reuse and refreshes the planner's
        statistics without blocking readers or writers. (VACUUM FULL would lock each table.)"""
        tables = [model._meta.table_name for model in vars(self.m).values()]
        db = PostgresqlDatabase(self.db.database, **self.db.connect_params)
        try:
            db.connect()
            db.connection().autocommit = True  # VACUUM cannot run inside a transaction
            for table in tables:
                db.execute_sql(f'VACUUM (ANALYZE) "{table}"')
        finally:
            db.close()
        return {"vacuumed": True, "tables_vacuumed": len(tables)}


class _AnyOf(Node):
    """``ANY(?::bigint[])``: the ids as one array parameter, sent as the text of an array literal
    (``{1,2,3}``). psycopg would take a list of ints, but adapts it an element at a time, choosing each
    one's type: 4-6 ms for 5000 ids, against about 1 ms for building and sending the text. A node that
    binds the ids itself (engine/jobs/base.py's IdList) is rendered with the state ``ids_as_array``
    holding that encoding, and binds its ids through it."""

    def __init__(self, ids):
        self.ids = ids

    def __sql__(self, ctx):
        ctx.literal("ANY(")
        if isinstance(self.ids, Node):
            with ctx(ids_as_array=_array_text):
                ctx.sql(self.ids)
        else:
            ctx.value(_array_text([int(i) for i in self.ids]), False)  # no converter: the text is the parameter
        return ctx.literal("::bigint[])")


def _array_text(ids) -> str:
    """PostgreSQL's text form of an integer array: ``{1,2,3}``."""
    return "{" + ",".join(map(str, ids)) + "}"


class _Listener(ChangeListener):
    """LISTEN on a connection of its own (psycopg 3's ``notifies``; Peewee has no API for it)."""

    def __init__(self, conn):
        self.conn = conn

    def wait(self, timeout: float) -> bool:
        announced = any(True for _ in self.conn.notifies(timeout=timeout, stop_after=1))
        if announced:  # several changes committed together are one wake-up
            for _ in self.conn.notifies(timeout=0.0):
                pass
        return announced

    def close(self) -> None:
        self.conn.close()


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text
