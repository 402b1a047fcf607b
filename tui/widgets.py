"""The dashboard's widgets: the jobs table, the run history, the promotion stats, the status line.

Durations and run results are put in words by engine/report.py (through
tui/format.py), the same words the command line and the log file use.

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
from textual.widget import Widget
from textual.widgets import DataTable, Static

from memtui.engine import JobInfo, RunInfo
from memtui.engine.memory import PromotionStats
from memtui.engine.report import label as key_words
from memtui.tui.format import describe_result, fmt_delta, fmt_duration, fmt_short_time, fmt_time

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
STATUS_STYLES = {
    "success": "green", "failed": "bold red", "skipped": "yellow", "missed": "magenta",
    "interrupted": "dark_orange", "running": "bold cyan", "cancelled": "yellow",
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
    the duration (both are in the details) and joins runs and errors into one
    column, so it fits 80 columns without scrolling. Both layouts keep "ago" to
    one unit. Long schedule words are cut (the details show them whole): to 18
    characters in the narrow layout; in the wide one to the room the other
    columns leave, so a wide terminal shows them whole and a table never runs
    past the edge. A DataTable column never narrows by itself, so the widest
    text each column has held since the last rebuild is what counts; when a
    column grows into the schedule's room (a backoff, a long duration) the table
    is rebuilt once with a shorter schedule.

    With SCHEDULE_MIN for the schedule, the wide layout fits at WIDE_AT with a
    minutes-long duration, a backoff and six-digit run counts (a test checks)."""

    COLUMNS = (
        ("name", "JOB"), ("schedule", "SCHEDULE"), ("next", "NEXT"), ("left", "LEFT"),
        ("last", "LAST"), ("status", "STATUS"), ("duration", "TOOK"), ("runs", "RUNS"), ("errors", "ERR"),
    )
    NARROW = (("name", "JOB"), ("schedule", "SCHEDULE"), ("left", "LEFT"), ("last", "LAST"),
              ("status", "STATUS"), ("counts", "RUNS/ERR"))
    WIDE_AT = 120
    SCHEDULE_NARROW = 18
    SCHEDULE_MIN, SCHEDULE_MAX = 18, 48

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._shown: tuple[list[JobInfo], datetime, int, bool] | None = None
        self.schedule_width = self.SCHEDULE_NARROW
        self._widest: dict[str, int] = {}  # per column, the widest cell since the last rebuild

    @property
    def wide(self) -> bool:
        return self.columns_in_use == self.COLUMNS

    def reset(self, columns: tuple[tuple[str, str], ...] | None = None) -> None:
        super().reset(columns)
        self._widest.clear()

    def on_resize(self) -> None:
        wanted = self.COLUMNS if self.app.size.width >= self.WIDE_AT else self.NARROW
        if wanted != self.columns_in_use:
            self.schedule_width = self.SCHEDULE_NARROW if wanted == self.NARROW else self.SCHEDULE_MIN
            self._rebuild(wanted)
        elif self._shown:
            self.show(*self._shown)  # the room for the schedule changed with the width

    def _rebuild(self, columns: tuple[tuple[str, str], ...]) -> None:
        selected = self.selected_key
        self.reset(columns)
        if self._shown:
            self.show(*self._shown)
        if selected in self._cells:
            self.move_cursor(row=self.get_row_index(selected))

    def show(self, jobs: list[JobInfo], now: datetime, frame: int, held: bool = False) -> None:
        """``held``: the engine holds every job (the database is unusable), so none is counting down."""
        self._shown = (jobs, now, frame, held)
        rows = {job.name: self.cells(job, now, frame, self.wide, self.schedule_width, held) for job in jobs}
        if self.wide:
            room = self._schedule_room(rows.values())
            if room is not None and room != self.schedule_width:
                self.schedule_width = room
                if room < self._widest.get("schedule", 0):  # only a rebuild narrows a DataTable column
                    self._rebuild(self.columns_in_use)
                    return
                for job in jobs:
                    rows[job.name]["schedule"] = self._cut(job.schedule_text, room)
        for name, cells in rows.items():
            for column, value in cells.items():
                self._widest[column] = max(self._widest.get(column, 0), _width(value))
            self.upsert(name, cells)
        for name in set(self._cells) - set(rows):
            self.drop(name)

    def _schedule_room(self, rows) -> int | None:
        """How wide the schedule may be: the table's width less every other column as the DataTable
        will draw it (its widest cell or its label, plus padding); None before the table has a size."""
        width = self.scrollable_content_region.width
        if width <= 0:
            return None
        pad = 2 * self.cell_padding
        others = 0
        for column, label_text in self.columns_in_use:
            if column == "schedule":
                continue
            widest = max([self._widest.get(column, 0), len(label_text)] + [_width(r[column]) for r in rows])
            others += widest + pad
        return max(self.SCHEDULE_MIN, min(self.SCHEDULE_MAX, width - others - pad))

    @staticmethod
    def _cut(text: str, width: int) -> str:
        return text if len(text) <= width else text[:width - 1] + "…"

    @classmethod
    def cells(cls, job: JobInfo, now: datetime, frame: int, wide: bool = True,
              schedule_width: int | None = None, held: bool = False) -> dict:
        if job.paused and job.enabled:
            marker = Text("‖ ", style="yellow")
        else:
            marker = Text("● ", style="green") if job.enabled else Text("○ ", style="dim")
        name = marker + Text(job.name, style="bold" if job.enabled else "dim")
        if held and job.enabled:  # its stored next run is stale: nothing fires until the database is back
            left = Text("held", style="bold red")
        elif job.next_run is None:
            left = Text("paused" if job.paused and job.enabled else "-", style="dim")
        else:
            seconds = (job.next_run - now).total_seconds()
            left = Text("due" if seconds <= 0 else fmt_delta(seconds))
        if job.last_run is None:
            last = Text("-", style="dim")
        else:
            ago = fmt_delta((now - job.last_run).total_seconds())
            last = Text(f"{ago.split()[0]} ago")
        status = status_text("running" if job.running else job.last_status, frame)
        if job.backoff_until is not None:
            status.append(f" ⟲{fmt_delta((job.backoff_until - now).total_seconds()).split()[0]}", style="red")
        schedule = cls._cut(job.schedule_text, schedule_width or (cls.SCHEDULE_MAX if wide else cls.SCHEDULE_NARROW))
        errors = Text(str(job.errors), style="red" if job.errors else "dim")
        return {
            "name": name, "schedule": schedule, "next": fmt_short_time(job.next_run, now), "left": left,
            "last": last, "status": status, "duration": fmt_duration(job.last_duration_ms),
            "runs": str(job.runs), "errors": errors, "counts": Text(f"{job.runs}/") + errors,
        }


