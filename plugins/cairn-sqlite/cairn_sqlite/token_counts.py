"""The token-count facet on SQLite: the ``token_counts`` cache, keyed by (tokenizer, content hash).

``count_rows`` and ``PUT_TOKENS`` are shared with ``ObjectStore.write`` (in
``cairn_sqlite.objects``), which caches counts in the same transaction as
the commits they were counted for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from cairn.errors import ValidationError
from cairn.storage import TokenCountStore
from cairn_sqlite.connection import SqliteConnection, distinct, sqlite_method

__all__ = ["PUT_TOKENS", "SqliteTokenCounts", "count_rows"]

_GET_TOKENS = "SELECT hash, count FROM token_counts WHERE tokenizer = ? AND hash IN (SELECT value FROM json_each(?))"
PUT_TOKENS = (
    "INSERT INTO token_counts (tokenizer, hash, count) VALUES (?, ?, ?) "
    "ON CONFLICT (tokenizer, hash) DO UPDATE SET count = excluded.count"
)


def count_rows(tokenizer: str, counts: Mapping[str, int]) -> list[tuple[str, str, int]]:
    """Rows for ``PUT_TOKENS``; ``ValidationError`` for an empty tokenizer name or a count that is not >= 0."""
    if not isinstance(tokenizer, str) or not tokenizer:
        raise ValidationError("a tokenizer name must be a non-empty string", what="token counts", given=tokenizer)
    rows = []
    for digest, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError(
                f"{tokenizer}: the count for {str(digest)[:12]} must be a whole number >= 0, got {count!r}",
                what="token counts",
            )
        rows.append((tokenizer, digest, count))
    return rows


class SqliteTokenCounts(SqliteConnection, TokenCountStore):
    """``TokenCountStore`` over the ``token_counts`` table."""

    @sqlite_method("reading token counts")
    def get_token_counts(self, tokenizer: str, hashes: Iterable[str]) -> dict[str, int]:
        """Cached counts for ``tokenizer``; misses left out. One statement."""
        wanted = distinct(hashes, "get_token_counts")
        if not wanted:
            return {}
        assert self._conn is not None
        return dict(self._conn.execute(_GET_TOKENS, (tokenizer, json.dumps(wanted))).fetchall())

    @sqlite_method("writing token counts")
    def put_token_counts(self, tokenizer: str, counts: Mapping[str, int]) -> None:
        """Cache counts for ``tokenizer``, replacing earlier ones for the same hash."""
        rows = count_rows(tokenizer, counts)
        if not rows:
            return
        with self._write_transaction() as conn:
            conn.executemany(PUT_TOKENS, rows)
