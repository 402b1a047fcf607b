"""The SQLite store (memtui's embedded default): file checks, pragmas, the write lock, maintenance.

A new file is created owner-only (SQLite gives the -wal and -shm files the same
mode), and opened with a ``mode=rw`` URI ever after, so no connection can bring
back a file that was deleted under a running engine. Every connection gets WAL,
a busy timeout, foreign keys and synchronous=NORMAL, and memtui's text folding
as the SQL functions ``memtui_fold`` and ``memtui_contains`` (models/text.py).
Write transactions begin IMMEDIATE, so a writer waits for the lock up front
instead of failing with "database is locked" half-way. A file that is not
SQLite, or whose schema is newer than this version knows, is refused before a
byte is written to it.
"""
from __future__ import annotations

import math
import os
import threading
import sqlite3
import time
from pathlib import Path

from peewee import SQL, DatabaseError, Entity, Node, OperationalError, SqliteDatabase, Table, fn

from memtui.models import text
from memtui.models.db import ChangeListener, Store, StoreError, one_line, shown

PENDING_SEEN_KEY = "promote.seen"  # the pending_memory triggers number changes above it (migration 0008)
CHANGES_KEY = "changes"  # the setting notify_change counts up: other processes' listeners watch it
LISTEN_POLL_S = 0.1  # how often a listener looks; each look is one PRAGMA unless something committed

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 30.0
# SQLite copies the WAL back into the database inside the COMMIT that takes the WAL past
# wal_autocheckpoint pages (1,000 by default): whichever commit that is, a job's batch or a key press on
# the dashboard's screen thread, pays for every writer's pages (about half of an incremental promote run
# at 10M rows, bench/incremental.py). memtui's own connections leave it to a running engine's sync loop
# (Engine._checkpoint_log, PASSIVE, every CHECKPOINT_EVERY_S), SQLite's own kept only as a backstop at
# ten times the default, for a store no engine serves. An agent's connections keep their own setting.
AUTOCHECKPOINT_PAGES = 10_000
# SQLite's own page cache is 2 MiB a connection: at 10,000,000 memories an incremental decay run's
# statements evict the upper pages of the indexes and tables they walk and read them again from the OS
# with each row. 16 MiB keeps them: the job part of that run 27 -> 18 ms (bench/incremental.py's store,
# the same run repeated on a copy); 64 MiB did no better. The cache fills only as pages are read.
CACHE_KIB = 16_384
PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
    "busy_timeout": int(BUSY_TIMEOUT_S * 1000),
    "wal_autocheckpoint": AUTOCHECKPOINT_PAGES,
    "cache_size": -CACHE_KIB,  # negative: in KiB, not pages
}


def _check_path(path: Path) -> bool:
    """Validate ``path`` without writing; return True when the file must be created."""
    if "\x00" in str(path):
        raise StoreError(f"{shown(path)}: a path cannot hold a NUL character")
    try:
        if path.is_dir():
            raise StoreError(f"{shown(path)}: is a directory, not a database file")
        if not path.exists():
            return True
        if not path.is_file():  # /dev/null, a FIFO, a socket: SQLite would fail obscurely or hang
            raise StoreError(f"{shown(path)}: not a regular file, so it cannot be a database (left untouched)")
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"{shown(path)}: cannot use this path ({exc.strerror})") from None
    if header and header != SQLITE_HEADER:
        raise StoreError(f"{shown(path)}: not a SQLite database (left untouched)")
    return False


def _create_owner_only(path: Path) -> None:
    """Create the database file 0600, and each missing parent folder 0700 (not the umask's mode)."""
    missing = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir(mode=0o700)
            except FileExistsError:
                pass  # made by another process meanwhile
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        pass  # another process created it between our check and now
    except OSError as exc:
        raise StoreError(f"{shown(path)}: cannot create database ({exc.strerror})") from None


def _uri(path: Path) -> str:
    """A ``mode=rw`` URI: SQLite opens the file but never creates it. The file is created once,
    0600, by _create_owner_only; no later connection (a new thread, a reconnect after the file was
    deleted under a running engine) can bring back a schema-less, world-readable file."""
    return Path(os.path.abspath(path)).as_uri() + "?mode=rw"


