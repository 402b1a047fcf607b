"""The ``memtui`` command line: the dashboard (in a terminal or a browser), headless mode, job and engine
commands, the MCP server.

Talks to the engine only through its public API. Textual is imported only when
the dashboard opens, so ``memtui --no-ui`` and every subcommand stay light.
Every user error is one line on stderr and exit status 2; a job that fails is
exit status 1. The database is a path or a URL (``--db``, ``MEMTUI_DB``); a
password in a URL is never printed: the store's label hides it, and every
error line is scrubbed of it too (a driver or argparse may echo what it got).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from datetime import datetime
from typing import Sequence

from memtui.engine import (ConfigError, Engine, EngineError, JobInfo, RunInfo, ScheduleError, StoreError, load_config,
                           open_engine)
from memtui.engine.config import resolve_db_path
from memtui.engine.memory import MemoryInputError
from memtui.engine.redact import redact
from memtui.engine.story import describe as describe_story
from memtui.engine.report import describe_result, event_logger, fmt_duration, run_line
from memtui.engine.types import EngineInfo
from memtui.tui.format import fmt_delta, fmt_time

try:
    from importlib.metadata import version as _pkg_version

    VERSION = _pkg_version("memtui")
except Exception:  # running from a source tree that was never installed
    VERSION = "0.1.0"


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of argparse's usage dump
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- formatting ---------------------------------------------------------------

def _table(headers: Sequence[str], rows: list[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [headers, *rows]]
    return "\n".join(lines)


def jobs_table(jobs: list[JobInfo], now: datetime) -> str:
    rows = []
    for j in jobs:
        seconds = (j.next_run - now).total_seconds() if j.next_run else None
        left = "-" if seconds is None else fmt_delta(seconds) if seconds >= 0 else f"overdue {fmt_delta(seconds)}"
        state = "yes" if j.enabled else "no"
        if j.paused:
            state += " (paused)"
        status = j.last_status or "-"
        if j.running:
            status = "running"
        if j.backoff_until:
            status += f" (backoff {fmt_delta((j.backoff_until - now).total_seconds())})"
        rows.append([j.name, state, j.schedule_detail or j.schedule_text, fmt_time(j.next_run), left,
                     fmt_time(j.last_run),
                     status, str(j.runs), str(j.errors)])
    return _table(["NAME", "ENABLED", "SCHEDULE", "NEXT", "LEFT", "LAST", "STATUS", "RUNS", "ERRORS"], rows)


def engines_table(engines: list[EngineInfo], now: datetime, with_status: bool = False) -> str:
    """One row per engine (``EngineInfo``): where it runs, since when, its last heartbeat, its runs now."""
    rows = []
    for e in engines:
        since = (now - e.heartbeat).total_seconds()
        # Under a second, or ahead of this host's clock (another host's clock runs fast): "just now".
        beat = f"{fmt_delta(since)} ago" if since >= 1 else "just now"
        row = [e.host, str(e.pid), e.version, fmt_time(e.started), beat, ", ".join(e.running) or "-"]
        if with_status:
            row.append("live" if e.alive else "stopped" if e.stopped else "gone")
        rows.append(row)
    headers = ["HOST", "PID", "VERSION", "STARTED", "HEARTBEAT", "RUNNING"] + (["STATUS"] if with_status else [])
    return _table(headers, rows)


def history_table(runs: list[RunInfo]) -> str:
    rows = [[str(r.id), r.job, r.status, r.reason, fmt_time(r.started), fmt_duration(r.duration_ms),
             (r.error if r.status != "success" and r.error else describe_result(r.result, 60)) or ""]
            for r in runs]
    return _table(["RUN", "JOB", "STATUS", "REASON", "STARTED", "DURATION", "RESULT"], rows)


# -- argument parsing -----------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--db", metavar="PATH|URL", default=argparse.SUPPRESS,
                        help="database file, or postgresql://USER:PASSWORD@HOST:5432/NAME "
                             "(default: $MEMTUI_DB or memtui.db in the user data dir)")
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="config file (default: $MEMTUI_CONFIG or config.toml in the user config dir)")
    parser = _Parser(prog="memtui", parents=[common],
                     description="Keep an AI agent's memory healthy: scheduled memory jobs and a live dashboard.")
    parser.add_argument("--version", action="version", version=f"memtui {VERSION}")
    parser.add_argument("--no-ui", action="store_true", help="run the engine headless (a service)")
    parser.add_argument("--demo", action="store_true",
                        help="open the dashboard on a fresh demo database in a temporary folder")
    parser.add_argument("--engine", action="store_true",
                        help="run an engine in the dashboard's process even when another serves the database "
                             "(by default the dashboard attaches to it)")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    def add_command(name: str, **kwargs) -> argparse.ArgumentParser:
        """A command whose own --help opens with what it does: its line in ``memtui --help``, as a sentence."""
        help_text = kwargs["help"]
        return sub.add_parser(name, description=help_text[0].upper() + help_text[1:] + ".", **kwargs)

    p = add_command("jobs", parents=[common], help="list jobs and their state")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add_command("run", parents=[common], help="run one job now, in this process")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print the run as JSON")
    p.add_argument("--dry-run", action="store_true", help="show what it would change; write nothing")
    for verb in ("enable", "disable"):
        p = add_command(verb, parents=[common], help=f"{verb} a job")
        p.add_argument("name")
    p = add_command("cancel", parents=[common],
                    help="ask the engine running a job to stop that run at its next check point")
    p.add_argument("name")
    p.add_argument("--wait", type=_seconds, default=10.0, metavar="SECONDS",
                   help="wait this long for the run to end and say how it ended (0: don't wait; default 10)")
    p = add_command("retime", parents=[common], help="give a job a new schedule")
    p.add_argument("name")
    p.add_argument("spec", help="interval (30s, 5m, 1h30m) or 5-field cron expression")
    p.add_argument("--tz", metavar="ZONE", help="IANA time zone for cron schedules (default: keep)")
    p = add_command("history", parents=[common], help="recent runs, newest first")
    p.add_argument("name", nargs="?")
    p.add_argument("--limit", type=_positive_int, default=20)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add_command("remember", parents=[common], help="add a short-term memory; prints its id")
    p.add_argument("text")
    p.add_argument("--sender", default="")
    p.add_argument("--kind", default="note")
    p.add_argument("--importance", type=float, default=5.0, help="0-10 (default 5)")
    p.add_argument("--confidence", type=float, default=0.5, help="0-1 (default 0.5)")
    p.add_argument("--keep", action="store_true", help="promote it whatever its score")
    p = add_command("why", parents=[common],
                    help="one memory's story: its score or retention, when it promotes, expires or retires")
    p.add_argument("id", type=_positive_int, help="the id remember printed (followed into long-term memory)")
    p.add_argument("--long-term", action="store_true", help="ID is a long-term memory's own id (as recall gives)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add_command("import", parents=[common], help="import JSON Lines (a file, or - for stdin)")
    p.add_argument("file")
    p.add_argument("--skip-invalid", action="store_true", help="write the valid lines, list the rest")
    p = add_command("demo", parents=[common],
                    help="fill an empty database (or one holding only demo data) with a realistic sample")
    p.add_argument("--reset", action="store_true",
                   help="first delete every memory, run and audit entry in the database (asks unless --yes)")
    p.add_argument("--yes", action="store_true", help="do not ask before --reset replaces everything")
    p = add_command("engines", parents=[common], help="list the engines serving this database")
    p.add_argument("--all", action="store_true", help="include engines that stopped or went silent")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_command("pause", parents=[common], help="pause every job (each job's enabled flag is kept)")
    add_command("resume", parents=[common], help="resume the jobs that are enabled")
    p = add_command("mcp", parents=[common],
                    help="serve this memory to AI agents over MCP (stdio; --http PORT for streamable HTTP)")
    p.add_argument("--http", metavar="PORT", type=_port, help="serve streamable HTTP at http://HOST:PORT/mcp "
                                                              "instead of stdio")
    p.add_argument("--host", help="the address --http listens on (default 127.0.0.1: this machine only; an "
                                  "address beyond loopback lets other machines in, and the server has no login)")
    p.add_argument("--allow-control", action="store_true",
                   help="also offer the tools run_job, enable and disable")
    p = add_command("serve", parents=[common],
                    help="the dashboard in a web browser (no login: this machine only unless --public)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="the port to listen on (default 8000)")
    p.add_argument("--public", action="store_true",
                   help="allow a --host beyond this machine: anyone who can reach it can steer the jobs")
    return parser


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 1 to 65535: {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"from 0 to 86400 seconds: {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


# -- commands -------------------------------------------------------------------

def _only_reads(args) -> bool:
    return args.command in ("jobs", "history", "engines", "why") or (args.command == "run" and args.dry_run)


def _open_engine(args) -> Engine:
    config = load_config(getattr(args, "config", None))
    for warning in config.warnings:
        print(f"memtui: warning: {warning}", file=sys.stderr)
    given = getattr(args, "db", None)
    if given is None:
        given = os.environ.get("MEMTUI_DB")
    # A command that only reads never creates a database (nor its folders) at a path someone typed:
    # a typo must say "no database there", not leave a new empty one behind; on PostgreSQL it never
    # puts memtui's tables into a database that lacks them. The default path is created by any
    # command, as on first start.
    create = given is None or not _only_reads(args)
    return open_engine(resolve_db_path(getattr(args, "db", None)), config, create=create)


def _dashed_spec(argv: list[str]) -> list[str]:
    """``memtui retime promote -5m``: argparse reads ``-5m`` as an unknown option and would answer
    "the following arguments are required: spec". Move such a token behind a ``--`` at the end, where
    argparse reads it as the spec, so it is refused as the bad schedule it is. Only the retime
    command's own arguments are touched, and none after a ``--`` the user wrote."""
    takes_value = {"--db", "--config", "--tz"}
    known = takes_value | {"-h", "--help"}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # options before the command
        i += 2 if argv[i] in takes_value else 1
    if i >= len(argv) or argv[i] != "retime" or "--" in argv[i:]:
        return argv
    kept, dashed = argv[:i + 1], []
    rest = iter(argv[i + 1:])
    for token in rest:
        option = token.split("=", 1)[0]
        # argparse accepts unambiguous abbreviations (--t for --tz): those are options too
        if not token.startswith("-") or token == "-" or any(k.startswith(option) for k in known):
            kept.append(token)
            if any(k.startswith(option) for k in takes_value) and option.startswith("--") and "=" not in token:
                kept.append(next(rest, ""))  # its value, even if it starts with "-"
        else:
            dashed.append(token)
    return kept + (["--", *dashed] if dashed else [])


