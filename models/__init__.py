"""memtui's data layer: the SQLite schema (Peewee models plus migrations) and opening a store.

No job logic and no UI here; ``engine`` builds on this, ``tui`` never imports it.
"""
from memtui.models.db import Store, StoreError

__all__ = ["Store", "StoreError"]
