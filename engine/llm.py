"""Calling a language model through litellm: lazily imported, retried, budgeted, errors made readable.

litellm costs seconds and ~170 MB to import and fetches a cost map from the
network unless ``LITELLM_LOCAL_MODEL_COST_MAP`` is set, so it is imported on
the first real call only, with that set and its debug banners off. API keys
are litellm's business: it reads them from the environment; memtui never
stores, logs or passes them (see engine/redact.py for what reaches run rows).
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

from memtui.engine.config import LLMSettings
from memtui.engine.redact import redact

log = logging.getLogger("memtui.llm")
# Worth another try after a pause; anything else (auth, bad request, refusal) is final.
TRANSIENT = ("RateLimitError", "Timeout", "APIConnectionError", "InternalServerError", "ServiceUnavailableError")


class LLMError(Exception):
    """A model call that failed; the message is one readable line."""


class BudgetExhausted(LLMError):
    """The run's token budget is spent; the rest of the work waits for the next run."""


def load_litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return litellm


@dataclass
class LLMClient:
    """One run's access to the model: counts tokens against the run's budget."""

    settings: LLMSettings
    sleep: Callable[[float], None] = time.sleep
    tokens_used: int = 0
    calls: int = 0

    @classmethod
    def for_run(cls, settings: LLMSettings | None) -> "LLMClient | None":
        """A client when a model is configured; None means: use the offline fallback."""
        return cls(settings) if settings is not None and settings.model else None

    @classmethod
    def for_embeddings(cls, settings: LLMSettings | None) -> "LLMClient | None":
        """A client when an embedding model is configured, else None."""
        return cls(settings) if settings is not None and settings.embedding_model else None

    @property
    def model(self) -> str | None:
        return self.settings.model

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, from the embedding model, in order; counted against the run's budget."""
        model = self.settings.embedding_model
        if not model:
            raise LLMError("no embedding model configured")
        budget = self.settings.token_budget
        if budget and self.tokens_used >= budget:
            raise BudgetExhausted(f"token budget of {budget} used up")
        litellm = load_litellm()
        kwargs = {"model": model, "input": texts, "timeout": self.settings.timeout_s,
                  **({"api_base": self.settings.api_base} if self.settings.api_base else {}),
                  **self.settings.embedding_options}
        response = self._call(litellm.embedding, kwargs, model)
        usage = getattr(response, "usage", None)
        self.tokens_used += int(getattr(usage, "total_tokens", 0) or getattr(usage, "prompt_tokens", 0) or 0)
        vectors = [item["embedding"] if isinstance(item, dict) else item.embedding for item in response.data]
        if len(vectors) != len(texts) or not all(isinstance(v, list) and v for v in vectors):
            raise LLMError(f"{model} returned {len(vectors)} embeddings for {len(texts)} texts")
        return vectors

    def _call(self, function, kwargs: dict, model: str):
        """``function(**kwargs)``, retried after transient errors; other errors as one LLMError line."""
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return function(**kwargs)
            except Exception as exc:  # litellm maps every provider's errors onto its own classes
                name = type(exc).__name__
                if name in TRANSIENT and attempt < attempts:
                    delay = self.settings.retry_backoff_s * 2 ** (attempt - 1)
                    log.warning("%s from %s; retrying in %.1f s (%d/%d)", name, model, delay, attempt, attempts)
                    self.sleep(delay)
                    continue
                raise LLMError(f"{model}: {describe(exc)}") from None

    def complete(self, system: str, user: str, *, max_tokens: int = 800) -> str:
        """The model's answer text to one system + user message pair."""
        if not self.model:
            raise LLMError("no model configured")
        budget = self.settings.token_budget
        if budget and self.tokens_used >= budget:
            raise BudgetExhausted(f"token budget of {budget} used up")
        litellm = load_litellm()
        kwargs = {
            "model": self.model, "messages": [{"role": "system", "content": system},
                                              {"role": "user", "content": user}],
            "timeout": self.settings.timeout_s, "max_tokens": max_tokens, "temperature": 0,
            **({"api_base": self.settings.api_base} if self.settings.api_base else {}),
            **self.settings.options,
        }
        response = self._call(litellm.completion, kwargs, self.model)
        self.calls += 1
        usage = getattr(response, "usage", None)
        self.tokens_used += int(getattr(usage, "total_tokens", 0) or 0)
        choice = response.choices[0]
        message = choice.message
        refusal = getattr(message, "refusal", None)
        if refusal or getattr(choice, "finish_reason", None) == "content_filter":
            raise LLMError(f"{self.model} refused: {redact(str(refusal or 'content filtered'))[:200]}")
        text = (message.content or "").strip()
        if not text:
            raise LLMError(f"{self.model} returned an empty answer")
        return text


def describe(exc: BaseException) -> str:
    """One readable line for a litellm error, with any secret masked."""
    name = type(exc).__name__
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    for prefix in ("litellm.", f"{name}: "):
        text = text.replace(prefix, "")
    readable = {
        "RateLimitError": "rate limited", "Timeout": "timed out", "APIConnectionError": "cannot connect",
        "AuthenticationError": "authentication failed (check the API key in the environment)",
        "NotFoundError": "model not found", "BadRequestError": "bad request",
        "ContextWindowExceededError": "prompt too long for the model", "InternalServerError": "provider error",
        "ServiceUnavailableError": "provider unavailable", "ContentPolicyViolationError": "refused by content policy",
    }.get(name, name)
    text = redact(text) or ""  # before cutting: a cut through a secret would leave a fragment unmasked
    return f"{readable}: {text[:300]}" if text else readable
