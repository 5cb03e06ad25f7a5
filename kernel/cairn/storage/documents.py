"""The documents facet: the texts search and recall read, with lexical (full-text) search.

A document (``cairn.model.embedding.Document``) is keyed by ``(collection,
id)``. cairn fills the collections ``@context``, ``@runs``, ``@chat`` and
``@memory`` from what it stores (``cairn memory index``); users add their own
collections (``cairn memory add``). ``put_documents`` replaces a document
with the same key.

``search_text`` is the lexical half of ``cairn search``: the query's words
(``\\w+``, case-folded) are matched against each document's words, any word
matching; results are ranked by BM25 (a document holding more of the rarer
query words, in a shorter text, ranks higher), best first, score higher is
better. SQLite uses FTS5; another backend uses its own text index, keeping
these rules.

Lists are newest first (``created`` descending; ties: collection, id).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Sequence

from cairn.errors import ValidationError
from cairn.model.embedding import Document
from cairn.storage._facet import Facet

__all__ = ["MAX_QUERY_WORDS", "DocumentStore", "checked_documents", "query_words"]

#: More words than this in one lexical query is a document, not a query.
MAX_QUERY_WORDS = 64
_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(query: object) -> list[str]:
    """The distinct case-folded words of a lexical query, in order; ``ValidationError`` when it has none."""
    if not isinstance(query, str) or not query.strip():
        raise ValidationError("the query is empty", what="search", hint="give some words to search for")
    words = list(dict.fromkeys(w.casefold() for w in _WORD.findall(query)))
    if not words:
        raise ValidationError(f"the query {query!r:.60} holds no words", what="search", hint="search for words")
    if len(words) > MAX_QUERY_WORDS:
        raise ValidationError(
            f"the query holds {len(words)} distinct words, over the limit of {MAX_QUERY_WORDS}", what="search"
        )
    return words


def checked_documents(documents: Iterable[object]) -> list[Document]:
    """``documents`` as a list, after the checks every ``put_documents`` makes before it writes.

    Each value must be a ``Document`` and no key may repeat in one call
    (``ValidationError`` naming the first offender otherwise), so a backend
    never writes half a batch it would have refused.
    """
    checked: list[Document] = []
    seen: set[tuple[str, str]] = set()
    for doc in documents:
        if not isinstance(doc, Document):
            raise ValidationError(f"expected Document values, got {type(doc).__name__}", what="put_documents")
        if doc.key in seen:
            raise ValidationError(f"document {doc.key} appears twice in one call", what="put_documents")
        seen.add(doc.key)
        checked.append(doc)
    return checked


class DocumentStore(Facet, abc.ABC):
    """Searchable documents by ``(collection, id)``, with full-text search and the filters search needs."""

    facet = "documents"
    holds = "searchable documents"

    @abc.abstractmethod
    def put_documents(self, documents: Sequence[Document]) -> None:
        """Store (or replace, by key) these documents in one transaction; all or nothing; durable on return.

        Keys in one call must be distinct (``ValidationError`` otherwise).
        """

    @abc.abstractmethod
    def get_documents(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        """The documents of ``collection`` with these ids; ids not stored are left out."""

    @abc.abstractmethod
    def documents(
        self,
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[Document]:
        """Documents newest first, of ``collections`` (all when None), on ``branch``, created at or after ``since``."""

    @abc.abstractmethod
    def documents_by_hash(
        self,
        hashes: Iterable[str],
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[Document]:
        """The documents whose text hashes to one of ``hashes``, with the same filters as ``documents``."""

    @abc.abstractmethod
    def texts(self, hashes: Iterable[str]) -> dict[str, str]:
        """The text of each of ``hashes`` some document holds (hash -> text); others left out. For embedding."""

    @abc.abstractmethod
    def text_hashes(
        self, collections: Sequence[str] | None = None, *, branch: str | None = None, since: str | None = None
    ) -> set[str]:
        """The text hashes of the documents the filters allow (what a vector search may return)."""

    @abc.abstractmethod
    def collections(self) -> dict[str, int]:
        """Every collection holding documents, with how many, by name."""

    @abc.abstractmethod
    def delete_documents(self, collection: str, ids: Iterable[str] | None = None) -> int:
        """Delete these documents of ``collection`` (every one when ``ids`` is None); returns how many."""

    @abc.abstractmethod
    def search_text(
        self,
        query: str,
        *,
        k: int,
        collections: Sequence[str] | None = None,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[tuple[Document, float]]:
        """Up to ``k`` documents matching any word of ``query``, best BM25 first, with their scores.

        A query without words raises ``ValidationError``.
        """