def cmd_jobs(engine: Engine, args) -> int:
    jobs = engine.jobs()
    if args.json:
        print(json.dumps([j.to_json() for j in jobs], indent=2))
    else:
        print(jobs_table(jobs, engine.clock()))
    return 0


def print_dry_run(name: str, result: dict) -> None:
    plan = result.pop("plan", None)
    planned = result.pop("would_write", None)
    print(f"{name} (dry run, nothing written): {describe_result(result)}")
    for entity, lines in (plan or {}).items():
        print(f"  {entity}:")
        for line in lines:
            print(f"    {line}")
    for item in planned or []:
        print(f"  would summarize {item['period']} for {item['sender']} from {item['sources']} source(s)")
    for rejection in result.get("rejections", []):
        print(f"  rejected {rejection['entity']}: {rejection['reason']}")


def cmd_run(engine: Engine, args) -> int:
    if args.dry_run:
        result = engine.dry_run(args.name)
        if args.json:
            print(json.dumps(result, indent=2, default=str))
        else:
            print_dry_run(args.name, result)
        return 0
    run = engine.run_job(args.name)
    if args.json:
        print(json.dumps(run.to_json(), indent=2))
    else:
        print(run_line(run))
    if run.status == "skipped" and (run.result or {}).get("busy"):
        if args.json:
            print(f"memtui: {args.name} is {run.error}", file=sys.stderr)
        return 1
    return 1 if run.status == "failed" else 0


