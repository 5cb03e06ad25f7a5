"""The tables ``[embeddings.hashing]`` and ``[embeddings.minilm]``."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["HashingConfig", "MiniLMConfig"]


def _dimensions(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if not 2 <= value <= 1 << 20:
        raise ValueError(f"{attribute.name} must be between 2 and 1048576, got {value}")


def _positive(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value}")


@attrs.frozen
class HashingConfig:
    """``[embeddings.hashing]``."""

    #: Vector size. More dimensions mean fewer hash collisions (512 suits short texts; 4096 long documents).
    dimensions: int = attrs.field(default=512, validator=_dimensions)
    #: Add word pairs as features, so "new york" differs from "york new".
    bigrams: bool = True
    #: Texts per call the kernel sends at once (memory: texts x dimensions x 4 bytes).
    max_batch: int = attrs.field(default=4096, validator=_positive)


@attrs.frozen
class MiniLMConfig:
    """``[embeddings.minilm]``."""

    #: "cpu", "cuda", "mps" ...; none: sentence-transformers picks.
    device: str | None = "cpu"
    #: Texts per forward pass.
    batch_size: int = attrs.field(default=32, validator=_positive)
    #: Let the model cut texts longer than 256 word pieces instead of refusing them.
    truncate: bool = False
