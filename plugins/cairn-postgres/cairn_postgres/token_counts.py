"""The token-count facet on PostgreSQL: the ``token_counts`` cache, keyed by (tokenizer, content hash).

``count_rows`` and ``PUT_TOKENS`` are shared with ``ObjectStore.write``
(``cairn_postgres.objects``), which caches counts in the same transaction
as the commits they were counted for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from cairn.errors import ValidationError
from cairn.storage import TokenCountStore
from cairn_postgres.connection import PostgresConnection, distinct, pg_method

__all__ = ["PUT_TOKENS", "PostgresTokenCounts", "count_rows"]

_GET_TOKENS = "SELECT hash, count FROM token_counts WHERE tokenizer = %s AND hash = ANY(%s)"
PUT_TOKENS = (
    "INSERT INTO token_counts (tokenizer, hash, count) VALUES (%s, %s, %s) "
    "ON CONFLICT (tokenizer, hash) DO UPDATE SET count = excluded.count"
)


def count_rows(tokenizer: str, counts: Mapping[str, int]) -> list[tuple[str, str, int]]:
    """Rows for ``PUT_TOKENS``; ``ValidationError`` for an empty tokenizer name or a count that is not >= 0."""
    if not isinstance(tokenizer, str) or not tokenizer or "\x00" in tokenizer:
        raise ValidationError("a tokenizer name must be a non-empty string", what="token counts", given=tokenizer)
    rows = []
    for digest, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < 2**63:
            raise ValidationError(
                f"{tokenizer}: the count for {str(digest)[:12]} must be a whole number >= 0, got {count!r}",
                what="token counts",
            )
        if not isinstance(digest, str) or "\x00" in digest:
            raise ValidationError(f"{tokenizer}: {digest!r:.20} is not a content hash", what="token counts")
        rows.append((tokenizer, digest, count))
    return rows


class PostgresTokenCounts(PostgresConnection, TokenCountStore):
    """``TokenCountStore`` over the ``token_counts`` table."""

    @pg_method("reading token counts")
    def get_token_counts(self, tokenizer: str, hashes: Iterable[str]) -> dict[str, int]:
        """Cached counts for ``tokenizer``; misses left out. One statement."""
        wanted = distinct(hashes, "get_token_counts")
        if not wanted or not isinstance(tokenizer, str) or "\x00" in tokenizer:
            return {}
        return dict(self._read(lambda conn: conn.execute(_GET_TOKENS, (tokenizer, wanted)).fetchall()))

    @pg_method("writing token counts")
    def put_token_counts(self, tokenizer: str, counts: Mapping[str, int]) -> None:
        """Cache counts for ``tokenizer``, replacing earlier ones for the same hash."""
        rows = count_rows(tokenizer, counts)
        if not rows:
            return

        def run(conn: psycopg.Connection[Any]) -> None:
            conn.cursor().executemany(PUT_TOKENS, rows)

        self._write(run)
