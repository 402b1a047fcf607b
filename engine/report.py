"""Engine data in words a person reads: durations, run results, one line per run or per change.

The command line, the headless log, the dashboard and its log file all say
things through these functions, so a run reads the same wherever it is seen.
Plain functions over the engine's dataclasses; no Textual (engine/ never
imports it).
"""
from __future__ import annotations

import logging
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable

from memtui.engine.types import AuditEntry, Event, RunInfo

SEPARATOR = " · "

# Result keys of every job kind (engine/jobs/*.py) and of the runs the engine records itself
# (missed runs, a run skipped because another holds the job). A plain string is the label,
# printed before the value; a dict may also set:
#   quiet:  the value to leave out (0 for secondary counters, so a quiet run stays one short line)
#   true / false:  the whole phrase for a boolean (None: say nothing)
#   show:   how to print the value: "score", "when", "via", "gate", "count"
#   format: the phrase around the value, e.g. "last one {} h ago"
LABELS: dict[str, str | dict[str, Any]] = {
    # promote
    "promoted": "promoted",
    "expired": "expired",
    "deferred": {"label": "deferred to the next run", "quiet": 0},
    "top_score": {"label": "best score", "show": "score"},
    # promote and decay: "incremental" (what changed) or "full" (every row), with promote's reason
    # for a full pass said in the same phrase (describe_result): "full pass (first run)"
    "pass": {"format": "{} pass"},
    "full_because": {"format": "because {}"},
    "pass_because": {"show": "pass_because"},  # made by describe_result from the two above
    "scored": "scored",
    # consolidate (and its gates, when it skips)
    "messages_pruned": "messages pruned",
    "outcomes_pruned": "outcomes pruned",
    "timestamp_written": {"true": None, "false": "consolidation time not stored (clock before 1970)"},
    "gate": {"show": "gate"},
    "hours_since_last": {"label": "hours since the last", "format": "last consolidation {} h ago"},
    "new_conversations": "new conversations",
    # decay
    "soft_deleted": "soft-deleted",
    "hard_deleted": "hard-deleted",
    "horizon_recomputed": {"true": "retirement times recomputed for a new floor or half-life", "false": None},
    # dedupe (and "merged", "rejected", "tokens", "budget_exhausted" as below)
    "compared": "compared",
    "superseded": "superseded",
    "keys_filled": {"label": "repeat keys filled", "quiet": 0},
    "asked": {"label": "questions to the model", "quiet": 0},
    "embedded": {"label": "texts embedded", "quiet": 0},
    "held_by_embedding": {"label": "held back by the embedding", "quiet": 0},
    "embedding_error": {"label": "embedding error", "format": "embedding model failed: {}"},
    # rollup
    "periods_summarized": "periods summarized",
    "summaries_written": "summaries written",
    "periods_skipped_empty": {"label": "empty periods skipped", "quiet": 0},
    "resumed_from_checkpoint": {"true": "resumed from its checkpoint", "false": None},
    "path": {"show": "via"},
    "waiting_for": "waiting for",
    "budget_exhausted": {"label": "model budget used up", "format": "model budget used up: {}"},
    "tokens": {"label": "tokens", "quiet": 0},
    "would_write": {"label": "summaries it would write", "show": "count"},
    # profile
    "entities_checked": "entities checked",
    "entities_changed": "entities changed",
    "updated": "updated",
    "merged": "merged",
    "deleted": "deleted",
    "rejected": {"label": "answers rejected", "quiet": 0},
    "skipped_changed": {"label": "skipped (changed meanwhile)", "quiet": 0},
    "skipped_too_big": {"label": "skipped (too big)", "quiet": 0},
    "rejections": {"label": "rejections listed", "show": "count"},
    "plan": {"label": "entities with changes planned", "show": "count"},
    # compact
    "runs_pruned_by_age": "old runs pruned",
    "runs_pruned_by_cap": {"label": "runs over the per-job cap pruned", "quiet": 0},
    "wal_checkpoint_busy": {"true": "WAL checkpoint busy (readers open)", "false": None},
    "free_pages": "free pages",
    "vacuumed": {"true": "vacuumed", "false": None},
    "tables_vacuumed": "tables vacuumed",  # PostgreSQL: VACUUM (ANALYZE) per table
    # recorded by the engine
    "missed": "runs missed",
    "first_missed": {"label": "first due", "show": "when"},
    "busy": {"true": None, "false": None},  # the run's error already says it was busy
    "holder": "held by",
}


