"""The ``hashing`` embedder: signed feature hashing of words and word bigrams, L2-normalized.

Each lower-cased word (``\\w+``, Unicode-aware) and, optionally, each pair of
adjacent words is a feature. A feature's BLAKE2b hash picks two different
dimensions and an independent sign for each (the signs make collisions cancel
out on average instead of piling up); a text's vector is the signed count of
its features, scaled to unit length. Cosine similarity is then a dot product
that rewards shared words and shared phrases: real lexical retrieval, with no
vocabulary to fit.

What hashing promises, and what it cannot: collisions are inherent, so two
different features may share a dimension. Two slots per feature bound the
damage. A feature never cancels itself (its slots are different dimensions),
and two features cancel each other out only if both of their slots coincide
with opposite signs: about one pair in ``dimensions**2 / 4``, where one slot
each (the first scheme, ``hashing``) made it one pair in ``2 * dimensions``,
so that a two-word query could embed to all zeros. Where the words of a
query and a set of documents share at most one slot between them, lexical
overlap ranks exactly as without hashing; the tests hold the embedder to that.

The scheme is named by ``SCHEME`` (``hashing-v2``), reported as the model of
every response: vectors of different schemes are not comparable, so anything
that keeps vectors keys them by it. Change how features map to slots and
``SCHEME`` must change too (a test pins the bytes of a known vector).

BLAKE2b, not Python's ``hash()``: that one is salted per process, and
vectors must be the same in every process to be stored and compared later.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from typing import Any

from cairn.providers import (
    EmbeddingCapabilities,
    EmbeddingProvider,
    EmbeddingRequest,
    EmbeddingResponse,
    InvalidRequestError,
    Price,
    Usage,
)

__all__ = ["SCHEME", "HashingEmbedder", "features"]

#: The name of the feature-to-slot mapping, reported as the model of every response.
SCHEME = "hashing-v2"
#: Model names a request may give: the scheme, or the provider's own name meaning "the current scheme".
_MODELS = (SCHEME, "hashing")

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

    default_model = SCHEME
    prices = {SCHEME: Price(0.0), "hashing": Price(0.0)}

    def __init__(self, *, dimensions: int = 512, bigrams: bool = True, max_batch: int = 4096) -> None:
        import numpy

        if dimensions < 2:
            raise ValueError(f"dimensions must be at least 2 (a feature takes two), got {dimensions}")
        self.np = numpy
        self.dimensions = dimensions
        self.bigrams = bigrams
        self.max_batch = max_batch
        # feature -> its two signed (dimension + 1); words repeat a lot, so most hashes are computed once.
        self._slots: dict[str, tuple[int, int]] = {}

    def capabilities(self, model: str) -> EmbeddingCapabilities:
        return EmbeddingCapabilities(dimensions=self.dimensions, max_batch=self.max_batch, max_input_tokens=None)

    def slots(self, feature: str) -> list[tuple[int, int]]:
        """Where ``feature`` goes: its two different dimensions, each with its sign (+1 or -1)."""
        return [(abs(s) - 1, 1 if s > 0 else -1) for s in self._signed(feature)]

    def _signed(self, feature: str) -> tuple[int, int]:
        """Two signed (dimension + 1), never 0: each half of the hash gives a sign (bit 0) and a dimension.

        The second dimension is drawn among the other ``dimensions - 1``, so
        the two never coincide and a feature cannot cancel itself.
        """
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=16).digest()
        first, second = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")
        one = (first >> 1) % self.dimensions
        two = (one + 1 + (second >> 1) % (self.dimensions - 1)) % self.dimensions
        return (one + 1 if first & 1 else -(one + 1)), (two + 1 if second & 1 else -(two + 1))

    def _learn(self, feature: str) -> tuple[int, int]:
        pair = self._slots[feature] = self._signed(feature)
        return pair

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
            signed.extend(itertools.chain.from_iterable([get(feature) or learn(feature) for feature in found]))
            lengths.append(2 * len(found))
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
        if request.model and request.model not in _MODELS:
            raise InvalidRequestError(
                f"the hashing embedder has no model {request.model!r}",
                hint=f"leave the model out, or ask for {SCHEME!r} (the current scheme)",
                retryable=False,
                provider="hashing",
                model=request.model,
            )
        matrix, words = self._embed(request.texts)
        # Rows of one array: no per-number Python objects for large batches. The model is the
        # scheme that made the vectors, whatever name the request used.
        return EmbeddingResponse(list(matrix), Usage(input_tokens=words), SCHEME)
