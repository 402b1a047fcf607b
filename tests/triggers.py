"""A write that fails part-way, on either backend: a trigger refusing some rows with an error.

Tests use it to show a job's transaction is all or nothing. SQLite spells it
``RAISE(ABORT, …)`` in a trigger body; PostgreSQL needs a PL/pgSQL function that
raises, and a trigger calling it. The condition is SQL over ``NEW`` (INSERT,
UPDATE) or ``OLD`` (DELETE), which both backends write alike.
"""
from __future__ import annotations


def refuse(store, name: str, event: str, table: str, condition: str, message: str) -> None:
    """Make every ``event`` (INSERT, UPDATE or DELETE) on ``table`` whose row meets ``condition`` fail
    with ``message``; the statement, and the transaction around it, then fail."""
    if store.kind == "sqlite":
        store.execute(f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {condition}"
                      f" BEGIN SELECT RAISE(ABORT, '{message}'); END")
        return
    row = "OLD" if event == "DELETE" else "NEW"
    store.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                  f" IF {condition} THEN RAISE EXCEPTION '{message}'; END IF; RETURN {row}; END $$")
    store.execute(f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")


def allow(store, name: str, table: str) -> None:
    """Remove what ``refuse(store, name, …, table, …)`` installed."""
    if store.kind == "sqlite":
        store.execute(f"DROP TRIGGER {name}")
        return
    store.execute(f"DROP TRIGGER {name} ON {table}")
    store.execute(f"DROP FUNCTION {name}()")