def fmt_duration(ms: float | int | None) -> str:
    """A run's duration from milliseconds: '0.4 ms', '37 ms', '2.1 s', '3 min 4 s', '1 h 2 min'; None: '-'."""
    if ms is None:
        return "-"
    try:
        ms = max(0.0, float(ms))
    except (TypeError, ValueError):
        return str(ms)
    if ms == 0:
        return "0 ms"
    if ms < 0.05:
        return "< 0.1 ms"  # below what one decimal can show; never '0.0 ms' for a run that took time
    if round(ms, 1) < 10:
        return f"{ms:.1f} ms"
    if round(ms) < 1000:
        return f"{round(ms)} ms"
    seconds = ms / 1000
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    minutes = round(seconds / 60)
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h" + (f" {rest} min" if rest else "")
    days, rest = divmod(round(minutes / 60), 24)
    return f"{days} d" + (f" {rest} h" if rest else "")


def label(key: str) -> str:
    """The words for a result or totals key: 'soft_deleted' -> 'soft-deleted', 'some_key' -> 'some key'."""
    spec = LABELS.get(key)
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and spec.get("label"):
        return spec["label"]
    return str(key).replace("_", " ").strip()


def fmt_number(value: int | float) -> str:
    """'1,234', '0.25', '3.5': thousands separated, at most three decimals, no trailing zeros."""
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return text if text not in ("0", "-0") else f"{value:.2g}"


def fmt_near(value: float, other: float = 0.0, *, sign: bool = False, digits: int = 3, most: int = 6) -> str:
    """``value`` to ``digits`` decimals, or to as many more (up to ``most``) as it takes not to read as
    ``other`` when it is not: a score of 0.5998 against a threshold of 0.6 shows as 0.5998, not 0.600."""
    while digits < most and value != other and round(value, digits) == round(other, digits):
        digits += 1
    return f"{value:{'+' if sign else ''}.{digits}f}"


def _score(value) -> str:
    """Two decimals, half up as a person rounds (0.835 -> 0.84; binary floats would give 0.83)."""
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError):
        return str(value)


def _when(value) -> str:
    try:
        return datetime.fromisoformat(str(value)).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def _via(value) -> str:
    text = str(value)
    if text.startswith("llm:"):
        return f"via model {text[4:]}"
    return {"extractive": "via the offline summarizer", "rules": "via rules"}.get(text, f"via {text}")


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return fmt_number(value)
    return " ".join(str(value).split())  # one line, whatever the value held


def _phrase(key: str, value) -> str | None:
    """One ``label value`` phrase, or None when there is nothing worth saying."""
    spec = LABELS.get(key)
    spec = spec if isinstance(spec, dict) else {}
    if value is None:
        return None
    if "quiet" in spec and value == spec["quiet"] and not isinstance(value, bool):
        return None
    name = label(key)
    if isinstance(value, bool):
        if "true" in spec or "false" in spec:
            return spec.get("true" if value else "false")
        return f"{name}: {'yes' if value else 'no'}"
    show = spec.get("show")
    if show == "score":
        return f"{name} {_score(value)}"
    if show == "when":
        return f"{name} {_when(value)}"
    if show == "via":
        return _via(value)
    if show == "gate":
        return f"{value} gate"
    if show == "pass_because":
        return f"{value[0]} pass ({value[1]})"
    if spec.get("format") and not isinstance(value, (dict, list, tuple)):
        return spec["format"].format(_scalar(value))
    if show == "count":
        count = len(value) if isinstance(value, (list, dict)) else value
        return None if not count else f"{name} {_scalar(count)}"
    if isinstance(value, dict):
        inner = describe_result(value)
        return f"{name} ({inner})" if inner else None
    if isinstance(value, (list, tuple)):
        if not value:
            return None
        if all(not isinstance(v, (dict, list, tuple)) for v in value):
            return f"{name} {', '.join(_scalar(v) for v in value)}"
        return f"{name} {len(value)}"
    return f"{name} {_scalar(value)}"


def describe_result(result: dict | None, limit: int | None = None) -> str:
    """A run's result as words: 'promoted 67 · expired 62 · best score 0.84'.

    Never ``key=None``: missing values are left out, as are secondary counters at zero.
    ``limit`` cuts the text to that many characters (for table cells; ``cut_to_fit``); by default nothing is cut."""
    if not result:
        return ""
    if not isinstance(result, dict):
        text = _scalar(result)
    else:
        # "via ..." (how the text was made) reads best after the numbers it qualifies
        items = sorted(result.items(), key=lambda kv: kv[0] == "path")
        if isinstance(result.get("pass"), str) and isinstance(result.get("full_because"), str):
            why = result["full_because"]
            items = [(k, v) for k, v in items if k != "full_because"]
            items = [(k, v) if k != "pass" else ("pass_because", (v, why)) for k, v in items]
        text = SEPARATOR.join(p for p in (_phrase(str(k), v) for k, v in items) if p)
    return text if limit is None else cut_to_fit(text, limit)


