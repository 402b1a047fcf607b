"""Driving the real litellm code path offline, through litellm's own ``mock_response``.

Nothing of memtui is mocked: a test builds a ``Config`` whose ``[llm] options``
carry ``mock_response`` (litellm.completion then answers without a network),
and a ``ModelScript`` lets the answer change from one model call to the next
and records the messages litellm received. It does that with a litellm input
callback (a ``CustomLogger`` whose ``log_pre_api_call`` litellm runs at the start
of every call): the callback records the call and puts the *next* scripted
answer into the options dict, which ``LLMClient`` reads afresh on every
``complete`` (retries of one ``complete`` reuse the same answer).

litellm keeps callbacks in several global lists once it has seen them, so one
recorder is registered once per process (on ``litellm.input_callback``) and the
``model`` fixture points it at the test's script and detaches it afterwards.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from memtui.engine.config import Config, LLMSettings

MODEL = "gpt-4o-mini"
MOCK_KEYS = ("mock_response", "mock_timeout")

_recorder = None


def _as_options(step) -> dict:
    return dict(step) if isinstance(step, dict) and set(step) <= set(MOCK_KEYS) else {"mock_response": step}


class ModelScript:
    """The answers of successive model calls (the last one repeats) and the messages each call got."""

    def __init__(self, *steps, on_call: Callable[[list[dict]], None] | None = None):
        if not steps:
            raise ValueError("a script needs at least one answer")
        self.steps = list(steps)
        self.on_call = on_call
        self.options: dict[str, Any] = _as_options(self.steps[0])
        self.calls: list[list[dict]] = []
        self._first = 0  # index in calls of the call that gets steps[0]

    def then(self, *steps) -> "ModelScript":
        """From the next call on, answer with ``steps`` (the last one repeats)."""
        self.steps, self._first = list(steps), len(self.calls)
        for key in MOCK_KEYS:
            self.options.pop(key, None)
        self.options.update(_as_options(self.steps[0]))
        return self

    def config(self, *, jobs: dict | None = None, **settings) -> Config:
        values = {"model": MODEL, "retries": 0, "retry_backoff_s": 0.0, **settings}
        return Config(llm=LLMSettings(options=self.options, **values), jobs=jobs or {})

    def settings(self, **settings) -> LLMSettings:
        return self.config(**settings).llm

    # called by litellm at the start of every completion attempt
    def _called(self, messages: list[dict]) -> None:
        self.calls.append([dict(m) for m in messages])
        if self.on_call is not None:
            self.on_call(messages)
        nxt = self.steps[min(len(self.calls) - self._first, len(self.steps) - 1)]
        for key in MOCK_KEYS:
            self.options.pop(key, None)
        self.options.update(_as_options(nxt))

    @property
    def user_messages(self) -> list[str]:
        return [next(m["content"] for m in call if m["role"] == "user") for call in self.calls]

    @property
    def system_messages(self) -> list[str]:
        return [next(m["content"] for m in call if m["role"] == "system") for call in self.calls]

    def sent_data(self) -> list[dict]:
        """The JSON payloads (profile's user messages) the model was sent."""
        return [json.loads(text) for text in self.user_messages]


def _install():
    global _recorder
    if _recorder is not None:
        return _recorder
    from memtui.engine.llm import load_litellm

    litellm = load_litellm()
    from litellm.integrations.custom_logger import CustomLogger

    class Recorder(CustomLogger):
        script: ModelScript | None = None

        def log_pre_api_call(self, model, messages, kwargs):
            if self.script is not None:
                self.script._called(messages)

    _recorder = Recorder()
    litellm.input_callback.append(_recorder)
    return _recorder


@pytest.fixture
def model():
    """``model(*answers, on_call=None)`` -> a ModelScript attached to litellm for this test."""
    recorder = _install()

    def make(*steps, on_call=None) -> ModelScript:
        recorder.script = ModelScript(*steps, on_call=on_call)
        return recorder.script

    yield make
    recorder.script = None


def ops(*items: dict) -> str:
    """A model answer: ``{"operations": [...]}``."""
    return json.dumps({"operations": list(items)})


# A chat completion the provider cut off with its content filter (litellm builds a ModelResponse from it).
REFUSAL = {
    "id": "chatcmpl-mock", "object": "chat.completion", "created": 1780000000, "model": MODEL,
    "choices": [{"index": 0, "finish_reason": "content_filter", "message": {"role": "assistant", "content": None}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10},
}
