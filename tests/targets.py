"""Database targets for tests that run on both backends: a second store beside ``db_target``, what a
target leaves on disk, and whether memtui's tables exist there, whichever backend it is."""
from __future__ import annotations

import contextlib
from pathlib import Path

from memtui.models import Store, StoreError
from memtui.models.db import is_url
from tests import postgres


@contextlib.contextmanager
def another_target(db_target: str, tmp_path: Path, name: str = "other"):
    """A second, empty target on the same backend as ``db_target`` (a new database on the server)."""
    if is_url(db_target):
        with postgres.fresh_database(name) as url:
            yield url
    else:
        yield str(tmp_path / f"{name}.db")


def files_beside(target) -> dict[str, bytes]:
    """The files in a SQLite target's folder, by name (to show a command changed none); {} for a server."""
    if is_url(str(target)):
        return {}
    return {p.name: p.read_bytes() for p in sorted(Path(target).parent.iterdir()) if p.is_file()}


def has_store(target) -> bool:
    """Whether memtui's tables exist at ``target``; looking creates nothing."""
    try:
        Store.open(target, create=False, migrate=False).close()
    except StoreError:
        return False
    return True


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` set: the test server trusts every local login, so any password works."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':', 1)[0]}:{password}@{host}"