def cmd_toggle(engine: Engine, args) -> int:
    job = engine.enable(args.name, "cli") if args.command == "enable" else engine.disable(args.name, "cli")
    print(jobs_table([job], engine.clock()))
    return 0


def cmd_cancel(engine: Engine, args) -> int:
    """Ask for the stop, then (with --wait) say how the run ended: 0 once it ended, 1 if still running."""
    run_id = engine.cancel(args.name, source="cli")
    run = engine.run(run_id)
    print(f"{args.name}: asked {run.owner if run else 'its engine'} to stop run #{run_id}")
    deadline = time.monotonic() + args.wait
    while args.wait and run is not None and run.status == "running" and time.monotonic() < deadline:
        time.sleep(0.1)  # the owner sees the request within its sync period (at once when announced)
        run = engine.run(run_id)
    if not args.wait or run is None:
        return 0
    if run.status == "running":
        print(f"memtui: run #{run_id} of {args.name} is still running after {args.wait:g} s; it stops at its "
              "next check point, or fails at its timeout", file=sys.stderr)
        return 1
    print(run_line(run))
    return 0


def cmd_retime(engine: Engine, args) -> int:
    job = engine.retime(args.name, args.spec, args.tz, source="cli")
    print(jobs_table([job], engine.clock()))
    return 0


