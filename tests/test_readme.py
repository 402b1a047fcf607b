"""The README cannot drift: its commands run, its Python example runs, its schema page is complete."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from memtui.models import Store
from tests import catalog

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
INTERACTIVE = {("memtui",), ("memtui", "--demo")}  # need a terminal: checked by test_dashboard instead


def shell_commands() -> list[list[str]]:
    commands = []
    for lang, body in BLOCKS:
        if lang != "sh":
            continue
        for line in body.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("memtui"):
                commands.append(shlex.split(line))
    return commands


def memtui(args, env, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "memtui", *args[1:]], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60, **kw)


@pytest.fixture
def readme_env(tmp_path):
    # The default database (under XDG_DATA_HOME), as a reader following the README has it.
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("MEMTUI_DB", None)
    for lang, body in BLOCKS:
        if lang == "jsonl":
            (tmp_path / "memories.jsonl").write_text(body)
        if lang == "toml":
            (tmp_path / "config.toml").write_text(body)
    return env


def test_the_two_setup_commands_are_the_ones_ci_runs():
    setup = [body.strip() for lang, body in BLOCKS if lang == "sh" and "pip install" in body]
    assert len(setup) == 2, "the README gives exactly two set-up commands"
    run, test = setup
    assert run.endswith("pip install . && memtui")
    assert test.endswith("pip install '.[test]' && pytest")
    assert test in (ROOT / ".ci" / "run").read_text()


def test_every_readme_command_runs(readme_env, tmp_path):
    commands = shell_commands()
    assert len(commands) >= 15
    ran = 0
    for args in commands:
        if tuple(args) in INTERACTIVE:
            continue
        if args == ["memtui", "--no-ui"]:
            continue  # covered by test_headless_command_from_the_readme
        result = memtui(args, readme_env, tmp_path)
        assert result.returncode == 0, f"{shlex.join(args)} failed: {result.stderr}"
        assert "Traceback" not in result.stderr
        ran += 1
    assert ran >= 15


def test_interactive_readme_commands_parse():
    from memtui.tui.cli import build_parser

    for args in INTERACTIVE:
        build_parser().parse_args(list(args[1:]))


def test_headless_command_from_the_readme(readme_env, tmp_path):
    assert ["memtui", "--no-ui"] in shell_commands()
    child = subprocess.Popen([sys.executable, "-m", "memtui", "--no-ui"], env=readme_env, cwd=tmp_path,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = child.stderr.readline()
        assert "engine running" in line
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=20) == 0
    finally:
        if child.poll() is None:
            child.kill()


def test_the_readme_config_example_is_valid(tmp_path):
    from memtui.engine.config import load_config

    toml = next(body for lang, body in BLOCKS if lang == "toml")
    (tmp_path / "c.toml").write_text(toml)
    config = load_config(tmp_path / "c.toml")
    assert config.llm.model == "gpt-4o-mini"
    assert config.job_params("promote")["threshold"] == 0.6


def test_the_readme_python_example_runs(readme_env, tmp_path):
    code = next(body for lang, body in BLOCKS if lang == "python")
    result = subprocess.run([sys.executable, "-c", code], env=readme_env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "long_term" in result.stdout or "pending" in result.stdout


def test_schema_page_describes_every_table_and_column(tmp_path):
    page = (ROOT / "docs" / "schema.md").read_text()
    store = Store.open(tmp_path / "s.db")
    tables = [r[0] for r in store.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " AND name != 'schema_migration'")]
    assert tables
    for table in tables:
        if catalog.SEARCH.match(table):  # the search index and its queue: described in prose, left to memtui
            continue
        assert f"`{table}`" in page, f"docs/schema.md misses table {table}"
        section = page.split(f"`{table}`", 1)[1].split("\n### ", 1)[0]
        for column in (r[1] for r in store.execute(f"PRAGMA table_info({table})")):
            assert re.search(rf"\b{column}\b", section), f"docs/schema.md misses {table}.{column}"
