"""The ``noop`` providers: every call fails with ``disabled``, before anything leaves the process."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

from cairn.providers import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingCapabilities,
    EmbeddingProvider,
    EmbeddingRequest,
    EmbeddingResponse,
    LLMCapabilities,
    LLMProvider,
    Price,
    ProviderDisabledError,
)

__all__ = ["LLM_HINT", "EMBEDDINGS_HINT", "NoopEmbeddings", "NoopLLM"]

LLM_HINT = (
    "to use OpenAI or an OpenAI-compatible server (vLLM, Ollama, llama.cpp): "
    'pip install cairn-openai, set llm = "openai" under [cairn] in cairn.toml, and export OPENAI_API_KEY '
    "(or set [llm.openai] base_url to your server); see docs/providers.md"
)
EMBEDDINGS_HINT = (
    'for offline embeddings: pip install cairn-local and set embeddings = "hashing" under [cairn] in cairn.toml; '
    'for OpenAI: pip install cairn-openai, set embeddings = "openai" and export OPENAI_API_KEY; '
    "see docs/providers.md"
)

# Nothing is ever spent: a known price of zero, so spend reports show 0, not "unknown".
_FREE = {"noop": Price(0.0, 0.0)}


def _installed(module: str) -> bool:
    """Whether a distribution's top-level package is installed (looked up, never imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing_steps(package: str, module: str, setting: str, key_note: str = "") -> list[str]:
    """What is left to do to use ``package``'s provider: only the steps not done yet."""
    steps = [] if _installed(module) else [f"pip install {package}"]
    steps.append(f"set {setting} under [cairn] in cairn.toml")
    if not os.environ.get("OPENAI_API_KEY"):
        steps.append("export OPENAI_API_KEY" + key_note)
    return steps


def _sentence(steps: list[str]) -> str:
    return steps[0] if len(steps) == 1 else f"{', '.join(steps[:-1])} and {steps[-1]}"


def llm_hint() -> str:
    """LLM_HINT with only the steps still missing: an installed cairn-openai or a set key is not asked for again."""
    steps = _missing_steps(
        "cairn-openai", "cairn_openai", 'llm = "openai"', " (or set [llm.openai] base_url to your server)"
    )
    installed = "" if steps[0].startswith("pip") else "cairn-openai is installed: "
    return (
        "to use OpenAI or an OpenAI-compatible server (vLLM, Ollama, llama.cpp): "
        f"{installed}{_sentence(steps)}; see docs/providers.md"
    )


def _llm_disabled() -> ProviderDisabledError:
    return ProviderDisabledError(
        'no LLM provider is configured: [cairn] llm is "noop", which refuses every call',
        hint=llm_hint(),
        retryable=False,
        provider="noop",
        model="noop",
    )


def _embeddings_disabled() -> ProviderDisabledError:
    return ProviderDisabledError(
        'no embedding provider is configured: [cairn] embeddings is "noop", which refuses every call',
        hint=EMBEDDINGS_HINT,
        retryable=False,
        provider="noop",
        model="noop",
    )


class NoopLLM(LLMProvider):
    """Refuses every chat call with ``disabled``."""

    default_model = "noop"
    prices = _FREE

    def capabilities(self, model: str) -> LLMCapabilities:
        # Claims everything, so the refusal is always the helpful ``disabled``, never a capability error.
        return LLMCapabilities(streaming=True, tools=True, json_schema=True)

    def complete(self, request: ChatRequest) -> ChatResponse:
        raise _llm_disabled()

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        raise _llm_disabled()

    def readiness(self) -> ProviderDisabledError:
        return _llm_disabled()


class NoopEmbeddings(EmbeddingProvider):
    """Refuses every embedding call with ``disabled``."""

    default_model = "noop"
    prices = _FREE

    def capabilities(self, model: str) -> EmbeddingCapabilities:
        return EmbeddingCapabilities(dimensions=None, max_batch=2048, max_input_tokens=None)

    def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise _embeddings_disabled()

    def readiness(self) -> ProviderDisabledError:
        return _embeddings_disabled()