class _Database(SqliteDatabase):
    """Peewee's SqliteDatabase that lets the store look at the file before each statement."""

    before_use = None

    def execute_sql(self, sql, params=None, *args, **kwargs):
        if self.before_use is not None:
            self.before_use()
        return super().execute_sql(sql, params, *args, **kwargs)


class SqliteStore(Store):
    """A memtui store in one SQLite file."""

    kind = "sqlite"

    def __init__(self, path: Path, db: SqliteDatabase):
        super().__init__(db, shown(path))
        self._path = path
        self.identity = _identity(path)
        self._orphans_moved = False
        self._generation = 0
        self._local = threading.local()
        db.before_use = self._fresh  # every statement, from the models or raw, on every thread

    def reopen(self) -> None:
        """The file at ``path`` was replaced: every thread reconnects before its next statement."""
        self.identity = _identity(self.path)
        self._generation += 1

    def _fresh(self) -> None:
        # Connections are per thread (Peewee's), so each thread notices a reopen itself.
        if getattr(self._local, "generation", 0) != self._generation and not self.db.in_transaction():
            if not self.db.is_closed():
                self.db.close()
            self.db.connect(reuse_if_open=True)
            self._local.generation = self._generation

    @property
    def path(self) -> Path:
        return self._path

    @classmethod
    def open_path(cls, path: str | os.PathLike, *, migrate: bool = True, create: bool = True) -> "SqliteStore":
        """Open the store at ``path``. ``create=False`` (commands that only read) refuses a missing
        file instead of creating it, so a mistyped path leaves nothing behind."""
        try:
            path = Path(path).expanduser()
        except RuntimeError:  # ~someone who does not exist
            raise StoreError(f"{shown(path)}: cannot expand '~' (no such user)") from None
        if _check_path(path):
            if not create:
                raise StoreError(f"no memtui database at {shown(path)}")
            _create_owner_only(path)
        db = _Database(
            _uri(path), uri=True, pragmas=PRAGMAS, timeout=BUSY_TIMEOUT_S, lock_type="IMMEDIATE",
            check_same_thread=False,
        )
        db.register_function(text.fold, text.SQL_NAME, 1, deterministic=True)  # on every connection
        db.register_function(text.contains_all, text.CONTAINS_SQL_NAME, 2, deterministic=True)
        db.register_function(text.search_text, text.SEARCH_SQL_NAME, 1, deterministic=True)
        try:
            db.connect()
            # A read first: a corrupt file fails here, before any pragma writes.
            db.execute_sql("SELECT count(*) FROM sqlite_master").fetchone()
            _ensure_math_functions(db)
            store = cls(path, db)
            if migrate:
                store._migrate()  # BEGIN IMMEDIATE: two processes opening a new file migrate it once
        except (DatabaseError, OperationalError, sqlite3.DatabaseError) as exc:
            db.close()
            raise StoreError(f"{shown(path)}: {one_line(exc)}") from None
        except StoreError:
            db.close()
            raise
        return store

    def atomic(self):
        """One write transaction (BEGIN IMMEDIATE), committed whole or rolled back."""
        self._fresh()  # before BEGIN: once the transaction is open, a reconnect is no longer possible
        return _Atomic(self.db)

    def notify_change(self) -> None:
        """SQLite has no NOTIFY: count the change in a setting row, in the caller's transaction, so
        it is seen exactly when it commits (``change_listener``)."""
        Setting = self.m.Setting
        Setting.insert(key=CHANGES_KEY, value="1").on_conflict(
            conflict_target=[Setting.key],
            update={Setting.value: (Setting.value.cast("INTEGER") + 1).cast("TEXT")}).execute()

    def change_listener(self) -> "_Listener":
        return _Listener(self.db._connect())  # Peewee's factory: the same pragmas as every connection

    def check(self) -> None:
        """Raise StoreError if the file under the open store was deleted or replaced.

        A deleted file's -wal/-shm stay behind (our open connections hold them);
        they are moved aside at once, so a backup copied into place later is read
        as it is and not mixed with the deleted file's log. Only then is a new
        file at the path adopted; a file swapped in unseen is refused."""
        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            self._orphans_moved |= _move_aside_orphans(self.path)
            raise StoreError(f"{shown(self.path)}: the database file was deleted or moved; "
                             "jobs are held until it is back") from None
        if identity != self.identity:
            if not self._orphans_moved:  # whose -wal is next to it now, ours or the new file's? can't tell
                raise StoreError(f"{shown(self.path)}: the database file was replaced while memtui ran; "
                                 "jobs are held: stop memtui, check the file, start it again")
            self._orphans_moved = False
            self.reopen()

    def probe_write(self) -> None:
        """A real write on a fresh connection, as a run would make it: raises while the file is
        read-only, the disk (or max_page_count) is full, or the file is gone."""
        conn = self.db._connect()  # Peewee's own factory: same pragmas as every connection
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO run (job, reason, started_at, status, error, owner)"
                         " VALUES ('-', 'manual', 0, 'skipped', ?, 'probe')", ("x" * 8192,))
            conn.execute("DELETE FROM run WHERE owner = 'probe'")
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    # -- SQL that SQLite spells its own way ---------------------------------------------------

    def pending_change_mark(self) -> int:
        # The trigger numbers a change one above the highest number in the table or this mark, whichever is
        # higher: kept in the same write transaction (writers are serialized), so a change after it is above
        # it even once the row that had the highest number is deleted.
        with self.atomic():
            mark = int(self.db.execute_sql(
                "SELECT MAX(COALESCE((SELECT MAX(changed) FROM pending_memory), 0),"
                " COALESCE((SELECT CAST(value AS INTEGER) FROM setting WHERE key = ?), 0))",
                (PENDING_SEEN_KEY,)).fetchone()[0])
            self.set_setting(PENDING_SEEN_KEY, str(mark))
        return mark

    def greatest(self, *args):
        return fn.MAX(*args)  # with two or more arguments, SQLite's max() is the scalar one

    def least(self, *args):
        return fn.MIN(*args)

    def round_to(self, expr, digits: int):
        return fn.ROUND(expr, digits)

    def in_ids(self, column, ids):
        # SQLite has no array type; a parameter an id (at most 32,766 of them in one statement).
        if not isinstance(ids, Node):
            ids = [int(i) for i in ids]
            ids = SQL("(" + ", ".join(["?"] * len(ids)) + ")", ids)  # "()" when empty: Peewee writes 0 = 1
        return column.in_(ids)

    # -- full-text search (migration 0005) ----------------------------------------------------

    SEARCH_BATCH = 5000  # queued ids indexed per statement (SQLite binds at most 32,766 values)

    def text_search(self, model, query: str, any_word: bool = False, within=None, limit: int | None = None):
        # A word is a phrase (the tokenizer splits "alice's" as it split the text) and a prefix.
        words = [word for word in text.search_text(query).split() if any(ch.isalnum() for ch in word)]
        if not words:
            return None
        match = (" OR " if any_word else " AND ").join('"' + word.replace('"', '""') + '"*' for word in words)
        name = f"{model._meta.table_name}_search"
        index = Table(name, ("rowid",), alias=name)  # FTS5 names the table itself in MATCH and bm25()
        # bm25() is lower for a better match: negated, so that higher is more relevant on both backends.
        relevance = 0 - fn.bm25(Entity(name))
        hits = index.select(index.rowid.alias("id"), relevance.alias("relevance")).where(
            SQL(f'"{name}" MATCH ?', [match]))
        if within is not None:
            # "rowid + 0", not "rowid": a rowid IN (…) that FTS5 sees as its own constraint makes it run the
            # whole MATCH once per listed id (135 ms against 2.8 ms a query at 100,000 memories, bench/dedupe.py);
            # as a plain expression it filters the matches, the list read once.
            hits = hits.where((index.rowid + 0).in_(within))
        if limit is not None:
            hits = hits.order_by(relevance.desc(), index.rowid).limit(limit)
        return hits

    def sync_search(self) -> None:
        """Index the memories the triggers queued (inserted, reworded or deleted since the last sync), with
        the text folded by memtui_search_text, which only memtui's connections have: an agent's plain-SQL write
        queues its row and never fails for want of it."""
        if self.db.execute_sql("SELECT 1 FROM search_queue LIMIT 1").fetchone() is None:
            return  # the usual case, and no write lock taken for it
        while True:
            with self.atomic():
                rows = self.db.execute_sql("SELECT tier, memory_id FROM search_queue LIMIT ?",
                                           (self.SEARCH_BATCH,)).fetchall()
                for tier, table in (("pending", "pending_memory"), ("long_term", "long_term_memory")):
                    ids = [memory_id for row_tier, memory_id in rows if row_tier == tier]
                    if not ids:
                        continue
                    marks = ", ".join("?" * len(ids))
                    self.db.execute_sql(f"DELETE FROM {table}_search WHERE rowid IN ({marks})", ids)
                    self.db.execute_sql(f"INSERT INTO {table}_search (rowid, content) SELECT id, "
                                        f"{text.SEARCH_SQL_NAME}(content) FROM {table} WHERE id IN ({marks})", ids)
                    self.db.execute_sql(f"DELETE FROM search_queue WHERE tier = ? AND memory_id IN ({marks})",
                                        [tier, *ids])
            if len(rows) < self.SEARCH_BATCH:
                return

    def limit_lock_wait(self, seconds: float) -> None:
        # Per connection, and Peewee's connections are per thread: only the caller's thread waits less.
        self.db.execute_sql(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    def checkpoint_log(self) -> tuple[int, int]:
        """A PASSIVE checkpoint: copies the frames no reader still needs and never blocks a writer
        (TRUNCATE or RESTART would hold new writers back while readers finish). Returns (frames in the
        WAL, frames copied back); one with nothing new to copy reads two counters and writes nothing."""
        _, frames, copied = self._passive_checkpoint()
        return frames, copied

    def _passive_checkpoint(self) -> tuple[int, int, int]:
        """(1 when a reader or writer kept it from finishing, else 0; frames in the WAL; frames copied)."""
        return self.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def maintain(self, vacuum_free_ratio: float) -> dict:
        with self.atomic():  # BEGIN IMMEDIATE waits for another writer; a bare ANALYZE would not
            self.execute("PRAGMA optimize")
        # PASSIVE: TRUNCATE would hold new writers back while it waits for readers.
        busy, _, _ = self._passive_checkpoint()
        page_count = self.execute("PRAGMA page_count").fetchone()[0]
        free_pages = self.execute("PRAGMA freelist_count").fetchone()[0]
        vacuumed = False
        # VACUUM rewrites the whole file holding the write lock: only when enough of it is free.
        if page_count and free_pages > 0 and free_pages / page_count >= vacuum_free_ratio:
            self.execute("VACUUM")
            vacuumed = True
        return {"wal_checkpoint_busy": bool(busy), "free_pages": free_pages, "vacuumed": vacuumed}


class _Listener(ChangeListener):
    """Waits for ``notify_change`` from any connection, this process's or another's, on a connection of
    its own: ``PRAGMA data_version`` changes when anyone commits, and only then is the counter read (an
    agent writing every few milliseconds costs a row read per look, not a wake-up)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.version = self._version()
        self.count = self._count()

    def _version(self):
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    def _count(self):
        row = self.conn.execute("SELECT value FROM setting WHERE key = ?", (CHANGES_KEY,)).fetchone()
        return row[0] if row else None

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            version = self._version()
            if version != self.version:
                self.version = version
                count = self._count()
                if count != self.count:
                    self.count = count
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(LISTEN_POLL_S, left))

    def close(self) -> None:
        self.conn.close()


class _Atomic:
    """Peewee's atomic(), except that when SQLite has already rolled the transaction back by
    itself (disk full, I/O error) the original error is raised, not peewee's failed ROLLBACK."""

    def __init__(self, db: SqliteDatabase):
        self.db = db
        self.inner = db.atomic()  # BEGIN IMMEDIATE (the lock_type the database was opened with)

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, exc_type, exc, tb):
        try:
            return self.inner.__exit__(exc_type, exc, tb)
        except (OperationalError, sqlite3.OperationalError):
            if exc is not None and not self.db.connection().in_transaction:
                return False  # let the original error through
            raise


def _move_aside_orphans(path: Path) -> bool:
    moved = False
    for suffix in ("-wal", "-shm"):
        orphan = Path(f"{path}{suffix}")
        try:
            orphan.rename(orphan.with_name(f"{orphan.name}.orphaned-{os.getpid()}"))
            moved = True
        except FileNotFoundError:
            pass  # not there, or another thread of this engine moved it a moment ago
    return moved


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _ensure_math_functions(db: SqliteDatabase) -> None:
    """promote scores with pow(); some SQLite builds lack the math functions."""
    try:
        db.execute_sql("SELECT pow(2, 2)").fetchone()
    except OperationalError:
        db.register_function(math.pow, "pow", 2, deterministic=True)
        db.close()
        db.connect()
