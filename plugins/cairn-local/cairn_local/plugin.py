"""cairn's hook module for cairn-local: registers the ``hashing`` and ``minilm`` embedding providers.

Light on purpose: numpy and sentence-transformers are imported by the providers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cairn.hookspecs import hookimpl
from cairn_local.config import HashingConfig, MiniLMConfig

__all__ = ["cairn_register_embedding_providers"]


def _hashing(config: HashingConfig, context: Any) -> Any:
    from cairn_local.hashing import HashingEmbedder

    return HashingEmbedder(dimensions=config.dimensions, bigrams=config.bigrams, max_batch=config.max_batch)


def _minilm(config: MiniLMConfig, context: Any) -> Any:
    from cairn_local.minilm import MiniLMEmbedder

    return MiniLMEmbedder(device=config.device, batch_size=config.batch_size, truncate=config.truncate)


@hookimpl
def cairn_register_embedding_providers(register: Callable[..., None]) -> None:
    """Register ``hashing`` (always available) and ``minilm`` (needs the ``[minilm]`` extra)."""
    register(
        "hashing",
        _hashing,
        HashingConfig,
        description="offline lexical embeddings: signed word and bigram feature hashing (scheme hashing-v2), L2-normalized",
    )
    register(
        "minilm",
        _minilm,
        MiniLMConfig,
        description="offline all-MiniLM-L6-v2 (384 dimensions) from a packaged model; needs cairn-local[minilm]",
    )
