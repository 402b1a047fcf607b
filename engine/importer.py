"""Importing an agent's memory from JSON Lines: validate every line, then write in one transaction.

One JSON object per line, with a ``type`` of conversation, message, memory,
fact, outcome or profile (fields below, in ``RECORDS``). Every line is checked
first — JSON, known type, known fields, required fields, types and ranges,
references — and nothing is written unless all lines are valid, or the caller
asks to skip the invalid ones. Times are ISO 8601 with a UTC offset or unix
seconds; absent means now (a conversation's updated_at: its started_at), and 0
is 1970-01-01, not absent.

A message names its conversation either by ``conversation`` (the ``ref`` of a
conversation line in the same file) or by ``conversation_id`` (a row already
in the database).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

from memtui.engine.memory import set_fact, store_memory
from memtui.models import Store

MAX_TEXT = 100_000


class FieldError(ValueError):
    pass


def _text(max_len: int = MAX_TEXT, empty: bool = False) -> Callable[[Any], str]:
    def check(value):
        if not isinstance(value, str):
            raise FieldError("must be text")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise FieldError("is not valid Unicode text (a lone surrogate?)") from None
        if not empty and not value.strip():
            raise FieldError("must not be empty")
        if len(value) > max_len:
            raise FieldError(f"longer than {max_len} characters")
        return value
    return check


def _number(low: float | None = None, high: float | None = None) -> Callable[[Any], float]:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise FieldError("must be a number")
        if (low is not None and value < low) or (high is not None and value > high):
            raise FieldError(f"must be from {low:g} to {high:g}" if high is not None else f"must be at least {low:g}")
        return round(float(value), 9)  # as engine.memory.remember: no subnormal float reaches the store
    return check


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def _integer(value):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2 ** 63:
        raise FieldError("must be a positive whole number below 2^63")
    return value


def _boolean(value):
    if not isinstance(value, bool):
        raise FieldError("must be true or false")
    return value


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value):
        if value not in options:
            raise FieldError(f"must be one of {', '.join(options)}")
        return value
    return check


def _time(value) -> float:
    if isinstance(value, bool):
        raise FieldError("must be ISO 8601 with a UTC offset, or unix seconds")
    if isinstance(value, (int, float)):
        if not _finite(value) or not 0 <= value < 32503680000:  # 1970 .. 3000
            raise FieldError("unix seconds out of range")
        return float(value)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise FieldError("not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise FieldError("needs a UTC offset, e.g. 2026-05-01T09:30:00+00:00")
        return when.timestamp()
    raise FieldError("must be ISO 8601 with a UTC offset, or unix seconds")


@dataclass(frozen=True)
class Field:
    check: Callable[[Any], Any]
    required: bool = False
    default: Any = None


TEXT_KEY = _text(200)
RECORDS: dict[str, dict[str, Field]] = {
    "conversation": {
        "ref": Field(_text(200)), "sender": Field(TEXT_KEY, True), "channel": Field(_text(200, empty=True), default=""),
        "status": Field(_choice("active", "closed"), default="active"),
        "started_at": Field(_time), "updated_at": Field(_time),
    },
    "message": {
        "conversation": Field(_text(200)), "conversation_id": Field(_integer), "sender": Field(TEXT_KEY, True),
        "role": Field(_choice("user", "assistant", "system", "tool"), default="user"),
        "content": Field(_text(), True), "created_at": Field(_time),
    },
    "memory": {
        "content": Field(_text(), True), "kind": Field(TEXT_KEY, default="note"),
        "sender": Field(_text(200, empty=True), default=""), "session": Field(_text(200, empty=True), default=""),
        "importance": Field(_number(0, 10), default=5.0), "confidence": Field(_number(0, 1), default=0.5),
        "keep": Field(_boolean, default=False), "created_at": Field(_time),
    },
    "fact": {"sender": Field(TEXT_KEY, True), "key": Field(TEXT_KEY, True), "value": Field(_text(10_000), True)},
    "outcome": {
        "sender": Field(TEXT_KEY, True), "lesson": Field(_text(10_000), True),
        "domain": Field(_text(200, empty=True), default=""), "score": Field(_number(-1e9, 1e9), default=0.0),
        "created_at": Field(_time),
    },
    "profile": {
        "entity": Field(TEXT_KEY, True), "key": Field(TEXT_KEY, True), "value": Field(_text(10_000), True),
        "category": Field(TEXT_KEY, default="other"), "confidence": Field(_number(0, 1), default=0.5),
        "source": Field(_text(200, empty=True), default="import"), "updated_at": Field(_time),
    },
}


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class ImportReport:
    written: dict[str, int] = field(default_factory=dict)
    invalid: list[LineError] = field(default_factory=list)
    repeats: int = 0  # memory lines that repeated a kept memory: counted as its use, not stored (in written too)

    @property
    def total(self) -> int:
        return sum(self.written.values())


def parse_line(text: str) -> tuple[str, dict[str, Any]]:
    """Validate one line; returns (type, clean fields) or raises FieldError saying why."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FieldError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError):  # nesting too deep, a number too long to convert
        raise FieldError("not valid JSON (too deeply nested, or a number too long)") from None
    if not isinstance(obj, dict):
        raise FieldError("must be a JSON object")
    kind = obj.get("type")
    spec = RECORDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise FieldError(f"type must be one of {', '.join(RECORDS)}")
    unknown = sorted(set(obj) - set(spec) - {"type"})
    if unknown:
        raise FieldError(f"{kind}: unknown field {unknown[0]!r}")
    clean = {}
    for name, f in spec.items():
        if name not in obj or obj[name] is None:
            if f.required:
                raise FieldError(f"{kind}: {name} is required")
            clean[name] = f.default
            continue
        try:
            clean[name] = f.check(obj[name])
        except FieldError as exc:
            raise FieldError(f"{kind}: {name} {exc}") from None
    if kind == "message" and (clean["conversation"] is None) == (clean["conversation_id"] is None):
        raise FieldError("message: give exactly one of conversation (a ref in this file) or conversation_id")
    return kind, clean


