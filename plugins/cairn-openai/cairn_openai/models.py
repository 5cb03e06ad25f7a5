"""What cairn-openai knows about OpenAI's models: sizes, features and list prices.

Prices are USD per million tokens as published by OpenAI in 2025; they
change, so ``prices`` in the provider's table overrides any of them. Models
not listed here (a local server's) cost ``None`` (unknown) unless priced in
the table, and their sizes come from the table (``context_window`` ...).
Dated snapshots (``gpt-4o-2024-08-06``) match their family through
``cairn.providers.match_model``.
"""

from __future__ import annotations

from cairn.providers import EmbeddingCapabilities, LLMCapabilities, Price

__all__ = ["CHAT_MODELS", "CHAT_PRICES", "EMBEDDING_MODELS", "EMBEDDING_PRICES"]


def _chat(window: int, output: int, *, json_schema: bool = True, images: bool = True) -> LLMCapabilities:
    return LLMCapabilities(
        streaming=True,
        tools=True,
        json_schema=json_schema,
        images=images,
        context_window=window,
        max_output_tokens=output,
    )


CHAT_MODELS: dict[str, LLMCapabilities] = {
    "gpt-4o": _chat(128_000, 16_384),
    "gpt-4o-mini": _chat(128_000, 16_384),
    "gpt-4.1": _chat(1_047_576, 32_768),
    "gpt-4.1-mini": _chat(1_047_576, 32_768),
    "gpt-4.1-nano": _chat(1_047_576, 32_768),
    "o3": _chat(200_000, 100_000),
    "o3-mini": _chat(200_000, 100_000, images=False),
    "o4-mini": _chat(200_000, 100_000),
    "gpt-4-turbo": _chat(128_000, 4_096, json_schema=False),
    "gpt-3.5-turbo": _chat(16_385, 4_096, json_schema=False, images=False),
}

CHAT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00, cached_input=1.25),
    "gpt-4o-mini": Price(0.15, 0.60, cached_input=0.075),
    "gpt-4.1": Price(2.00, 8.00, cached_input=0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, cached_input=0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, cached_input=0.025),
    "o3": Price(2.00, 8.00, cached_input=0.50),
    "o3-mini": Price(1.10, 4.40, cached_input=0.55),
    "o4-mini": Price(1.10, 4.40, cached_input=0.275),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
}

EMBEDDING_MODELS: dict[str, EmbeddingCapabilities] = {
    "text-embedding-3-small": EmbeddingCapabilities(dimensions=1536, max_batch=2048, max_input_tokens=8191),
    "text-embedding-3-large": EmbeddingCapabilities(dimensions=3072, max_batch=2048, max_input_tokens=8191),
    "text-embedding-ada-002": EmbeddingCapabilities(dimensions=1536, max_batch=2048, max_input_tokens=8191),
}

#: Models whose vectors can be shortened with the ``dimensions`` parameter.
SHORTENABLE = ("text-embedding-3-small", "text-embedding-3-large")

EMBEDDING_PRICES: dict[str, Price] = {
    "text-embedding-3-small": Price(0.02),
    "text-embedding-3-large": Price(0.13),
    "text-embedding-ada-002": Price(0.10),
}
