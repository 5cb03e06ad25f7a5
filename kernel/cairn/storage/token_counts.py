"""The token-count facet: a cache of counts per (tokenizer, content hash).

Optional: without it the context engine counts again whenever it meets
content counted by another tokenizer.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping

from cairn.storage._facet import Facet

__all__ = ["TokenCountStore"]


class TokenCountStore(Facet, abc.ABC):
    """Cached token counts, keyed by tokenizer name and content hash."""

    facet = "token_counts"
    holds = "a token-count cache"

    @abc.abstractmethod
    def get_token_counts(self, tokenizer: str, hashes: Iterable[str]) -> dict[str, int]:
        """Cached counts for ``tokenizer`` of the given content hashes; misses left out."""

    @abc.abstractmethod
    def put_token_counts(self, tokenizer: str, counts: Mapping[str, int]) -> None:
        """Cache counts (content hash -> tokens) for ``tokenizer``."""
