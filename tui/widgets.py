"""The dashboard's widgets: the jobs table, the run history, the promotion stats, the status line.

Each widget takes plain engine dataclasses and renders them; none touches the
database. Tables are diffed by row key and changed with ``update_cell`` —
never cleared on a tick — so a job firing every second costs a few cell
updates, and a history of thousands of rows stays cheap.
"""
from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Sparkline, Static

from memtui.engine import JobInfo, RunInfo
from memtui.engine.memory import PromotionStats
from memtui.tui.format import fmt_delta, fmt_duration_ms, fmt_result, fmt_short_time, fmt_time

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
STATUS_STYLES = {
    "success": "green", "failed": "bold red", "skipped": "yellow", "missed": "magenta",
    "interrupted": "dark_orange", "running": "bold cyan",
}


def _width(value) -> int:
    return value.cell_len if isinstance(value, Text) else len(str(value))


def status_text(status: str | None, frame: int = 0) -> Text:
    if status is None:
        return Text("-", style="dim")
    label = f"{SPINNER[frame % len(SPINNER)]} running" if status == "running" else status
    return Text(label, style=STATUS_STYLES.get(status, ""))


class _DiffTable(DataTable):
    """A DataTable updated in place by row key: only cells whose text changed are touched."""

    COLUMNS: tuple[tuple[str, str], ...] = ()

    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._cells: dict[str, tuple] = {}
        self.columns_in_use = self.COLUMNS

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label in self.columns_in_use:
            self.add_column(label, key=key)

    def upsert(self, key: str, cells: dict) -> bool:
        """Add the row or update its changed cells; True when the row is new."""
        row = tuple(cells[column] for column, _ in self.columns_in_use)
        old = self._cells.get(key)
        if old == row:
            return False
        self._cells[key] = row
        if old is None:
            self.add_row(*row, key=key)
            return True
        for (column, _), before, after in zip(self.columns_in_use, old, row):
            if before != after:
                # Only a wider cell needs the column re-measured; a narrower one would make Textual
                # measure every cell of the column again (250 ms at 10,000 rows, bench/ui.py).
                self.update_cell(key, column, after, update_width=_width(after) > _width(before))
        return False

    def drop(self, key: str) -> None:
        if self._cells.pop(key, None) is not None:
            self.remove_row(key)

    def reset(self, columns: tuple[tuple[str, str], ...] | None = None) -> None:
        self.clear(columns=columns is not None)
        self._cells.clear()
        if columns is not None:
            self.columns_in_use = columns
            self._add_columns()

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None


