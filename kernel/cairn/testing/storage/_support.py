"""What the facet suites share: building commits (``Chain``), multi-process writers, the suite base."""

from __future__ import annotations

import datetime as _dt
import multiprocessing
import queue as _queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from cairn.errors import ConflictError
from cairn.model import (
    Commit,
    Operation,
    canonical_json,
    format_time,
    now,
    sha256_hex,
    skip_depth,
)
from cairn.storage import RefUpdate, Store, facets_of

__all__ = [
    "MAIN",
    "SIDE",
    "WORDS",
    "Chain",
    "CorruptBlob",
    "FacetSuite",
    "StoreOpener",
    "ancestor_at",
    "at",
    "content_bytes",
    "derive",
    "run_workers",
]

#: The suite class of each facet, for the message of the facet check.
SUITES = {
    "objects": "ObjectsConformance",
    "refs": "RefsConformance",
    "annotations": "AnnotationsConformance",
    "token_counts": "TokenCountsConformance",
    "ledger": "LedgerConformance",
    "chat": "ChatConformance",
    "maintenance": "MaintenanceConformance",
    "sync": "SyncConformance",
    "artifact_meta": "ArtifactMetaConformance",
    "vectors": "VectorsConformance",
    "documents": "DocumentsConformance",
    "governance": "GovernanceConformance",
    "nonces": "NoncesConformance",
}
#: Facets whose suites need more than a store opener (a remote): backends run them with their own fixtures.
UNSUITED: frozenset[str] = frozenset()

#: Opens the backend under test in a directory. Any, not Store: a backend has the facets it declares,
#: which may be fewer than Store's (cairn-files) or more (vectors, documents).
StoreOpener = Callable[[Path], Any]
CorruptBlob = Callable[[Store, str, bytes], None]

MAIN = "refs/heads/main"
SIDE = "refs/heads/side"
_EPOCH = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)


def at(seconds: float) -> str:
    """A fixed time ``seconds`` after 2026-01-01 UTC, in cairn's stored format."""
    return format_time(_EPOCH + _dt.timedelta(seconds=seconds))


def ancestor_at(commit: Commit, depth: int, lookup: Callable[[str], Commit]) -> Commit:
    """The ancestor of ``commit`` at ``depth``, taking skip pointers that do not overshoot."""
    if depth < 0 or depth > commit.depth:
        raise ValueError(f"no ancestor at depth {depth} of a commit at depth {commit.depth}")
    while commit.depth > depth:
        if commit.skip is not None and skip_depth(commit.depth) >= depth:
            commit = lookup(commit.skip)
        else:
            assert commit.parent is not None
            commit = lookup(commit.parent)
    return commit


def content_bytes(text: str, content_type: str = "dialogue") -> bytes:
    """Canonical JSON content of ``content_type`` holding ``text`` (storage never decodes it further)."""
    return canonical_json({"content_type": content_type, "text": text})


#: The tokenizer ``Chain`` and the concurrency workers record: a token is a word.
WORDS = "words"


def derive(
    parent: Commit | None, lookup: Callable[[str], Commit], token_count: int, removed: int = 0
) -> dict[str, Any]:
    """The derived fields of a commit with ``parent``, as ``cairn.repo`` sets them.

    Depth counts ancestors; the skip pointer names the ancestor at
    ``skip_depth(depth)`` from depth 2 on (below that it could only be the
    parent, so it is None). ``removed``: the tokens of the item an edit or
    delete replaces, which the cumulative count loses.
    """
    base = {"token_count": token_count, "tokenizer": WORDS}
    if parent is None:
        return {**base, "depth": 0, "skip": None, "cumulative_tokens": token_count}
    depth = parent.depth + 1
    skip = ancestor_at(parent, skip_depth(depth), lookup).hash if depth >= 2 else None
    cumulative = max(0, parent.cumulative_tokens + token_count - removed)
    merge = {"last_merge": parent.last_merge} if parent.last_merge is not None else {}
    return {**base, "depth": depth, "skip": skip, "cumulative_tokens": cumulative, **merge}


