"""Recall finds a memory whatever the case or accents of query and text (issue 16.4), and fold() is one
definition of "the same letters" for both sides."""
from __future__ import annotations

import unicodedata

import pytest

from memtui.engine import Engine
from memtui.engine.agent import Memory
from memtui.engine.config import Config
from memtui.models.text import fold

pytestmark = pytest.mark.both_backends

# Each group: spellings that must find one another, whichever one is stored and whichever is asked.
SAME_WORD = {
    "French": ("Émile", "emile", "EMILE"),
    "German umlaut": ("ÖBB", "öbb", "obb"),
    "German sharp s": ("Straße", "STRASSE", "strasse"),
    "Turkish dotted I": ("İstanbul", "istanbul", "ISTANBUL"),
    "Turkish dotless ı": ("Işık", "ışık", "IŞIK"),
    "Cyrillic": ("Алиса", "алиса", "АЛИСА"),
    "Greek final sigma": ("Σωκράτης", "σωκρατης", "ΣΩΚΡΑΤΗΣ"),
    "Greek iota subscript": ("ᾠδή", "ὨΙΔΗ", "ωιδη"),
}
# Near misses that must not be found: folding must not merge different words or scripts.
OTHER_WORD = {
    "French": "Emil Nolde", "German umlaut": "OBI market", "German sharp s": "Strase", "Turkish dotted I": "Ankara",
    "Turkish dotless ı": "Ishik", "Cyrillic": "Alisa", "Greek final sigma": "Sokrates", "Greek iota subscript": "ωδη",
}


@pytest.fixture
def memory(store, clock) -> Memory:
    return Memory(store, clock)  # the store fixture closes the database


@pytest.mark.parametrize("group", SAME_WORD)
def test_every_spelling_finds_every_other(memory, group):
    stored = {memory.remember(f"{spelling} was mentioned"): spelling for spelling in SAME_WORD[group]}
    memory.remember(f"{OTHER_WORD[group]} was mentioned")
    for query in SAME_WORD[group]:
        found = {hit.id for hit in memory.recall(query, reinforce=False)}
        assert found == set(stored), f"{query!r} found {[stored.get(i, i) for i in found]}"


def test_a_memory_recalls_by_its_own_exact_text_and_is_reinforced(memory, store, clock):
    kept = memory.remember("Émile prefers the window seat", keep=True)
    assert Engine(store, Config(), clock).run_job("promote").result["promoted"] == 1
    pending = memory.remember("Алиса любит чай")
    clock.advance(hours=1)
    hits = memory.recall("Émile prefers the window seat")
    assert [(h.content, h.tier) for h in hits] == [("Émile prefers the window seat", "long_term")]
    row = store.execute("SELECT recall_count, last_reinforced_at FROM long_term_memory WHERE source_pending_id = ?",
                        (kept,)).fetchone()
    assert row == (1, clock().timestamp())
    assert [h.id for h in memory.recall("Алиса любит чай")] == [pending]
    row = store.execute("SELECT access_count, last_access_at FROM pending_memory WHERE id = ?", (pending,)).fetchone()
    assert row == (1, clock().timestamp())


@pytest.mark.parametrize("query", ["Émile", "ÖBB", "Алиса", "ΣΩΚΡΑΤΗΣ"])
def test_a_capitalized_non_ascii_word_finds_itself(memory, query):
    # Issue 16.4's own cases: lower() in SQLite is ASCII-only, so these found nothing at all.
    mid = memory.remember(f"{query} takes the night train")
    assert [h.id for h in memory.recall(query, reinforce=False)] == [mid]


def test_text_stored_decomposed_is_found_by_the_composed_word_and_back(memory):
    nfd = memory.remember(unicodedata.normalize("NFD", "Zoë went to Köln"))
    nfc = memory.remember(unicodedata.normalize("NFC", "Zoë went to Köln"))
    for form in ("NFC", "NFD"):
        assert {h.id for h in memory.recall(unicodedata.normalize(form, "zoë köln"), reinforce=False)} == {nfd, nfc}


def test_the_sender_filter_and_every_word_still_apply(memory):
    alice = memory.remember("Émile prefers the window seat", sender="alice")
    memory.remember("Émile prefers the aisle", sender="bob")
    assert [h.id for h in memory.recall("EMILE WINDOW", sender="alice", reinforce=False)] == [alice]
    assert memory.recall("emile window", sender="bob", reinforce=False) == []
    assert memory.recall(" \u0301 ", reinforce=False) == []  # only a combining accent: no words at all


