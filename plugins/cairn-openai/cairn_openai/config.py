"""The tables ``[llm.openai]`` and ``[embeddings.openai]``: frozen attrs classes the kernel fills from TOML.

Only attrs is imported here, so the plugin module that registers these
classes stays light (``cairn --help`` imports it); prices are checked
against ``cairn.providers.Price`` when the table is structured.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = ["ChatConfig", "ConnectionConfig", "EmbeddingsConfig", "OPENAI_URL"]

_PRICE_KEYS = ("input", "output", "cached_input", "cache_write")

OPENAI_URL = "https://api.openai.com/v1"


def _url(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    from cairn.redact import redact_url

    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        shown = redact_url(value) if isinstance(value, str) else value
        raise ValueError(f"{attribute.name} must be an http(s) URL such as {OPENAI_URL!r}, got {shown!r:.80}")
    if "@" in parts.netloc:
        # httpx would send user:password as Basic auth in place of the Bearer key, and the
        # password would sit in a config file; the key belongs in the variable api_key_env names.
        raise ValueError(
            f"{attribute.name} must not hold a user name or password (got {redact_url(value)!r:.80}): "
            "remove the user@ part and put the key in the environment variable that api_key_env names"
        )


def _env_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    # The NAME of a variable: a key pasted here by mistake would end up in config files and logs.
    if value and (not value.replace("_", "").isalnum() or value.startswith(("sk-", "Bearer"))):
        raise ValueError(
            f"{attribute.name} must name an environment variable (like OPENAI_API_KEY), not hold the key itself"
        )


def _prices(instance: Any, attribute: attrs.Attribute, value: dict[str, dict[str, float]]) -> None:
    from cairn.providers import Price

    for model, entry in value.items():
        unknown = sorted(set(entry) - set(_PRICE_KEYS))
        if unknown:
            raise ValueError(f"prices.{model}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(_PRICE_KEYS)}")
        if "input" not in entry:
            raise ValueError(f"prices.{model}: input is required (USD per million input tokens)")
        Price(**entry)  # range checks, with the price's own message


def _positive(instance: Any, attribute: attrs.Attribute, value: float | int | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value}")


@attrs.frozen
class ConnectionConfig:
    """Where the server is and how to reach it; shared by both tables."""

    #: The API root, ending in /v1: OpenAI, or e.g. http://localhost:8000/v1 (vLLM),
    #: http://localhost:11434/v1 (Ollama), http://localhost:8080/v1 (llama.cpp).
    base_url: str = attrs.field(default=OPENAI_URL, validator=_url)
    #: The NAME of the environment variable holding the API key; "" sends no key (local servers).
    api_key_env: str = attrs.field(default="OPENAI_API_KEY", validator=_env_name)
    #: Sent as OpenAI-Organization when set.
    organization: str | None = None
    #: Seconds to wait for a connection.
    connect_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    #: Seconds to wait for each read (between streamed chunks, or for a whole reply).
    read_timeout_s: float = attrs.field(default=120.0, validator=_positive)
    #: Prices per million tokens by model, over the shipped table: {"my-model" = {input = 0, output = 0}};
    #: keys input, output, cached_input, cache_write.
    prices: dict[str, dict[str, float]] = attrs.field(factory=dict, validator=_prices)

    def price_table(self, shipped: dict[str, Any]) -> dict[str, Any]:
        """The shipped prices with this table's entries over them."""
        from cairn.providers import Price

        return {**shipped, **{model: Price(**entry) for model, entry in self.prices.items()}}


@attrs.frozen
class ChatConfig(ConnectionConfig):
    """``[llm.openai]``."""

    #: The model used when a request names none.
    model: str = "gpt-4o-mini"
    #: Context window for models the shipped table does not know (local models); none: not checked locally.
    context_window: int | None = attrs.field(default=None, validator=_positive)
    #: Output limit for models the shipped table does not know.
    max_output_tokens: int | None = attrs.field(default=None, validator=_positive)
    #: Override whether the model takes tools / JSON-schema responses (default: the table, or yes when unknown).
    tools: bool | None = None
    json_schema: bool | None = None
    #: Override whether the model takes images (default: the table, or no when unknown).
    images: bool | None = None
    #: Ask for usage in the last streamed chunk (stream_options.include_usage); turn off for servers that refuse it.
    stream_usage: bool = True
    #: Which request field carries the output limit: "max_completion_tokens" (OpenAI), "max_tokens"
    #: (older servers), or "auto" (the first for api.openai.com, the second elsewhere).
    max_tokens_field: str = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "max_completion_tokens", "max_tokens"))
    )


@attrs.frozen
class EmbeddingsConfig(ConnectionConfig):
    """``[embeddings.openai]``."""

    model: str = "text-embedding-3-small"
    #: Shorter vectors from models that support it (text-embedding-3-*); none: the model's own size.
    dimensions: int | None = attrs.field(default=None, validator=_positive)
    #: Texts per request (OpenAI accepts up to 2048); larger lists are split by the kernel.
    max_batch: int = attrs.field(default=2048, validator=_positive)
    #: Token limit per text for models the shipped table does not know.
    max_input_tokens: int | None = attrs.field(default=None, validator=_positive)
