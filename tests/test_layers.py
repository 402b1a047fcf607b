"""Layering: the engine and the data layer never load the UI toolkit or the LLM client; the CLI never loads Textual."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("textual", "litellm")


def loaded_after(statement: str) -> dict[str, list[str]]:
    probe = (
        "import json, sys\n"
        f"{statement}\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps({h: sorted(m for m in sys.modules if m == h or m.startswith(h + '.')) for h in heavy}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_probe_can_see_a_heavy_import():
    # guards the probe itself: it must notice when textual is loaded
    assert loaded_after("import textual")["textual"] != []


@pytest.mark.parametrize("statement", [
    "import memtui.engine, memtui.models, memtui.engine.jobs",
    "import memtui.models; from memtui.models import schema, db",
    "import memtui.engine.engine, memtui.engine.schedule, memtui.engine.config, memtui.engine.memory, memtui.engine.jobs",
])
def test_engine_and_models_load_neither_textual_nor_litellm(statement):
    assert loaded_after(statement) == {"textual": [], "litellm": []}


def test_every_job_module_loads_neither_textual_nor_litellm():
    modules = sorted(p.stem for p in (ROOT / "engine" / "jobs").glob("*.py") if p.stem != "__init__")
    statement = "; ".join(f"import memtui.engine.jobs.{m}" for m in modules)
    assert loaded_after(statement) == {"textual": [], "litellm": []}


def test_the_cli_module_does_not_load_textual():
    assert loaded_after("import memtui.tui.cli")["textual"] == []


def test_building_the_cli_parser_does_not_load_textual():
    assert loaded_after("import memtui.tui.cli; memtui.tui.cli.build_parser().parse_args(['jobs'])")["textual"] == []