class JobsTable(_DiffTable):
    """One row per job, keyed by job name: schedule, countdown, last status, counters.

    In a terminal narrower than ``WIDE_AT`` it drops the absolute next time and
    the duration (both are in the details), joins runs and errors into one
    column, keeps "ago" to one unit and cuts long schedule words (the details
    show them whole), so it fits 80 columns without scrolling."""

    COLUMNS = (
        ("name", "JOB"), ("schedule", "SCHEDULE"), ("next", "NEXT"), ("left", "LEFT"),
        ("last", "LAST"), ("status", "STATUS"), ("duration", "TOOK"), ("runs", "RUNS"), ("errors", "ERR"),
    )
    NARROW = (("name", "JOB"), ("schedule", "SCHEDULE"), ("left", "LEFT"), ("last", "LAST"),
              ("status", "STATUS"), ("counts", "RUNS/ERR"))
    WIDE_AT = 110
    SCHEDULE_WIDTH = {True: 40, False: 18}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._shown: tuple[list[JobInfo], datetime, int] | None = None

    @property
    def wide(self) -> bool:
        return self.columns_in_use == self.COLUMNS

    def on_resize(self) -> None:
        wanted = self.COLUMNS if self.app.size.width >= self.WIDE_AT else self.NARROW
        if wanted != self.columns_in_use:
            selected = self.selected_key
            self.reset(wanted)
            if self._shown:
                self.show(*self._shown)
            if selected in self._cells:
                self.move_cursor(row=self.get_row_index(selected))

    def show(self, jobs: list[JobInfo], now: datetime, frame: int) -> None:
        self._shown = (jobs, now, frame)
        seen = set()
        for job in jobs:
            seen.add(job.name)
            self.upsert(job.name, self.cells(job, now, frame, self.wide))
        for name in set(self._cells) - seen:
            self.drop(name)

    @classmethod
    def cells(cls, job: JobInfo, now: datetime, frame: int, wide: bool = True) -> dict:
        if job.paused and job.enabled:
            marker = Text("‖ ", style="yellow")
        else:
            marker = Text("● ", style="green") if job.enabled else Text("○ ", style="dim")
        name = marker + Text(job.name, style="bold" if job.enabled else "dim")
        if job.next_run is None:
            left = Text("paused" if job.paused and job.enabled else "-", style="dim")
        else:
            seconds = (job.next_run - now).total_seconds()
            left = Text("due" if seconds <= 0 else fmt_delta(seconds))
        if job.last_run is None:
            last = Text("-", style="dim")
        else:
            ago = fmt_delta((now - job.last_run).total_seconds())
            last = Text(f"{ago if wide else ago.split()[0]} ago")
        status = status_text("running" if job.running else job.last_status, frame)
        if job.backoff_until is not None:
            status.append(f" ⟲{fmt_delta((job.backoff_until - now).total_seconds()).split()[0]}", style="red")
        width = cls.SCHEDULE_WIDTH[wide]
        schedule = job.schedule_text if len(job.schedule_text) <= width else job.schedule_text[:width - 1] + "…"
        errors = Text(str(job.errors), style="red" if job.errors else "dim")
        return {
            "name": name, "schedule": schedule, "next": fmt_short_time(job.next_run, now), "left": left,
            "last": last, "status": status, "duration": fmt_duration_ms(job.last_duration_ms),
            "runs": str(job.runs), "errors": errors, "counts": Text(f"{job.runs}/") + errors,
        }


class HistoryTable(_DiffTable):
    """Runs of one job, newest first, keyed by run id; older pages load as the cursor nears the end."""

    COLUMNS = (
        ("id", "#"), ("status", "STATUS"), ("reason", "REASON"), ("started", "STARTED"),
        ("duration", "TOOK"), ("result", "RESULT"),
    )
    PAGE = 200
    MAX_ROWS = 2000  # a job firing every second would otherwise grow the table for ever

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.job: str | None = None
        self.oldest_id: int | None = None
        self.exhausted = False

    def start(self, job: str | None) -> None:
        self.job = job
        self.oldest_id = None
        self.exhausted = False
        self.reset()
        self.border_title = f"runs of {job}" if job else "runs"

    def merge(self, runs: list[RunInfo], now: datetime, older: bool = False) -> None:
        """Add or update ``runs`` (any order). ``older``: a page from the end, no re-sort needed."""
        added = False
        for run in runs:
            added |= self.upsert(str(run.id), self.cells(run, now))
            if self.oldest_id is None or run.id < self.oldest_id:
                self.oldest_id = run.id
        if older and len(runs) < self.PAGE:
            self.exhausted = True
        if added and not older:
            self._trim()
            self.sort("id", key=int, reverse=True)

    def _trim(self) -> None:
        """New runs arrive on top; beyond MAX_ROWS the oldest loaded rows go (scrolling reloads them)."""
        excess = len(self._cells) - self.MAX_ROWS
        if excess <= 0 or self.cursor_row > self.MAX_ROWS // 2:
            return  # someone is reading far down: leave their rows alone
        for key in sorted(self._cells, key=int)[:excess]:
            self.drop(key)
        self.oldest_id = min(int(k) for k in self._cells)
        self.exhausted = False

    @staticmethod
    def cells(run: RunInfo, now: datetime) -> dict:
        detail = run.error if run.status != "success" and run.error else fmt_result(run.result, 80)
        return {
            "id": str(run.id), "status": status_text(run.status), "reason": run.reason,
            "started": fmt_short_time(run.started, now), "duration": fmt_duration_ms(run.duration_ms),
            "result": detail or "",
        }

    def wants_more(self) -> bool:
        return not self.exhausted and self.row_count - self.cursor_row <= 20


