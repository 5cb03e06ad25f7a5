"""Copying a whole store into another backend's store, verified hash for hash.

Works between any two backends through the storage contracts alone, facet
by facet, for the facets both stores keep:

- objects: every commit, parents first (by depth), with the blobs it uses,
  in batches (each one durable transaction); then every ref; then every
  annotation. The token-count cache is left behind: it is derived data the
  context engine fills again.
- ledger: runs with their events; spend records when the target holds none.
- chat: messages and threads.
- artifact metadata, idempotency keys, governance, vectors and documents:
  ``cairn_postgres.copy_facets``, each verified as it is copied.

A facet the source keeps and the target cannot is left behind and named in
the report's ``skipped_facets`` (the command says so).

Nothing is overwritten: a target ref that exists with another value stops
the copy before anything is written. Objects, runs, messages and records the
target already holds are skipped, so a copy that was interrupted can be run
again to finish. At the end every commit and blob is read back from the
target and compared with the source: hashes recomputed, fields equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from cairn.errors import ConflictError, IntegrityError, StorageError
from cairn.model import Commit, sha256_hex
from cairn.storage import (
    AnnotationStore,
    ArtifactMetaStore,
    ChatStore,
    DocumentStore,
    GovernanceStore,
    NonceStore,
    ObjectStore,
    RefStore,
    RefUpdate,
    RunStore,
    VectorStore,
    backend_name,
)
from cairn_postgres.copy_facets import copy_artifacts, copy_documents, copy_governance, copy_nonces, copy_vectors

__all__ = ["CopyReport", "copy_store"]

#: Progress callback: (what, done, total).
Progress = Callable[[str, int, int], None]


@attrs.frozen
class CopyReport:
    commits: int
    blobs: int
    refs: int
    annotations: int
    runs: int
    spend: int
    messages: int
    threads: int
    verified: int
    skipped_facets: tuple[str, ...] = ()
    artifact_records: int = 0
    snapshot_records: int = 0
    nonces: int = 0
    directives: int = 0
    approvals: int = 0
    vectors: int = 0
    documents: int = 0

    def to_record(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "skipped_facets": list(self.skipped_facets)}


def _noop(what: str, done: int, total: int) -> None:
    return None


def copy_store(source: Any, target: Any, *, batch_size: int = 5000, progress: Progress | None = None) -> CopyReport:
    """Copy everything ``source`` keeps that ``target`` can keep; verify every commit and blob; return counts."""
    tell = progress or _noop
    if not (isinstance(source, ObjectStore) and isinstance(source, RefStore)):
        raise StorageError(f"the {backend_name(source)} store keeps no context objects to copy")
    if not (isinstance(target, ObjectStore) and isinstance(target, RefStore)):
        raise StorageError(f"the {backend_name(target)} store cannot keep context objects (objects and refs)")
    refs = source.list_refs()
    clashes = [name for name, value in refs.items() if target.get_ref(name) not in (None, value)]
    if clashes:
        raise ConflictError(
            clashes[0],
            refs[clashes[0]],
            target.get_ref(clashes[0]),
            hint=f"the {backend_name(target)} store already has {len(clashes)} ref(s) with other values; "
            "copy into an empty store (or another schema)",
        )
    commits = sorted(source.commits_by_time(), key=lambda c: (c.depth, c.created_at, c.hash))
    blobs_written = _copy_commits(source, target, commits, batch_size, tell)
    updates = [RefUpdate(name, value, None) for name, value in refs.items() if target.get_ref(name) is None]
    if updates:
        target.update_refs(updates)
    annotations = _copy_annotations(source, target, commits, tell)
    skipped: list[str] = []
    runs = spend = messages = threads = 0
    if isinstance(source, RunStore):
        if isinstance(target, RunStore):
            runs, spend = _copy_ledger(source, target, batch_size, tell)
        else:
            skipped.append("ledger")
    if isinstance(source, ChatStore):
        if isinstance(target, ChatStore):
            messages, threads = _copy_chat(source, target, tell)
        else:
            skipped.append("chat")
    counts: dict[str, int] = {}
    copiers: tuple[tuple[Any, Callable[[], dict[str, int]]], ...] = (
        (ArtifactMetaStore, lambda: copy_artifacts(source, target)),
        (NonceStore, lambda: {"nonces": copy_nonces(source, target, tell)}),
        (GovernanceStore, lambda: copy_governance(source, target, tell)),
        (VectorStore, lambda: {"vectors": copy_vectors(source, target, tell, batch_size)}),
        (DocumentStore, lambda: {"documents": copy_documents(source, target, tell, batch_size)}),
    )
    for facet, copy in copiers:
        if isinstance(source, facet):
            if isinstance(target, facet):
                counts.update(copy())
            else:
                skipped.append(facet.facet)
    verified = verify_copy(source, target, commits, tell)
    return CopyReport(
        commits=len(commits),
        blobs=blobs_written,
        refs=len(refs),
        annotations=annotations,
        runs=runs,
        spend=spend,
        messages=messages,
        threads=threads,
        verified=verified,
        skipped_facets=tuple(skipped),
        **counts,
    )


def _copy_commits(source: Any, target: Any, commits: list[Commit], batch_size: int, tell: Progress) -> int:
    written = 0
    for start in range(0, len(commits), batch_size):
        batch = commits[start : start + batch_size]
        present = target.get_commits([c.hash for c in batch])
        fresh = [c for c in batch if c.hash not in present]
        wanted = sorted({c.content_hash for c in fresh if c.content_hash})
        blobs = source.get_blobs(wanted) if wanted else {}
        if len(blobs) != len(wanted):
            missing = next(h for h in wanted if h not in blobs)
            raise IntegrityError(
                f"the source store lacks blob {missing[:12]}, which a commit uses",
                hint="run `cairn fsck` on the source store first",
            )
        if fresh:
            target.write(blobs=blobs, commits=fresh)
        written += len(blobs)
        tell("commits", start + len(batch), len(commits))
    return written


def _copy_annotations(source: Any, target: Any, commits: list[Commit], tell: Progress) -> int:
    if not (isinstance(source, AnnotationStore) and isinstance(target, AnnotationStore)):
        return 0
    pending = []
    copied = 0
    for number, commit in enumerate(commits, 1):
        pending.extend(source.annotation_history(commit.hash))
        if len(pending) >= 1000 or number == len(commits):
            if pending:
                target.add_annotations(pending)  # idempotent by id
            copied += len(pending)
            pending = []
            tell("annotations", number, len(commits))
    return copied


def _copy_ledger(source: Any, target: Any, batch_size: int, tell: Progress) -> tuple[int, int]:
    runs = source.list_runs()
    copied = 0
    for start in range(0, len(runs), batch_size):
        batch = [r for r in runs[start : start + batch_size] if target.get_run(r.run_id) is None]
        if batch:
            target.put_runs([(run, source.run_events(run.run_id)) for run in batch])
        copied += len(batch)
        tell("runs", start + min(batch_size, len(runs) - start), len(runs))
    spend = source.spend()
    if spend and not target.spend():
        target.add_spend(spend)
        return copied, len(spend)
    return copied, 0


def _copy_chat(source: Any, target: Any, tell: Progress) -> tuple[int, int]:
    threads = 0
    for thread in source.list_threads():
        if target.get_thread(thread.thread_id) is None:
            target.put_thread(thread)
            threads += 1
    messages = source.chat_messages()
    copied = 0
    for number, message in enumerate(reversed(messages), 1):
        try:
            target.add_chat_message(message)
            copied += 1
        except ConflictError:
            pass  # stored by an earlier copy
        if number % 500 == 0 or number == len(messages):
            tell("chat messages", number, len(messages))
    return copied, threads


def verify_copy(source: Any, target: Any, commits: list[Commit], tell: Progress) -> int:
    """Read every commit and blob back from ``target``: same fields, hashes that recompute. Returns how many."""
    checked = 0
    for start in range(0, len(commits), 5000):
        batch = commits[start : start + 5000]
        stored = target.get_commits([c.hash for c in batch])
        wanted = sorted({c.content_hash for c in batch if c.content_hash})
        blobs = target.get_blobs(wanted)
        for commit in batch:
            copy = stored.get(commit.hash)
            if copy is None or copy != commit or copy.computed_hash() != commit.hash:
                raise IntegrityError(
                    f"commit {commit.short} did not arrive intact in the {backend_name(target)} store",
                    hint="run `cairn fsck` on both stores, then copy again",
                )
        for digest in wanted:
            if digest not in blobs or sha256_hex(blobs[digest]) != digest:
                raise IntegrityError(
                    f"blob {digest[:12]} did not arrive intact in the {backend_name(target)} store",
                    hint="run `cairn fsck` on both stores, then copy again",
                )
        checked += len(batch)
        tell("verifying", checked, len(commits))
    source_refs, target_refs = source.list_refs(), target.list_refs()
    for name, value in source_refs.items():
        if target_refs.get(name) != value:
            raise IntegrityError(f"ref {name} did not arrive in the {backend_name(target)} store")
    return checked
