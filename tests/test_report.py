"""engine/report.py: durations, run results, run lines and change lines in words a person reads."""
from __future__ import annotations

import logging
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from memtui.engine import AuditEntry, Engine, Event, RunInfo
from memtui.engine.config import Config
from memtui.engine.demo import fill
from memtui.engine.jobs import DEFAULT_JOBS
from memtui.engine.report import LABELS, change_line, describe_result, event_logger, fmt_duration, label, run_line
from memtui.tui import format as dashboard_format

T = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


# -- durations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("ms, text", [
    (None, "-"),
    (0, "0 ms"),
    (0.01, "< 0.1 ms"),
    (0.4, "0.4 ms"),
    (0.4123, "0.4 ms"),
    (2, "2.0 ms"),
    (9.94, "9.9 ms"),
    (9.96, "10 ms"),  # rounds up into the next form, never '10.0 ms'
    (37, "37 ms"),
    (37.6, "38 ms"),
    (999.4, "999 ms"),
    (999.6, "1.0 s"),
    (2100, "2.1 s"),
    (59_949, "59.9 s"),
    (59_960, "1 min"),
    (184_000, "3 min 4 s"),
    (3_720_000, "1 h 2 min"),
    (7_200_000, "2 h"),
    (90_000_000, "1 d 1 h"),
])
def test_fmt_duration(ms, text):
    assert fmt_duration(ms) == text


def test_fmt_duration_takes_ints_floats_and_odd_values():
    assert fmt_duration(37) == fmt_duration(37.0) == "37 ms"
    assert fmt_duration(-3) == "0 ms"  # a clock step backwards never shows a negative duration
    assert fmt_duration("n/a") == "n/a"


def test_the_dashboard_format_module_uses_the_same_words():
    assert dashboard_format.fmt_duration(0.4) == "0.4 ms"
    result = {"promoted": 67, "expired": 62, "top_score": 0.835}
    assert dashboard_format.describe_result(result) == "promoted 67 · expired 62 · best score 0.84"
    assert describe_result(result, 20) == "promoted 67 · expir…"
    assert describe_result(result, 41) == "promoted 67 · expired 62 · best score …"  # never "best score 0.…"
    assert describe_result(result, 12) == "promoted …"  # not "promoted 6…" for 67
    assert describe_result({"scored": 300, "promoted": 1}, 10) == "scored …"  # not "scored 3…" for 300
    assert describe_result(result, 3) == "pr…"  # no room to leave a number out: cut where the room ends


# -- results --------------------------------------------------------------------------------------

