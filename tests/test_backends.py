"""SQLite and PostgreSQL hold the same store: the migrations build the same schema on both, the checks
reject the same rows, ``memtui_fold`` and ``memtui_contains`` answer alike; the PostgreSQL tests skip on
a developer's machine without a server but fail in CI (tests/postgres.py, .ci/run); and the test extra
installs the PostgreSQL driver.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
import unicodedata
from pathlib import Path

import pytest
from peewee import IntegrityError, fn

from memtui.models import Store, schema
from memtui.models.text import WORD_SEPARATOR, fold
from tests import catalog, postgres

ROOT = Path(__file__).resolve().parent.parent

# The flag columns: BOOLEAN on PostgreSQL, INTEGER 0/1 on SQLite, BooleanField in the models.
FLAGS = {(model._meta.table_name, f.column_name) for model in schema.ALL_MODELS
         for f in model._meta.sorted_fields if f.field_type == "BOOL"}
# What each backend's types mean; a flag column is the one place where INTEGER means boolean.
TYPE_FAMILY = {"INTEGER": "integer", "BIGINT": "integer", "REAL": "float", "DOUBLE PRECISION": "float",
               "TEXT": "text", "BOOLEAN": "flag"}


def family(table: str, column: catalog.Column) -> str:
    kind = TYPE_FAMILY.get(column.type, column.type)
    return "flag" if kind == "integer" and (table, column.name) in FLAGS else kind


@pytest.fixture
def sqlite_store(tmp_path):
    store = Store.open(tmp_path / "memtui.db")
    yield store
    store.close()


@pytest.fixture
def pg_store(pg_url):
    store = Store.open(pg_url)
    yield store
    store.close()


# -- the same schema -------------------------------------------------------------------------------

def test_the_migrations_build_the_same_tables_on_both_backends(sqlite_store, pg_store):
    lite, pg = catalog.tables(sqlite_store), catalog.tables(pg_store)
    assert sorted(lite) == sorted(pg)
    assert set(lite) == {model._meta.table_name for model in schema.ALL_MODELS}
    differences = []
    for name in sorted(lite):
        a, b = lite[name], pg[name]
        if [c.name for c in a.columns] != [c.name for c in b.columns]:  # in the same order, too
            differences.append((name, "columns", [c.name for c in a.columns], [c.name for c in b.columns]))
            continue
        for x, y in zip(a.columns, b.columns):
            for what, left, right in (("type", family(name, x), family(name, y)), ("not null", x.notnull, y.notnull),
                                      ("default", x.default, y.default), ("identity", x.identity, y.identity)):
                if left != right:
                    differences.append((name, x.name, what, left, right))
        for what in ("primary_key", "uniques", "indexes", "checks", "foreign_keys"):
            if getattr(a, what) != getattr(b, what):
                differences.append((name, what, getattr(a, what), getattr(b, what)))
    assert differences == []


def test_every_flag_column_is_boolean_on_postgresql_and_0_or_1_on_sqlite(sqlite_store, pg_store):
    assert len(FLAGS) >= 12
    lite, pg = catalog.tables(sqlite_store), catalog.tables(pg_store)
    for table, column in FLAGS:
        assert lite[table].column(column).type == "INTEGER"
        assert pg[table].column(column).type == "BOOLEAN"
        assert lite[table].column(column).default == pg[table].column(column).default in (0.0, 1.0)


def test_the_comparison_sees_what_it_compares(sqlite_store, pg_store):
    # A schema comparison that read nothing would pass; these are known facts of migrations 0001-0003.
    for tables in (catalog.tables(sqlite_store), catalog.tables(pg_store)):
        assert tables["job_definition"].column("config").default == "{}"
        assert tables["pending_memory"].column("kind").default == "note"
        assert tables["pending_memory"].column("importance").default == 5.0
        assert tables["job_definition"].column("enabled").default == 1.0
        assert tables["conversation"].column("channel").default == ""
        assert tables["fact"].uniques == {("sender", "key")}
        assert tables["long_term_memory"].uniques == {("source_pending_id",)}
        assert tables["run"].indexes["run_job_id"] == (("job", "id"), False)
        assert tables["engine_instance"].indexes == {"engine_instance_heartbeat": (("heartbeat_at",), False)}
        assert tables["message"].foreign_keys == {(("conversation_id",), "conversation", ("id",), "CASCADE")}
        assert tables["job_state"].primary_key == ("name",)
        assert tables["run"].checks == 2
        assert tables["run"].column("duration_ms").type in ("REAL", "DOUBLE PRECISION")  # 0002's change


# One row each CHECK constraint must refuse, beside a row it lets in (so the refusal is the checked value's).
CHECKED = [
    ("conversation", {"sender": "a", "status": "active", "started_at": 0, "updated_at": 0}, "status", "bogus"),
    ("pending_memory", {"content": "c", "importance": 5, "confidence": 0.5, "access_count": 0, "created_at": 0},
     "importance", 11),
    ("pending_memory", {"content": "c", "importance": 5, "confidence": 0.5, "access_count": 0, "created_at": 0},
     "confidence", 1.5),
    ("pending_memory", {"content": "c", "importance": 5, "confidence": 0.5, "access_count": 0, "created_at": 0},
     "access_count", -1),
    ("long_term_memory", {"content": "c", "importance": 10, "created_at": 0, "last_reinforced_at": 0},
     "importance", -0.5),
    ("summary", {"level": "day", "period_start": 0, "sender": "a", "text": "t", "source_count": 1, "model": "m",
                 "created_at": 0}, "level", "year"),
    ("job_definition", {"name": "j", "kind": "promote", "schedule": "1s", "jitter_s": 0, "created_at": 0,
                        "updated_at": 0}, "jitter_s", -1),
    ("run", {"job": "j", "reason": "manual", "started_at": 0, "status": "success"}, "reason", "bogus"),
    ("run", {"job": "j", "reason": "catch-up", "started_at": 0, "status": "interrupted"}, "status", "bogus"),
    ("audit_log", {"at": 0, "action": "enable", "source": "api"}, "source", "bogus"),
    ("memory_history", {"memory_id": 1, "tier": "long_term", "action": "merge", "at": 0}, "tier", "bogus"),
    ("memory_history", {"memory_id": 1, "tier": "long_term", "action": "merge", "at": 0}, "action", "bogus"),
]


class _RolledBack(Exception):
    pass


def refusal(store, table: str, row: dict) -> str | None:
    """Why ``store`` refuses ``row`` (the error), or None when it takes it (then rolled back)."""
    columns = ", ".join(row)
    try:
        with store.atomic():
            store.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})",
                          tuple(row.values()))
            raise _RolledBack
    except _RolledBack:
        return None
    except IntegrityError as exc:
        return str(exc)


def test_each_check_constraint_refuses_the_same_row_on_both_backends(sqlite_store, pg_store):
    wrong = []
    for store in (sqlite_store, pg_store):
        for table, good, column, bad in CHECKED:
            if (why := refusal(store, table, good)) is not None:
                wrong.append((store.kind, table, "refused the good row", why))
            why = refusal(store, table, {**good, column: bad})
            if why is None:
                wrong.append((store.kind, table, f"took {column} = {bad!r}"))
            elif "check" not in why.lower() or column not in why:  # that check, not another error
                wrong.append((store.kind, table, column, why))
    assert wrong == []


def test_the_check_cases_cover_every_check_constraint(sqlite_store, pg_store):
    covered: dict[str, int] = {}
    for table, *_ in CHECKED:
        covered[table] = covered.get(table, 0) + 1
    for store in (sqlite_store, pg_store):
        counted = {name: t.checks for name, t in catalog.tables(store).items() if t.checks}
        assert counted == covered, store.kind


# -- the same folding ------------------------------------------------------------------------------

FOLDED_WORDS = [
    # French
    "Élève", "FRANÇAIS", "garçon", "Cœur", "ŒUVRE", "naïve", "Noël",
    # German: ß and its capital, umlauts
    "Straße", "STRASSE", "GROẞ", "Größe", "Übermäßig", "ÖBB", "Ärger",
    # Turkish: dotted capital I, dotless small i
    "İstanbul", "DİYARBAKIR", "Işık", "ısı", "IĞDIR",
    # Cyrillic: ё, й (the breve is an accent here too, as in models/text.py)
    "Ёлка", "ёжик", "Йогурт", "йод", "ЧАЙКОВСКИЙ",
    # Greek: final sigma, tonos, dialytika, iota subscript (kept as ι)
    "ΣΩΚΡΑΤΗΣ", "Σωκράτης", "ὈΔΥΣΣΕΎΣ", "Άλφα", "ΐ", "ᾠδή", "ᾼ", "ᾳ",
    # Polish, Danish, and other letters whose stroke is part of them
    "Łódź", "ŁUKASZ", "Żółć", "Søren", "Æble", "ÆØÅ", "Þór", "Ðað",
    # other scripts, whose marks make a different letter and must stay
    "がぎぐげご", "ガギグ", "パン", "हिन्दी", "किताब", "ภาษาไทย",
    # compatibility forms, some of them capitals only once decomposed; ASCII; nothing
    "ﬁnance", "Ⅻ", "ǅ", "ℂ", "№", "™", "ϒ", "ℿ", "Ｆｕｌｌ", "Hello World 42", "",
]


@pytest.mark.parametrize("locale", ["default", "lc_ctype_c"])
def test_memtui_fold_on_postgresql_is_models_text_fold(locale):
    # A database created with LC_CTYPE C lower-cases ASCII only; 0003 makes memtui_fold name a collation that
    # knows every script's capitals there.
    options = "" if locale == "default" else "TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
    with postgres.fresh_database(f"fold_{locale}", options) as url:
        store = Store.open(url)
        try:
            folded = {word: store.execute("SELECT memtui_fold(?)", (word,)).fetchone()[0] for word in FOLDED_WORDS}
            assert store.execute("SELECT memtui_fold(NULL)").fetchone()[0] is None
        finally:
            store.close()
    assert {w: f for w, f in folded.items() if f != fold(w)} == {}
    for word in ("がぎぐげご", "パン", "हिन्दी", "किताब"):  # their marks stay: が is not か
        assert unicodedata.normalize("NFC", folded[word]) == word
    assert folded["ΣΩΚΡΑΤΗΣ"] == folded["Σωκράτης"] == "σωκρατησ"
    assert folded["ᾠδή"] == "ωιδη" and folded["Łódź"] == "lodz" and folded["GROẞ"] == "gross"


CONTAINS_CASES = [
    ("Émile likes trains", ["emile"]),
    ("Émile likes trains", ["emile", "train"]),
    ("Émile likes trains", ["emile", "planes"]),
    ("ΣΩΚΡΑΤΗΣ", ["σωκρατησ"]),
    ("Straße", ["strasse"]),
    ("anything", []),  # no words: every one of them is there
    ("anything", [""]),
    (None, ["a"]),
    (None, []),
]


def test_memtui_contains_answers_alike_on_both_backends(sqlite_store, pg_store):
    for text, words in CONTAINS_CASES:
        answers = [bool(store.execute("SELECT memtui_contains(?, ?)", (text, WORD_SEPARATOR.join(words)))
                        .fetchone()[0]) for store in (sqlite_store, pg_store)]
        assert answers[0] == answers[1], (text, words, answers)


def test_contains_words_finds_the_same_rows_on_both_backends(sqlite_store, pg_store):
    contents = ["Émile likes trains", "emile LIKES planes", "Straße in Łódź", "ΣΩΚΡΑΤΗΣ", "がっこう"]
    found = []
    for store in (sqlite_store, pg_store):
        Pending = store.m.PendingMemory
        with store.atomic():
            for content in contents:
                Pending.insert(content=content, created_at=0).execute()
        found.append([[row.content for row in Pending.select().where(store.contains_words(Pending.content, words))
                       .order_by(Pending.id)]
                      for words in (["emile"], ["likes", "trains"], ["strasse", "lodz"], ["σωκρατησ"], ["かっこう"],
                                    [fold("ΣΩΚΡΆΤΗΣ")])])
        assert store.execute("SELECT count(*) FROM pending_memory WHERE memtui_fold(content) = ?",
                             (fold("ÉMILE LIKES TRAINS"),)).fetchone()[0] == 1
        assert Pending.select(fn.memtui_fold(Pending.content)).where(Pending.id == 1).scalar() == "emile likes trains"
    assert found[0] == found[1]
    assert found[0][:2] == [["Émile likes trains", "emile LIKES planes"], ["Émile likes trains"]]
    assert found[0][4] == []  # が is not か


# -- skip on a developer's machine, fail in CI ------------------------------------------------------

@pytest.fixture
def closed_port():
    """A local port that refuses connections: bound (so nothing else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


TINY_MODULE = """
import pytest

pytestmark = pytest.mark.both_backends


def test_a_setting_round_trips(store):
    store.set_setting("k", "v")
    assert store.setting("k") == "v"
"""
TINY_CONFTEST = "from tests.conftest import db_target, pytest_configure, pytest_generate_tests, store  # noqa\n"


def run_tiny_module(tmp_path, server: str, **env) -> subprocess.CompletedProcess:
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "conftest.py").write_text(TINY_CONFTEST)
    (tmp_path / "tiny" / "test_tiny.py").write_text(TINY_MODULE)
    environment = {key: value for key, value in os.environ.items() if key != "MEMTUI_TEST_POSTGRES"}
    environment.update(PYTHONPATH=str(ROOT), MEMTUI_TEST_PG=server, **env)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "-q",
                           str(tmp_path / "tiny")], env=environment, cwd=tmp_path / "tiny", capture_output=True,
                          text=True, timeout=120)


