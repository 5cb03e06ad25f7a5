"""An in-memory ``Store``: the reference implementation of the contract, for tests.

Kernel tests use it so they need no backend plugin; plugin authors can read
it as the shortest complete statement of what each method must do. It lives
in one process (a lock makes it thread-safe) and keeps nothing on disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from cairn.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from cairn.model import Annotation, Commit, Priority, Run, RunEvent, SpendRecord, sha256_hex
from cairn.model.artifacts import ArtifactRecord, SnapshotRecord
from cairn.model.chat import ChatMessage, Thread
from cairn.storage import (
    ArtifactMetaStore,
    GcReport,
    Problem,
    RefUpdate,
    Store,
    StoreStats,
    check_objects,
    unreachable,
)
from cairn.testing.memory_documents import MemoryMemoryFacets

__all__ = ["MemoryStore", "open_in_directory"]


def open_in_directory(directory: object) -> MemoryStore:
    """A ``store_opener`` for the conformance suite; the directory is unused."""
    return MemoryStore()


class MemoryStore(Store, ArtifactMetaStore, MemoryMemoryFacets):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._memory_init()
        self.blobs: dict[str, bytes] = {}
        self.commits: dict[str, Commit] = {}
        self.refs: dict[str, str] = {}
        self.annotations: list[Annotation] = []
        self._annotation_ids: set[str] = set()
        self.token_cache: dict[tuple[str, str], int] = {}
        self._children: dict[str, list[str]] = {}
        self._targeting: dict[str, list[str]] = {}
        self.runs: dict[str, Run] = {}
        self.events: dict[str, dict[int, RunEvent]] = {}
        self.spend_records: list[SpendRecord] = []
        self.messages: dict[str, ChatMessage] = {}
        self.threads: dict[str, Thread] = {}
        self.artifact_recs: dict[str, ArtifactRecord] = {}
        self.snapshot_recs: dict[str, SnapshotRecord] = {}
        self.inline: dict[str, bytes] = {}

    # -- objects ---------------------------------------------------------------

    def write(
        self,
        *,
        blobs: Mapping[str, bytes] | None = None,
        commits: Sequence[Commit] = (),
        refs: Sequence[RefUpdate] = (),
        token_counts: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        blobs = dict(blobs or {})
        with self._lock:
            # Links may point anywhere in the store or in this batch, in any order.
            batch = {c.hash for c in commits}
            for commit in commits:
                for label, link in (
                    ("parent", commit.parent),
                    ("target", commit.target),
                    ("merged-in parent", commit.merge_parent),
                ):
                    if link is not None and link not in self.commits and link not in batch:
                        raise IntegrityError(f"commit {commit.short}: {label} {link[:12]} is not stored")
                if (
                    commit.content_hash is not None
                    and commit.content_hash not in blobs
                    and commit.content_hash not in self.blobs
                ):
                    raise IntegrityError(f"commit {commit.short}: content {commit.content_hash[:12]} is not stored")
            for digest, data in blobs.items():
                if sha256_hex(bytes(data)) != digest:
                    raise IntegrityError(f"blob {digest[:12]}: content does not match its hash")
            for update in refs:
                actual = self.refs.get(update.name)
                if actual != update.expected:
                    raise ConflictError(update.name, update.expected, actual)
            for digest, data in blobs.items():
                self.blobs.setdefault(digest, bytes(data))
            for commit in commits:
                if commit.hash in self.commits:
                    continue
                self.commits[commit.hash] = commit
                if commit.parent:
                    self._children.setdefault(commit.parent, []).append(commit.hash)
                if commit.target:
                    self._targeting.setdefault(commit.target, []).append(commit.hash)
            for update in refs:
                if update.new is None:
                    self.refs.pop(update.name, None)
                else:
                    self.refs[update.name] = update.new
            for tokenizer, counts in (token_counts or {}).items():
                for digest, count in counts.items():
                    self.token_cache[(tokenizer, digest)] = count

    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        with self._lock:
            return {h: self.blobs[h] for h in hashes if h in self.blobs}

    def get_commits(self, hashes: Iterable[str]) -> dict[str, Commit]:
        with self._lock:
            return {h: self.commits[h] for h in hashes if h in self.commits}

    def ancestors(self, start: str, *, limit: int | None = None) -> list[Commit]:
        out: list[Commit] = []
        with self._lock:
            digest: str | None = start
            while digest is not None and digest in self.commits and (limit is None or len(out) < limit):
                commit = self.commits[digest]
                out.append(commit)
                digest = commit.parent
        return out

    def children(self, commit: str) -> list[Commit]:
        with self._lock:
            kids = [self.commits[h] for h in self._children.get(commit, [])]
        return sorted(kids, key=lambda c: (c.created_at, c.hash))

    def _select(
        self, keep: Callable[[Commit], bool], since: str | None, until: str | None, limit: int | None
    ) -> list[Commit]:
        with self._lock:
            found = [
                c
                for c in self.commits.values()
                if keep(c) and (since is None or c.created_at >= since) and (until is None or c.created_at <= until)
            ]
        found.sort(key=lambda c: (c.created_at, c.hash), reverse=True)
        return found[:limit] if limit is not None else found

    def commits_by_type(
        self, content_type: str, *, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        return self._select(lambda c: c.content_type == content_type, since, until, limit)

    def commits_by_time(
        self, *, since: str | None = None, until: str | None = None, limit: int | None = None
    ) -> list[Commit]:
        return self._select(lambda c: True, since, until, limit)

    def commits_targeting(self, targets: Iterable[str]) -> list[Commit]:
        with self._lock:
            found = [self.commits[h] for t in set(targets) for h in self._targeting.get(t, [])]
        return sorted(found, key=lambda c: (c.created_at, c.hash))

    def find_commits(self, prefix: str, *, limit: int = 10) -> list[str]:
        with self._lock:
            return sorted(h for h in self.commits if h.startswith(prefix))[:limit]

    # -- refs ------------------------------------------------------------------

    def get_ref(self, name: str) -> str | None:
        with self._lock:
            return self.refs.get(name)

    def list_refs(self, prefix: str = "") -> dict[str, str]:
        with self._lock:
            return {k: self.refs[k] for k in sorted(self.refs) if k.startswith(prefix)}

    # -- annotations -----------------------------------------------------------

    def add_annotations(self, annotations: Sequence[Annotation]) -> None:
        with self._lock:
            for annotation in annotations:
                if annotation.target not in self.commits:
                    raise IntegrityError(f"annotation on {annotation.target[:12]}: no such commit")
            for annotation in annotations:
                if annotation.id not in self._annotation_ids:
                    self._annotation_ids.add(annotation.id)
                    self.annotations.append(annotation)

    def _latest(self, as_of: str | None) -> dict[str, Annotation]:
        latest: dict[str, Annotation] = {}
        for annotation in self.annotations:  # in append order: later wins ties
            if as_of is not None and annotation.created_at > as_of:
                continue
            known = latest.get(annotation.target)
            if known is None or annotation.created_at >= known.created_at:
                latest[annotation.target] = annotation
        return latest

    def latest_annotations(self, targets: Iterable[str], *, as_of: str | None = None) -> dict[str, Annotation]:
        with self._lock:
            latest = self._latest(as_of)
        return {t: latest[t] for t in targets if t in latest}

    def annotation_history(self, target: str) -> list[Annotation]:
        with self._lock:
            found = [a for a in self.annotations if a.target == target]
        return sorted(found, key=lambda a: a.created_at)

    def annotated(self, priority: Priority, *, as_of: str | None = None) -> dict[str, Annotation]:
        with self._lock:
            latest = self._latest(as_of)
        return {t: a for t, a in latest.items() if a.priority is priority}

    # -- token counts ----------------------------------------------------------

    def get_token_counts(self, tokenizer: str, hashes: Iterable[str]) -> dict[str, int]:
        with self._lock:
            return {h: self.token_cache[(tokenizer, h)] for h in hashes if (tokenizer, h) in self.token_cache}

    def put_token_counts(self, tokenizer: str, counts: Mapping[str, int]) -> None:
        with self._lock:
            for digest, count in counts.items():
                self.token_cache[(tokenizer, digest)] = count

    # -- the run ledger --------------------------------------------------------

    def put_run(self, run: Run, events: Sequence[RunEvent] = (), *, expected_status: str | None = None) -> None:
        with self._lock:
            current = self.runs.get(run.run_id)
            actual = current.status if current else None
            if actual != expected_status:
                raise ConflictError(f"run {run.run_id}", expected_status, actual)
            self._check_events(run.run_id, events)
            self.runs[run.run_id] = run
            self._add_events(run.run_id, events)

    def put_runs(self, runs: Sequence[tuple[Run, Sequence[RunEvent]]]) -> None:
        with self._lock:
            ids = [run.run_id for run, _ in runs]
            for run, events in runs:
                if run.run_id in self.runs or ids.count(run.run_id) > 1:
                    actual = self.runs[run.run_id].status if run.run_id in self.runs else "in this batch"
                    raise ConflictError(f"run {run.run_id}", None, actual)
                self._check_events(run.run_id, events)
            for run, events in runs:
                self.runs[run.run_id] = run
                self._add_events(run.run_id, events)

    def append_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                raise NotFoundError("run", run_id)
            if not run.is_open:
                raise ConflictError(
                    f"run {run_id}", "open", run.status, hint="the run is closed; events can no longer be added"
                )
            self._check_events(run_id, events)
            self._add_events(run_id, events)

    def _check_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        taken = self.events.get(run_id, {})
        seqs = [e.seq for e in events]
        for event in events:
            if event.run_id != run_id:
                raise IntegrityError(f"event {event.seq} belongs to run {event.run_id}, not {run_id}")
        duplicate = next((q for q in seqs if q in taken or seqs.count(q) > 1), None)
        if duplicate is not None:
            raise ConflictError(f"run {run_id} event {duplicate}", None, "taken", hint="read the last seq and retry")

    def _add_events(self, run_id: str, events: Sequence[RunEvent]) -> None:
        stored = self.events.setdefault(run_id, {})
        for event in events:
            stored[event.seq] = event

    def get_run(self, run_id: str) -> Run | None:
        with self._lock:
            return self.runs.get(run_id)

    def list_runs(
        self,
        *,
        type: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        with self._lock:
            found = [
                r
                for r in self.runs.values()
                if (type is None or r.type == type)
                and (status is None or r.status == status)
                and (since is None or r.started_at >= since)
                and (until is None or r.started_at <= until)
            ]
        found.sort(key=lambda r: (r.started_at, r.run_id), reverse=True)
        return found[:limit] if limit is not None else found

    def run_events(self, run_id: str, *, after_seq: int | None = None) -> list[RunEvent]:
        with self._lock:
            stored = self.events.get(run_id, {})
            return [stored[q] for q in sorted(stored) if after_seq is None or q > after_seq]

    def delete_runs(self, run_ids: Iterable[str]) -> int:
        with self._lock:
            gone = 0
            for run_id in set(run_ids):
                if self.runs.pop(run_id, None) is not None:
                    gone += 1
                self.events.pop(run_id, None)
            return gone

    def add_spend(self, records: Sequence[SpendRecord]) -> None:
        with self._lock:
            self.spend_records.extend(records)

    def spend(
        self, *, since: str | None = None, until: str | None = None, run_id: str | None = None
    ) -> list[SpendRecord]:
        with self._lock:
            found = [
                r
                for r in self.spend_records
                if (since is None or r.ts >= since)
                and (until is None or r.ts <= until)
                and (run_id is None or r.run_id == run_id)
            ]
        return sorted(found, key=lambda r: r.ts)

    # -- chat ------------------------------------------------------------------

    def add_chat_message(self, message: ChatMessage) -> None:
        with self._lock:
            if message.id in self.messages:
                raise ConflictError(f"message {message.id}", None, "stored")
            self.messages[message.id] = message

    def chat_messages(
        self,
        *,
        run_id: str | None = None,
        thread_id: str | None = None,
        limit: int | None = None,
        published: bool | None = None,
    ) -> list[ChatMessage]:
        with self._lock:
            found = [
                m
                for m in self.messages.values()
                if (run_id is None or m.run_id == run_id)
                and (thread_id is None or m.thread_id == thread_id)
                and (published is None or m.publish == published)
            ]
        found.sort(key=lambda m: (m.ts, m.id), reverse=True)
        return found[:limit] if limit is not None else found

    def put_thread(self, thread: Thread) -> None:
        with self._lock:
            if thread.thread_id in self.threads:
                raise ConflictError(f"thread {thread.thread_id}", None, "exists")
            self.threads[thread.thread_id] = thread

    def get_thread(self, thread_id: str) -> Thread | None:
        with self._lock:
            return self.threads.get(thread_id)

    def list_threads(self) -> list[Thread]:
        with self._lock:
            return sorted(self.threads.values(), key=lambda t: (t.created_at, t.thread_id), reverse=True)

    # -- artifact metadata -------------------------------------------------------

    def add_artifact_records(
        self, records: Sequence[ArtifactRecord], *, inline: Mapping[str, bytes] | None = None
    ) -> None:
        records = list(records)
        inline = dict(inline or {})
        if not all(isinstance(r, ArtifactRecord) for r in records):
            raise ValidationError("add_artifact_records takes ArtifactRecord values")
        for digest, data in inline.items():
            if sha256_hex(bytes(data)) != digest:
                raise IntegrityError(f"inline artifact {str(digest)[:12]}: its bytes do not match the hash")
        with self._lock:
            for record in records:
                self.artifact_recs.setdefault(record.id, record)
            for digest, data in inline.items():
                self.inline.setdefault(digest, bytes(data))

    def artifact_records(self, *, hash: str | None = None, limit: int | None = None) -> list[ArtifactRecord]:
        with self._lock:
            found = [r for r in self.artifact_recs.values() if hash is None or r.hash == hash]
        found.sort(key=lambda r: (r.created, r.id), reverse=True)
        return found[:limit] if limit is not None else found

    def get_inline(self, hashes: Iterable[str]) -> dict[str, bytes]:
        with self._lock:
            return {h: self.inline[h] for h in hashes if h in self.inline}

    def inline_sizes(self) -> dict[str, int]:
        with self._lock:
            return {h: len(data) for h, data in self.inline.items()}

    def add_snapshot_records(self, records: Sequence[SnapshotRecord]) -> None:
        records = list(records)
        if not all(isinstance(r, SnapshotRecord) for r in records):
            raise ValidationError("add_snapshot_records takes SnapshotRecord values")
        with self._lock:
            for record in records:
                self.snapshot_recs.setdefault(record.id, record)

    def snapshot_records(self, *, tree: str | None = None, limit: int | None = None) -> list[SnapshotRecord]:
        with self._lock:
            found = [r for r in self.snapshot_recs.values() if tree is None or r.tree == tree]
        found.sort(key=lambda r: (r.created, r.id), reverse=True)
        return found[:limit] if limit is not None else found

    def delete_artifacts(self, hashes: Iterable[str]) -> int:
        doomed = set(hashes)
        with self._lock:
            records = [k for k, r in self.artifact_recs.items() if r.hash in doomed]
            snapshots = [k for k, r in self.snapshot_recs.items() if r.tree in doomed]
            inline = [h for h in doomed if h in self.inline]
            for key in records:
                del self.artifact_recs[key]
            for key in snapshots:
                del self.snapshot_recs[key]
            for digest in inline:
                del self.inline[digest]
        return len(records) + len(snapshots) + len(inline)

    # -- maintenance -----------------------------------------------------------

    def stats(self) -> StoreStats:
        with self._lock:
            size = sum(len(b) for b in self.blobs.values())
            return StoreStats(len(self.blobs), len(self.commits), len(self.refs), len(self.annotations), size)

    def gc(self, *, dry_run: bool = False) -> GcReport:
        with self._lock:
            dead, dead_blobs = unreachable(self.refs, self.commits, self.blobs)
            doomed = [a for a in self.annotations if a.target in dead]
            if not dry_run:
                for digest in dead:
                    commit = self.commits.pop(digest)
                    if commit.parent in self._children:
                        self._children[commit.parent].remove(digest)
                    if commit.target in self._targeting:
                        self._targeting[commit.target].remove(digest)
                for digest in dead_blobs:
                    del self.blobs[digest]
                self.annotations = [a for a in self.annotations if a.target not in dead]
                self._annotation_ids = {a.id for a in self.annotations}
                self.token_cache = {k: v for k, v in self.token_cache.items() if k[1] not in dead_blobs}
            return GcReport(len(dead), len(dead_blobs), len(doomed), dry_run)

    def check(self) -> list[Problem]:
        with self._lock:
            return check_objects(self, self.commits.values(), self.blobs, self.refs)