@pytest.mark.parametrize("result, text", [
    ({"promoted": 67, "expired": 62, "top_score": 0.835}, "promoted 67 · expired 62 · best score 0.84"),
    ({"promoted": 0, "expired": 0, "deferred": 0, "top_score": None}, "promoted 0 · expired 0"),
    ({"promoted": 500, "expired": 0, "deferred": 1200, "top_score": 0.9},
     "promoted 500 · expired 0 · deferred to the next run 1,200 · best score 0.90"),
    ({"promoted": 3, "expired": 1}, "promoted 3 · expired 1"),  # top_score absent when nothing scored
    ({"messages_pruned": 120, "outcomes_pruned": 4, "timestamp_written": True},
     "messages pruned 120 · outcomes pruned 4"),
    ({"messages_pruned": 0, "outcomes_pruned": 0, "timestamp_written": False},
     "messages pruned 0 · outcomes pruned 0 · consolidation time not stored (clock before 1970)"),
    ({"gate": "session", "new_conversations": 1}, "session gate · new conversations 1"),
    ({"gate": "time", "hours_since_last": 3.25}, "time gate · last consolidation 3.25 h ago"),
    # a decay result of 0.2 (it counted the remaining memories, a pass over the table) still reads right
    ({"soft_deleted": 4, "hard_deleted": 1, "remaining": 218}, "soft-deleted 4 · hard-deleted 1 · remaining 218"),
    ({"soft_deleted": 4, "hard_deleted": 1, "pass": "incremental"}, "soft-deleted 4 · hard-deleted 1 · incremental pass"),
    ({"soft_deleted": 0, "hard_deleted": 0, "pass": "full", "horizon_recomputed": True},
     "soft-deleted 0 · hard-deleted 0 · full pass · retirement times recomputed for a new floor or half-life"),
    ({"promoted": 2, "expired": 0, "deferred": 0, "pass": "full", "full_because": "clock moved back", "scored": 1500},
     "promoted 2 · expired 0 · full pass (clock moved back) · scored 1,500"),
    ({"promoted": 0, "expired": 0, "deferred": 0, "pass": "incremental", "scored": 12},
     "promoted 0 · expired 0 · incremental pass · scored 12"),
    ({"periods_summarized": 24, "summaries_written": 44, "periods_skipped_empty": 0,
      "resumed_from_checkpoint": False, "path": "extractive"},
     "periods summarized 24 · summaries written 44 · via the offline summarizer"),
    ({"periods_summarized": 0, "summaries_written": 0, "periods_skipped_empty": 2, "resumed_from_checkpoint": True,
      "path": "llm:gpt-4o-mini", "waiting_for": "rollup-day", "tokens": 1234},
     "periods summarized 0 · summaries written 0 · empty periods skipped 2 · resumed from its checkpoint"
     " · waiting for rollup-day · tokens 1,234 · via model gpt-4o-mini"),
    ({"periods_summarized": 1, "summaries_written": 1, "budget_exhausted": "token budget of 1000 used"},
     "periods summarized 1 · summaries written 1 · model budget used up: token budget of 1000 used"),
    ({"path": "rules", "entities_checked": 3, "entities_changed": 2, "rejected": 0, "skipped_changed": 0,
      "skipped_too_big": 0, "updated": 2, "merged": 1, "deleted": 0, "rejections": []},
     "entities checked 3 · entities changed 2 · updated 2 · merged 1 · deleted 0 · via rules"),
    ({"path": "rules", "entities_checked": 1, "entities_changed": 0, "rejected": 1,
      "rejections": [{"entity": "alice", "reason": "answer is not valid JSON"}]},
     "entities checked 1 · entities changed 0 · answers rejected 1 · rejections listed 1 · via rules"),
    ({"runs_pruned_by_age": 10, "runs_pruned_by_cap": 0, "wal_checkpoint_busy": False, "free_pages": 12,
      "vacuumed": False}, "old runs pruned 10 · free pages 12"),
    ({"runs_pruned_by_age": 0, "runs_pruned_by_cap": 5, "wal_checkpoint_busy": True, "free_pages": 900,
      "vacuumed": True},
     "old runs pruned 0 · runs over the per-job cap pruned 5 · WAL checkpoint busy (readers open) · free pages 900"
     " · vacuumed"),
    ({"busy": True, "holder": "pid 12 on host"}, "held by pid 12 on host"),
])
def test_describe_result_of_each_job_kind(result, text):
    assert describe_result(result) == text


def test_describe_result_never_shows_raw_keys_or_none():
    text = describe_result({"promoted": 1, "top_score": None, "expired": None})
    assert text == "promoted 1"
    assert "None" not in text and "=" not in text and "top_score" not in text


def test_describe_result_falls_back_readably_for_keys_it_does_not_know():
    assert describe_result({"some_key": 3}) == "some key 3"
    assert describe_result({"a_flag": True, "b_flag": False}) == "a flag: yes · b flag: no"
    assert describe_result({"ratio": 0.333333, "big": 1234567}) == "ratio 0.333 · big 1,234,567"
    assert describe_result({"nested": {"inner_count": 2, "gone": None}}) == "nested (inner count 2)"
    assert describe_result({"levels": ["day", "week"], "items": [{"x": 1}, {"x": 2}], "empty": []}) == (
        "levels day, week · items 2")
    assert describe_result({"note": "two\nlines"}) == "note two lines"  # one line, always


def test_describe_result_is_whole_unless_asked_to_cut():
    result = {"path": "llm:some-model", "entities_checked": 12345, "entities_changed": 678, "updated": 9,
              "merged": 10, "deleted": 11, "rejected": 12, "skipped_changed": 13, "skipped_too_big": 14}
    whole = describe_result(result)
    assert len(whole) > 100 and not whole.endswith("…")
    cut = describe_result(result, 40)
    assert len(cut) <= 40 and cut.endswith("…") and whole.startswith(cut[:-1])
    assert describe_result(None) == describe_result({}) == ""


def test_every_result_key_of_every_job_kind_has_a_label(store, clock):
    """Run every default job (and the dry runs) on a demo store: each key of each result is known."""
    engine = Engine(store, Config(), clock)
    try:
        fill(store, clock())
        results = [engine.run_job(name).result or {} for name in DEFAULT_JOBS]
        results += [engine.dry_run(name) for name in ("rollup-day", "profile")]
    finally:
        engine.stop(timeout=5)
    keys = {key for result in results for key in result}
    assert {"promoted", "soft_deleted", "summaries_written", "entities_checked", "free_pages"} <= keys
    assert keys - set(LABELS) == set()
    for result in results:
        text = describe_result(result)
        assert "_" not in text.replace("gpt-", "") and "None" not in text, text


def test_totals_keys_read_as_words():
    assert label("soft_deleted") == "soft-deleted"
    assert label("runs_pruned_by_age") == "old runs pruned"
    assert label("brand_new_counter") == "brand new counter"


