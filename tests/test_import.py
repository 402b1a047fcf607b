"""Import times: absent means now, 0 (or 1970-01-01 in ISO 8601) is the epoch, not "absent" (issue 16.7)."""
from __future__ import annotations

import json

import pytest

from memtui.engine.importer import import_lines

pytestmark = pytest.mark.both_backends

EPOCH_ISO = "1970-01-01T00:00:00+00:00"


def write(store, clock, *records) -> None:
    report = import_lines(store, [json.dumps(r) for r in records], clock())
    assert report.invalid == []


@pytest.mark.parametrize("epoch", [0, 0.0, EPOCH_ISO])
def test_a_zero_time_is_stored_as_the_epoch(store, clock, epoch):
    write(store, clock,
          {"type": "conversation", "ref": "c", "sender": "a", "started_at": epoch, "updated_at": epoch},
          {"type": "conversation", "ref": "d", "sender": "a", "started_at": epoch},
          {"type": "message", "conversation": "c", "sender": "a", "content": "hi", "created_at": epoch},
          {"type": "memory", "content": "m", "created_at": epoch},
          {"type": "outcome", "sender": "a", "lesson": "l", "created_at": epoch},
          {"type": "profile", "entity": "a", "key": "k", "value": "v", "updated_at": epoch})
    assert store.execute("SELECT started_at, updated_at FROM conversation ORDER BY id").fetchall() == [(0, 0), (0, 0)]
    assert store.execute("SELECT created_at FROM message").fetchall() == [(0,)]
    assert store.execute("SELECT created_at, last_access_at FROM pending_memory").fetchall() == [(0, 0)]
    assert store.execute("SELECT created_at FROM outcome").fetchall() == [(0,)]
    assert store.execute("SELECT updated_at FROM profile_attribute").fetchall() == [(0,)]


def test_an_absent_time_is_now_and_an_absent_updated_at_is_the_start(store, clock):
    now = clock().timestamp()
    write(store, clock,
          {"type": "conversation", "ref": "c", "sender": "a"},
          {"type": "conversation", "ref": "d", "sender": "a", "started_at": 1000},
          {"type": "message", "conversation": "c", "sender": "a", "content": "hi", "created_at": None},
          {"type": "memory", "content": "m"},
          {"type": "outcome", "sender": "a", "lesson": "l"},
          {"type": "profile", "entity": "a", "key": "k", "value": "v"})
    assert store.execute("SELECT started_at, updated_at FROM conversation ORDER BY id").fetchall() == [
        (now, now), (1000, 1000)]
    assert store.execute("SELECT created_at FROM message").fetchall() == [(now,)]
    assert store.execute("SELECT created_at, last_access_at FROM pending_memory").fetchall() == [(now, now)]
    assert store.execute("SELECT created_at FROM outcome").fetchall() == [(now,)]
    assert store.execute("SELECT updated_at FROM profile_attribute").fetchall() == [(now,)]
