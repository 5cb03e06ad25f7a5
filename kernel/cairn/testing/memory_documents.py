"""The vectors and documents facets in memory: the shortest complete statement of both contracts.

``MemoryStore`` inherits ``MemoryMemoryFacets``. Lexical search is BM25
(k1 = 1.2, b = 0.75, the constants FTS5 uses) over ``\\w+`` words, case-folded.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence

from cairn.model.embedding import Document, EmbedderIdentity, check_collection, check_vector_bytes
from cairn.storage import DocumentStore, VectorStore, checked_documents, query_words
from cairn.vector_index import check_k

__all__ = ["MemoryMemoryFacets"]

_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


class MemoryMemoryFacets(VectorStore, DocumentStore):
    """Vectors in a dict by ``(identity, hash)``; documents in a dict by ``(collection, id)``."""

    _lock: threading.RLock

    def _memory_init(self) -> None:
        self.vectors: dict[EmbedderIdentity, dict[str, bytes]] = {}
        self.docs: dict[tuple[str, str], Document] = {}

    # -- vectors ---------------------------------------------------------------------

    def put_vectors(self, identity: EmbedderIdentity, vectors: Mapping[str, bytes]) -> int:
        checked = check_vector_bytes(identity, vectors)
        with self._lock:
            held = self.vectors.setdefault(identity, {})
            new = [h for h in checked if h not in held]
            for digest in new:
                held[digest] = checked[digest]
            return len(new)

    def get_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> dict[str, bytes]:
        with self._lock:
            held = self.vectors.get(identity, {})
            return {h: held[h] for h in hashes if h in held}

    def stored_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> set[str]:
        with self._lock:
            held = self.vectors.get(identity, {})
            return {h for h in hashes if h in held}

    def iter_vectors(self, identity: EmbedderIdentity, *, batch: int = 1000) -> Iterator[list[tuple[str, bytes]]]:
        with self._lock:
            rows = sorted(self.vectors.get(identity, {}).items())
        for start in range(0, len(rows), batch):
            yield rows[start : start + batch]

    def vector_counts(self) -> dict[EmbedderIdentity, int]:
        with self._lock:
            return {i: len(v) for i, v in self.vectors.items() if v}

    def delete_vectors(self, identity: EmbedderIdentity) -> int:
        with self._lock:
            return len(self.vectors.pop(identity, {}))

    # -- documents -------------------------------------------------------------------

    def put_documents(self, documents: Sequence[Document]) -> None:
        docs = checked_documents(documents)
        with self._lock:
            for doc in docs:
                self.docs[doc.key] = doc

    def get_documents(self, collection: str, ids: Iterable[str]) -> dict[str, Document]:
        with self._lock:
            return {i: self.docs[(collection, i)] for i in ids if (collection, i) in self.docs}

    def _filtered(self, collections: Sequence[str] | None, branch: str | None, since: str | None) -> list[Document]:
        wanted = None if collections is None else {check_collection(c) for c in collections}
        with self._lock:
            docs = list(self.docs.values())
        return [
            d
            for d in docs
            if (wanted is None or d.collection in wanted)
            and (branch is None or d.branch == branch)
            and (since is None or d.created >= since)
        ]

    @staticmethod
    def _newest_first(docs: list[Document]) -> list[Document]:
        docs.sort(key=lambda d: (d.collection, d.id))
        docs.sort(key=lambda d: d.created, reverse=True)
        return docs

    def documents(
        self,
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[Document]:
        out = self._newest_first(self._filtered(collections, branch, since))
        return out if limit is None else out[:limit]

    def documents_by_hash(
        self,
        hashes: Iterable[str],
        collections: Sequence[str] | None = None,
        *,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[Document]:
        wanted = set(hashes)
        return self._newest_first([d for d in self._filtered(collections, branch, since) if d.text_hash in wanted])

    def texts(self, hashes: Iterable[str]) -> dict[str, str]:
        wanted = set(hashes)
        with self._lock:
            return {d.text_hash: d.text for d in self.docs.values() if d.text_hash in wanted}

    def text_hashes(
        self, collections: Sequence[str] | None = None, *, branch: str | None = None, since: str | None = None
    ) -> set[str]:
        return {d.text_hash for d in self._filtered(collections, branch, since)}

    def collections(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(Counter(c for c, _ in self.docs).items()))

    def delete_documents(self, collection: str, ids: Iterable[str] | None = None) -> int:
        with self._lock:
            keys = [k for k in self.docs if k[0] == collection] if ids is None else [(collection, i) for i in ids]
            return sum(self.docs.pop(k, None) is not None for k in keys)

    def search_text(
        self,
        query: str,
        *,
        k: int,
        collections: Sequence[str] | None = None,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[tuple[Document, float]]:
        words = query_words(query)
        k = check_k(k)
        with self._lock:
            corpus = list(self.docs.values())
        counted = {d.key: Counter(_words(d.text)) for d in corpus}
        total = len(corpus)
        average = sum(sum(c.values()) for c in counted.values()) / total if total else 0.0
        frequency = {w: sum(1 for c in counted.values() if w in c) for w in words}
        scored = []
        for doc in self._filtered(collections, branch, since):
            counts = counted[doc.key]
            length = sum(counts.values())
            score = 0.0
            for word in words:
                tf = counts.get(word, 0)
                if tf:
                    n = frequency[word]
                    idf = math.log((total - n + 0.5) / (n + 0.5) + 1)
                    score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / average))
            if score > 0:
                scored.append((doc, score))
        scored.sort(key=lambda pair: (-pair[1], pair[0].collection, pair[0].id))
        return scored[:k]
