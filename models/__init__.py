"""memtui's data layer: the schema (Peewee models plus migrations) and opening a store.

``Store.open(path or URL)`` gives a SQLite or a PostgreSQL store behind one small
interface (models/db.py). No job logic and no UI here; ``engine`` builds on
this, ``tui`` never imports it.
"""
from memtui.models.db import DB_ERRORS, Store, StoreError

__all__ = ["DB_ERRORS", "Store", "StoreError"]