class Chain:
    """Builds well-formed commits (not stored): hashes from ``Commit.new``, every derived field filled in.

    ``blobs`` holds every content blob made; ``batch(*commits)`` gives the
    keyword arguments for ``Store.write`` with the commits and their blobs.
    Times come from a clock that ticks one second per commit unless given.
    """

    def __init__(self, start: float = 0) -> None:
        self.commits: dict[str, Commit] = {}
        self.blobs: dict[str, bytes] = {}
        self._clock = start

    def tick(self) -> str:
        self._clock += 1
        return at(self._clock)

    def lookup(self, digest: str) -> Commit:
        return self.commits[digest]

    def content(self, text: str, content_type: str = "dialogue") -> str:
        data = content_bytes(text, content_type)
        digest = sha256_hex(data)
        self.blobs[digest] = data
        return digest

    def _make(
        self,
        parent: Commit | None,
        operation: Operation,
        text: str | None,
        *,
        target: Commit | None = None,
        content_type: str | None = "dialogue",
        message: str = "",
        metadata: dict[str, Any] | None = None,
        created_at: str | None = None,
        reply_to: Commit | None = None,
    ) -> Commit:
        content_hash = self.content(text, content_type or "dialogue") if text is not None else None
        tokens = len(text.split()) if text is not None else 0
        removed = self._current_tokens(parent, target) if target is not None else 0
        commit = Commit.new(
            parent=parent.hash if parent else None,
            operation=operation,
            content_hash=content_hash,
            target=target.hash if target else None,
            reply_to=reply_to.hash if reply_to else None,
            message=message,
            metadata=metadata,
            created_at=created_at or self.tick(),
            content_type=content_type if text is not None else None,
            **derive(parent, self.lookup, tokens, removed),
        )
        self.commits[commit.hash] = commit
        return commit

    def _current_tokens(self, parent: Commit | None, target: Commit) -> int:
        """Tokens of ``target``'s current version on ``parent``'s lineage (walked one parent at a time).

        A target off the lineage (the storage contract allows it; the engine
        never writes it) counts 0.
        """
        walk = parent
        while walk is not None:
            if walk.target == target.hash:
                return walk.token_count
            if walk.hash == target.hash:
                return target.token_count
            walk = self.commits.get(walk.parent) if walk.parent else None
        return 0

    def append(self, parent: Commit | None, text: str, **kwargs: Any) -> Commit:
        return self._make(parent, Operation.APPEND, text, **kwargs)

    def edit(self, parent: Commit, target: Commit, text: str, **kwargs: Any) -> Commit:
        return self._make(parent, Operation.EDIT, text, target=target, **kwargs)

    def delete(self, parent: Commit, target: Commit, **kwargs: Any) -> Commit:
        return self._make(parent, Operation.DELETE, None, target=target, **kwargs)

    def merge(self, ours: Commit, theirs: Commit, base: Commit, **kwargs: Any) -> Commit:
        """A merge commit of ``theirs`` into ``ours`` (sides that changed no item in common), as ``Repo.merge`` writes it."""
        fields = derive(ours, self.lookup, 0)
        fields["cumulative_tokens"] = ours.cumulative_tokens + theirs.cumulative_tokens - base.cumulative_tokens
        fields["tokenizer"] = None
        commit = Commit.new(
            parent=ours.hash,
            operation=Operation.MERGE,
            content_hash=None,
            merge_parent=theirs.hash,
            message=kwargs.get("message", "merge"),
            metadata={"merge": {"base": base.hash, "overlap": [], "conflicts": []}},
            created_at=kwargs.get("created_at") or self.tick(),
            **{k: v for k, v in fields.items() if k != "last_merge"},
        )
        commit = attrs.evolve(commit, last_merge=commit.hash)
        self.commits[commit.hash] = commit
        return commit

    def line(self, length: int, parent: Commit | None = None, prefix: str = "item") -> list[Commit]:
        """``length`` appends, each the child of the previous one."""
        out = []
        for i in range(length):
            parent = self.append(parent, f"{prefix} {i}")
            out.append(parent)
        return out

    def batch(self, *commits: Commit) -> dict[str, Any]:
        return {
            "blobs": {c.content_hash: self.blobs[c.content_hash] for c in commits if c.content_hash},
            "commits": list(commits),
        }


