"""``python -m memtui``: the same as the ``memtui`` command."""
import sys

from memtui.tui.cli import main

sys.exit(main())
