"""Configuration tables of the tokenizers: ``[tokenizer.approx]``, ``[tokenizer.tiktoken]``, ``[tokenizer.hf]``.

Frozen attrs classes; the kernel structures each table into its class and
refuses unknown keys. This module imports only attrs, so the plugin module
that registers the classes stays light.
"""

from __future__ import annotations

from typing import Any

import attrs

from cairn.tokenizers import MessageOverhead

__all__ = ["ApproxConfig", "HfConfig", "OverheadConfig", "TiktokenConfig"]


def _not_negative(instance: Any, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be 0 or more tokens, got {value}")


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value}")


@attrs.frozen
class OverheadConfig:
    """The three chat-format overhead keys every tokenizer table accepts.

    ``None`` (the key left out) means the tokenizer's default: for tiktoken the
    model's own figures, otherwise OpenAI's current chat format (3, 1, 3).
    """

    #: Tokens added around every message.
    per_message: int | None = attrs.field(default=None, validator=_not_negative)
    #: Tokens added when a message carries a ``name`` (negative for formats that drop the role then).
    per_name: int | None = None
    #: Tokens that prime the reply, added once per request.
    reply_priming: int | None = attrs.field(default=None, validator=_not_negative)

    def overhead(self, default: MessageOverhead) -> MessageOverhead:
        """``default`` with every key that was set in the table replacing its figure."""
        return MessageOverhead(
            per_message=default.per_message if self.per_message is None else self.per_message,
            per_name=default.per_name if self.per_name is None else self.per_name,
            reply_priming=default.reply_priming if self.reply_priming is None else self.reply_priming,
        )


@attrs.frozen
class ApproxConfig(OverheadConfig):
    """``[tokenizer.approx]``: the dependency-free estimate."""

    #: Multiplies every count (rounded up), to estimate a tokenizer that is denser
    #: or sparser than cl100k_base on your text; 1.0 estimates cl100k_base itself.
    scale: float = attrs.field(default=1.0, validator=_positive)


@attrs.frozen
class TiktokenConfig(OverheadConfig):
    """``[tokenizer.tiktoken]``: exact counts for OpenAI encodings, loaded offline."""

    #: A local ``.tiktoken`` ranks file (relative to the project directory); when
    #: unset the file is read from tiktoken's cache directory.
    encoding_file: str | None = None
    #: Check the file's SHA-256 against the hash tiktoken publishes for the encoding;
    #: turn off only to use custom ranks under a known encoding's pattern and special tokens.
    verify_hash: bool = True


@attrs.frozen
class HfConfig(OverheadConfig):
    """``[tokenizer.hf]``: exact counts from a Hugging Face ``tokenizer.json``."""

    #: Count the special tokens the tokenizer's post-processor adds (BOS, [CLS], ...)
    #: in every text; off by default because a chat template adds them per request, not per text.
    add_special_tokens: bool = False
