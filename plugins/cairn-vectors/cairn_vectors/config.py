"""The tables ``[vector_index.exact]`` and ``[vector_index.hnsw]``."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["ExactConfig", "HNSWConfig"]


def _between(low: int, high: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{attribute.name} must be a whole number from {low} to {high}, got {value!r}")

    return check


def _ratio(instance: Any, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 < value < 1:
        raise ValueError(f"{attribute.name} must be between 0 and 1 (exclusive), got {value!r}")


@attrs.frozen
class ExactConfig:
    """``[vector_index.exact]``."""

    #: Rows scored per matrix-vector product: bounds the scratch memory of a search (4 bytes a row).
    chunk_rows: int = attrs.field(default=131_072, validator=_between(1024, 1 << 24))
    #: Rewrite the index without removed and replaced rows once they exceed this share of all rows.
    compact_ratio: float = attrs.field(default=0.25, validator=_ratio)


@attrs.frozen
class HNSWConfig:
    """``[vector_index.hnsw]``: the graph's parameters (usearch's names)."""

    #: Neighbours per node: more means better recall, more memory and slower inserts. Fixed when the index is built.
    connectivity: int = attrs.field(default=16, validator=_between(2, 256))
    #: Candidates considered while inserting: more means a better graph and slower inserts.
    expansion_add: int = attrs.field(default=128, validator=_between(8, 4096))
    #: Candidates considered while searching: more means better recall and slower searches.
    expansion_search: int = attrs.field(default=160, validator=_between(8, 4096))
    #: A filter allowing at most this many ids is answered exactly (by scoring just those vectors).
    exact_filter_below: int = attrs.field(default=4096, validator=_between(0, 1 << 24))
    #: Threads used to insert (0: one per core).
    threads: int = attrs.field(default=0, validator=_between(0, 1024))
    #: Rebuild the graph without removed and replaced rows once they exceed this share of all rows.
    compact_ratio: float = attrs.field(default=0.5, validator=_ratio)