def cut_to_fit(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: whole, or cut with "…" where the room ends — except inside a
    number, which is left out whole ("scored …", never "scored 3…" for 300) when that keeps half the room."""
    if len(text) <= limit:
        return text
    head = text[:max(limit - 1, 0)]
    start = head.rfind(" ") + 1  # the word the cut falls in
    end = text.find(" ", start)
    word = text[start:] if end < 0 else text[start:end]
    if len(head) > start and any(ch.isdigit() for ch in word) and start - 1 >= limit // 2:
        return head[:start - 1].rstrip(" ·") + " …"
    return head + "…"


_SETTLED = {"failed": "after", "interrupted": "after", "cancelled": "after"}


def run_line(run: RunInfo) -> str:
    """One line per run, full length, e.g.
    'promote success in 37 ms — promoted 67 · expired 62 · best score 0.84',
    'decay failed after 1.5 s (manual) — RuntimeError: disk full'."""
    parts = [run.job, run.status]
    never_ran = run.status in ("running", "missed") or (run.result or {}).get("busy")  # busy: another had it
    if run.duration_ms is not None and not never_ran:
        parts.append(f"{_SETTLED.get(run.status, 'in')} {fmt_duration(run.duration_ms)}")
    if run.reason != "scheduled":
        parts.append(f"({run.reason})")
    detail = run.error if run.status != "success" and run.error else describe_result(run.result)
    if detail:
        parts.append("— " + " ".join(str(detail).split()))
    return " ".join(parts)


_ACTIONS = {"enable": "enabled", "disable": "disabled", "pause_all": "paused", "resume_all": "resumed"}
_MEMORY_ACTIONS = {"pin": "pinned", "unpin": "unpinned", "forget": "forgotten", "keep": "kept for promotion"}


def change_line(entry: AuditEntry) -> str:
    """One line per recorded change: 'decay disabled (cli)', 'promote retimed: 30s -> 45s (ui)',
    'all jobs paused (cli)', 'compact run now (ui)', 'promote cancel asked for run #12 (ui)',
    'memory long_term:12 pinned (ui)'."""
    who = entry.job or "all jobs"
    action = entry.action
    if action in _ACTIONS:
        unchanged = entry.old_value is not None and entry.old_value == entry.new_value
        text = f"{who} {'already ' if unchanged else ''}{_ACTIONS[action]}"
    elif action == "retime":
        text = f"{who} retimed: {entry.old_value or '-'} -> {entry.new_value or '-'}"
    elif action == "run_now":
        text = f"{who} run now"
    elif action == "cancel":
        text = f"{who} cancel asked" + (f" for {entry.new_value}" if entry.new_value else "")
    elif action in _MEMORY_ACTIONS and entry.job is None:  # new_value names the memory, e.g. long_term:12
        text = f"memory {entry.new_value or '?'} {_MEMORY_ACTIONS[action]}"
    else:  # an action this version does not know: say what is recorded
        text = f"{who} {str(action).replace('_', ' ')}"
        if entry.old_value is not None or entry.new_value is not None:
            text += f": {entry.old_value or '-'} -> {entry.new_value or '-'}"
    return f"{text} ({entry.source})" if entry.source else text


_LOUD = ("failed", "interrupted", "missed")


def event_logger(logger: logging.Logger) -> Callable[[Event], None]:
    """An ``Engine.subscribe`` callback that logs ``run_line`` for each finished run and
    ``change_line`` for each change; runs that failed, were interrupted or missed log as warnings."""

    def on_event(event: Event) -> None:
        if event.kind == "run_finished" and event.run is not None:
            level = logging.WARNING if event.run.status in _LOUD else logging.INFO
            logger.log(level, "%s", run_line(event.run))
        elif event.kind == "audit":
            entry = getattr(event, "audit", None)  # Events from before audit events have none
            if entry is not None:
                logger.info("%s", change_line(entry))

    return on_event


__all__ = ["LABELS", "change_line", "describe_result", "event_logger", "fmt_duration", "fmt_near", "fmt_number", "label",
           "run_line"]