def test_without_a_server_the_postgresql_cases_skip_and_say_why(tmp_path, closed_port):
    result = run_tiny_module(tmp_path, f"postgresql://postgres:s3cret@127.0.0.1:{closed_port}/postgres")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout  # the SQLite case ran
    assert f"no PostgreSQL server at postgresql://postgres:***@127.0.0.1:{closed_port}/postgres" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr


def test_where_postgresql_is_required_a_missing_server_fails(tmp_path, closed_port):
    result = run_tiny_module(tmp_path, f"postgresql://postgres@127.0.0.1:{closed_port}/postgres",
                             MEMTUI_TEST_POSTGRES="require")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped" not in result.stdout
    assert "PostgreSQL is required here (MEMTUI_TEST_POSTGRES=require)" in result.stdout


def test_ci_fails_at_once_when_the_server_is_unreachable(tmp_path, closed_port):
    # A copy of .ci/run in an empty tree: it must stop before it replaces the venv or runs anything.
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text((ROOT / ".ci" / "run").read_text())
    (tmp_path / ".venv").mkdir()
    env = {**os.environ, "CI": "true", "MEMTUI_TEST_PG": f"postgresql://postgres:s3cret@127.0.0.1:{closed_port}/x"}
    result = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert f"no PostgreSQL server accepting connections at postgresql://postgres:***@127.0.0.1:{closed_port}/x" \
        in result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert (tmp_path / ".venv").is_dir()


def test_ci_requires_postgresql_before_the_readme_test_command():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    require = lines.index("export MEMTUI_TEST_POSTGRES=require")
    (command,) = [i for i, line in enumerate(lines) if "pip install '.[test]' && pytest" in line]
    assert require < command


def test_the_test_extra_installs_the_postgres_extra():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["postgres"] == ["psycopg[binary]>=3.1"]
    assert set(extras["postgres"]) <= set(extras["test"])
