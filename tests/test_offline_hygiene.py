"""Memory that stays clean without a model (issue 12): the extractive summarizer picks no two sentences
that say the same thing and leaves out acknowledgements that only restate the user; the profile rules
keep the better-formed of two spellings of a value and canonical keys (email, timezone, name).

Offline and deterministic: the demo sample is filled at the conftest clock, and no model is configured.
"""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timezone

import pytest

from memtui.engine import demo
from memtui.engine.jobs.profile import (Attribute, ProfileConfig, canonical_key, plan_by_rules, validate,
                                        well_formed)
from memtui.engine.summarize import acknowledged, sentences, summarize

UTC = timezone.utc
RUNS = "About health: bob runs three times a week."
RUNS_ACK = "Noted — I'll remember that bob runs three times a week."


# -- the summarizer: acknowledgements ---------------------------------------------------------

def test_the_issue_example_an_acknowledgement_restating_the_user_is_left_out():
    texts = [RUNS, RUNS_ACK, "About health: bob training for a half marathon.",
             "Noted — I'll remember that bob sleeps badly before deadlines."]
    text = summarize(texts, max_sentences=3)
    assert text == ("About health: bob runs three times a week. About health: bob training for a half marathon. "
                    "Noted — I'll remember that bob sleeps badly before deadlines.")
    assert text.count("three times a week") == 1


def test_an_acknowledgement_before_what_it_restates_is_left_out_too():
    assert summarize([RUNS_ACK, RUNS], max_sentences=3) == RUNS


@pytest.mark.parametrize("ack", [
    "Noted — I'll remember that bob runs three times a week.",
    "Got it, bob runs 3 times a week.",
    "OK: Bob runs three times a week!",
    "Okay — bob RUNS three times a week.",
    "Sure, bob runs three times a week.",
    "Understood: Bob runs three times a week.",
    "I'll remember that bob runs three times a week.",
    "I will remember bob runs three times a week.",
    "I've noted that Bob runs three times a week.",
    "Will do — bob runs three times a week.",
    "Thanks, bob runs three times a week.",
    "Thanks for letting me know: bob runs three times a week.",
    "Great, thanks — bob runs three times a week.",
])
def test_every_acknowledgement_opener_is_recognized(ack):
    assert summarize(["Bob runs three times a week, mostly before work.", ack], max_sentences=5) == \
        "Bob runs three times a week, mostly before work."


@pytest.mark.parametrize("sentence", ["Sure enough, the build failed.", "Great news: the build passed.",
                                      "OK so the build passed.", "Thanksgiving is on Thursday.",
                                      "Notes from the meeting are attached."])
def test_a_sentence_that_only_starts_like_an_acknowledgement_is_not_one(sentence):
    assert acknowledged(sentence) is None


def test_what_an_acknowledgement_says_is_what_follows_its_openers():
    assert acknowledged(RUNS_ACK) == "bob runs three times a week."
    assert acknowledged("Got it, thanks!") == ""
    assert acknowledged("I’ve noted that Bob’s cat is Miso.") == "Bob's cat is Miso."  # typographic apostrophes


def test_an_acknowledgement_with_something_new_is_kept_as_written():
    texts = [RUNS, "Noted — I'll remember that bob is allergic to peanuts."]
    assert summarize(texts, max_sentences=3) == " ".join(texts)  # opener and all: quoted, never reworded


@pytest.mark.parametrize("ack", [
    "Got it, bob does not run three times a week.",   # a negation
    "Got it, bob never runs three times a week.",
    "Noted — bob runs four times a week.",             # another number
    "Noted — alice runs three times a week.",          # another name
    "Noted — bob runs three times a week, in Lisbon, before work.",  # more words: something new
])
def test_an_acknowledgement_that_differs_in_meaning_is_kept(ack):
    assert summarize(["Bob runs three times a week.", ack], max_sentences=3) == f"Bob runs three times a week. {ack}"


