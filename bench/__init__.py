"""memtui's benchmarks: ``python -m bench`` from the repository root (``--help`` for the flags)."""