def cmd_history(engine: Engine, args) -> int:
    runs = engine.history(args.name, args.limit)
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
    else:
        print(history_table(runs) if runs else "no runs yet")
    return 0


def cmd_engines(engine: Engine, args) -> int:
    engines = engine.engines(include_gone=args.all)
    if args.json:
        print(json.dumps([e.to_json() for e in engines], indent=2))
    elif engines:
        print(engines_table(engines, engine.clock(), with_status=args.all))
    else:
        print("no engine has run on this database" if args.all else "no engine running")
    return 0


def cmd_pause(engine: Engine, args) -> int:
    (engine.pause_all if args.command == "pause" else engine.resume_all)("cli")
    print(jobs_table(engine.jobs(), engine.clock()))
    return 0


def cmd_remember(engine: Engine, args) -> int:
    mid = engine.remember(args.text, sender=args.sender, kind=args.kind, importance=args.importance,
                          confidence=args.confidence, keep=args.keep)
    print(mid)
    if mid.repeat:  # stdout stays the bare id, for scripts
        where = "long-term memory" if mid.tier == "long_term" else "pending memory"
        print(f"memtui: a repeat of {where} {mid}: counted as a use, not stored again", file=sys.stderr)
    return 0


def cmd_why(engine: Engine, args) -> int:
    told = engine.story(args.id, long_term=args.long_term)
    if args.json:
        print(json.dumps(dataclasses.asdict(told), default=lambda v: v.isoformat(), indent=2))
    else:
        print("\n".join(describe_story(told)))
    return 0


def cmd_import(engine: Engine, args) -> int:
    from memtui.engine.importer import import_lines

    try:
        handle = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read ({exc.strerror})") from None
    try:
        with handle:
            report = import_lines(engine.store, handle, engine.clock(), skip_invalid=args.skip_invalid)
    except UnicodeDecodeError:
        raise UsageError(f"{args.file}: not UTF-8 text") from None
    for error in report.invalid:
        print(f"memtui: {args.file}: {error}", file=sys.stderr)
    if report.invalid and not args.skip_invalid:
        print(f"memtui: {len(report.invalid)} invalid line(s); nothing was imported "
              "(fix them, or use --skip-invalid)", file=sys.stderr)
        return 2
    written = ", ".join(f"{n} {kind}" for kind, n in sorted(report.written.items())) or "nothing"
    skipped = f"; skipped {len(report.invalid)} invalid line(s)" if report.invalid else ""
    repeats = (f" ({report.repeats} memor{'y' if report.repeats == 1 else 'ies'} repeated one already kept: "
               "counted as a use, not stored again)") if report.repeats else ""
    print(f"imported {written}{repeats}{skipped}")
    return 0


