"""The git store's facets: one mixin per facet of the storage contract, each over ``cairn_git._base.GitBase``.

=================  =================  =======================================================
module             mixin              keeps
=================  =================  =======================================================
``objects``        ``GitObjects``     blobs and commits in the catalog (``refs/<ns>/objects``)
``refs``           ``GitRefs``        cairn refs as ``refs/<ns>/context/<name>.ref``
``annotations``    ``GitAnnotations`` annotations in the catalog
``token_counts``   ``GitTokenCounts`` cached token counts in the catalog
``ledger``         ``GitLedger``      runs, events and spend on the ledger branch; a tag per run
``chat``           ``GitChat``        messages as notes on run tags and files on the ledger branch
``maintenance``    ``GitMaintenance`` stats, gc and check
``sync``           ``GitSync``        push, pull and status through the ``git`` command line
``artifacts``      ``GitArtifactMeta`` artifact and snapshot records, inline bytes, on the ledger branch
``governance``     ``GitGovernance``  directives and approvals on the ledger branch
``nonces``         ``GitNonces``      idempotency keys on the ledger branch
=================  =================  =======================================================

What several facets share sits below them: ``cairn_git._context.ContextBase``
(the catalog, the context refs and the transaction that moves both) under
the first four, ``cairn_git._ledger_base.LedgerBase`` (the ledger branch,
run refs and chat notes) under the ledger, chat and artifacts; maintenance and sync
stand on both. ``cairn_git.store.GitStore`` composes every mixin.
"""

from __future__ import annotations

from cairn_git.facets.annotations import GitAnnotations
from cairn_git.facets.artifacts import GitArtifactMeta
from cairn_git.facets.chat import GitChat
from cairn_git.facets.governance import GitGovernance
from cairn_git.facets.ledger import GitLedger
from cairn_git.facets.maintenance import GitMaintenance
from cairn_git.facets.memory import GitMemoryCache
from cairn_git.facets.nonces import GitNonces
from cairn_git.facets.objects import GitObjects
from cairn_git.facets.refs import GitRefs
from cairn_git.facets.sync import GitSync
from cairn_git.facets.token_counts import GitTokenCounts

__all__ = [
    "GitAnnotations",
    "GitArtifactMeta",
    "GitChat",
    "GitGovernance",
    "GitLedger",
    "GitMaintenance",
    "GitNonces",
    "GitMemoryCache",
    "GitObjects",
    "GitRefs",
    "GitSync",
    "GitTokenCounts",
]
