"""cairn's hook module for cairn-noop: registers the ``noop`` LLM and embedding providers.

Light on purpose: the provider classes are imported by the factories.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cairn.hookspecs import hookimpl

__all__ = ["cairn_register_embedding_providers", "cairn_register_llm_providers"]


def _llm(config: Any, context: Any) -> Any:
    from cairn_noop.providers import NoopLLM

    return NoopLLM()


def _embeddings(config: Any, context: Any) -> Any:
    from cairn_noop.providers import NoopEmbeddings

    return NoopEmbeddings()


@hookimpl
def cairn_register_llm_providers(register: Callable[..., None]) -> None:
    """Register ``noop``, the default LLM provider."""
    register("noop", _llm, description="the default: refuses every call and says how to enable a real provider")


@hookimpl
def cairn_register_embedding_providers(register: Callable[..., None]) -> None:
    """Register ``noop``, the default embedding provider."""
    register("noop", _embeddings, description="the default: refuses every call and says how to enable a real provider")
