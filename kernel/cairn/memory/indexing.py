"""Embedding what is not embedded yet, and the vector index kept beside the store.

``embed_missing`` is the heart of ``cairn memory index``: it takes the
distinct texts of the documents facet that have no vector for the
configured embedder, embeds them in batches through the kernel's
``Embedder`` (retries, usage, cost), and for each batch writes the vectors
to the vectors facet and adds them to the open vector index. Designed for throughput, so indexing runs close to the embedder's
own speed:

- one write transaction (one fsync) per ``write_every`` vectors (a few
  embedding calls' worth, and at every checkpoint), never one per vector;
- the index is persisted at checkpoints (every ``checkpoint_s`` seconds)
  and at the end, not per batch;
- spend records are held by ``Meter.aggregated`` and written at the same
  checkpoints, one per provider and model, not one per call.

It is resumable and idempotent: the vectors facet is the record of what is
done. A run killed mid-way keeps every vector whose transaction committed;
the next run embeds only the rest, and ``open_index`` first catches the
index up with the vectors stored (an index is derived data: when it holds
what the facet does not, it is rebuilt).
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import threading
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
#: Vectors written per transaction of the vectors facet (one fsync each): several embedding calls' worth.
WRITE_EVERY = 4096
#: Texts read from the documents facet per query.
READ_CHUNK = 4096
#: Seconds between index persists (and spend flushes) during a long run.
CHECKPOINT_S = 30.0


class _Writer:
    """Stores and indexes embedded batches on a thread of its own, in order, while the next batch embeds.

    Embedding is CPU work in Python; writing is SQLite and the file system,
    which release the GIL: overlapping them hides most of the write time.
    Vectors are written ``write_every`` at a time, one transaction each;
    ``checkpoint`` and leaving the block write what is waiting and persist
    the index. A failure on the thread stops the run at the next batch.
    """

    def __init__(self, vectors: VectorStore, identity: EmbedderIdentity, index: VectorIndex, write_every: int) -> None:
        self.vectors = vectors
        self.identity = identity
        self.index = index
        self.write_every = write_every
        self.waiting: dict[str, bytes] = {}
        self.failure: BaseException | None = None
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=4)
        self.thread = threading.Thread(target=self._run, name="cairn-memory-writer", daemon=True)

    def __enter__(self) -> _Writer:
        self.thread.start()
        return self

    def __exit__(self, kind: Any, exc: Any, traceback: Any) -> None:
        self.queue.put(("stop", None, None) if kind is None else ("abort", None, None))
        self.thread.join()

    def _run(self) -> None:
        while True:
            what, hashes, matrix = self.queue.get()
            if self.failure is not None and what not in ("stop", "abort"):
                continue  # drain: the main thread raises at its next submit
            try:
                if what == "add":
                    self.waiting.update((h, matrix[i].tobytes()) for i, h in enumerate(hashes))
                    self.index.add(hashes, matrix)
                    if len(self.waiting) >= self.write_every:
                        self._write()
                elif what in ("checkpoint", "stop"):
                    if self.failure is None:
                        self._write()
                        self.index.persist()
                elif what == "abort" and self.failure is None:
                    self._write()  # what was embedded is kept: the next run need not embed it again
            except BaseException as exc:  # handed to the main thread
                self.failure = exc
            if what in ("stop", "abort"):
                return

    def _write(self) -> None:
        if self.waiting:
            self.vectors.put_vectors(self.identity, self.waiting)
            self.waiting = {}

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def submit(self, hashes: list[str], matrix: Any) -> None:
        self.raise_failure()
        self.queue.put(("add", hashes, matrix))

    def checkpoint(self) -> None:
        self.raise_failure()
        self.queue.put(("checkpoint", None, None))


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
    """(hashes, texts) of ``missing`` in batches of ``size``; texts are read READ_CHUNK at a time (one query)."""
    for start in range(0, len(missing), max(size, READ_CHUNK)):
        chunk = missing[start : start + max(size, READ_CHUNK)]
        texts = documents.texts(chunk)
        present = [h for h in chunk if h in texts]  # a document deleted meanwhile has nothing to embed
        for offset in range(0, len(present), size):
            hashes = present[offset : offset + size]
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
    write_every: int = WRITE_EVERY,
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
    writer = _Writer(vectors, identity, index, write_every)
    with held, writer:
        for hashes, chunk in _batches(documents, missing, batch):
            if not hashes:
                continue
            response = embedder.embed(chunk, metadata={"purpose": "memory index"})
            writer.submit(hashes, vectors_matrix(response.vectors, identity.dimensions))
            embedded += len(hashes)
            batches += 1
            if progress is not None:
                progress(len(hashes))
            if clock() - last_checkpoint >= checkpoint_s:
                writer.checkpoint()
                if meter is not None:
                    meter.flush()
                last_checkpoint = clock()
    writer.raise_failure()
    return IndexReport(identity, len(missing), embedded, len(texts), batches, clock() - started, len(index))