def test_an_acknowledgement_saying_more_than_the_user_stands_for_both():
    ack = "Noted — bob runs three times a week in Lisbon."  # the user's sentence is a near duplicate of it
    assert summarize(["Bob runs three times a week.", ack], max_sentences=3) == ack


def test_a_bare_acknowledgement_is_left_out_but_not_when_it_is_all_there_is():
    assert summarize(["Thanks!", "The deploy moved to Friday.", "OK."], max_sentences=3) == \
        "The deploy moved to Friday."
    assert summarize(["Thanks!"], max_sentences=3) == "Thanks!"


def test_two_acknowledgements_of_the_same_new_thing_count_once():
    texts = ["Noted — I'll remember that bob is allergic to peanuts.", "Got it: Bob is allergic to peanuts.",
             "About food: bob is vegetarian."]
    assert summarize(texts, max_sentences=3) == \
        "Noted — I'll remember that bob is allergic to peanuts. About food: bob is vegetarian."


# -- the summarizer: near duplicates -----------------------------------------------------------

def test_the_same_content_words_in_another_order_case_or_punctuation_count_once():
    texts = ["The deploy freeze starts on Friday.", "On Friday, the DEPLOY freeze starts!",
             "Starts friday: the deploy freeze", "Alice owns the roadmap."]
    assert summarize(texts, max_sentences=4) == "The deploy freeze starts on Friday. Alice owns the roadmap."


def test_of_a_sentence_and_a_fuller_one_the_fuller_one_stays():
    texts = ["Bob runs three times a week.", "Alice owns the roadmap.", RUNS]
    assert summarize(texts, max_sentences=3) == f"Alice owns the roadmap. {RUNS}"


def test_number_words_and_digits_are_one_number():
    assert summarize(["Bob runs 3 times a week.", "bob runs three times a week!"], max_sentences=3) == \
        "Bob runs 3 times a week."


@pytest.mark.parametrize("other", [
    "Bob does not run three times a week.", "Bob doesn't run three times a week.",  # a negation
    "Bob never runs three times a week.",
    "Bob runs four times a week.", "Bob runs 4 times a week.",                      # another number
    "Alice runs three times a week.",                                                # another name
])
def test_sentences_that_differ_in_meaning_are_not_duplicates(other):
    assert summarize(["Bob runs three times a week.", other], max_sentences=3) == \
        f"Bob runs three times a week. {other}"


def test_a_subset_covering_little_of_the_other_sentence_is_not_a_duplicate():
    texts = ["Alice likes tea.", "Alice likes tea with lemon and honey on Sundays."]
    assert summarize(texts, max_sentences=3) == " ".join(texts)


def test_sentences_without_content_words_are_duplicates_only_of_the_same_text():
    assert summarize(["It is what it is.", "So it was.", "it is what it is"], max_sentences=3) == \
        "It is what it is. So it was."


def test_words_of_any_script_are_compared():
    texts = ["Alice wohnt in München.", "Alice wohnt in Köln.", "alice WOHNT in münchen"]
    assert summarize(texts, max_sentences=3) == "Alice wohnt in München. Alice wohnt in Köln."


def test_the_summarizer_stays_deterministic_within_its_limits():
    texts = [RUNS, RUNS_ACK, "Noted — I'll remember that bob is allergic to peanuts.",
             "Got it: Bob is allergic to peanuts.", "The deploy freeze starts on Friday.",
             "On Friday, the deploy freeze starts!"] * 3
    first = summarize(texts, max_sentences=5, max_chars=200)
    assert all(summarize(list(texts), max_sentences=5, max_chars=200) == first for _ in range(5))
    assert len(first) <= 200 and len(sentences(first)) <= 5


# -- the summarizer through rollup-day, on the demo sample --------------------------------------

def _day_sources(store) -> dict[tuple[str, str], list[str]]:
    sources = defaultdict(list)
    for sender, created_at, content in store.execute(
            "SELECT sender, created_at, content FROM message ORDER BY created_at, id").fetchall():
        sources[(datetime.fromtimestamp(created_at, UTC).date().isoformat(), sender)].append(content)
    return sources


