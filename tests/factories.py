"""Rows for tests, written with plain SQL the way an agent in any language would.

The SQL runs on both backends: ``RETURNING id`` (SQLite 3.35+ and PostgreSQL) instead of
a driver's lastrowid, ``TRUE`` instead of ``1`` where a condition is meant, and flags passed
as Python booleans."""
from __future__ import annotations

import sqlite3
from datetime import datetime


def ts(when: datetime) -> float:
    return when.timestamp()


def add_pending(store, now: datetime, *, content="note", importance=5.0, confidence=0.5, accesses=0,
                last_access: datetime | None = None, created: datetime | None = None, remember=False,
                sender="alice") -> int:
    created = created or now
    return store.execute(
        "INSERT INTO pending_memory (content, kind, sender, importance, confidence, access_count, last_access_at,"
        " remember, created_at) VALUES (?, 'note', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (content, sender, importance, confidence, accesses, ts(last_access) if last_access else None,
         bool(remember), ts(created)),
    ).fetchone()[0]


def add_long_term(store, *, created: datetime, reinforced: datetime | None = None, importance=5.0, recalls=0,
                  pinned=False, deleted: datetime | None = None, content="lt") -> int:
    return store.execute(
        "INSERT INTO long_term_memory (content, kind, sender, importance, confidence, created_at,"
        " last_reinforced_at, recall_count, pinned, deleted_at) VALUES (?, 'note', 'alice', ?, 0.5, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (content, importance, ts(created), ts(reinforced or created), recalls, bool(pinned),
         ts(deleted) if deleted else None),
    ).fetchone()[0]


def add_conversation(store, *, sender="alice", status="closed", started: datetime, updated: datetime | None = None,
                     messages=3) -> int:
    cid = store.execute(
        "INSERT INTO conversation (channel, sender, status, started_at, updated_at) VALUES ('chat', ?, ?, ?, ?)"
        " RETURNING id",
        (sender, status, ts(started), ts(updated or started)),
    ).fetchone()[0]
    for i in range(messages):
        store.execute(
            "INSERT INTO message (conversation_id, sender, role, content, created_at) VALUES (?, ?, 'user', ?, ?)",
            (cid, sender, f"message {i}", ts(started)),
        )
    return cid


def add_outcome(store, *, sender: str, created: datetime, lesson="lesson") -> int:
    return store.execute(
        "INSERT INTO outcome (sender, domain, score, lesson, created_at) VALUES (?, 'general', 1.0, ?, ?)"
        " RETURNING id",
        (sender, lesson, ts(created)),
    ).fetchone()[0]


def count(store, table: str, where: str = "TRUE", params=()) -> int:
    return store.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0]


# Columns the database numbers by its own transactions (PostgreSQL: transaction ids): two stores given the
# same writes differ there, so a comparison across stores leaves them out.
NUMBERED_BY_THE_DATABASE = {("pending_memory", "changed")}


def snapshot(store, across_stores: bool = False) -> dict[str, list[tuple]]:
    """Every row of every memtui table, in id order, on either backend (to show nothing changed); with
    ``across_stores``, without the columns the database numbers (to compare two stores)."""
    out = {}
    for model in vars(store.m).values():
        table, key = model._meta.table_name, model._meta.primary_key
        fields = [f for f in model._meta.sorted_fields
                  if not (across_stores and (table, f.column_name) in NUMBERED_BY_THE_DATABASE)]
        out[table] = [tuple(row) for row in model.select(*fields).order_by(key).tuples()]
    return out


def dump(path) -> list[str]:
    """Every row of every table of a SQLite file, read through a separate connection."""
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def track_store_opens(monkeypatch) -> list:
    """Record every Store that code under test opens (so the test can close them); returns the list."""
    from memtui.models import Store

    opened: list = []
    real_open = Store.open.__func__

    def tracking_open(cls, path, **kwargs):
        store = real_open(cls, path, **kwargs)
        opened.append(store)
        return store

    monkeypatch.setattr(Store, "open", classmethod(tracking_open))
    return opened


def assert_one_line_error(result, *fragments) -> None:
    """A command's refusal: exit 2, one line on stderr starting 'memtui: ', no traceback, each fragment in it."""
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("memtui: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])



def static_text(screen, selector: str) -> str:
    """A Static's text: its plain text, or what a Rich renderable (help's grid of keys, a job's details) prints
    on a line wide enough that nothing wraps."""
    import io

    from rich.console import Console
    from rich.text import Text
    from textual.widgets import Static

    static = screen.query_one(selector, Static)
    if isinstance(static.content, (str, Text)):
        return str(static.render())
    console = Console(width=1000, file=io.StringIO(), record=True)
    console.print(static.content)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())
