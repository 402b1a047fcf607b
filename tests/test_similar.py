"""engine/similar.py on its own: which restatements are duplicates, which look-alikes never are, and when
a newer memory corrects an older one — pure functions, no database."""
from __future__ import annotations

import pytest

from memtui.engine.similar import compare, related, stem, supersedes

RESTATED = [
    ("Jack goes to the library on Tuesday.", "Jack goes to the library on Tuesdays."),
    ("Hugo wants the Neon updates by email", "Hugo wants the Neon update by email."),
    ("Alice likes aisle seats on long flights", "FYI: alice likes the aisle seats on long flights"),
    ("Just so you know, Agnes likes rowing in Lagos.", "Agnes likes rowing in Lagos"),
    ("The box is in the attic", "The boxes are in the attic"),
]
LOOK_ALIKES = [
    ("Alice likes tea", "Alice does not like tea"),
    ("Alice's flight is at 9am", "Bob's flight is at 9am"),
    ("meeting on Tuesday", "meeting on Monday"),
    ("call me in the morning", "call me in the evening"),
    ("Alice owes Bob 20 dollars", "Bob owes Alice 20 dollars"),
    ("Alice prefers window seats", "Alice prefers aisle seats"),
    ("It is -5 degrees outside", "It is 5 degrees outside"),
]


@pytest.mark.parametrize("a, b", RESTATED)
def test_a_restatement_is_a_duplicate(a, b):
    assert compare(a, b).duplicate and compare(b, a).duplicate


@pytest.mark.parametrize("a, b", LOOK_ALIKES)
def test_a_look_alike_is_never_a_duplicate(a, b):
    assert not compare(a, b).duplicate and not compare(b, a).duplicate


def test_the_stemmer_folds_the_forms_of_one_word_alike():
    for forms in (("update", "updates", "updated"), ("seat", "seats"), ("box", "boxes"), ("city", "cities"),
                  ("move", "moved", "moving"), ("Tuesday", "Tuesdays")):
        assert len({stem(word.casefold()) for word in forms}) == 1, forms
    assert stem("glass") == "glass" and stem("bus") == "bus" and stem("9am") == "9am"


def test_a_correction_needs_a_cue_the_same_subject_and_the_same_person():
    older = "meeting with the design team at 2pm Friday"
    assert supersedes(older, "correction: the design team meeting moved to 3pm Friday")
    assert supersedes("the report is due Monday", "update: the report is due Tuesday")
    assert supersedes("Bob works at Acme", "Bob no longer works at Acme")
    assert supersedes(older, "the design team meeting is at 3pm Friday") is None  # no cue: the model's call
    assert supersedes("Alice lives in Paris", "Bob now lives in Paris") is None  # another person
    assert supersedes(older, "correction: lunch is at noon") is None  # another subject
    # a cue word the older memory says too is part of the subject, not a correction
    assert supersedes("Hugo wants the Neon updates on Wednesday", "Hugo wants the Neon update on Thursday") is None
    assert related(older, "the design team meeting is at 3pm Friday")