def test_demo_day_summaries_repeat_nothing_and_echo_no_acknowledgement(make_engine, store, clock):
    demo.fill(store, clock())
    run = make_engine().run_job("rollup-day")
    assert run.status == "success", run.error
    assert run.result["path"] == "extractive" and run.result["summaries_written"] > 100
    sources = _day_sources(store)
    summaries = {(datetime.fromtimestamp(start, UTC).date().isoformat(), sender): text
                 for start, sender, text in store.execute(
                     "SELECT period_start, sender, text FROM summary WHERE level = 'day'").fetchall()}

    # The issue's example: bob's 28 April said it, and the assistant said it back.
    day = sources[("2026-04-28", "bob")]
    assert RUNS in day and RUNS_ACK in day
    assert summaries[("2026-04-28", "bob")] == (
        "About health: bob runs three times a week. Noted — I'll remember that bob sleeps badly before deadlines. "
        "About health: bob training for a half marathon.")

    for (date, sender), text in summaries.items():
        # the demo says "About <topic>: <fact>." and acknowledges "Noted — I'll remember that <fact>."
        facts = [acknowledged(s) or s.split(": ", 1)[1] for s in sentences(text)]
        assert len(facts) == len(set(facts)), (date, sender, text)
        for sentence in sentences(text):
            fact = acknowledged(sentence)
            if fact is not None:  # kept only when nobody said it in so many words that day
                said = [m for m in sources[(date, sender)] if m.endswith(": " + fact)]
                assert not said, (date, sender, text)


# -- the profile rules: canonical keys ------------------------------------------------------------

@pytest.mark.parametrize("key, canonical", [
    ("email", "email"), ("Email", "email"), ("e-mail", "email"), ("E-Mail", "email"), ("e mail", "email"),
    ("mail", "email"), ("email address", "email"), ("Email_Address", "email"),
    ("timezone", "timezone"), ("time zone", "timezone"), ("time-zone", "timezone"), ("TZ", "timezone"),
    ("name", "name"), ("Name", "name"), ("full name", "name"), ("full_name", "name"), (" Full  Name ", "name"),
    ("phone number", "phone"), ("telephone", "phone"), ("date of birth", "birthday"), ("DOB", "birthday"),
    ("current city", "city"),
    ("first name", None), ("mobile", None), ("postal address", None), ("home town", None), ("nickname", None),
])
def test_canonical_keys(key, canonical):
    assert canonical_key(key) == canonical


def attributes(*rows) -> dict[str, Attribute]:
    """(key, value, days ago) rows as a planner gets them: stand-ins a1, a2, … in id order."""
    now = datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp()
    return {f"a{i}": Attribute(i, "other", key, value, 0.5, now - days * 86400)
            for i, (key, value, days) in enumerate(rows, start=1)}


def planned(*rows) -> list[dict]:
    attrs, cfg = attributes(*rows), ProfileConfig()
    plan = plan_by_rules(attrs, cfg)
    validate(json.dumps(plan), attrs, cfg)  # what the job does with it: it must pass
    return plan


def test_spellings_of_one_key_are_one_attribute_under_the_canonical_key():
    assert planned(("email", "bob@example.com", 70), ("e-mail", "bob@example.com ", 15), ("role", "SRE", 1)) == [
        {"op": "merge", "ids": ["a2", "a1"], "value": "bob@example.com", "key": "email"},
        {"op": "keep", "id": "a3"}]
    assert planned(("timezone", "Europe/Lisbon", 45), ("Time Zone", "Europe/Lisbon", 5), ("x", "y", 1))[0] == \
        {"op": "merge", "ids": ["a2", "a1"], "value": "Europe/Lisbon", "key": "timezone"}


def test_a_lone_variant_is_renamed_to_the_canonical_key_and_other_keys_are_cleaned_as_before():
    assert planned(("E-Mail", "bob@example.com", 3), ("Home  Town", "Porto", 2)) == [
        {"op": "update", "id": "a1", "value": "bob@example.com", "key": "email"},
        {"op": "update", "id": "a2", "value": "Porto", "key": "home town"}]


