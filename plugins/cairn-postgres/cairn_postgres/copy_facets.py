"""``cairn store copy`` for the facets beside the context: idempotency keys, governance, vectors, documents.

Each copier reads through the source facet's own methods, writes through
the target's, skips what the target already holds (so an interrupted copy
can be run again), and reads everything back from the target to compare
with the source: an ``IntegrityError`` names the first thing that did not
arrive as it left.

- nonces: every record, live or lapsed, claimed (and completed) at the
  times it carries.
- governance: each directive added, then its history replayed event by
  event (transitions move the status by compare-and-swap, as they did in
  the source), so the target's history and status are the source's;
  approvals whole, decided or not.
- vectors: every embedder's vectors, in batches.
- documents: every collection, in batches (the target indexes them again).
- artifact metadata: records with their inline bytes, and snapshot records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cairn.errors import IntegrityError
from cairn.storage import backend_name

__all__ = ["copy_artifacts", "copy_documents", "copy_governance", "copy_nonces", "copy_vectors"]

Progress = Callable[[str, int, int], None]


def _differs(target: Any, what: str) -> IntegrityError:
    return IntegrityError(
        f"{what} did not arrive intact in the {backend_name(target)} store",
        hint="check both stores (`cairn fsck`), then copy again; what arrived is skipped",
    )


def copy_nonces(source: Any, target: Any, tell: Progress) -> int:
    """Every idempotency key; returns how many were written. A key the target holds already is left as it is."""
    records = source.nonce_records()
    written = 0
    for number, record in enumerate(records, 1):
        held = target.get_nonce(record.key)
        if held is None:
            pending = record if record.state == "pending" else _pending(record)
            if target.claim_nonce(pending) is None and record.state == "done":
                target.complete_nonce(
                    record.key, record.owner, record.result, done_at=record.done_at, expires_at=record.expires_at
                )
            written += 1
            held = target.get_nonce(record.key)
        if held != record:
            raise _differs(target, f"idempotency key {record.key!r}")
        tell("idempotency keys", number, len(records))
    return written


def _pending(record: Any) -> Any:
    import attrs

    return attrs.evolve(record, state="pending", result=None, done_at=None)


def copy_governance(source: Any, target: Any, tell: Progress) -> dict[str, int]:
    """Directives with their histories, then approvals; returns how many of each were written."""
    directives = source.list_directives()
    written = 0
    for number, (directive, status) in enumerate(reversed(directives), 1):  # oldest first
        events = source.directive_events(directive.id)
        if target.get_directive(directive.id) is None:
            if not events:
                raise IntegrityError(
                    f"directive {directive.id} has no history in the source store", hint="run `cairn fsck` there"
                )
            target.add_directive(directive, events[0])
            for event in events[1:]:
                if event.type == "transition":
                    target.transition_directive(directive.id, event.from_status, event.to_status, event)
                else:
                    target.add_directive_event(directive.id, event)
            written += 1
        if target.get_directive(directive.id) != (directive, status) or target.directive_events(directive.id) != events:
            raise _differs(target, f"directive {directive.id}")
        tell("directives", number, len(directives))
    approvals = source.list_approvals()
    added = 0
    for approval in reversed(approvals):
        if target.get_approval(approval.id) is None:
            target.add_approval(approval)
            added += 1
        if target.get_approval(approval.id) != approval:
            raise _differs(target, f"approval {approval.id}")
    return {"directives": written, "approvals": added}


def copy_vectors(source: Any, target: Any, tell: Progress, batch_size: int) -> int:
    """Every embedder's vectors; returns how many were written (those the target lacked)."""
    counts = source.vector_counts()
    total = sum(counts.values())
    written = done = 0
    for identity in sorted(counts, key=lambda i: (i.provider, i.model, i.dimensions)):
        for batch in source.iter_vectors(identity, batch=batch_size):
            vectors = dict(batch)
            written += target.put_vectors(identity, vectors)
            arrived = target.get_vectors(identity, vectors)
            for digest, data in vectors.items():
                if arrived.get(digest) != data:
                    raise _differs(target, f"the {identity.describe()} vector of {digest[:12]}")
            done += len(vectors)
            tell("vectors", done, total)
    return written


def copy_documents(source: Any, target: Any, tell: Progress, batch_size: int) -> int:
    """Every searchable document, collection by collection; returns how many were written."""
    collections = source.collections()
    total = sum(collections.values())
    written = done = 0
    for name in sorted(collections):
        documents = source.documents([name])
        for start in range(0, len(documents), batch_size):
            batch = documents[start : start + batch_size]
            held = target.get_documents(name, [d.id for d in batch])
            fresh = [d for d in batch if d.id not in held]  # one the target holds otherwise is never overwritten
            if fresh:
                target.put_documents(fresh)
                written += len(fresh)
            arrived = target.get_documents(name, [d.id for d in batch])
            for document in batch:
                if arrived.get(document.id) != document:
                    raise _differs(target, f"document {name}/{document.id}")
            done += len(batch)
            tell("documents", done, total)
    return written


def copy_artifacts(source: Any, target: Any) -> dict[str, int]:
    """Artifact records with their inline bytes, and snapshot records; returns how many records of each."""
    records = source.artifact_records()
    inline = source.get_inline(source.inline_sizes())
    target.add_artifact_records(list(reversed(records)), inline=inline)  # a stored record is kept once
    snapshots = source.snapshot_records()
    target.add_snapshot_records(list(reversed(snapshots)))
    arrived = {r.id: r for r in target.artifact_records()}
    for record in records:
        if arrived.get(record.id) != record:
            raise _differs(target, f"artifact record {record.id[:12]}")
    copied = target.get_inline(inline)
    for digest, data in inline.items():
        if copied.get(digest) != data:
            raise _differs(target, f"the inline bytes of artifact {digest[:12]}")
    arrived_snapshots = {r.id: r for r in target.snapshot_records()}
    for snapshot in snapshots:
        if arrived_snapshots.get(snapshot.id) != snapshot:
            raise _differs(target, f"snapshot record {snapshot.id[:12]}")
    return {"artifact_records": len(records), "snapshot_records": len(snapshots)}
