"""cairn's hook module for cairn-openai: registers ``openai`` as an LLM and an embedding provider.

Light on purpose: cairn imports it at start-up, so it imports only the config
classes; httpx is imported by the factories.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cairn.hookspecs import hookimpl
from cairn_openai.config import ChatConfig, EmbeddingsConfig

__all__ = ["cairn_register_embedding_providers", "cairn_register_llm_providers"]


def _chat(config: ChatConfig, context: Any) -> Any:
    from cairn_openai.chat import OpenAIChat

    return OpenAIChat(config, name=context.name, model=context.argument)


def _embeddings(config: EmbeddingsConfig, context: Any) -> Any:
    from cairn_openai.embeddings import OpenAIEmbeddings

    return OpenAIEmbeddings(config, name=context.name, model=context.argument)


@hookimpl
def cairn_register_llm_providers(register: Callable[..., None]) -> None:
    """Register ``openai`` (``openai:<model>`` picks the default model)."""
    register(
        "openai",
        _chat,
        ChatConfig,
        description="OpenAI-compatible chat completions, streamed or whole (OpenAI, vLLM, Ollama, llama.cpp)",
    )


@hookimpl
def cairn_register_embedding_providers(register: Callable[..., None]) -> None:
    """Register ``openai`` embeddings."""
    register(
        "openai",
        _embeddings,
        EmbeddingsConfig,
        description="OpenAI-compatible embeddings (OpenAI, vLLM, Ollama, llama.cpp)",
    )
