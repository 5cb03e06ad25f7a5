"""The storage conformance suites: one per facet, run unchanged by every backend.

A backend's test class inherits the suites of the facets its store declares
and provides a ``store_opener`` fixture returning a picklable, module-level
callable that opens (creating when needed) a store in a directory::

    from cairn.testing.storage import AnnotationsConformance, ObjectsConformance, RefsConformance

    class TestMyBackend(ObjectsConformance, RefsConformance, AnnotationsConformance):
        @pytest.fixture
        def store_opener(self):
            return my_backend.open_in_directory   # opener(directory: pathlib.Path) -> store

A backend of every wave-1 facet inherits ``StoreConformance``; one that keeps
memory adds ``VectorsConformance`` and ``DocumentsConformance``. Every suite
also checks the other way round: a test class that leaves out the suite of
a facet its store declares fails (``test_runs_the_suite_of_every_declared_facet``).

The opener must be importable by a freshly spawned Python process (the
concurrency tests open the same directory from four processes), so define
it in your package, not in a test module.

Optional fixtures a backend may override (tests that need them are skipped
when they return None):

- ``corrupt_blob`` (maintenance): a callable ``(store, hash, data)`` that
  overwrites a stored blob's bytes behind the store's back, to prove
  ``check()`` finds it.
- ``sync_pair`` (sync, required there): two stores sharing one remote.

A backend that lives inside one process (like ``cairn.testing.memory``) sets
the class attribute ``persistent = False`` on its test class: the reopen and
multi-process tests are then skipped, since there is nothing to reopen or
share.

Commits are built with ``Chain``, which fills in every derived field the way
the context engine does (content type, token counts, depth, skip pointer).
"""

from __future__ import annotations

from cairn.testing.storage._support import (
    MAIN,
    SIDE,
    WORDS,
    Chain,
    CorruptBlob,
    FacetSuite,
    StoreOpener,
    ancestor_at,
    at,
    content_bytes,
    derive,
    run_workers,
)
from cairn.testing.storage.annotations import AnnotationsConformance
from cairn.testing.storage.artifacts import ArtifactMetaConformance
from cairn.testing.storage.chat import ChatConformance
from cairn.testing.storage.documents import DocumentsConformance, make_document
from cairn.testing.storage.governance import GovernanceConformance
from cairn.testing.storage.ledger import LedgerConformance, make_events, make_run
from cairn.testing.storage.maintenance import MaintenanceConformance
from cairn.testing.storage.nonces import NoncesConformance
from cairn.testing.storage.objects import ObjectsConformance
from cairn.testing.storage.refs import RefsConformance
from cairn.testing.storage.sync import SyncConformance
from cairn.testing.storage.token_counts import TokenCountsConformance
from cairn.testing.storage.vectors import VectorsConformance

__all__ = [
    "MAIN",
    "SIDE",
    "WORDS",
    "AnnotationsConformance",
    "ArtifactMetaConformance",
    "Chain",
    "ChatConformance",
    "CorruptBlob",
    "DocumentsConformance",
    "FacetSuite",
    "GovernanceConformance",
    "LedgerConformance",
    "MaintenanceConformance",
    "NoncesConformance",
    "ObjectsConformance",
    "RefsConformance",
    "StoreConformance",
    "StoreOpener",
    "SyncConformance",
    "TokenCountsConformance",
    "VectorsConformance",
    "ancestor_at",
    "at",
    "content_bytes",
    "derive",
    "make_document",
    "make_events",
    "make_run",
    "run_workers",
]


class StoreConformance(
    ObjectsConformance,
    RefsConformance,
    AnnotationsConformance,
    TokenCountsConformance,
    LedgerConformance,
    ChatConformance,
    MaintenanceConformance,
):
    """Every wave-1 facet's suite: what a backend implementing ``cairn.storage.Store`` runs."""