# -- run lines -----------------------------------------------------------------------------------

def run(**fields) -> RunInfo:
    base = dict(id=7, job="promote", reason="scheduled", scheduled_for=T, started=T, finished=T, duration_ms=0.4123,
                status="success", result={"promoted": 67, "expired": 62, "top_score": 0.835}, error=None,
                traceback=None, owner="test")
    return RunInfo(**{**base, **fields})


def test_run_line_for_each_kind_of_run():
    assert run_line(run()) == "promote success in 0.4 ms — promoted 67 · expired 62 · best score 0.84"
    assert run_line(run(reason="manual", duration_ms=37)) == (
        "promote success in 37 ms (manual) — promoted 67 · expired 62 · best score 0.84")
    assert run_line(run(job="decay", status="failed", duration_ms=1500, result={},
                        error="RuntimeError: disk full")) == "decay failed after 1.5 s — RuntimeError: disk full"
    assert run_line(run(job="consolidate", status="skipped", reason="catch-up", duration_ms=2,
                        result={"gate": "session", "new_conversations": 1},
                        error="session gate: 1 new conversation(s) since the last consolidation, needs 5")) == (
        "consolidate skipped in 2.0 ms (catch-up) — session gate: 1 new conversation(s) since the last"
        " consolidation, needs 5")
    assert run_line(run(status="missed", duration_ms=None, result={"missed": 3})) == "promote missed — runs missed 3"
    assert run_line(run(result={})) == "promote success in 0.4 ms"


def test_run_line_is_never_cut_and_stays_one_line():
    long_error = "ValueError: " + "x" * 500 + "\nsecond line"
    line = run_line(run(status="failed", error=long_error, result=None))
    assert "x" * 500 in line and "\n" not in line and line.endswith("second line")


# -- change lines ----------------------------------------------------------------------------------

def entry(action, job=None, old=None, new=None, source="cli") -> AuditEntry:
    return AuditEntry(T, action, job, old, new, source)


@pytest.mark.parametrize("audit, text", [
    (entry("disable", "decay", "True", "False"), "decay disabled (cli)"),
    (entry("enable", "decay", "False", "True", "ui"), "decay enabled (ui)"),
    (entry("enable", "decay", "True", "True", "ui"), "decay already enabled (ui)"),
    (entry("retime", "promote", "30s", "45s", "ui"), "promote retimed: 30s -> 45s (ui)"),
    (entry("retime", "compact", "0 4 * * 0", "0 2 * * * Europe/Berlin"),
     "compact retimed: 0 4 * * 0 -> 0 2 * * * Europe/Berlin (cli)"),
    (entry("pause_all", None, "False", "True"), "all jobs paused (cli)"),
    (entry("pause_all", None, "True", "True"), "all jobs already paused (cli)"),
    (entry("resume_all", None, "True", "False", "api"), "all jobs resumed (api)"),
    (entry("run_now", "compact", source="ui"), "compact run now (ui)"),
    (entry("set_jitter", "rollup-day", "0", "300"), "rollup-day set jitter: 0 -> 300 (cli)"),
])
def test_change_line(audit, text):
    assert change_line(audit) == text


# -- the logger ------------------------------------------------------------------------------------

class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_event_logger_logs_runs_and_changes_and_nothing_else():
    # its own handler, not caplog: other tests (headless mode) stop "memtui" loggers propagating
    logger = logging.getLogger("memtui.test-report")
    collect = Collect()
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    on_event = event_logger(logger)
    failed = run(job="decay", status="failed", duration_ms=1500, result={}, error="RuntimeError: disk full")
    try:
        on_event(Event("run_started", "promote", run(status="running", duration_ms=None)))
        on_event(Event("run_finished", "promote", run()))
        on_event(Event("run_finished", "decay", failed))
        on_event(Event("audit", "decay", audit=entry("disable", "decay", "True", "False")))
        on_event(Event("audit", "decay"))  # an audit event without its entry: nothing to say
        on_event(Event("job_changed", "decay"))
        on_event(Event("paused"))  # the audit event for the same change says it, once
    finally:
        logger.removeHandler(collect)

    assert [(r.levelname, r.getMessage()) for r in collect.records] == [
        ("INFO", "promote success in 0.4 ms — promoted 67 · expired 62 · best score 0.84"),
        ("WARNING", "decay failed after 1.5 s — RuntimeError: disk full"),
        ("INFO", "decay disabled (cli)"),
    ]


def test_event_logger_accepts_events_from_before_audit_events():
    class OldEvent:  # an Event as built before it had an ``audit`` field
        kind, job, run = "audit", "decay", None

    event_logger(logging.getLogger("memtui.test-report"))(OldEvent())  # no AttributeError


def test_report_imports_no_textual():
    code = "import sys, memtui.engine.report; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