@pytest.mark.sqlite_only  # PostgreSQL refuses bytes in a text column: there is no such row to fold
def test_a_blob_written_by_plain_sql_does_not_break_recall(memory, store):
    mid = memory.remember("Émile's own note")
    store.execute("INSERT INTO pending_memory (content, created_at) VALUES (?, 0)", ("Émile in bytes".encode(),))
    store.execute("INSERT INTO pending_memory (content, created_at) VALUES (?, 0)", (b"\xff\xfe broken",))
    hits = memory.recall("emile", reinforce=False)
    assert mid in {h.id for h in hits} and len(hits) == 2


def test_a_hit_deleted_between_the_search_and_its_access_is_left_out(memory, store, clock):
    gone = memory.remember("Émile's old note")
    kept = memory.remember("Émile's new note")
    calls = []

    def racing_clock():  # recall reads the clock for each hit's access: promote expires one first
        if not calls:
            store.execute("DELETE FROM pending_memory WHERE id = ?", (gone,))
        calls.append(1)
        return clock()

    memory.clock = racing_clock
    assert [h.id for h in memory.recall("emile")] == [kept]


# -- fold() itself ------------------------------------------------------------------

def test_fold_examples():
    assert fold("Émile") == fold("EMILE") == "emile"
    assert fold("Straße") == fold("STRASSE") == "strasse"
    assert fold("İstanbul") == fold("ISTANBUL") == "istanbul"
    assert fold("Işık") == fold("IŞIK") == "isik"
    assert fold("ΣΩΚΡΑΤΗΣ") == fold("Σωκράτης") == "σωκρατησ"
    assert fold("ﬁle") == "file"
    assert fold(None) is None
    assert fold(b"\xc3\x89mile") == "emile" and fold(12) == "12"


# Latin, IPA, Greek, Cyrillic, Armenian, Latin Extended Additional, Greek Extended, letterlike, full-width.
SCRIPTS = [*range(0x0000, 0x0590), *range(0x1E00, 0x2000), *range(0x2100, 0x2150), *range(0xFF00, 0xFF60)]


def test_fold_is_the_same_for_every_case_of_a_letter_and_stable():
    for cp in SCRIPTS:
        ch = chr(cp)
        folded = fold(ch)
        assert fold(folded) == folded, f"U+{cp:04X}"
        for variant in (ch.upper(), ch.lower(), ch.title()):
            assert fold(variant) == folded, f"U+{cp:04X} {ch!r} vs {variant!r}: {folded!r} vs {fold(variant)!r}"


def test_fold_drops_accents_but_keeps_letters():
    assert fold("àáâãäåāăą") == "a" * 9
    assert fold("ΆΈΉΊΌΎΏ") == "αεηιουω"
    assert fold("ёй") == "еи"  # diacritics of Cyrillic letters too: a lenient search, never a missed one


def test_a_memory_decay_soft_deleted_is_found_after_live_ones_and_recall_restores_it(memory, store, clock):
    """README and decay.py: a soft-deleted memory is "still restorable by a recall"."""
    from datetime import timedelta

    from tests.factories import add_long_term

    now = clock()
    faded = add_long_term(store, created=now - timedelta(days=400), deleted=now - timedelta(days=2),
                          content="Émile's old address", importance=9)
    live = add_long_term(store, created=now - timedelta(days=1), content="Émile's new address", importance=1)
    peek = memory.recall("emile address", reinforce=False)
    assert [(h.id, h.decayed) for h in peek] == [(live, False), (faded, True)]
    assert store.execute("SELECT deleted_at FROM long_term_memory WHERE id = ?", (faded,)).fetchone()[0] is not None

    memory.recall("emile address")
    row = store.execute("SELECT deleted_at, recall_count FROM long_term_memory WHERE id = ?", (faded,)).fetchone()
    assert row == (None, 1)
    assert [h.decayed for h in memory.recall("emile address", reinforce=False)] == [False, False]


STROKES = [("Łódź", "Lodz"), ("Søren", "SOREN"), ("Æsir", "aesir"), ("Guðrún", "gudrun"), ("Œuvre", "oeuvre")]
OTHER_SCRIPTS = [("が", "か"), ("ぱ", "は"), ("क्ष", "कष"), ("ไก่", "ไก")]


@pytest.mark.parametrize("stored, asked", STROKES)
def test_letters_with_a_stroke_fold_to_their_plain_letter(stored, asked):
    assert fold(stored) == fold(asked)


@pytest.mark.parametrize("one, other", OTHER_SCRIPTS)
def test_marks_that_make_another_letter_in_other_scripts_are_kept(one, other):
    assert fold(one) != fold(other)