def test_different_values_under_spellings_of_one_key_are_a_conflict_the_newest_wins():
    assert planned(("mail", "bob@old.example", 30), ("email address", "bob@new.example", 2), ("x", "y", 1))[:2] == [
        {"op": "update", "id": "a2", "value": "bob@new.example", "key": "email"},
        {"op": "delete", "id": "a1", "reason": "contradicted by newer a2"}]


# -- the profile rules: the better-formed value ------------------------------------------------------

@pytest.mark.parametrize("older, newer, merged", [
    ("Alice Moreau", "alice moreau", "Alice Moreau"),     # the demo's: capitals where they belong
    ("alice moreau", "Alice Moreau", "Alice Moreau"),
    ("ALICE MOREAU", "alice moreau", "alice moreau"),     # shouting is worst
    ("Alice  Moreau", "ALICE MOREAU", "Alice Moreau"),     # and the spacing is cleaned either way
    ("Alice Moreau", "Alice Moreau.", "Alice Moreau"),     # no stray punctuation at the end
    ("Lisbon , Portugal", "Lisbon, Portugal", "Lisbon, Portugal"),
    ("Lisbon, Portugal", "Lisbon , Portugal", "Lisbon, Portugal"),
    ("bob@example.com", "Bob@Example.COM", "bob@example.com"),  # an address is best lower-case
    ("sre", "SRE", "SRE"),                                 # an acronym is not shouting
    ("GitHub", "Github", "Github"),                        # both well-formed: the newest, as before
    ("Lisbon, Portugal", "Lisbon Portugal", "Lisbon Portugal"),
])
def test_of_values_differing_only_in_case_spacing_or_punctuation_the_better_formed_is_kept(older, newer, merged):
    assert planned(("name", older, 20), ("name", newer, 2), ("x", "y", 1))[0] == \
        {"op": "merge", "ids": ["a2", "a1"], "value": merged, "key": "name"}


def test_a_near_duplicate_that_is_spelled_differently_is_still_merged_into_the_newest():
    # 'Lisbon Portugal' / 'Lisbon Portugall' are near (the rules' near_duplicate) but not the same
    # letters: the newest stays, even if the older one is better formed.
    assert planned(("home", "Lisbon Portugal", 20), ("home", "lisbon portugall", 2), ("x", "y", 1))[0] == \
        {"op": "merge", "ids": ["a2", "a1"], "value": "lisbon portugall", "key": "home"}


def test_a_conflict_still_goes_to_the_newest_however_it_is_spelled():
    assert planned(("city", "Berlin", 20), ("city", "munich", 2), ("x", "y", 1))[:2] == [
        {"op": "keep", "id": "a2"}, {"op": "delete", "id": "a1", "reason": "contradicted by newer a2"}]


def test_the_rules_plan_is_deterministic():
    rows = (("Name", "alice moreau", 20), ("full name", "Alice Moreau", 20), ("e-mail", "A@B.example", 3),
            ("email", "a@b.example", 3), ("city", "Berlin", 2))
    assert all(planned(*rows) == planned(*rows) for _ in range(5))
    # same time: the tie between equally formed values goes to the later-written row, as before
    assert planned(("brand", "GitHub", 5), ("brand", "Github", 5), ("x", "y", 1))[0]["value"] == "Github"


def test_well_formed_orders_spellings():
    assert well_formed("Alice Moreau") > well_formed("alice moreau") > well_formed("ALICE MOREAU")
    assert well_formed("Alice Moreau") > well_formed("Alice Moreau.") > well_formed("alice moreau.")
    assert well_formed("Alice Moreau") > well_formed("Alice  Moreau")
    assert well_formed("bob@example.com") > well_formed("Bob@example.com")


# -- the profile rules through the job -----------------------------------------------------------

def add_attr(store, entity, key, value, *, days_ago, category="other") -> int:
    when = datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp() - days_ago * 86400
    return store.execute(
        "INSERT INTO profile_attribute (entity, category, key, value, confidence, source, updated_at, demo)"
        " VALUES (?, ?, ?, ?, 0.5, 'agent', ?, ?) RETURNING id", (entity, category, key, value, when, False)
    ).fetchone()[0]


