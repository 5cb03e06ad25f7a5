"""Embedding what is not embedded yet, and the vector index kept beside the store.

``embed_missing`` is the heart of ``cairn memory index``: it takes the
distinct texts of the documents facet that have no vector for the
configured embedder, embeds them in batches through the kernel's
``Embedder`` (retries, usage, cost), and for each batch writes the vectors
in one transaction of the vectors facet and adds them to the open vector
index. Designed for throughput, so indexing runs close to the embedder's
own speed:

- one write transaction (one fsync) per batch, never one per vector;
- the index is persisted at checkpoints (every ``checkpoint_s`` seconds)
  and at the end, not per batch;
- spend records are held by ``Meter.aggregated`` and written at the same
  checkpoints, one per provider and model, not one per call.

It is resumable and idempotent: the vectors facet is the record of what is
done. A run killed mid-way keeps every batch whose transaction committed;
the next run embeds only the rest, and ``open_index`` first catches the
index up with the vectors stored (an index is derived data: when it holds
what the facet does not, it is rebuilt).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import ProviderError, ValidationError
from cairn.model.embedding import EmbedderIdentity
from cairn.storage import DocumentStore, VectorStore
from cairn.vector_index import VectorIndex, VectorIndexOpener

if TYPE_CHECKING:  # pragma: no cover
    from cairn.providers import Embedder

__all__ = [
    "DEFAULT_BATCH",
    "IndexReport",
    "embed_missing",
    "embedder_identity",
    "index_path",
    "open_index",
    "vectors_matrix",
]

#: Texts per embedding call and per write transaction.
DEFAULT_BATCH = 256
#: Seconds between index persists (and spend flushes) during a long run.
CHECKPOINT_S = 30.0


@attrs.frozen
class IndexReport:
    """What a run of ``embed_missing`` did."""

    identity: EmbedderIdentity
    #: Distinct texts that needed a vector when the run started.
    missing: int
    #: Texts embedded and stored by this run.
    embedded: int
    #: Distinct texts of every document (the whole job).
    texts: int
    batches: int
    seconds: float
    #: Vectors the index holds at the end.
    indexed: int

    def to_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self)
        out["identity"] = self.identity.to_dict()
        return out


def embedder_identity(embedder: Embedder) -> EmbedderIdentity:
    """Who ``embedder`` is: its provider name, the model its responses name, and their length (one probe call)."""
    response = embedder.embed(["identity probe"])
    if not response.vectors:
        raise ProviderError(f"the {embedder.name} embedder returned no vector for a probe text")
    return EmbedderIdentity(embedder.name, response.model or "default", len(response.vectors[0]))


def index_path(data_dir: Path, kind: str, identity: EmbedderIdentity) -> Path:
    """Where the ``kind`` index of ``identity``'s vectors lives under the project's data directory."""
    return Path(data_dir) / "memory" / "index" / kind / identity.slug()


def vectors_matrix(vectors: Any, dimensions: int) -> Any:
    """The embedder's output as a float32 matrix, refusing NaN and infinity (nothing is stored then)."""
    import numpy as np

    matrix = np.asarray(vectors, dtype="<f4")
    if matrix.ndim != 2 or matrix.shape[1] != dimensions:
        raise ValidationError(f"the embedder returned vectors of shape {matrix.shape}, expected (n, {dimensions})")
    if not np.isfinite(matrix).all():
        raise ValidationError(
            "the embedder returned a vector holding NaN or infinity",
            what="vectors",
            hint="check the embedding provider; nothing of this batch was stored",
        )
    return matrix


def open_index(opener: VectorIndexOpener, path: Path, identity: EmbedderIdentity, vectors: VectorStore) -> VectorIndex:
    """Open the index at ``path`` and catch it up with the vectors ``identity`` has stored.

    Vectors stored but not indexed (a run killed before its persist) are
    added; an index holding more than the store (the store was replaced or
    its vectors deleted) is rebuilt from scratch.
    """
    index = opener.open(path, identity)
    stored = vectors.vector_counts().get(identity, 0)
    if len(index) > stored:
        index.close()
        shutil.rmtree(path, ignore_errors=True)
        index = opener.open(path, identity)
    if len(index) < stored:
        import numpy as np

        for page in vectors.iter_vectors(identity, batch=4096):
            fresh = [(h, v) for h, v in page if h not in index]
            if fresh:
                matrix = np.frombuffer(b"".join(v for _, v in fresh), dtype="<f4").reshape(len(fresh), -1)
                index.add([h for h, _ in fresh], matrix)
        index.persist()
    return index


def _batches(documents: DocumentStore, missing: list[str], size: int) -> Iterator[tuple[list[str], list[str]]]:
    """(hashes, texts) of ``missing`` in batches, each text read once from a document holding it."""
    for start in range(0, len(missing), size):
        chunk = missing[start : start + size]
        texts: dict[str, str] = {}
        for doc in documents.documents_by_hash(chunk):
            texts.setdefault(doc.text_hash, doc.text)
        hashes = [h for h in chunk if h in texts]  # a document deleted meanwhile has nothing to embed
        yield hashes, [texts[h] for h in hashes]


def embed_missing(
    documents: DocumentStore,
    vectors: VectorStore,
    embedder: Embedder,
    identity: EmbedderIdentity,
    index: VectorIndex,
    *,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    checkpoint_s: float = CHECKPOINT_S,
    clock: Callable[[], float] = time.monotonic,
) -> IndexReport:
    """Embed every document text with no vector for ``identity``; store and index each batch (see the module)."""
    if batch < 1:
        raise ValidationError(f"batch must be at least 1, got {batch}", what="memory index")
    started = clock()
    texts = documents.text_hashes()
    missing = sorted(texts - vectors.stored_vectors(identity, texts))
    embedded = batches = 0
    last_checkpoint = started
    meter = getattr(embedder, "meter", None)
    held = meter.aggregated() if meter is not None else contextlib.nullcontext()
    with held:
        for hashes, chunk in _batches(documents, missing, batch):
            if not hashes:
                continue
            response = embedder.embed(chunk, metadata={"purpose": "memory index"})
            matrix = vectors_matrix(response.vectors, identity.dimensions)
            vectors.put_vectors(identity, {h: matrix[i].tobytes() for i, h in enumerate(hashes)})
            index.add(hashes, matrix)
            embedded += len(hashes)
            batches += 1
            if progress is not None:
                progress(len(hashes))
            if clock() - last_checkpoint >= checkpoint_s:
                index.persist()
                if meter is not None:
                    meter.flush()
                last_checkpoint = clock()
        index.persist()
    return IndexReport(identity, len(missing), embedded, len(texts), batches, clock() - started, len(index))
