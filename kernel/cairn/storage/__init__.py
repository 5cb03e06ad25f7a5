"""The storage contract, in facets: what backends implement and the kernel asks for.

The kernel never writes SQL or runs git: it talks to storage through small
contracts, one per facet of what is stored. A backend is one class that
inherits the contracts it provides; inheriting one declares it:

=============== =================== ============================================
facet           contract            holds
=============== =================== ============================================
``objects``     ``ObjectStore``     blobs and commits; ancestry and look-ups;
                                    ``write`` (objects and refs atomically)
``refs``        ``RefStore``        HEAD and branches, by compare-and-swap
``annotations`` ``AnnotationStore`` append-only priority records
``token_counts``  ``TokenCountStore`` a token-count cache (optional)
``ledger``      ``RunStore``        runs, events and spend
``chat``        ``ChatStore``       chat messages and threads
``maintenance`` ``Maintenance``     stats, gc and the integrity check
``sync``        ``Syncable``        push and pull between machines
=============== =================== ============================================

Facets added since: ``artifact_meta`` (``ArtifactMetaStore``), the records
of artifacts and snapshots and the bytes of small artifacts; ``vectors``
(``VectorStore``), embeddings keyed by embedder and text hash (derived data,
rebuildable); ``documents`` (``DocumentStore``), the texts search and recall
read, with full-text search; ``governance`` (``GovernanceStore``),
directives and approvals; ``nonces`` (``NonceStore``), idempotency keys and
their results.

The context engine needs objects, refs and annotations; the ledger needs
``ledger``; chat needs ``chat``. ``require(store, RunStore)`` returns the
store typed as that facet, or raises ``MissingFacetError`` naming the backend
and the facet, so a backend that keeps context but no ledger serves every
context command and refuses ``cairn runs list`` with a clear error.

``Store`` is every facet wave 1 defined but sync, in one class: what the
built-in backends implement. ``cairn.testing`` ships one conformance suite
per facet; a backend runs the suites of the facets it declares.

Times are the strings ``cairn.model.format_time`` makes (UTC, fixed width),
so comparing them as strings compares them as times.
"""

from __future__ import annotations

from cairn.errors import ConflictError, IntegrityError, MissingFacetError, NotFoundError, StorageError
from cairn.storage._facet import Facet, backend_name, facets_of, require
from cairn.storage.annotations import AnnotationStore
from cairn.storage.artifacts import ArtifactMetaStore
from cairn.storage.chat import ChatStore
from cairn.storage.documents import DocumentStore, checked_documents, query_words
from cairn.storage.governance import GovernanceStore
from cairn.storage.ledger import RunStore
from cairn.storage.maintenance import (
    GcReport,
    Maintenance,
    Problem,
    StoreStats,
    check_objects,
    check_store,
    unreachable,
)
from cairn.storage.nonces import NonceStore
from cairn.storage.objects import ObjectStore
from cairn.storage.refs import BRANCH_PREFIX, HEAD, SYMBOLIC_PREFIX, RefStore, RefUpdate, branch_ref, ref_problem
from cairn.storage.sync import Syncable, SyncReport, SyncStatus
from cairn.storage.token_counts import TokenCountStore
from cairn.storage.vectors import VectorStore

__all__ = [
    "BRANCH_PREFIX",
    "HEAD",
    "SYMBOLIC_PREFIX",
    "AnnotationStore",
    "ArtifactMetaStore",
    "ChatStore",
    "ConflictError",
    "DocumentStore",
    "Facet",
    "GcReport",
    "GovernanceStore",
    "IntegrityError",
    "Maintenance",
    "MissingFacetError",
    "NonceStore",
    "NotFoundError",
    "ObjectStore",
    "Problem",
    "RefStore",
    "RefUpdate",
    "RunStore",
    "StorageError",
    "Store",
    "StoreStats",
    "SyncReport",
    "SyncStatus",
    "Syncable",
    "TokenCountStore",
    "VectorStore",
    "backend_name",
    "branch_ref",
    "check_objects",
    "checked_documents",
    "check_store",
    "facets_of",
    "query_words",
    "ref_problem",
    "require",
    "unreachable",
]


class Store(ObjectStore, RefStore, AnnotationStore, TokenCountStore, RunStore, ChatStore, Maintenance):
    """Every facet but sync in one contract: what cairn-sqlite and cairn-git implement.

    ``update_refs`` defaults to ``write(refs=...)``, the one transaction a
    full store already has.
    """

    def update_refs(self, updates: list[RefUpdate]) -> None:
        self.write(refs=updates)
