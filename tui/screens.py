"""The dashboard's modal screens: retime (validated as you type), job details, engines, help.

Input modals are ``ModalScreen[Result | None]``: they return a typed result, or
None when cancelled, and change nothing themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widgets import DataTable, Input, Label, Static

from memtui.engine import EngineInfo, JobInfo, RunInfo, Schedule, ScheduleError
from memtui.tui.format import fmt_delta, fmt_short_time
from memtui.tui.widgets import job_details, key_value_grid


@dataclass(frozen=True)
class RetimeRequest:
    spec: str
    timezone: str | None


class ScheduleValidator(Validator):
    """Accepts exactly what the engine's retime accepts, in the modal's current time zone."""

    def __init__(self, zone: Callable[[], str | None]):
        super().__init__()
        self.zone = zone

    def validate(self, value: str) -> ValidationResult:
        try:
            Schedule.parse(value, self.zone())
        except ScheduleError as exc:
            return self.failure(str(exc))
        return self.success()


class RetimeScreen(ModalScreen[RetimeRequest | None]):
    """Ask for a new schedule; show it in words and its next three fire times."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, job: JobInfo, now: Callable[[], datetime]):
        super().__init__()
        self.job = job
        self.now = now

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(Text.assemble("Retime ", (self.job.name, "bold"), f" — now {self.job.schedule_text}"))
            yield Input(value=self.job.schedule, placeholder="45s, 5m, 1h30m or cron: 0 2 * * 0",
                        validators=[ScheduleValidator(self._zone)], id="spec")
            yield Input(value=self.job.timezone or "", placeholder="time zone, e.g. Europe/Berlin (blank: local)",
                        id="tz")
            yield Static(id="preview")
            yield Static(id="problem")
            yield Label("[dim]enter apply · escape cancel[/dim]")

    def on_mount(self) -> None:
        self._update()

    def _zone(self) -> str | None:
        inputs = self.query("#tz")  # empty while the screen is still being composed
        value = inputs.first(Input).value if inputs else (self.job.timezone or "")
        return value.strip() or None

    def _parse(self) -> Schedule:
        return Schedule.parse(self.query_one("#spec", Input).value, self._zone())

    def _update(self) -> bool:
        preview, problem = self.query_one("#preview", Static), self.query_one("#problem", Static)
        try:
            schedule = self._parse()
        except ScheduleError as exc:
            preview.update("")
            problem.update(Text(str(exc), style="bold red"))
            return False
        times = schedule.preview(self.now(), 3)
        lines = Text(schedule.describe(), style="bold green")
        for when in times:
            lines.append(f"\n  {when.strftime('%a %Y-%m-%d %H:%M:%S %Z')}")
        preview.update(lines)
        problem.update("")
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "tz":
            self.query_one("#spec", Input).validate(self.query_one("#spec", Input).value)
        self._update()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self._update():
            self.app.bell()
            return
        schedule = self._parse()
        self.dismiss(RetimeRequest(schedule.spec, self._zone()))

    def action_cancel(self) -> None:
        self.dismiss(None)


class DetailsScreen(ModalScreen[None]):
    """A job's config, totals, last error with its full traceback, and recent results.

    The app calls ``show`` on every engine update while it is open, so it never shows a next
    run that has already happened."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("enter", "close", "Close", show=False)]
    RUNS = 30  # recent runs read for it: the last error is looked for among them

    def __init__(self, job: JobInfo, runs: list[RunInfo], now: datetime):
        super().__init__()
        self.job, self.runs, self.now = job, runs, now

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(job_details(self.job, self.runs, self.now), id="details")

    def show(self, job: JobInfo, runs: list[RunInfo], now: datetime) -> None:
        self.job, self.runs, self.now = job, runs, now
        if self.is_mounted:
            self.query_one("#details", Static).update(job_details(job, runs, now))

    def action_close(self) -> None:
        self.dismiss(None)


class EnginesScreen(ModalScreen[None]):
    """Every live engine serving the database: host, pid, version, started, last heartbeat and the
    jobs it runs now. The app calls ``show`` on every engine update while it is open."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("n", "close", "Close", show=False)]
    COLUMNS = (("host", "HOST"), ("pid", "PID"), ("version", "VERSION"), ("started", "STARTED"),
               ("heartbeat", "HEARTBEAT"), ("running", "RUNNING NOW"))

    def __init__(self, engines: list[EngineInfo], now: datetime, here: str | None):
        super().__init__()
        self.engines, self.now = engines, now
        self.here = here  # this process's engine id, when it runs one

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(id="engines-title")
            yield DataTable(id="engines", cursor_type="row", zebra_stripes=True)
            yield Label("[dim]escape close[/dim]")

    def on_mount(self) -> None:
        table = self.query_one("#engines", DataTable)
        for key, label in self.COLUMNS:
            table.add_column(label, key=key)
        self._fill(self.engines, self.now)

    def show(self, engines: list[EngineInfo], now: datetime) -> None:
        self.engines, self.now = engines, now
        if self.is_mounted:
            self._fill(engines, now)

    def _fill(self, engines: list[EngineInfo], now: datetime) -> None:
        count = len(engines)
        self.query_one("#engines-title", Label).update(Text.assemble(
            ("engines", "bold"), f" — {count} live" if count else " — none live: no job runs on schedule"))
        table = self.query_one("#engines", DataTable)
        rows = {e.id: self._cells(e, now) for e in engines}
        for key in [str(k.value) for k in table.rows if k.value not in rows]:
            table.remove_row(key)
        for key, cells in rows.items():  # diffed by row key: the cursor stays where it is
            if key in table.rows:
                for (column, _), value in zip(self.COLUMNS, cells):
                    table.update_cell(key, column, value)
            else:
                table.add_row(*cells, key=key)

    def _cells(self, e: EngineInfo, now: datetime) -> tuple:
        ago = (now - e.heartbeat).total_seconds()
        host = e.host + (" (this dashboard)" if e.id == self.here else "")
        return (host, str(e.pid), e.version, fmt_short_time(e.started, now),
                f"{fmt_delta(ago)} ago" if ago >= 1 else "just now", ", ".join(e.running) or "-")

    def action_close(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key the dashboard knows."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("question_mark", "close", "Close", show=False)]

    def __init__(self, bindings: list[tuple[str, str]], log_path=None, sync_s: float | None = None,
                 log_problem: str | None = None):
        super().__init__()
        self.keys = bindings
        self.log_path = log_path
        self.log_problem = log_problem
        self.sync_s = sync_s  # how often the engine reads changes made by other processes

    def compose(self) -> ComposeResult:
        keys = key_value_grid(self.keys, indent=2, key_style="bold cyan", gap=2)
        text = Text("\nctrl+p opens the command palette with every action.\n", style="dim")
        if self.sync_s is not None:
            text.append(f"Changes from the CLI or another memtui process show here within about {self.sync_s:g} s.",
                        style="dim")
        if self.log_path:
            text.append(f"\nLog file (one line per run and per change, as --no-ui prints them):\n  {self.log_path}",
                        style="dim")
        elif self.log_problem:
            text.append(f"\nNo log file this time: {self.log_problem}", style="dim")
        with VerticalScroll(id="dialog"):  # scrolls: at 80x24 the keys alone fill the dialog
            yield Static(Group(Text("memtui keys\n", style="bold"), keys, text), id="help")

    def action_close(self) -> None:
        self.dismiss(None)
