"""The ``hashing`` embedder: signed feature hashing of words and word bigrams, L2-normalized.

Each lower-cased word (``\\w+``, Unicode-aware) and, optionally, each pair of
adjacent words is a feature. A feature's BLAKE2b hash picks its dimension and
its sign (the sign makes collisions cancel out on average instead of piling
up); a text's vector is the signed count of its features, scaled to unit
length. Cosine similarity is then a dot product that rewards shared words
and shared phrases: real lexical retrieval, with no vocabulary to fit.

BLAKE2b, not Python's ``hash()``: that one is salted per process, and
vectors must be the same in every process to be stored and compared later.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from typing import Any

from cairn.providers import EmbeddingCapabilities, EmbeddingProvider, EmbeddingRequest, EmbeddingResponse, Price, Usage

__all__ = ["HashingEmbedder", "features"]

_WORD = re.compile(r"\w+", re.UNICODE)
_PAIR = "\x1f"  # joins the words of a bigram; cannot occur inside a \w+ word
_CACHE_LIMIT = 1 << 20


def features(text: str, *, bigrams: bool = True) -> list[str]:
    """The features of ``text``: its lower-cased words, then its adjacent word pairs."""
    words = _WORD.findall(text.lower())
    if bigrams and len(words) > 1:
        return words + [a + _PAIR + b for a, b in itertools.pairwise(words)]
    return words


class HashingEmbedder(EmbeddingProvider):
    """Feature-hashing embeddings in ``dimensions`` dimensions; free, offline, deterministic."""

    default_model = "hashing"
    prices = {"hashing": Price(0.0)}

    def __init__(self, *, dimensions: int = 512, bigrams: bool = True, max_batch: int = 4096) -> None:
        import numpy

        self.np = numpy
        self.dimensions = dimensions
        self.bigrams = bigrams
        self.max_batch = max_batch
        # feature -> signed (dimension + 1); words repeat a lot, so most hashes are computed once.
        self._slots: dict[str, int] = {}

    def capabilities(self, model: str) -> EmbeddingCapabilities:
        return EmbeddingCapabilities(dimensions=self.dimensions, max_batch=self.max_batch, max_input_tokens=None)

    def _slot(self, feature: str) -> int:
        """Signed (dimension + 1): bit 0 of the hash is the sign, the rest picks the dimension."""
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        slot = (value >> 1) % self.dimensions + 1
        return slot if value & 1 else -slot

    def _learn(self, feature: str) -> int:
        slot = self._slots[feature] = self._slot(feature)
        return slot

    def vectors(self, texts: Sequence[str]) -> Any:
        """A float32 matrix with one unit-length row per text (all zeros for a text without words)."""
        return self._embed(texts)[0]

    def _embed(self, texts: Sequence[str]) -> tuple[Any, int]:
        """(the matrix, how many words the texts hold)."""
        np = self.np
        slots = self._slots
        if len(slots) > _CACHE_LIMIT:
            slots.clear()
        get, learn, bigrams = slots.get, self._learn, self.bigrams
        lengths: list[int] = []
        signed: list[int] = []
        words = 0
        for text in texts:
            found = features(text, bigrams=bigrams)
            # A slot is never 0, so `or` falls through to hashing only for an unseen feature.
            signed.extend([get(feature) or learn(feature) for feature in found])
            lengths.append(len(found))
            words += (len(found) + 1) // 2 if bigrams and found else len(found)
        count = len(texts)
        if not signed:
            return np.zeros((count, self.dimensions), dtype=np.float32), 0
        slot_array = np.asarray(signed, dtype=np.int64)
        rows = np.repeat(np.arange(count, dtype=np.int64), lengths)
        flat = rows * self.dimensions + (np.abs(slot_array) - 1)
        matrix = np.bincount(
            flat, weights=np.sign(slot_array).astype(np.float64), minlength=count * self.dimensions
        ).reshape(count, self.dimensions)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return (matrix / norms).astype(np.float32), words

    def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        matrix, words = self._embed(request.texts)
        # Rows of one array: no per-number Python objects for large batches.
        return EmbeddingResponse(list(matrix), Usage(input_tokens=words), request.model or self.default_model)