def cmd_demo(engine: Engine, args) -> int:
    from memtui.engine.demo import DemoRefused, describe_counts, fill, replaced_by_reset

    if args.reset and not args.yes:
        doomed = replaced_by_reset(engine.store)
        if doomed:
            what = (f"--reset deletes everything in {engine.store.label}: {describe_counts(doomed)} "
                    "(job schedules and on/off stay)")
            if not sys.stdin.isatty():
                raise UsageError(f"{what}; nothing was changed: add --yes to confirm (no terminal to ask on)")
            print(f"{what}.", file=sys.stderr)
            try:
                answer = input("Replace it with the demo sample? [y/N] ")
            except EOFError:  # ctrl-d: no answer is a no
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing was changed", file=sys.stderr)
                return 1
    try:
        summary = fill(engine.store, engine.clock(), reset=args.reset)
    except DemoRefused as exc:
        raise UsageError(str(exc)) from None
    counts = {k: v for k, v in vars(summary).items() if k != "replaced"}
    print(f"demo data in {engine.store.label}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    if summary.replaced:
        print(f"(it replaced the earlier demo sample: {summary.replaced:,} rows)")
    return 0


def check_mcp_args(args) -> None:
    """``memtui mcp``'s own usage errors, before the store is opened: nothing is created for a bad command."""
    if args.host is not None and args.http is None:
        raise UsageError("--host is for --http PORT (stdio has no address)")
    if args.http is None:
        return
    host = args.host if args.host is not None else "127.0.0.1"
    if not host.strip():
        raise UsageError("--host needs an address (e.g. 127.0.0.1)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:  # a port taken or an address not of this machine: said now, in one line
        socket.create_server((host, args.http), family=family).close()
    except (OSError, OverflowError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"cannot listen on {host}:{args.http}: {reason}") from None


def check_serve_args(args) -> None:
    """``memtui serve``'s own usage errors, before the store is opened: nothing is created for a bad command."""
    host = args.host.strip()
    if not host:
        raise UsageError("--host needs an address (e.g. 127.0.0.1)")
    if not _is_loopback(host) and not args.public:
        raise UsageError(f"--host {host} lets other machines in, and the served dashboard has no login: "
                         "add --public to serve it there anyway")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:  # a port taken or an address not of this machine: said now, in one line
        socket.create_server((host.strip("[]"), args.port), family=family).close()
    except (OSError, OverflowError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"cannot listen on {host}:{args.port}: {reason}") from None


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


def cmd_mcp(engine: Engine, args) -> int:
    from memtui.mcp_server import serve  # the MCP SDK loads only for this command

    host = args.host if args.host is not None else "127.0.0.1"
    if args.http is not None and not _is_loopback(host):
        print(f"memtui: warning: listening on {host}:{args.http}, beyond this machine: the MCP server has no "
              f"login, so anyone who can reach it can read and change this memory"
              + (" and run its jobs" if args.allow_control else ""), file=sys.stderr)
    return serve(engine, http_port=args.http, host=host, allow_control=args.allow_control)


def cmd_serve(engine: Engine, args) -> int:
    """Serve the dashboard; the store was opened (created, migrated) only to check it and name it."""
    from memtui.tui.serve import serve  # textual-serve loads only for this command

    host = args.host.strip().strip("[]")
    label = engine.store.label  # hides a URL's password
    db = resolve_db_path(getattr(args, "db", None))
    engine.close()  # each browser tab runs its own dashboard, with its own engine
    if not _is_loopback(host):
        print(f"memtui: warning: serving the dashboard on {host}:{args.port}, beyond this machine: the page has no "
              "login of its own, so anyone who can reach it can see this memory's jobs and steer them "
              "(put it behind a proxy that asks for one)", file=sys.stderr)
    return serve(db, label=label, host=host, port=args.port, config=getattr(args, "config", None),
                 public=args.public)


COMMANDS = {
    "remember": cmd_remember, "import": cmd_import, "demo": cmd_demo,
    "jobs": cmd_jobs, "run": cmd_run, "enable": cmd_toggle, "disable": cmd_toggle,
    "retime": cmd_retime, "cancel": cmd_cancel, "history": cmd_history, "pause": cmd_pause, "resume": cmd_pause,
    "engines": cmd_engines, "why": cmd_why, "mcp": cmd_mcp, "serve": cmd_serve,
}


def run_headless(engine: Engine, stop: threading.Event | None = None) -> int:
    """Run the engine until SIGINT, SIGTERM or SIGHUP (its terminal closed; under nohup it is ignored);
    one log line per run on stderr."""
    stop = stop or threading.Event()
    logger = logging.getLogger("memtui")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if sig == signal.SIGHUP and signal.getsignal(sig) is signal.SIG_IGN:
            continue  # nohup's "ignore hangups" stands (a shell's background job ignoring SIGINT does not)
        signal.signal(sig, lambda *_: stop.set())
    engine.subscribe(event_logger(logger))  # a line per run and per change picked up, with its source
    engine.start()
    enabled = [j.name for j in engine.jobs() if j.enabled]
    logger.info("engine running on %s: %d jobs enabled (%s)%s", engine.store.label, len(enabled),
                ", ".join(enabled), " — paused" if engine.paused else "")
    while not stop.wait(0.5):
        pass
    running = engine.running_jobs()
    timeout = engine.config.engine.stop_timeout_s
    if running:
        logger.info("stopping: waiting up to %g s for %s", timeout, ", ".join(running))
    clean = engine.stop(timeout)
    logger.info("stopped" if clean else "stopped; unfinished runs were marked interrupted")
    handler.flush()
    if not clean:
        sys.stderr.flush()
        os._exit(0)  # job threads still running cannot be joined; their runs are already recorded
    return 0


# A password in a URL: user:PASSWORD@host, or a libpq parameter ?password=PASSWORD.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*@", re.I)
_PARAM_PASSWORD = re.compile(r"([?&]password=)[^&\s]*", re.I)


def _passwords(argv: Sequence[str]) -> list[str]:
    """The passwords of database URLs given on the command line or in $MEMTUI_DB, longest first."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    found = set()
    for value in (*argv, os.environ.get("MEMTUI_DB") or ""):
        start = value.find("://")
        if start < 0:
            continue
        url = value[max(0, value.rfind("=", 0, start) + 1):]  # --db=URL is one token
        try:
            parts = urlsplit(url)
            found.update(p for p in (parts.password, unquote(parts.password or "")) if p)
            found.update(v for k, v in parse_qsl(parts.query) if k.lower() == "password" and v)
        except ValueError:  # not a URL after all; the patterns below still apply
            pass
    return sorted(found, key=len, reverse=True)


def _without_passwords(text: str, argv: Sequence[str]) -> str:
    """``text`` with every database password written as ***: the ones given (a driver or argparse may
    echo them anywhere in a message), then anything shaped like one."""
    for password in _passwords(argv):  # first: a password holding "@" would fool the pattern below
        text = text.replace(password, "***")
    return _PARAM_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed command line; an argument no command knows points to the help of the command it was
    given to (argparse reports those from the top, as if ``memtui --help`` could explain them)."""
    words = _dashed_spec(argv)
    args, unknown = build_parser().parse_known_args(words)
    if unknown:
        # given before the command's name ("memtui --bogus jobs"), it was memtui's own option
        try:
            after = args.command is not None and words.index(args.command) < words.index(unknown[0])
        except ValueError:  # not written as given (argparse read it otherwise): the main help
            after = False
        prog = f"memtui {args.command}" if after else "memtui"
        raise UsageError(f"unrecognized arguments: {' '.join(unknown)} (see '{prog} --help')")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parse(argv)
        if args.command is None and not args.no_ui:
            from memtui.tui.app import run_dashboard  # imports Textual only here

            return run_dashboard(args)
        if args.command == "mcp":
            check_mcp_args(args)
        elif args.command == "serve":
            check_serve_args(args)
        engine = _open_engine(args)
        if args.command is None:
            return run_headless(engine)
        return COMMANDS[args.command](engine, args)
    except (UsageError, StoreError, ConfigError, EngineError, ScheduleError, MemoryInputError) as exc:
        print(f"memtui: {_without_passwords(' '.join(str(exc).splitlines()), argv)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: still one line, never a traceback on the user's screen
        logging.getLogger("memtui").debug("unexpected error", exc_info=True)
        text = _without_passwords(redact(" ".join(str(exc).split())), argv)[:300]
        print(f"memtui: unexpected error: {type(exc).__name__}: {text} (please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
