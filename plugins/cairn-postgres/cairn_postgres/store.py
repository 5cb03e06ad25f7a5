"""``PostgresStore``: cairn's store on PostgreSQL, one schema per project, for agents on many machines.

The store is composed of one mixin per storage facet, each in its own
module, all built on one connection pool:

================================ ============================================
module                           holds
================================ ============================================
``cairn_postgres.connection``    the pool, transactions, typed errors
``cairn_postgres.schema``        the tables and the numbered migrations
``cairn_postgres.objects``       blobs, commits, and ``write`` (objects, refs
                                 and token counts in one transaction)
``cairn_postgres.refs``          refs by compare-and-swap
``cairn_postgres.annotations``   priority annotations
``cairn_postgres.token_counts``  the token-count cache
``cairn_postgres.ledger``        runs, events and spend
``cairn_postgres.chat``          chat messages and threads
``cairn_postgres.artifacts``     artifact and snapshot records, inline bytes
``cairn_postgres.maintenance``   stats, gc and check
``cairn_postgres.nonces``        idempotency keys
``cairn_postgres.governance``    directives, their history, approvals
``cairn_postgres.vectors``       embeddings by embedder and text hash
``cairn_postgres.documents``     searchable documents, full-text search
================================ ============================================

No sync facet: every machine talks to the one server, so there is nothing
to push or pull (``cairn push`` says the backend cannot sync).

The modules import psycopg, so the plugin module imports this one only
inside the factory.
"""

from __future__ import annotations

from cairn.storage import (
    ArtifactMetaStore,
    DocumentStore,
    GovernanceStore,
    NonceStore,
    Store,
    VectorStore,
)
from cairn_postgres.annotations import PostgresAnnotations
from cairn_postgres.artifacts import PostgresArtifactMeta
from cairn_postgres.chat import PostgresChat
from cairn_postgres.config import PostgresConfig
from cairn_postgres.documents import PostgresDocuments
from cairn_postgres.governance import PostgresGovernance
from cairn_postgres.ledger import PostgresLedger
from cairn_postgres.maintenance import PostgresMaintenance
from cairn_postgres.nonces import PostgresNonces
from cairn_postgres.objects import PostgresObjects
from cairn_postgres.refs import PostgresRefs
from cairn_postgres.schema import MIGRATIONS, schema_version
from cairn_postgres.token_counts import PostgresTokenCounts
from cairn_postgres.vectors import PostgresVectors

__all__ = ["MIGRATIONS", "PostgresConfig", "PostgresStore", "schema_version"]


class PostgresStore(
    PostgresObjects,
    PostgresRefs,
    PostgresAnnotations,
    PostgresTokenCounts,
    PostgresLedger,
    PostgresChat,
    PostgresMaintenance,
    PostgresArtifactMeta,
    PostgresNonces,
    PostgresGovernance,
    PostgresVectors,
    PostgresDocuments,
    Store,
    ArtifactMetaStore,
    NonceStore,
    GovernanceStore,
    VectorStore,
    DocumentStore,
):
    """A ``cairn.storage.Store`` in one PostgreSQL schema: every facet but sync, artifact metadata,
    idempotency keys, governance, vectors and documents.

    ``PostgresStore(PostgresConfig(dsn=..., schema=...))`` connects, creates
    or migrates the schema (under an advisory lock) and opens the pool.
    Safe to share between threads, processes and machines.
    """

    name = "postgres"

    def __repr__(self) -> str:
        state = "closed" if self._pool is None else "open"
        return f"<PostgresStore {self.shown} ({state})>"
