"""Search: semantic (vectors), lexical (the documents facet's full-text index), and hybrid.

- semantic: the query is embedded with the configured embedder and the
  vector index returns the nearest text hashes (restricted, when filters
  are given, to the hashes of the documents they allow); every document
  holding a hit's text is a result, with the hit's cosine as its score.
- lexical: ``DocumentStore.search_text`` (BM25).
- hybrid: reciprocal-rank fusion of the two top-``k`` lists (``1 / (60 +
  rank)`` summed per document, the constant of Cormack et al. 2009), which
  needs no calibration between a cosine and a BM25 score. Fusing deeper
  lists lets the tail of the weaker mode outvote the head of the stronger
  (on tests/data/retrieval.json with the hashing embedder, recall@5 was
  0.43 fusing the top 20 of each, 0.55 fusing the top 5).

The default is hybrid when vectors of the configured embedder exist, and
lexical otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from cairn.errors import ValidationError
from cairn.model.embedding import BUILTIN_COLLECTIONS, Document
from cairn.storage import DocumentStore, query_words
from cairn.vector_index import VectorIndex, check_k

__all__ = ["MODES", "RRF_K", "Result", "fuse", "kinds_to_collections", "search", "snippet"]

MODES = ("semantic", "lexical", "hybrid")
#: Reciprocal-rank fusion's constant.
RRF_K = 60


@attrs.frozen
class Result:
    """One search result: the document, its score under the mode, and the mode that found it."""

    document: Document
    score: float
    mode: str

    @property
    def kind(self) -> str:
        name = self.document.collection
        return name[1:] if name.startswith("@") else "collection"

    def to_dict(self) -> dict[str, Any]:
        doc = self.document
        return {
            "score": round(self.score, 6),
            "kind": self.kind,
            "collection": doc.collection,
            "id": doc.id,
            "snippet": snippet(doc.text),
            "branch": doc.branch,
            "created": doc.created,
            "metadata": dict(doc.metadata),
        }


def snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def kinds_to_collections(kinds: Sequence[str] | None) -> list[str] | None:
    """``--kind`` values (context, runs, chat, memory) as collection names; None for every collection."""
    if not kinds:
        return None
    out = []
    for kind in kinds:
        if kind not in BUILTIN_COLLECTIONS:
            raise ValidationError(
                f"unknown kind {kind!r}", what="search", hint=f"use one of: {', '.join(BUILTIN_COLLECTIONS)}"
            )
        out.append(BUILTIN_COLLECTIONS[kind])
    return out


def _check_query(query: object) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ValidationError("the query is empty", what="search", hint="give some words to search for")
    return query


def _semantic(
    documents: DocumentStore,
    index: VectorIndex,
    vector: Any,
    k: int,
    collections: Sequence[str] | None,
    branch: str | None,
    since: str | None,
) -> list[Result]:
    filtered = collections is not None or branch is not None or since is not None
    allowed = documents.text_hashes(collections, branch=branch, since=since) if filtered else None
    if allowed is not None and not allowed:
        return []
    hits = index.search(vector, min(k, max(len(index), 1)), filter=allowed)
    if not hits:
        return []
    score = {h.id: h.score for h in hits if h.score > 0}  # no shared direction: not a match
    if not score:
        return []
    docs = documents.documents_by_hash(list(score), collections, branch=branch, since=since)
    docs.sort(key=lambda d: -score[d.text_hash])  # stable: newest first among holders of one text
    return [Result(d, score[d.text_hash], "semantic") for d in docs[:k]]


def fuse(lists: Sequence[Sequence[Result]], k: int) -> list[Result]:
    """Reciprocal-rank fusion of ranked lists, by document key; best ``k``."""
    total: dict[tuple[str, str], float] = {}
    first: dict[tuple[str, str], Document] = {}
    for results in lists:
        for rank, result in enumerate(results, start=1):
            key = result.document.key
            total[key] = total.get(key, 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(key, result.document)
    ranked = sorted(total, key=lambda key: (-total[key], key))
    return [Result(first[key], total[key], "hybrid") for key in ranked[:k]]


def search(
    documents: DocumentStore,
    query: str,
    *,
    k: int = 10,
    mode: str = "hybrid",
    collections: Sequence[str] | None = None,
    branch: str | None = None,
    since: str | None = None,
    index: VectorIndex | None = None,
    query_vector: Any = None,
) -> list[Result]:
    """Ranked results for ``query``; semantic and hybrid need ``index`` and ``query_vector`` (the embedded query)."""
    query = _check_query(query)
    k = check_k(k)
    if mode not in MODES:
        raise ValidationError(f"unknown mode {mode!r}", what="search", hint=f"use one of: {', '.join(MODES)}")
    if mode != "lexical" and (index is None or query_vector is None):
        raise ValidationError(f"{mode} search needs the vector index and the embedded query", what="search")
    if mode == "semantic":
        assert index is not None
        return _semantic(documents, index, query_vector, k, collections, branch, since)
    lexical: list[Result] = []
    if any(True for _ in query_words_or_none(query)):
        found = documents.search_text(query, k=k, collections=collections, branch=branch, since=since)
        lexical = [Result(d, s, "lexical") for d, s in found]
    if mode == "lexical":
        if not lexical and not list(query_words_or_none(query)):
            query_words(query)  # raises: a lexical query needs words
        return lexical[:k]
    assert index is not None
    semantic = _semantic(documents, index, query_vector, k, collections, branch, since)
    return fuse([semantic, lexical], k)


def query_words_or_none(query: str) -> list[str]:
    """The query's words, or none (a hybrid query of punctuation still has a semantic half)."""
    try:
        return query_words(query)
    except ValidationError:
        return []
