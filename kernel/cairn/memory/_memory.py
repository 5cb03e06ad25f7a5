"""``Memory``: one project's memory (documents, vectors, the vector index, the memory branch) behind one object.

The CLI, recall and the reader use it; it opens what it needs on first use
(the embedder, the index), so a lexical search never loads an embedding
model and a context command never loads NumPy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cairn.errors import EmbedderMismatchError, NotFoundError, ValidationError
from cairn.memory.indexing import (
    DEFAULT_BATCH,
    IndexReport,
    embed_missing,
    embedder_identity,
    index_path,
    open_index,
    vectors_matrix,
)
from cairn.memory.search import Result, search
from cairn.memory.sources import SyncCounts, sync_documents
from cairn.memory.tiers import MemoryBranch
from cairn.model import now
from cairn.model.embedding import Document, EmbedderIdentity, check_collection
from cairn.repo import Repo
from cairn.storage import DocumentStore, VectorStore, require
from cairn.vector_index import REINDEX_COMMAND, VectorIndex, VectorIndexOpener, check_k

__all__ = ["Memory"]


class Memory:
    """A project's memory. ``Memory.open(repo, config, plugins)``; close it when done (the repo stays open)."""

    def __init__(
        self,
        repo: Repo,
        *,
        config: Any,
        plugins: Any,
        data_dir: Path,
        embedder: Any = None,
        index_name: str | None = None,
    ) -> None:
        self.repo = repo
        self.config = config
        self.plugins = plugins
        self.data_dir = Path(data_dir)
        self.documents: DocumentStore = require(repo.store, DocumentStore, doing="memory")
        self.vectors: VectorStore = require(repo.store, VectorStore, doing="memory")
        self.index_name = index_name or (config.memory.index if config is not None else "exact")
        self._embedder = embedder
        self._providers: Any = None
        self._identity: EmbedderIdentity | None = None
        self._index: VectorIndex | None = None

    @classmethod
    def open(cls, repo: Repo, config: Any, plugins: Any, **options: Any) -> Memory:
        return cls(repo, config=config, plugins=plugins, data_dir=config.data_dir, **options)

    # -- what is opened on first use ------------------------------------------------

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from cairn.providers import Providers

            self._providers = Providers(self.config, self.plugins, store=self.repo.store, tokenizer=self.repo.tokenizer)
            self._embedder = self._providers.embeddings()
        return self._embedder

    @property
    def identity(self) -> EmbedderIdentity:
        if self._identity is None:
            self._identity = embedder_identity(self.embedder)
        return self._identity

    def _opener(self) -> VectorIndexOpener:
        opener = self.plugins.create("vector_indexes", self.index_name, self.config)
        if not isinstance(opener, VectorIndexOpener):
            raise ValidationError(f"vector index {self.index_name!r} is not a VectorIndexOpener")
        return opener

    @property
    def index_path(self) -> Path:
        return index_path(self.data_dir, self.index_name, self.identity)

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self._index = open_index(self._opener(), self.index_path, self.identity, self.vectors)
        return self._index

    @property
    def branch(self) -> MemoryBranch:
        return MemoryBranch.of(self.repo)

    def source(self, text: str) -> str:
        """A fact's source: ``episode:<id>`` or ``commit:<revision>`` (of the user's context, HEAD included),
        with the hash resolved in full; ``ValidationError`` otherwise."""
        from cairn.model.memory import Episode

        kind, _, rev = str(text).partition(":")
        if kind == "episode":
            item = self.branch.find(rev)
            if not isinstance(item.content, Episode):
                raise ValidationError(f"{rev!r} is a fact, not an episode", what="--source")
            return f"episode:{item.id}"
        if kind == "commit" and rev.strip():
            return f"commit:{self.repo.resolve(rev).hash}"
        raise ValidationError(
            f"{text!r} is not a source", what="--source", hint="give episode:<id> or commit:<revision>"
        )

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._providers is not None:
            self._providers.close()
            self._providers = None

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- indexing --------------------------------------------------------------------

    def sync(self) -> SyncCounts:
        """Bring the built-in collections up to date with context, runs, chat and the memory branch."""
        return sync_documents(self.repo, self.documents)

    def sync_memory(self) -> None:
        """Bring only ``@memory`` (facts and episodes) up to date: what recall reads, cheap to refresh."""
        sync_documents(self.repo, self.documents, only=("@memory",))

    def embed(self, *, batch: int = DEFAULT_BATCH, progress: Callable[[int], None] | None = None) -> IndexReport:
        """Embed and index every document text without a vector for the configured embedder."""
        return embed_missing(
            self.documents, self.vectors, self.embedder, self.identity, self.index, batch=batch, progress=progress
        )

    def pending(self) -> int:
        """How many distinct document texts have no vector for the configured embedder."""
        texts = self.documents.text_hashes()
        return len(texts - self.vectors.stored_vectors(self.identity, texts))

    def reindex(self, *, batch: int = DEFAULT_BATCH, progress: Callable[[int], None] | None = None) -> IndexReport:
        """Drop every stored vector and index (of every embedder) and embed everything again."""
        if self._index is not None:
            self._index.close()
            self._index = None
        for identity in self.vectors.vector_counts():
            self.vectors.delete_vectors(identity)
        shutil.rmtree(self.data_dir / "memory" / "index", ignore_errors=True)
        return self.embed(batch=batch, progress=progress)

    # -- searching -------------------------------------------------------------------

    def has_vectors(self) -> bool:
        """Whether vectors of any embedder are stored (without loading the embedder)."""
        return bool(self.vectors.vector_counts())

    def check_identity(self) -> None:
        """``EmbedderMismatchError`` when vectors exist but none of the configured embedder's."""
        counts = self.vectors.vector_counts()
        if counts and self.identity not in counts:
            stored = max(counts, key=lambda i: counts[i])
            raise EmbedderMismatchError(
                "the stored vectors", stored.describe(), self.identity.describe(), REINDEX_COMMAND
            )

    def embed_query(self, query: str) -> Any:
        response = self.embedder.embed([query], metadata={"purpose": "search"})
        return vectors_matrix(response.vectors, self.identity.dimensions)[0]

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: str | None = None,
        collections: Sequence[str] | None = None,
        branch: str | None = None,
        since: str | None = None,
    ) -> list[Result]:
        """Ranked results; ``mode`` None is hybrid when vectors exist, lexical otherwise."""
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("the query is empty", what="search", hint="give some words to search for")
        check_k(k)
        if mode is None:
            mode = "hybrid" if self.has_vectors() else "lexical"
        if mode == "lexical":
            return search(self.documents, query, k=k, mode=mode, collections=collections, branch=branch, since=since)
        self.check_identity()
        vector = self.embed_query(query)
        return search(
            self.documents,
            query,
            k=k,
            mode=mode,
            collections=collections,
            branch=branch,
            since=since,
            index=self.index,
            query_vector=vector,
        )

    # -- collections -----------------------------------------------------------------

    def add(
        self,
        collection: str,
        entries: Sequence[tuple[str, str, dict[str, Any]]],
        *,
        embed: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Store ``(id, text, metadata)`` entries in a user collection (replacing by id); embed them when ``embed``."""
        check_collection(collection, builtin=False)
        created = now()
        docs = [Document(collection, i, text, created, None, meta) for i, text, meta in entries]
        seen: set[str] = set()
        for doc in docs:
            if doc.id in seen:
                raise ValidationError(f"id {doc.id!r} appears twice", what=f"collection {collection}")
            seen.add(doc.id)
        for start in range(0, len(docs), 1000):
            self.documents.put_documents(docs[start : start + 1000])
        if embed:
            self.embed(progress=progress)
        return len(docs)

    def collection_names(self) -> dict[str, int]:
        return self.documents.collections()

    def require_collection(self, collection: str) -> None:
        check_collection(collection)
        if collection not in self.documents.collections():
            raise NotFoundError(
                "collection", collection, hint="list them with `cairn memory collections`; add with `cairn memory add`"
            )

    def similar(self, collection: str, id: str, *, k: int = 10) -> list[Result]:
        """The ``k`` documents of ``collection`` most like document ``id`` (itself left out)."""
        self.require_collection(collection)
        check_k(k)
        found = self.documents.get_documents(collection, [id])
        if id not in found:
            raise NotFoundError(
                "document", f"{collection}/{id}", hint=f"list ids with `cairn memory search {collection}`"
            )
        self.check_identity()
        stored = self.vectors.get_vectors(self.identity, [found[id].text_hash])
        if not stored:
            raise ValidationError(
                f"{collection}/{id} has no vector yet", what="similar", hint="run `cairn memory index` first"
            )
        import numpy as np

        vector = np.frombuffer(stored[found[id].text_hash], dtype="<f4")
        results = search(
            self.documents,
            found[id].text,
            k=min(k + 1, 10_000),
            mode="semantic",
            collections=[collection],
            index=self.index,
            query_vector=vector,
        )
        return [r for r in results if r.document.id != id][:k]
