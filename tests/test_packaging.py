"""memtui installs as one top-level package, so an agent's own ``models`` or ``engine`` never collides with it.

The wheel is built from a copy of the source tree, installed into a fresh virtual
environment, and imported from inside a project that has its own ``models.py`` and
``engine/`` package: both sides must load, each its own.
"""
from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "src", "engine", "models", "tui")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: offline, with the setuptools the test extra installs.
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(out), str(tree)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = out.glob("memtui-*.whl")
    return built


def test_the_wheel_holds_one_top_level_package(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        tops = {name.split("/")[0] for name in names}
        dist_info = next(t for t in tops if t.endswith(".dist-info"))
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert tops == {"memtui", dist_info}, tops
    for module in ("memtui/__init__.py", "memtui/engine/agent.py", "memtui/engine/jobs/promote.py",
                   "memtui/models/schema.py", "memtui/models/migrations/0001_initial.py", "memtui/tui/cli.py",
                   "memtui/tui/app.tcss"):
        assert module in names, module
    assert "memtui = memtui.tui.cli:main" in entry_points


def test_an_agent_with_its_own_models_and_engine_imports_both_sides(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    target = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                           "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # memtui's dependencies come from this test run's environment, after the venv's own packages,
    # so the memtui that loads is the wheel's.
    (target / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    project = tmp_path / "agent"
    (project / "engine").mkdir(parents=True)
    (project / "models.py").write_text("WHO = 'the agent'\n")
    (project / "engine" / "__init__.py").write_text("WHO = 'the agent'\n")
    probe = textwrap.dedent(f"""
        import json, sys
        import models, engine
        from memtui import Memory
        import memtui, memtui.engine, memtui.models
        with Memory.open({str(tmp_path / "agent.db")!r}) as memory:
            mid = memory.remember("Alice prefers aisle seats", sender="alice")
            hits = [h.content for h in memory.recall("aisle", sender="alice")]
        print(json.dumps({{
            "models": models.WHO, "engine": engine.WHO, "memtui": memtui.__file__,
            "memtui.engine": memtui.engine.__file__, "hits": hits,
            "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "litellm")),
        }}))
    """)
    run = subprocess.run([str(python), "-c", probe], cwd=project, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["models"] == "the agent" and out["engine"] == "the agent"
    assert out["memtui"].startswith(str(target)) and out["memtui.engine"].startswith(str(target))
    assert out["hits"] == ["Alice prefers aisle seats"]
    assert out["heavy"] == []  # the agent's API loads neither Textual nor litellm

    version = subprocess.run([str(python), "-m", "memtui", "--version"], cwd=project, capture_output=True,
                             text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert version.returncode == 0 and version.stdout.startswith("memtui "), version.stderr