def _append_worker(
    opener: StoreOpener,
    directory: str,
    ref: str,
    worker: int,
    count: int,
    barrier: Any,
    results: Any,
) -> None:
    """One of the concurrent writers: append ``count`` commits to ``ref`` by read / CAS / retry."""
    acked: list[str] = []
    conflicts = 0
    try:
        store = opener(Path(directory))
        try:
            barrier.wait(timeout=120)

            def lookup(digest: str) -> Commit:
                found: Commit = store.get_commits([digest])[digest]
                return found

            for i in range(count):
                while True:
                    head = store.get_ref(ref)
                    parent = lookup(head) if head else None
                    text = f"worker {worker} item {i}"
                    data = content_bytes(text)
                    commit = Commit.new(
                        parent=head,
                        operation=Operation.APPEND,
                        content_hash=sha256_hex(data),
                        metadata={"worker": worker, "item": i},
                        created_at=now(),
                        content_type="dialogue",
                        **derive(parent, lookup, len(text.split())),
                    )
                    try:
                        store.write(
                            blobs={commit.content_hash: data},
                            commits=[commit],
                            refs=[RefUpdate(ref, commit.hash, head)],
                        )
                    except ConflictError:
                        conflicts += 1
                        continue
                    acked.append(commit.hash)
                    break
        finally:
            store.close()
        results.put((worker, acked, conflicts, None))
    except BaseException as exc:  # report, never hang the parent or the other writers
        barrier.abort()
        results.put((worker, acked, conflicts, f"{type(exc).__name__}: {exc}"))


def run_workers(
    target: Callable[..., None], args: Callable[[int, Any, Any], tuple[Any, ...]], workers: int
) -> list[tuple[Any, ...]]:
    """Start ``workers`` spawned processes running ``target(*args(i, barrier, results))``; collect their reports.

    Every worker puts one tuple on ``results``. A worker that never reports
    fails the test after 180 s instead of hanging it.
    """
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    processes = [ctx.Process(target=target, args=args(i, barrier, results)) for i in range(workers)]
    for process in processes:
        process.start()
    outcomes: list[tuple[Any, ...]] = []
    try:
        for _ in range(workers):
            outcomes.append(results.get(timeout=180))
    except _queue.Empty:
        pytest.fail(f"only {len(outcomes)} of {workers} workers finished within 180 s")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [f"worker {o[0]}: {o[-1]}" for o in outcomes if o[-1]]
    assert not errors, "; ".join(errors)
    return outcomes


class FacetSuite:
    """What every facet's suite shares: the fixtures a backend provides, and the facet check.

    A backend's test class inherits the suites of the facets it declares and
    overrides ``store_opener``. ``test_runs_the_suite_of_every_declared_facet``
    fails a test class that leaves out the suite of a facet its store declares.
    """

    #: The facet this suite proves; set by each suite class.
    facet: str = ""

    #: False for a store that lives in one process and keeps nothing once closed.
    persistent: bool = True

    def _needs_persistence(self) -> None:
        if not self.persistent:
            pytest.skip("the backend keeps nothing once closed (persistent = False)")

    # -- fixtures a backend provides ---------------------------------------------------

    @pytest.fixture
    def store_opener(self) -> StoreOpener:
        raise NotImplementedError(
            f"{type(self).__name__} must override the store_opener fixture: "
            "return a module-level callable opener(directory) -> Store"
        )

    @pytest.fixture
    def corrupt_blob(self) -> CorruptBlob | None:
        """Override to return ``(store, hash, data) -> None`` that overwrites a stored blob's bytes."""
        return None

    # -- fixtures of the suite -----------------------------------------------------------

    @pytest.fixture
    def store_dir(self, tmp_path: Path) -> Path:
        directory = tmp_path / "store"
        directory.mkdir()
        return directory

    @pytest.fixture
    def store(self, store_opener: StoreOpener, store_dir: Path) -> Iterator[Store]:
        opened = store_opener(store_dir)
        try:
            yield opened
        finally:
            opened.close()

    @pytest.fixture
    def chain(self) -> Chain:
        return Chain()

    # -- objects ------------------------------------------------------------------------------

    def test_runs_the_suite_of_every_declared_facet(self, store: Any) -> None:
        covered = {getattr(c, "facet", "") for c in type(self).__mro__} - {""}
        declared = facets_of(store) - UNSUITED
        missing = sorted(declared - covered)
        assert not missing, (
            f"{type(store).__name__} declares the facets {missing} but {type(self).__name__} does not run their "
            f"suites: add {', '.join(SUITES[f] for f in missing if f in SUITES)} to its bases"
        )