def test_recall_plains_stroke_letters_and_keeps_other_scripts_marks(memory):
    stroked = {memory.remember(f"{stored} again"): asked for stored, asked in STROKES}
    for mid, asked in stroked.items():
        assert [h.id for h in memory.recall(asked, reinforce=False)] == [mid], asked
    # The plain letter stored, the marked one asked: a search by substring, so the other way round
    # would find the marked word by its base letter.
    plain = {memory.remember(f"{other} mark"): one for one, other in OTHER_SCRIPTS}
    for mid, one in plain.items():
        assert mid not in {h.id for h in memory.recall(one, reinforce=False)}, one


def test_the_database_folds_stored_text_as_python_folds_the_query(store):
    """Recall compares fold(query) with memtui_fold(content): one definition on both sides. On SQLite
    memtui_fold is fold itself; on PostgreSQL it is migration 0003's SQL function, which must agree
    letter for letter, or a query would miss text whose letters fold another way in SQL."""
    differ = {}
    for cp in SCRIPTS:
        if cp == 0:  # PostgreSQL text cannot hold NUL
            continue
        in_sql = store.execute("SELECT memtui_fold(?)", (chr(cp),)).fetchone()[0]
        if in_sql != fold(chr(cp)):
            differ[f"U+{cp:04X} {chr(cp)}"] = (in_sql, fold(chr(cp)))
    assert differ == {}


# -- the order, tier by tier ---------------------------------------------------------

def test_equal_hits_come_most_recently_used_first_and_one_never_used_last(memory, clock):
    """The same text and importance rank the same: then the latest use decides, and a memory never used
    comes last on both backends (PostgreSQL would put its NULL first in a plain DESC)."""
    never = memory.remember("tea with lemon", sender="alice")
    used_early = memory.remember("tea with lemon", sender="bob")
    used_late = memory.remember("tea with lemon", sender="carol")
    clock.advance(hours=1)
    memory.record_access(used_early)
    clock.advance(hours=1)
    memory.record_access(used_late)
    assert [h.id for h in memory.recall("tea lemon", reinforce=False)] == [used_late, used_early, never]
    assert [h.id for h in memory.recall("tea lemon", limit=1, reinforce=False)] == [used_late]


def test_each_tiers_best_then_merged_are_the_best_of_both_and_the_view_ranks_the_same(store, clock):
    """recall ranks each tier by a query of its own, cut at ``limit``, and merges them; the memory view's
    search ranks the pending tier in a thread beside. Every cut of the whole ranking, either way, is its
    head: on a store of both tiers, with decayed and merged memories among them."""
    import random
    import threading
    from datetime import timedelta

    from tests.factories import add_long_term

    rng = random.Random(7)
    words = ["tea", "lemon", "train", "window", "seat", "paris", "coffee", "aisle"]
    memory, engine = Memory(store, clock), Engine(store, Config(), clock)
    now = clock()
    for i in range(120):
        text = " ".join(rng.sample(words, rng.randint(1, 4))) + f" note{i}"
        importance = round(rng.uniform(0, 10), 3)
        if i % 2:
            mid = memory.remember(text, sender=f"s{i}", importance=importance)
            if i % 3 == 0:
                memory.record_access(mid)
        else:
            deleted = now - timedelta(days=1) if i % 8 == 0 else None
            add_long_term(store, created=now - timedelta(days=i), importance=importance, content=text,
                          deleted=deleted)
    merged = store.execute("SELECT id FROM long_term_memory ORDER BY id LIMIT 3").fetchall()
    store.execute("UPDATE long_term_memory SET superseded_by = ? WHERE id IN (?, ?)",
                  (merged[0][0], merged[1][0], merged[2][0]))
    try:
        for query in ("tea", "lemon train", "seat", "coffee aisle", "note1"):
            for history in (False, True):
                whole = [(h.id, h.tier) for h in memory.recall(query, limit=500, reinforce=False, history=history)]
                assert whole, query
                tiers = {tier for _, tier in whole}
                assert len(tiers) == 2 or query == "note1", (query, tiers)
                for limit in (1, 2, 5, 17, len(whole)):
                    assert [(h.id, h.tier) for h in memory.recall(
                        query, limit=limit, reinforce=False, history=history)] == whole[:limit]
                    assert [(h.id, h.tier) for h in engine.search_memories(
                        query, limit, retired=history)] == whole[:limit]
        assert any(t.name.startswith("memtui-search-tier") for t in threading.enumerate())
    finally:
        engine.release_thread()
    for thread in threading.enumerate():  # the helper closed its connection and ended
        if thread.name.startswith("memtui-search-tier"):
            thread.join(timeout=5)
            assert not thread.is_alive()