class StatsPanel(Vertical):
    """Promotion figures and a sparkline of promoted per run."""

    def compose(self) -> ComposeResult:
        yield Static(id="stats-text")
        yield Static("promoted per run", classes="caption")
        yield Sparkline([], id="stats-spark")

    def show(self, stats: PromotionStats, now: datetime) -> None:
        text = Text()
        rows = [
            ("runs", f"{stats.runs:,}"),
            ("promoted", f"{stats.total_promoted:,}"),
            ("expired", f"{stats.total_expired:,}"),
            ("last run", f"{fmt_delta((now - stats.last_run).total_seconds())} ago" if stats.last_run else "never"),
            ("last count", "-" if stats.last_promoted is None else f"{stats.last_promoted:,}"),
            ("pending", f"{stats.pending:,}"),
            ("long-term", f"{stats.long_term:,}"),
            ("schedule", stats.schedule_text if stats.enabled else "disabled"),
        ]
        for label, value in rows:
            text.append(f"{label:<11}", style="dim")
            text.append(f"{value}\n")
        text.rstrip()
        self.query_one("#stats-text", Static).update(text)
        self.query_one("#stats-spark", Sparkline).data = stats.recent or [0]


class StatusLine(Static):
    """Engine state, database path, model in use."""

    def show(self, *, running: bool, paused: bool, stopping: str | None, db_path: str, model: str,
             problem: str | None = None) -> None:
        text = Text(" memtui ", style="bold reverse")
        if problem is not None:
            text.append(f" ■ jobs held: {problem} ", style="bold white on red")
            self.update(text)
            return
        if stopping is not None:
            text.append(f" ■ {stopping} ", style="bold yellow")
        elif not running:
            text.append(" ■ engine stopped ", style="bold red")
        elif paused:
            text.append(" ‖ paused ", style="bold yellow")
        else:
            text.append(" ● running ", style="bold green")
        text.append(f" {db_path} ", style="dim")
        text.append(" model: ", style="dim")
        text.append(model)
        self.update(text)


def details_text(job: JobInfo, runs: list[RunInfo], now: datetime) -> Text:
    """Everything about one job: its schedule, config, totals, last error with traceback, recent results."""
    text = Text()
    text.append(f"{job.name}", style="bold")
    text.append(f"  ({job.kind}) — {job.summary}\n\n")
    facts = [
        ("enabled", "yes" if job.enabled else "no"),
        ("schedule", f"{job.schedule_text}   [{job.schedule}]"
                     + (f", jitter up to {fmt_delta(job.jitter_s)}" if job.jitter_s else "")),
        ("time zone", job.timezone or "local"),
        ("next run", fmt_time(job.next_run)),
        ("last run", fmt_time(job.last_run)),
        ("runs / errors", f"{job.runs} / {job.errors}"),
    ]
    if job.backoff_until:
        facts.append(("backoff", f"{job.consecutive_failures} failure(s) in a row; next try not before "
                                 f"{fmt_time(job.backoff_until)}"))
    for label, value in facts:
        text.append(f"{label:<14}", style="dim")
        text.append(f"{value}\n")
    text.append("\nconfig\n", style="bold underline")
    for key, value in job.config.items():
        text.append(f"  {key:<24}", style="dim")
        text.append(f"{value}\n")
    if job.totals:
        text.append("\ntotals\n", style="bold underline")
        for key, value in job.totals.items():
            text.append(f"  {key:<24}", style="dim")
            text.append(f"{value:,}\n" if isinstance(value, int) else f"{value}\n")
    failed = next((r for r in runs if r.status in ("failed", "interrupted")), None)
    text.append("\nlast error\n", style="bold underline")
    if failed is None:
        text.append("  none in the recent runs\n", style="dim")
    else:
        text.append(f"  run #{failed.id} at {fmt_time(failed.started)}: ", style="dim")
        text.append(f"{failed.error}\n", style="red")
        if failed.traceback:
            text.append(failed.traceback.rstrip() + "\n", style="dim red")
    text.append("\nrecent runs\n", style="bold underline")
    for run in runs[:15]:
        text.append(f"  #{run.id:<7}")
        text.append_text(status_text(run.status))
        text.append(f"  {fmt_short_time(run.started, now)}  {fmt_duration_ms(run.duration_ms):>7}  ")
        detail = run.error if run.status != "success" and run.error else fmt_result(run.result, 70)
        text.append(f"{detail or ''}\n", style="dim")
    return text