def validate(store: Store, lines: Iterable[str]) -> tuple[list[tuple[int, str, dict]], list[LineError]]:
    records, errors = [], []
    refs: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            kind, clean = parse_line(raw)
            if kind == "conversation" and clean["ref"] is not None:
                if clean["ref"] in refs:
                    raise FieldError(f"conversation: ref {clean['ref']!r} used twice")
                refs.add(clean["ref"])
            if kind == "message":
                if clean["conversation"] is not None and clean["conversation"] not in refs:
                    raise FieldError(f"message: no conversation with ref {clean['conversation']!r} above this line")
                if clean["conversation_id"] is not None and not store.m.Conversation.select().where(
                        store.m.Conversation.id == clean["conversation_id"]).exists():
                    raise FieldError(f"message: no conversation with id {clean['conversation_id']} in the database")
        except FieldError as exc:
            errors.append(LineError(number, str(exc)))
            continue
        records.append((number, kind, clean))
    return records, errors


def _given(value, default):
    """``value`` unless it is absent (None): not ``value or default``, since 0 is a real time (1970-01-01)."""
    return default if value is None else value


def import_lines(store: Store, lines: Iterable[str], now: datetime, *, skip_invalid: bool = False) -> ImportReport:
    """Validate all lines, then write the valid ones in one transaction (none if any is invalid,
    unless ``skip_invalid``)."""
    records, errors = validate(store, lines)
    report = ImportReport(invalid=errors)
    if errors and not skip_invalid:
        return report
    ts = now.timestamp()
    ref_ids: dict[str, int] = {}
    written: dict[str, int] = {}
    m = store.m
    with store.atomic():
        for _, kind, r in records:
            if kind == "conversation":
                started = _given(r["started_at"], ts)
                cid = m.Conversation.insert(
                    channel=r["channel"], sender=r["sender"], status=r["status"], started_at=started,
                    updated_at=_given(r["updated_at"], started)).execute()
                if r["ref"] is not None:
                    ref_ids[r["ref"]] = cid
            elif kind == "message":
                # validate() accepted only refs of valid conversation lines above this one
                cid = r["conversation_id"] if r["conversation_id"] is not None else ref_ids[r["conversation"]]
                m.Message.insert(conversation_id=cid, sender=r["sender"], role=r["role"], content=r["content"],
                                 created_at=_given(r["created_at"], ts)).execute()
            elif kind == "memory":
                stored = store_memory(store, ts, r["content"], sender=r["sender"], kind=r["kind"],
                                      session=r["session"], importance=r["importance"], confidence=r["confidence"],
                                      keep=r["keep"], created_at=_given(r["created_at"], ts))
                report.repeats += stored.repeat
            elif kind == "fact":
                set_fact(store, ts, r["sender"], r["key"], r["value"])  # a savepoint inside this transaction
            elif kind == "outcome":
                m.Outcome.insert(sender=r["sender"], domain=r["domain"], score=r["score"], lesson=r["lesson"],
                                 created_at=_given(r["created_at"], ts)).execute()
            elif kind == "profile":
                m.ProfileAttribute.insert(
                    entity=r["entity"], category=r["category"], key=r["key"], value=r["value"],
                    confidence=r["confidence"], source=r["source"], updated_at=_given(r["updated_at"], ts)).execute()
            written[kind] = written.get(kind, 0) + 1
    report.written = written
    return report