class HistoryTable(_DiffTable):
    """Runs of one job, newest first, keyed by run id; older pages load as the cursor nears the end.

    The first column is the run's id, not a count: ids are shared by all jobs, so one job's runs
    skip numbers. The id is what ``memtui history`` prints and the details call "run #N", so a run
    can be found again anywhere; a per-job count would shift whenever compact prunes old runs.

    The result (or error) is cut, with "…", to the room the other columns leave: the table cannot
    scroll sideways, and text cut by the edge alone can mislead ("best score 0" for 0.84)."""

    COLUMNS = (
        ("id", "RUN ID"), ("status", "STATUS"), ("reason", "REASON"), ("started", "STARTED"),
        ("duration", "TOOK"), ("result", "RESULT"),
    )
    PAGE = 200
    MAX_ROWS = 2000  # a job firing every second would otherwise grow the table for ever
    RESULT_MIN, RESULT_BEFORE_LAYOUT = 12, 80

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.job: str | None = None
        self.oldest_id: int | None = None
        self.exhausted = False
        self.result_width = self.RESULT_BEFORE_LAYOUT
        self._full: dict[str, str] = {}  # each row's whole result text, to cut again when the room changes
        self._widest: dict[str, int] = {}  # per column, the widest cell (a DataTable column never narrows)

    def start(self, job: str | None) -> None:
        self.job = job
        self.oldest_id = None
        self.exhausted = False
        self.reset()
        self.border_title = f"runs of {job}" if job else "runs"

    def reset(self, columns: tuple[tuple[str, str], ...] | None = None) -> None:
        super().reset(columns)
        self._full.clear()
        self._widest.clear()

    def drop(self, key: str) -> None:
        super().drop(key)
        self._full.pop(key, None)

    def merge(self, runs: list[RunInfo], now: datetime, older: bool = False) -> None:
        """Add or update ``runs`` (any order). ``older``: a page from the end, no re-sort needed."""
        added = False
        for run in runs:
            key = str(run.id)
            cells = self.cells(run, now)
            self._full[key] = str(cells["result"])
            for column, value in cells.items():
                self._widest[column] = max(self._widest.get(column, 0), _width(value))
            cells["result"] = self._cut(self._full[key])
            added |= self.upsert(key, cells)
            if self.oldest_id is None or run.id < self.oldest_id:
                self.oldest_id = run.id
        if older and len(runs) < self.PAGE:
            self.exhausted = True
        if added and not older:
            self._trim()
            self.sort("id", key=int, reverse=True)
        self._fit_result()

    def on_resize(self) -> None:
        self._fit_result()

    def _cut(self, text: str) -> Text:
        width = self.result_width
        return Text(text if len(text) <= width else text[:width - 1] + "…")  # Text: never read as markup

    def _fit_result(self) -> None:
        """Cut every result again when the room for it changed (a resize, a wider cell elsewhere)."""
        width = self.scrollable_content_region.width
        if width <= 0:
            return
        pad = 2 * self.cell_padding
        others = sum(max(self._widest.get(column, 0), len(label_text)) + pad
                     for column, label_text in self.columns_in_use if column != "result")
        room = max(self.RESULT_MIN, width - others - pad)
        if room == self.result_width:
            return
        self.result_width = room
        columns = [c for c, _ in self.columns_in_use]
        for key, full in self._full.items():
            self.upsert(key, {**dict(zip(columns, self._cells[key])), "result": self._cut(full)})

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
        """The row's cells; the result whole (``merge`` cuts it to the room there is)."""
        detail = run.error if run.status != "success" and run.error else describe_result(run.result)
        return {
            "id": str(run.id), "status": status_text(run.status), "reason": run.reason,
            "started": fmt_short_time(run.started, now), "duration": fmt_duration(run.duration_ms),
            "result": " ".join((detail or "").split()),
        }

    def wants_more(self) -> bool:
        return not self.exhausted and self.row_count - self.cursor_row <= 20


