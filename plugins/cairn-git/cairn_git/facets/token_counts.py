"""The token-count facet: cached counts in the catalog, ``tokens/<quoted tokenizer>/<h[:2]>/<h>``.

Counts are written with the objects they count (``ObjectStore.write``'s
``token_counts``) or on their own, through the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cairn.storage import TokenCountStore
from cairn_git._base import checked_keys, locked, writing
from cairn_git._context import ContextBase, count_rows

__all__ = ["GitTokenCounts"]


class GitTokenCounts(ContextBase, TokenCountStore):
    """``TokenCountStore`` over the catalog."""

    @locked
    def get_token_counts(self, tokenizer: str, hashes: Iterable[str]) -> dict[str, int]:
        """Cached counts for ``tokenizer``; misses left out."""
        keys = checked_keys(hashes, "get_token_counts")
        if not keys:
            return {}
        counts = self._refresh().tokens.get(tokenizer, {})
        return {h: counts[h] for h in keys if h in counts}

    @writing
    def put_token_counts(self, tokenizer: str, counts: Mapping[str, int]) -> None:
        """Cache counts for ``tokenizer``, replacing earlier ones for the same hash."""
        rows = [(tokenizer, digest, count) for digest, count in count_rows(tokenizer, counts)]
        if rows:
            self._write([], [], [], rows)
