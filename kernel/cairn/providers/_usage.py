"""Usage and prices: ``Usage`` (tokens of one call, normalized), ``Price`` (per million tokens), ``match_model``."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from cairn.errors import ValidationError

__all__ = ["Price", "Usage", "match_model"]

T = TypeVar("T")


def _count(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValidationError(f"must be a non-negative integer, got {value!r}", what="usage", field=attribute.name)


@attrs.frozen
class Usage:
    """Tokens one call used, normalized across providers.

    ``input_tokens`` counts every input token, cached ones included (OpenAI's
    ``prompt_tokens``; a provider that reports cached tokens apart, like
    Anthropic, adds them in). ``output_tokens`` includes reasoning tokens.
    ``cache_read_tokens`` / ``cache_write_tokens`` are the parts of the input
    read from / written to a prompt cache. ``estimated`` is True when the
    counts come from the configured tokenizer, not from the provider.
    """

    input_tokens: int = attrs.field(default=0, validator=_count)
    output_tokens: int = attrs.field(default=0, validator=_count)
    cache_read_tokens: int = attrs.field(default=0, validator=_count)
    cache_write_tokens: int = attrs.field(default=0, validator=_count)
    reasoning_tokens: int = attrs.field(default=0, validator=_count)
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.estimated or other.estimated,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "estimated": self.estimated,
        }


def _as_float(value: Any) -> Any:
    # TOML writes a round price as an integer (input = 1); prices are floats.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _price(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and (
        not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or not math.isfinite(value)
    ):
        raise ValueError(f"{attribute.name} must be a price of 0 or more per million tokens, got {value!r}")


@attrs.frozen
class Price:
    """What a model costs per million tokens; ``cached_input`` / ``cache_write`` default to ``input``.

    Plugins ship a table of these (``{model: Price}``); a provider's TOML
    table overrides it with ``prices``: ``[llm.openai.prices."gpt-4o"]``.
    """

    input: float = attrs.field(converter=_as_float, validator=_price)
    output: float = attrs.field(default=0.0, converter=_as_float, validator=_price)
    cached_input: float | None = attrs.field(default=None, converter=_as_float, validator=_price)
    cache_write: float | None = attrs.field(default=None, converter=_as_float, validator=_price)

    def cost(self, usage: Usage) -> float:
        """The cost of ``usage``: uncached input, cache reads, cache writes and output at their prices."""
        cached_read = self.input if self.cached_input is None else self.cached_input
        cached_write = self.input if self.cache_write is None else self.cache_write
        plain_input = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
        total = (
            plain_input * self.input
            + usage.cache_read_tokens * cached_read
            + usage.cache_write_tokens * cached_write
            + usage.output_tokens * self.output
        )
        return total / 1_000_000


# Price is structured from TOML by the kernel's converter, which needs real types, not strings.
attrs.resolve_types(Price)

_SNAPSHOT = re.compile(r"\A-(?:\d{4}-\d{2}-\d{2}|\d{4}|\d{2}-\d{2}|latest|preview)\Z")


def match_model(table: Mapping[str, T], model: str) -> T | None:
    """The entry for ``model`` in a per-model table, or None.

    An exact name wins; otherwise the longest name of which ``model`` is a
    dated snapshot (``gpt-4o-2024-08-06`` -> ``gpt-4o``, ``gpt-3.5-turbo-0125``
    -> ``gpt-3.5-turbo``). Never a mere prefix: ``gpt-4o-mini`` does not get
    ``gpt-4o``'s entry.
    """
    if model in table:
        return table[model]
    best: str | None = None
    for name in table:
        if model.startswith(name) and _SNAPSHOT.match(model[len(name) :]):
            if best is None or len(name) > len(best):
                best = name
    return table[best] if best is not None else None
