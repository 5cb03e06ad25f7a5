"""cairn's hook module for cairn-vectors: registers the ``exact`` and ``hnsw`` vector indexes.

Light on purpose: NumPy and usearch are imported by the factories.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cairn.errors import ConfigError
from cairn.hookspecs import hookimpl
from cairn_vectors.config import ExactConfig, HNSWConfig

__all__ = ["cairn_register_vector_indexes"]


def _exact(config: ExactConfig, context: Any) -> Any:
    from cairn_vectors.exact import ExactOpener

    return ExactOpener(config)


def _hnsw(config: HNSWConfig, context: Any) -> Any:
    try:
        from cairn_vectors.hnsw import HNSWOpener

        return HNSWOpener(config)
    except ImportError as exc:
        raise ConfigError(
            f"the hnsw vector index needs usearch, which is not installed ({exc.name or exc})",
            table="memory",
            key="index",
            hint="pip install 'cairn-vectors[hnsw]', or set index = \"exact\" under [memory]",
        ) from None


@hookimpl
def cairn_register_vector_indexes(register: Callable[..., None]) -> None:
    """Register ``exact`` (NumPy brute force) and ``hnsw`` (usearch; needs the ``[hnsw]`` extra)."""
    register("exact", _exact, ExactConfig, description="exact cosine top-k: a memory-mapped float32 matrix, BLAS scan")
    register(
        "hnsw",
        _hnsw,
        HNSWConfig,
        description="approximate cosine top-k on a usearch HNSW graph; needs cairn-vectors[hnsw]",
    )
