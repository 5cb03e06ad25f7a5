"""The vectors facet: embeddings keyed by who made them and the hash of the text they embed.

Vectors are content-addressed like blobs: the key is ``(EmbedderIdentity,
text hash)``, so a text held by many documents is embedded once per
embedder. They are derived data: a backend may keep them outside its source
of truth (cairn-git keeps them in a local cache file beside the repository)
and ``cairn memory reindex`` rebuilds them from the documents.

A vector travels as bytes: little-endian float32, ``4 * dimensions`` long
(``cairn.model.embedding.pack_vector``); ``check_vector_bytes`` refuses a
wrong length, NaN, infinity and an all-zero vector before anything is stored.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping

from cairn.model.embedding import EmbedderIdentity
from cairn.storage._facet import Facet

__all__ = ["VectorStore"]


class VectorStore(Facet, abc.ABC):
    """Embeddings by ``(identity, text hash)``: put, get, list what is stored, drop an embedder's vectors."""

    facet = "vectors"
    holds = "stored embeddings"

    @abc.abstractmethod
    def put_vectors(self, identity: EmbedderIdentity, vectors: Mapping[str, bytes]) -> int:
        """Store ``{text hash: float32 bytes}`` in one transaction, all or nothing; returns how many were new.

        A vector already stored for that identity and hash is kept as it is
        (the same text embeds the same way). Bad input (see
        ``check_vector_bytes``) raises ``ValidationError`` and stores nothing.
        Durable when it returns.
        """

    @abc.abstractmethod
    def get_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> dict[str, bytes]:
        """The stored vectors of these hashes; hashes without one are left out."""

    @abc.abstractmethod
    def stored_vectors(self, identity: EmbedderIdentity, hashes: Iterable[str]) -> set[str]:
        """Which of these hashes have a vector for ``identity`` (without reading the vectors)."""

    @abc.abstractmethod
    def iter_vectors(self, identity: EmbedderIdentity, *, batch: int = 1000) -> Iterator[list[tuple[str, bytes]]]:
        """Every vector of ``identity`` as lists of ``(hash, bytes)`` of at most ``batch``, in hash order."""

    @abc.abstractmethod
    def vector_counts(self) -> dict[EmbedderIdentity, int]:
        """How many vectors each embedder has stored (embedders with none left out)."""

    @abc.abstractmethod
    def delete_vectors(self, identity: EmbedderIdentity) -> int:
        """Forget every vector of ``identity`` (a reindex); returns how many."""