class PromotionChart(Widget):
    """Promoted per run as bars, oldest on the left, on a baseline, with a scale on the right.

    The largest count is full height and is written beside the top row, 0 beside the baseline, so
    the bars read as numbers. A run that promoted nothing is baseline only (a sparkline stretches
    a flat series, all zeros included, to full height); with no runs yet it says so instead."""

    ROWS = 3
    BLOCKS = " ▁▂▃▄▅▆▇█"
    CAPTION = "promoted per run"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.counts: list[int] = []
        self.runs = 0

    def show(self, counts: list[int], runs: int) -> None:
        if (counts, runs) != (self.counts, self.runs):
            self.counts, self.runs = list(counts), runs
            self.refresh()

    def render(self) -> Text:
        if not self.counts:
            text = Text(self.CAPTION + "\n", style="dim")
            text.append("no promote runs yet" if self.runs == 0 else "no successful promote run yet", style="italic")
            return text
        top = max(self.counts)  # the scale: full height, written beside the top row
        text = Text(self.CAPTION + ("" if top else ": all 0") + "\n", style="dim")
        scale = f"{top:,}"
        room = max(self.size.width - len(scale) - 1, 1)  # the bars, then a space and the scale
        counts = self.counts[-room:]
        step = max(1, min(3, room // len(counts)))  # up to 3 columns a run: 2 of bar, 1 of gap
        bar = step - 1 if step > 1 else 1
        levels = [0 if not top or not c else max(1, round(c / top * self.ROWS * 8)) for c in counts]
        for row in range(self.ROWS - 1, -1, -1):
            line = "".join((self.BLOCKS[min(8, max(0, level - 8 * row))] * bar).ljust(step) for level in levels)
            text.append(line.ljust(room), style="cyan")
            text.append(f" {scale:>{len(scale)}}\n" if row == self.ROWS - 1 and top else "\n", style="dim")
        text.append("".join(("▔" * bar).ljust(step) for _ in levels).ljust(room), style="dim")
        text.append(f" {'0':>{len(scale)}}" if top else "", style="dim")
        return text


class StatsPanel(Vertical):
    """Promotion figures and a chart of promoted per run."""

    def compose(self) -> ComposeResult:
        yield Static(id="stats-text")
        yield PromotionChart(id="stats-chart")

    def show(self, stats: PromotionStats, now: datetime, paused: bool = False, held: bool = False) -> None:
        text = Text()
        rows = [
            ("runs", f"{stats.runs:,}"),
            ("promoted", f"{stats.total_promoted:,}"),
            ("expired", f"{stats.total_expired:,}"),
            ("last run", f"{fmt_delta((now - stats.last_run).total_seconds())} ago" if stats.last_run else "never"),
            # indented: what that last run moved, not another total
            ("  promoted", "-" if stats.last_promoted is None else f"{stats.last_promoted:,}"),
            # scored only what changed since the last run, or every memory (a full pass)
            ("  pass", stats.last_pass or "-"),
            ("short-term", f"{stats.pending:,}"),
            ("long-term", f"{stats.long_term:,}"),
            # the dedupe job's totals: duplicates merged away, memories a newer one replaced
            ("  merged", f"{stats.merged:,}"),
            ("  replaced", f"{stats.superseded:,}"),  # superseded by a newer memory
            ("schedule", "disabled" if not stats.enabled else "held" if held else "paused" if paused
             else stats.schedule_text),
        ]
        for name, value in rows:
            text.append(f"{name:<11}", style="dim")
            text.append(f"{value}\n")
        text.rstrip()
        self.query_one("#stats-text", Static).update(text)
        self.query_one("#stats-chart", PromotionChart).show(stats.recent, stats.runs)


class StatusLine(Static):
    """Engine state, database path, model in use; or, while the jobs are held, why (on as many
    lines as it takes: the reason names the database path and what brings the jobs back)."""

    def show(self, *, running: bool, paused: bool, stopping: str | None, db_path: str, model: str,
             problem: str | None = None, attached: tuple[str, str] | None = None) -> None:
        """``attached``: (words, style) when this dashboard runs no engine and follows the ones that
        serve the database ("attached · engine on HOST (pid N)", or that none does)."""
        text = Text(" memtui ", style="bold reverse")
        self.set_class(problem is not None, "-problem")
        if problem is not None:
            text.append(f" ■ jobs held: {problem} ", style="bold white on red")
            self.update(text)
            return
        if stopping is not None:
            text.append(f" ■ {stopping} ", style="bold yellow")
        elif attached is not None:
            text.append(f" {attached[0]} ", style=attached[1])
            if paused:
                text.append(" ‖ paused ", style="bold yellow")
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
    if job.kind != job.name:  # "promote (promote)" would say nothing
        text.append(f"  (kind: {job.kind})")
    text.append(f" — {job.summary}\n\n")
    facts = [
        ("enabled", "yes" if job.enabled else "no"),
        ("schedule", f"{job.schedule_detail or job.schedule_text}   [{job.schedule}]"),
        ("time zone", job.timezone),
        ("next run", fmt_time(job.next_run)),
        ("last run", fmt_time(job.last_run)
                     + (f", took {fmt_duration(job.last_duration_ms)}" if job.last_duration_ms is not None else "")),
        ("runs / errors", f"{job.runs} / {job.errors}"),
    ]
    if job.backoff_until:
        facts.append(("backoff", f"{job.consecutive_failures} failure(s) in a row; next try not before "
                                 f"{fmt_time(job.backoff_until)}"))
    for name, value in facts:
        text.append(f"{name:<14}", style="dim")
        text.append(f"{value}\n")
    text.append("\nconfig\n", style="bold underline")
    for key, value in job.config.items():
        text.append(f"  {key:<24}", style="dim")
        text.append(f"{value}\n")
    if job.totals:
        text.append("\ntotals\n", style="bold underline")
        for key, value in job.totals.items():
            text.append(f"  {key_words(key):<24}", style="dim")
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
    if not runs:
        text.append("  none yet\n", style="dim")
        return text
    # run ids are shared by all jobs, so one job's list skips numbers (see HistoryTable)
    text.append(f"  {'run id':<8}{'status':<13}{'started':<11}{'took':>9}  reason\n", style="dim")
    for run in runs[:15]:
        text.append(f"  {run.id:<8}")
        status = status_text(run.status)
        status.pad_right(13 - status.cell_len)
        text.append_text(status)
        text.append(f"{fmt_short_time(run.started, now):<11}{fmt_duration(run.duration_ms):>9}  {run.reason}\n")
        # whole, on its own line: the details are where a result is read in full
        detail = run.error if run.status != "success" and run.error else describe_result(run.result)
        if detail:
            text.append(f"          {detail}\n", style="red" if run.status in ("failed", "interrupted") else "dim")
    return text
