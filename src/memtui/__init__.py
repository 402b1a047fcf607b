"""memtui: keep an AI agent's memory healthy.

The installed package is ``memtui``; its subpackages live in the repository's
top-level folders, mapped by ``package-dir`` in pyproject.toml:

- ``memtui.models`` (``models/``): the schema, migrations and opening a store;
- ``memtui.engine`` (``engine/``): the scheduler, the jobs and the agent API;
- ``memtui.tui`` (``tui/``): the command line and the Textual dashboard.

An agent needs only ``from memtui import Memory``; importing it loads neither
Textual nor litellm.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["Memory", "Recalled", "__version__"]

try:
    from importlib.metadata import version as _version

    __version__ = _version("memtui")
except Exception:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from memtui.engine.agent import Memory, Recalled


def __getattr__(name: str):
    # Lazy, so `import memtui` (e.g. for the CLI) does not open the data layer until asked.
    if name in ("Memory", "Recalled"):
        from memtui.engine import agent

        return getattr(agent, name)
    raise AttributeError(f"module 'memtui' has no attribute {name!r}")