def test_the_rules_keep_the_better_spelling_and_the_canonical_key_when_they_run(engine, store):
    old_name = add_attr(store, "alice", "Name", "Alice  Smith", days_ago=30)
    new_name = add_attr(store, "alice", " full name", "alice smith.", days_ago=3)
    old_home = add_attr(store, "alice", "home_town", "Lisbon, Portugal", days_ago=20)
    new_home = add_attr(store, "alice", "Home Town", "Lisbon Portugal", days_ago=2)
    berlin = add_attr(store, "alice", "city", "Berlin", days_ago=10)
    lisbon = add_attr(store, "alice", "City", "Lisbon", days_ago=1)
    pet = add_attr(store, "alice", "pet", "cat", days_ago=5)

    run = engine.run_job("profile")
    assert run.status == "success", run.error
    assert run.result["path"] == "rules"
    assert (run.result["merged"], run.result["deleted"], run.result["rejected"]) == (2, 1, 0)
    now = {r[0]: r[1:] for r in store.execute(
        "SELECT id, key, value FROM profile_attribute WHERE entity = 'alice'").fetchall()}
    assert now == {new_name: ("name", "Alice Smith"),       # not the newer 'alice smith.'
                   new_home: ("home town", "Lisbon Portugal"),  # equally well formed: the newest
                   lisbon: ("city", "Lisbon"),              # a conflict: the newest
                   pet: ("pet", "cat")}
    assert {old_name, old_home, berlin}.isdisjoint(now)


def test_the_demos_profile_dry_run(engine, store, clock):
    demo.fill(store, clock())
    ids = {(entity, key, value): id_ for id_, entity, key, value in store.execute(
        "SELECT id, entity, key, value FROM profile_attribute").fetchall()}

    def row(entity, key, value):
        return f"#{ids[(entity, key, value)]} {key}={value!r}"

    dry = engine.dry_run("profile")
    assert (dry["merged"], dry["deleted"], dry["updated"], dry["rejected"]) == (4, 2, 0, 0)
    assert dry["plan"] == {
        "alice": [
            f"delete {row('alice', 'city', 'Berlin')} (contradicted by newer {row('alice', 'city', 'Munich')})",
            f"merge {row('alice', 'Favorite Drink', 'Green tea')}, {row('alice', 'favorite drink', 'green tea')}"
            f" -> #{ids[('alice', 'Favorite Drink', 'Green tea')]} favorite drink='Green tea'",
            f"merge {row('alice', 'name', 'alice moreau')}, {row('alice', 'name', 'Alice Moreau')}"
            f" -> #{ids[('alice', 'name', 'alice moreau')]} name='Alice Moreau'",
        ],
        "bob": [
            f"delete {row('bob', 'diet', 'vegetarian')} (contradicted by newer {row('bob', 'diet', 'vegan')})",
            f"merge {row('bob', 'e-mail', 'bob@example.com ')}, {row('bob', 'email', 'bob@example.com')}"
            f" -> #{ids[('bob', 'e-mail', 'bob@example.com ')]} email='bob@example.com'",
        ],
        "carol": [
            f"merge {row('carol', 'time zone', 'Europe/Lisbon')}, {row('carol', 'timezone', 'Europe/Lisbon')}"
            f" -> #{ids[('carol', 'time zone', 'Europe/Lisbon')]} timezone='Europe/Lisbon'",
        ],
    }


def test_keys_in_any_script_are_told_apart():
    # Keys were grouped by their ASCII letters alone: two keys with none were one key, and one of
    # them was deleted as "contradicted" by the other.
    assert planned(("名前", "アリス", 3), ("都市", "東京", 2)) == [{"op": "keep", "id": "a1"}, {"op": "keep", "id": "a2"}]
    assert planned(("Straße", "Hauptstraße 1", 3), ("STRASSE", "Hauptstraße 1", 2))[0]["op"] == "merge"
