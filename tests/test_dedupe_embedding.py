"""The dedupe job with an embedding model (litellm's ``embedding()``, answering through its own
``mock_response``): a near-duplicate by words merges only when the embeddings agree too; the embedding
never merges what the words did not, and a failing embedding model merges nothing.
"""
from __future__ import annotations

import pytest

from memtui.engine import Engine
from memtui.engine.config import Config, LLMSettings
from tests.factories import add_long_term

pytestmark = pytest.mark.both_backends

RESTATED = ("Alice likes aisle seats on long flights", "Note: alice likes the aisle seats on long flights.")
# Other words: never merged by words, so never sent to the embedding model (whose vectors would be close).
LOOK_ALIKE = ("Carol prefers window seats on trains", "Carol prefers aisle seats on trains")


class Vectors(dict):
    """``embedding_options`` whose ``mock_response`` is the vector of the next text embedded: the client
    reads its options afresh for every call (``**options``), and the job embeds its texts sorted, one per
    call here, so the n-th read is the n-th text's vector. litellm's own mock then answers with it."""

    def __init__(self, by_text: dict[str, list[float]]):
        super().__init__(mock_response=None)
        self.vectors = [by_text[text] for text in sorted(by_text)]
        self.calls = 0

    def __iter__(self):  # not dict's own: ** then reads each value through __getitem__
        return iter(["mock_response"])

    def keys(self):
        return ["mock_response"]

    def __getitem__(self, key):
        vector = self.vectors[min(self.calls, len(self.vectors) - 1)]
        self.calls += 1
        return vector


def config(options: dict) -> Config:
    return Config(llm=LLMSettings(embedding_model="text-embedding-3-small", retries=0, embedding_options=options),
                  jobs={"dedupe": {"embedding_batch": 1}})  # litellm's mock answers one vector per call


def plant(store, clock, *pairs):
    """Each pair as two long-term memories of alice, the first one older (by id at the same time)."""
    return [(add_long_term(store, created=clock(), content=a), add_long_term(store, created=clock(), content=b))
            for a, b in pairs]


def retired(store) -> dict[int, int]:
    return dict(store.execute("SELECT id, superseded_by FROM long_term_memory WHERE superseded_by IS NOT NULL"))


def test_embeddings_that_agree_confirm_the_merge(store, clock):
    options = Vectors(dict.fromkeys(RESTATED, [0.6, 0.8]))
    [(older, newer)] = plant(store, clock, RESTATED)
    run = Engine(store, config(options), clock).run_job("dedupe")
    assert run.status == "success", run.error
    assert (run.result["merged"], run.result["embedded"], options.calls) == (1, 2, 2)
    assert retired(store) == {newer: older}
    reason = store.execute("SELECT reason FROM memory_history WHERE memory_id = ?", (newer,)).fetchone()[0]
    assert "cosine 1.00" in reason


def test_embeddings_that_disagree_hold_the_merge_back(store, clock):
    options = Vectors({RESTATED[0]: [1.0, 0.0], RESTATED[1]: [0.0, 1.0]})  # cosine 0
    plant(store, clock, RESTATED)
    run = Engine(store, config(options), clock).run_job("dedupe")
    assert run.status == "success", run.error
    assert run.result["merged"] == 0 and run.result["held_by_embedding"] == 1
    assert retired(store) == {}


def test_the_embedding_never_merges_what_the_words_did_not(store, clock):
    options = Vectors(dict.fromkeys(LOOK_ALIKE, [0.6, 0.8]))
    plant(store, clock, LOOK_ALIKE)
    run = Engine(store, config(options), clock).run_job("dedupe")
    assert run.status == "success" and run.result["merged"] == 0
    assert options.calls == 0 and retired(store) == {}


def test_a_failing_embedding_model_merges_nothing_and_says_so(store, clock):
    plant(store, clock, RESTATED)
    options = {"mock_response": "litellm.AuthenticationError: bad key sk-secret123456789"}
    run = Engine(store, config(options), clock).run_job("dedupe")
    assert run.status == "success", run.error
    assert run.result["merged"] == 0 and "embedding_error" in run.result
    assert "sk-secret123456789" not in str(run.result)
    assert retired(store) == {}
