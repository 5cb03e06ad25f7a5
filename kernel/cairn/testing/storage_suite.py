"""The storage conformance suite: every ``cairn.storage.Store`` backend runs it unchanged.

Subclass ``StoreConformance`` in a backend's tests and provide a
``store_opener`` fixture returning a picklable, module-level callable that
opens (creating when needed) a store in a directory::

    from cairn.testing.storage_suite import StoreConformance

    class TestMyBackend(StoreConformance):
        @pytest.fixture
        def store_opener(self):
            return my_backend.open_in_directory   # opener(directory: pathlib.Path) -> Store

The opener must be importable by a freshly spawned Python process (the
concurrency test opens the same directory from four processes), so define it
in your package, not in a test module.

Optional hooks a backend may override (tests that need them are skipped
when they return None):

- ``corrupt_blob``: a callable ``(store, hash, data)`` that
  overwrites a stored blob's bytes behind the store's back, to prove
  ``check()`` finds it.

A backend that lives inside one process (like ``cairn.testing.memory``) sets
the class attribute ``persistent = False``: the reopen and multi-process
tests are then skipped, since there is nothing to reopen or share.

Commits are built with ``Chain``, which fills in every derived field the way
the context engine does (content type, token counts, depth, skip pointer).
"""

from __future__ import annotations

import datetime as _dt
import multiprocessing
import pickle
import queue as _queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.errors import ConflictError, IntegrityError
from cairn.model import (
    Annotation,
    Commit,
    Operation,
    Priority,
    Run,
    RunEvent,
    canonical_json,
    format_time,
    now,
    sha256_hex,
    skip_depth,
)
from cairn.storage import GcReport, RefUpdate, Store

__all__ = ["WORDS", "Chain", "CorruptBlob", "StoreConformance", "StoreOpener", "ancestor_at", "at"]

StoreOpener = Callable[[Path], Store]
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
    return {**base, "depth": depth, "skip": skip, "cumulative_tokens": cumulative}


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
            lookup = lambda digest: store.get_commits([digest])[digest]  # noqa: E731
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
                            blobs={commit.content_hash: data},  # type: ignore[dict-item]
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


def run_workers(target: Callable[..., None], args: Callable[[int, Any, Any], tuple], workers: int) -> list[tuple]:
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
    outcomes: list[tuple] = []
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


class _ObjectConformance:
    """The contract of ``cairn.storage.Store`` as tests. Subclass and provide ``store_opener``."""

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

    def test_blobs_round_trip(self, store: Store) -> None:
        items = [b"", b"\x00\xff binary \x00", content_bytes("héllo wörld ✓ 日本語 🪨"), bytes(range(256)) * 40]
        blobs = {sha256_hex(b): b for b in items}
        store.write(blobs=blobs)
        got = store.get_blobs(list(blobs))
        assert got == blobs
        assert all(type(v) is bytes for v in got.values())

    def test_commits_round_trip_every_field(self, store: Store, chain: Chain) -> None:
        root = chain.append(None, "system prompt", content_type="instruction", message="start ✓")
        reply = chain.append(
            root,
            "hello there, general",
            message="grüße 🪨",
            metadata={
                "nested": {"list": [1, 2.5, None, True, "ü"], "deep": {"k": {}}},
                "ключ": "значение",
                "whole float": 2.0,  # must come back as 2.0, not 2: the hash depends on it
                "big": 2**64 + 1,
                "tiny": 1e-300,
            },
            reply_to=root,
        )
        edit = chain.edit(reply, root, "revised system prompt", content_type="instruction")
        delete = chain.delete(edit, reply, message="drop it")
        commits = [root, reply, edit, delete]
        store.write(**chain.batch(*commits))
        got = store.get_commits(c.hash for c in commits)
        assert set(got) == {c.hash for c in commits}
        for original in commits:
            stored = got[original.hash]
            assert stored == original, f"{original.short} changed in storage"
            assert stored.to_record() == original.to_record()
            assert stored.computed_hash() == stored.hash, "stored fields no longer hash to the commit's hash"
        assert got[delete.hash].content_hash is None and got[delete.hash].operation is Operation.DELETE
        assert got[reply.hash].depth == 1
        assert got[delete.hash].depth == 3 and got[delete.hash].skip == chain.lookup(delete.parent).parent  # type: ignore[arg-type]
        assert got[reply.hash].cumulative_tokens == root.token_count + reply.token_count

    def test_same_blob_and_commit_twice_store_once(self, store: Store, chain: Chain) -> None:
        first, second = chain.line(2)
        store.write(**chain.batch(first, second))
        store.write(**chain.batch(first, second))
        store.write(**chain.batch(first, first))
        other = chain.append(second, "item 0")  # same content as ``first``: one blob
        store.write(**chain.batch(other))
        stats = store.stats()
        assert stats.commits == 3
        assert stats.blobs == 2
        assert store.get_commits([first.hash, second.hash, other.hash]).keys() == {first.hash, second.hash, other.hash}

    def test_batch_reads_return_exactly_the_known_subset(self, store: Store, chain: Chain) -> None:
        commits = chain.line(5)
        stored, missing = commits[:3], commits[3:]
        store.write(**chain.batch(*stored))
        unknown = sha256_hex(b"never stored")
        wanted = [c.hash for c in commits] + [unknown, stored[0].hash]
        got = store.get_commits(h for h in wanted)  # a generator: read once
        assert set(got) == {c.hash for c in stored}
        blob_hashes = [c.content_hash for c in commits] + [unknown]
        blobs = store.get_blobs(iter(blob_hashes))  # type: ignore[arg-type]
        assert set(blobs) == {c.content_hash for c in stored}
        assert all(c.hash not in got for c in missing)
        assert store.get_commits([]) == {} and store.get_blobs([]) == {}

    def test_batch_may_list_children_before_parents(self, store: Store, chain: Chain) -> None:
        line = chain.line(4)
        edit = chain.edit(line[-1], line[1], "replacement")
        store.write(**chain.batch(edit, *reversed(line)), refs=[RefUpdate(MAIN, edit.hash, None)])
        assert [c.hash for c in store.ancestors(edit.hash)] == [edit.hash] + [c.hash for c in reversed(line)]

    def test_empty_write_is_a_no_op(self, store: Store) -> None:
        store.write()
        store.write(blobs={}, commits=[], refs=[])
        assert store.stats().commits == 0 and store.list_refs() == {}

    # -- write atomicity --------------------------------------------------------------------

    def _assert_untouched(self, store: Store, commits: list[Commit], chain: Chain, refs: dict[str, str]) -> None:
        assert store.get_commits(c.hash for c in commits) == {}, "a failed write stored commits"
        blobs = [c.content_hash for c in commits if c.content_hash]
        assert store.get_blobs(b for b in blobs if b) == {}, "a failed write stored blobs"  # type: ignore[misc]
        assert store.list_refs() == refs, "a failed write moved refs"

    def test_missing_parent_writes_nothing(self, store: Store, chain: Chain) -> None:
        root = chain.append(None, "root")
        store.write(**chain.batch(root), refs=[RefUpdate(MAIN, root.hash, None)])
        lost = chain.append(root, "never written")
        orphan = chain.append(lost, "orphan")
        fine = chain.append(root, "would be fine alone")
        with pytest.raises(IntegrityError) as info:
            store.write(**chain.batch(fine, orphan), refs=[RefUpdate(SIDE, fine.hash, None)])
        assert orphan.short in str(info.value) and lost.short in str(info.value)
        self._assert_untouched(store, [fine, orphan], chain, {MAIN: root.hash})

    def test_missing_blob_writes_nothing(self, store: Store, chain: Chain) -> None:
        root = chain.append(None, "root")
        store.write(**chain.batch(root), refs=[RefUpdate(MAIN, root.hash, None)])
        child = chain.append(root, "content left out of the batch")
        with pytest.raises(IntegrityError) as info:
            store.write(commits=[child], refs=[RefUpdate(MAIN, child.hash, root.hash)])
        assert child.short in str(info.value) and child.content_hash[:12] in str(info.value)  # type: ignore[index]
        self._assert_untouched(store, [child], chain, {MAIN: root.hash})

    def test_missing_target_writes_nothing(self, store: Store, chain: Chain) -> None:
        root = chain.append(None, "root")
        store.write(**chain.batch(root), refs=[RefUpdate(MAIN, root.hash, None)])
        elsewhere = chain.append(None, "a commit this store never saw")
        edit = chain.edit(root, elsewhere, "edit of it")
        with pytest.raises(IntegrityError) as info:
            store.write(**chain.batch(edit), refs=[RefUpdate(MAIN, edit.hash, root.hash)])
        assert edit.short in str(info.value) and elsewhere.short in str(info.value)
        self._assert_untouched(store, [edit, elsewhere], chain, {MAIN: root.hash})

    def test_failed_compare_and_swap_writes_nothing(self, store: Store, chain: Chain) -> None:
        root = chain.append(None, "root")
        store.write(**chain.batch(root), refs=[RefUpdate(MAIN, root.hash, None)])
        ours = chain.append(root, "ours")
        stale = sha256_hex(b"what we thought main was")
        with pytest.raises(ConflictError):
            store.write(
                **chain.batch(ours),
                refs=[RefUpdate(SIDE, ours.hash, None), RefUpdate(MAIN, ours.hash, stale)],
                token_counts={"approx": {ours.content_hash: 1}},  # type: ignore[dict-item]
            )
        self._assert_untouched(store, [ours], chain, {MAIN: root.hash})
        assert store.get_token_counts("approx", [ours.content_hash]) == {}  # type: ignore[list-item]

    def test_write_caches_token_counts_in_the_same_transaction(self, store: Store, chain: Chain) -> None:
        root = chain.append(None, "three words here")
        store.write(
            **chain.batch(root),
            refs=[RefUpdate(MAIN, root.hash, None)],
            token_counts={"approx": {root.content_hash: 3}, "tiktoken:o200k_base": {root.content_hash: 4}},  # type: ignore[dict-item]
        )
        assert store.get_token_counts("approx", [root.content_hash]) == {root.content_hash: 3}  # type: ignore[list-item]
        assert store.get_token_counts("tiktoken:o200k_base", [root.content_hash]) == {root.content_hash: 4}  # type: ignore[list-item]
        store.write(token_counts={"approx": {root.content_hash: 5}})  # type: ignore[dict-item]
        assert store.get_token_counts("approx", [root.content_hash]) == {root.content_hash: 5}  # type: ignore[list-item]
        lost = chain.append(root, "never written")
        child = chain.append(lost, "child of a missing parent")
        with pytest.raises(IntegrityError):
            store.write(**chain.batch(child), token_counts={"approx": {child.content_hash: 9}})  # type: ignore[dict-item]
        assert store.get_token_counts("approx", [child.content_hash]) == {}  # type: ignore[list-item]

    # -- refs ---------------------------------------------------------------------------------

    def test_compare_and_swap_semantics(self, store: Store, chain: Chain) -> None:
        one, two = chain.line(2)
        store.write(**chain.batch(one, two))
        store.set_ref(MAIN, one.hash, expected=None)
        with pytest.raises(ConflictError) as info:
            store.set_ref(MAIN, two.hash, expected=None)  # create-only, but it exists
        assert (info.value.ref, info.value.expected, info.value.actual) == (MAIN, None, one.hash)
        wrong = sha256_hex(b"wrong")
        with pytest.raises(ConflictError) as info:
            store.set_ref(MAIN, two.hash, expected=wrong)
        assert (info.value.ref, info.value.expected, info.value.actual) == (MAIN, wrong, one.hash)
        assert store.get_ref(MAIN) == one.hash
        store.set_ref(MAIN, two.hash, expected=one.hash)
        assert store.get_ref(MAIN) == two.hash
        with pytest.raises(ConflictError) as info:
            store.delete_ref(MAIN, expected=one.hash)
        assert info.value.actual == two.hash
        store.delete_ref(MAIN, expected=two.hash)
        assert store.get_ref(MAIN) is None and store.list_refs() == {}
        with pytest.raises(ConflictError) as info:
            store.delete_ref(MAIN, expected=two.hash)
        assert info.value.actual is None
        with pytest.raises(ConflictError):
            store.set_ref(MAIN, one.hash, expected=two.hash)  # expects a value, but there is none
        assert store.get_ref(MAIN) is None

    def test_symbolic_ref_values_are_stored_as_given(self, store: Store) -> None:
        store.set_ref("HEAD", "ref: refs/heads/main", expected=None)
        assert store.get_ref("HEAD") == "ref: refs/heads/main"
        store.set_ref("HEAD", "ref: refs/heads/other", expected="ref: refs/heads/main")
        assert store.get_ref("HEAD") == "ref: refs/heads/other"

    def test_several_refs_in_one_write_are_all_or_nothing(self, store: Store, chain: Chain) -> None:
        one, two = chain.line(2)
        store.write(**chain.batch(one, two), refs=[RefUpdate(MAIN, one.hash, None)])
        with pytest.raises(ConflictError) as info:
            store.write(
                refs=[
                    RefUpdate("refs/heads/a", two.hash, None),
                    RefUpdate(MAIN, two.hash, two.hash),
                    RefUpdate("refs/heads/b", two.hash, None),
                ]
            )
        assert info.value.ref == MAIN
        assert store.list_refs() == {MAIN: one.hash}
        store.write(
            refs=[
                RefUpdate("refs/heads/a", two.hash, None),
                RefUpdate(MAIN, two.hash, one.hash),
                RefUpdate("HEAD", "ref: refs/heads/main", None),
            ]
        )
        assert store.list_refs() == {"HEAD": "ref: refs/heads/main", "refs/heads/a": two.hash, MAIN: two.hash}
        store.write(refs=[RefUpdate("refs/heads/a", None, two.hash), RefUpdate(MAIN, one.hash, two.hash)])
        assert store.list_refs() == {"HEAD": "ref: refs/heads/main", MAIN: one.hash}

    def test_list_refs_by_literal_prefix_sorted(self, store: Store, chain: Chain) -> None:
        (one,) = chain.line(1)
        store.write(**chain.batch(one))
        names = [
            "refs/heads/zeta",
            "refs/heads/a_b",
            "refs/heads/axb",
            "refs/heads/a%",
            "refs/tags/v1",
            "HEAD",
            "refs/heads/alpha",
            "refs/heads/ä",
        ]
        for name in names:
            store.set_ref(name, one.hash, expected=None)
        listed = store.list_refs("refs/heads/")
        assert list(listed) == sorted(n for n in names if n.startswith("refs/heads/"))
        assert list(store.list_refs()) == sorted(names)
        assert list(store.list_refs("refs/heads/a_")) == ["refs/heads/a_b"]  # "_" is no wildcard
        assert list(store.list_refs("refs/heads/a%")) == ["refs/heads/a%"]  # nor is "%"
        assert store.list_refs("refs/nothing/") == {}
        assert store.list_refs("refs/tags/") == {"refs/tags/v1": one.hash}

    # -- history queries ------------------------------------------------------------------------

    def test_ancestors_order_limit_and_branches(self, store: Store, chain: Chain) -> None:
        line = chain.line(20)
        left = chain.append(line[-1], "left")
        right = chain.append(line[-1], "right")
        store.write(**chain.batch(*line, left, right))
        expected = [left.hash] + [c.hash for c in reversed(line)]
        got = store.ancestors(left.hash)
        assert [c.hash for c in got] == expected
        assert got[0] == left and got[-1] == line[0]
        assert [c.hash for c in store.ancestors(right.hash)] == [right.hash] + expected[1:]
        assert [c.hash for c in store.ancestors(left.hash, limit=3)] == expected[:3]
        assert [c.hash for c in store.ancestors(left.hash, limit=1)] == [left.hash]
        assert store.ancestors(left.hash, limit=0) == []
        assert [c.hash for c in store.ancestors(left.hash, limit=500)] == expected
        assert [c.hash for c in store.ancestors(line[0].hash)] == [line[0].hash]
        assert [c.depth for c in got] == list(range(20, -1, -1))

    def test_children_oldest_first(self, store: Store, chain: Chain) -> None:
        root = chain.append(None, "root", created_at=at(100))
        late = chain.append(root, "late", created_at=at(300))
        early = chain.append(root, "early", created_at=at(200))
        grandchild = chain.append(early, "grandchild", created_at=at(400))
        store.write(**chain.batch(root, late))
        store.write(**chain.batch(early, grandchild))  # written after ``late`` but older
        assert [c.hash for c in store.children(root.hash)] == [early.hash, late.hash]
        assert store.children(root.hash)[0] == early
        assert [c.hash for c in store.children(early.hash)] == [grandchild.hash]
        assert store.children(late.hash) == []
        assert store.children(sha256_hex(b"unknown")) == []

    def _typed_history(self, store: Store, chain: Chain) -> list[Commit]:
        root = chain.append(None, "be brief", content_type="instruction", created_at=at(10))
        a = chain.append(root, "question", content_type="dialogue", created_at=at(20))
        b = chain.append(a, "call", content_type="tool_io", created_at=at(30))
        c = chain.append(b, "answer", content_type="dialogue", created_at=at(40))
        side = chain.append(root, "other branch", content_type="dialogue", created_at=at(50))
        store.write(**chain.batch(root, a, b, c, side), refs=[RefUpdate(MAIN, c.hash, None)])
        return [root, a, b, c, side]

    def test_commits_by_type_newest_first_with_bounds(self, store: Store, chain: Chain) -> None:
        root, a, b, c, side = self._typed_history(store, chain)
        hashes = lambda commits: [x.hash for x in commits]  # noqa: E731
        assert hashes(store.commits_by_type("dialogue")) == [side.hash, c.hash, a.hash]
        assert store.commits_by_type("dialogue")[0] == side
        assert hashes(store.commits_by_type("dialogue", since=at(20), until=at(40))) == [c.hash, a.hash]
        assert hashes(store.commits_by_type("dialogue", since=at(21))) == [side.hash, c.hash]
        assert hashes(store.commits_by_type("dialogue", until=at(39))) == [a.hash]
        assert hashes(store.commits_by_type("dialogue", limit=2)) == [side.hash, c.hash]
        assert hashes(store.commits_by_type("dialogue", since=at(20), limit=1)) == [side.hash]
        assert hashes(store.commits_by_type("instruction")) == [root.hash]
        assert store.commits_by_type("artifact") == []
        assert store.commits_by_type("dialogue", limit=0) == []

    def test_commits_by_time_newest_first_with_bounds(self, store: Store, chain: Chain) -> None:
        root, a, b, c, side = self._typed_history(store, chain)
        hashes = lambda commits: [x.hash for x in commits]  # noqa: E731
        assert hashes(store.commits_by_time()) == [side.hash, c.hash, b.hash, a.hash, root.hash]
        assert hashes(store.commits_by_time(since=at(20), until=at(40))) == [c.hash, b.hash, a.hash]
        assert hashes(store.commits_by_time(since=at(40))) == [side.hash, c.hash]
        assert hashes(store.commits_by_time(until=at(10))) == [root.hash]
        assert hashes(store.commits_by_time(limit=2)) == [side.hash, c.hash]
        assert hashes(store.commits_by_time(until=at(35), limit=2)) == [b.hash, a.hash]
        assert store.commits_by_time(since=at(60)) == []

    def test_commits_targeting_oldest_first(self, store: Store, chain: Chain) -> None:
        one, two, three = chain.line(3)
        edit_two = chain.edit(three, two, "two, revised")
        delete_one = chain.delete(edit_two, one)
        edit_two_again = chain.edit(delete_one, two, "two, revised again")
        store.write(**chain.batch(one, two, three, edit_two, delete_one, edit_two_again))
        got = store.commits_targeting([two.hash])
        assert [c.hash for c in got] == [edit_two.hash, edit_two_again.hash]
        assert got[0] == edit_two
        both = store.commits_targeting(iter([two.hash, one.hash, sha256_hex(b"unknown")]))
        assert [c.hash for c in both] == [edit_two.hash, delete_one.hash, edit_two_again.hash]
        assert store.commits_targeting([three.hash]) == []
        assert store.commits_targeting([]) == []

    def test_find_commits_by_prefix(self, store: Store, chain: Chain) -> None:
        commits = chain.line(20)  # 20 hashes, 16 hex digits: two share a first digit
        store.write(**chain.batch(*commits))
        for commit in commits:
            assert store.find_commits(commit.hash[:10]) == [commit.hash]
            assert store.find_commits(commit.hash) == [commit.hash]
        by_first: dict[str, set[str]] = {}
        for commit in commits:
            by_first.setdefault(commit.hash[0], set()).add(commit.hash)
        digit, shared = max(by_first.items(), key=lambda kv: len(kv[1]))
        assert len(shared) >= 2
        assert set(store.find_commits(digit)) == shared
        limited = store.find_commits(digit, limit=1)
        assert len(limited) == 1 and limited[0] in shared
        absent = next(p for p in (f"{i:04x}" for i in range(65536)) if not any(c.hash.startswith(p) for c in commits))
        assert store.find_commits(absent) == []

    # -- annotations ---------------------------------------------------------------------------

    def test_annotations_latest_history_and_priority(self, store: Store, chain: Chain) -> None:
        one, two, three = chain.line(3)
        store.write(**chain.batch(one, two, three))
        skip1 = Annotation(one.hash, Priority.SKIP, "noise", at(100))
        pin1 = Annotation(one.hash, Priority.PINNED, "key fact", at(200))
        normal1 = Annotation(one.hash, Priority.NORMAL, "back to normal", at(300))
        pin2 = Annotation(two.hash, Priority.PINNED, "keep", at(150))
        store.add_annotations([normal1, skip1])  # added out of time order
        store.add_annotations([pin1, pin2])

        assert store.annotation_history(one.hash) == [skip1, pin1, normal1]
        assert store.annotation_history(three.hash) == []
        latest = lambda t, as_of=None: store.latest_annotations([t], as_of=as_of).get(t)  # noqa: E731
        assert latest(one.hash, at(50)) is None
        assert latest(one.hash, at(100)) == skip1  # as_of is inclusive
        assert latest(one.hash, at(250)) == pin1
        assert latest(one.hash) == normal1

        many = store.latest_annotations(
            iter([one.hash, two.hash, three.hash, sha256_hex(b"unknown"), one.hash]), as_of=at(160)
        )
        assert many == {one.hash: skip1, two.hash: pin2}
        assert store.latest_annotations([one.hash, two.hash]) == {one.hash: normal1, two.hash: pin2}
        assert store.latest_annotations([]) == {}

        assert store.annotated(Priority.PINNED) == {two.hash: pin2}
        assert store.annotated(Priority.PINNED, as_of=at(250)) == {one.hash: pin1, two.hash: pin2}
        assert store.annotated(Priority.SKIP, as_of=at(120)) == {one.hash: skip1}
        assert store.annotated(Priority.SKIP) == {}
        assert store.annotated(Priority.NORMAL) == {one.hash: normal1}
        assert store.annotated(Priority.PINNED, as_of=at(10)) == {}

    def test_annotation_ties_go_to_the_one_added_last(self, store: Store, chain: Chain) -> None:
        (one,) = chain.line(1)
        store.write(**chain.batch(one))
        first = Annotation(one.hash, Priority.PINNED, "first", at(500))
        second = Annotation(one.hash, Priority.SKIP, "second", at(500))
        store.add_annotations([first])
        store.add_annotations([second])
        assert store.latest_annotations([one.hash]) == {one.hash: second}
        assert store.annotation_history(one.hash) == [first, second]
        assert store.annotated(Priority.SKIP) == {one.hash: second}
        assert store.annotated(Priority.PINNED) == {}

    def test_annotations_are_idempotent_and_need_stored_targets(self, store: Store, chain: Chain) -> None:
        one, two = chain.line(2)
        store.write(**chain.batch(one))
        note = Annotation(one.hash, Priority.PINNED, "once", at(10))
        store.add_annotations([note])
        store.add_annotations([note, note])
        assert store.annotation_history(one.hash) == [note]
        assert store.stats().annotations == 1
        valid = Annotation(one.hash, Priority.SKIP, "would be fine", at(20))
        with pytest.raises(IntegrityError) as info:
            store.add_annotations([valid, Annotation(two.hash, Priority.SKIP, "two is not stored", at(20))])
        assert two.short in str(info.value)
        assert store.annotation_history(one.hash) == [note], "a refused batch stored some of its annotations"
        assert store.annotation_history(two.hash) == []
        store.add_annotations([])

    # -- token counts ---------------------------------------------------------------------------

    def test_token_counts_cache_per_tokenizer(self, store: Store) -> None:
        h1, h2, h3 = (sha256_hex(x) for x in (b"1", b"2", b"3"))
        store.put_token_counts("approx", {h1: 10, h2: 0})
        store.put_token_counts("tiktoken:cl100k_base", {h1: 7})
        assert store.get_token_counts("approx", [h1, h2, h3]) == {h1: 10, h2: 0}
        assert store.get_token_counts("tiktoken:cl100k_base", iter([h1, h2])) == {h1: 7}
        assert store.get_token_counts("hf:other", [h1]) == {}
        store.put_token_counts("approx", {h1: 11, h3: 3})
        assert store.get_token_counts("approx", [h1, h2, h3]) == {h1: 11, h2: 0, h3: 3}
        assert store.get_token_counts("approx", []) == {}
        store.put_token_counts("approx", {})

    # -- maintenance -----------------------------------------------------------------------------

    def test_stats_counts(self, store: Store, chain: Chain) -> None:
        empty = store.stats()
        assert (empty.blobs, empty.commits, empty.refs, empty.annotations) == (0, 0, 0, 0)
        one, two, three = chain.line(3)
        store.write(
            **chain.batch(one, two, three),
            refs=[RefUpdate(MAIN, three.hash, None), RefUpdate("HEAD", "ref: refs/heads/main", None)],
        )
        store.write(blobs={sha256_hex(b"loose"): b"loose"})
        store.add_annotations(
            [Annotation(one.hash, Priority.SKIP, "a", at(1)), Annotation(one.hash, Priority.NORMAL, "b", at(2))]
        )
        stats = store.stats()
        assert (stats.blobs, stats.commits, stats.refs, stats.annotations) == (4, 3, 2, 2)
        assert stats.bytes > 0

    def _gc_history(self, store: Store, chain: Chain) -> dict[str, Any]:
        """main: root-a1-a2; side: a1-b1-b2 (b2 reuses a2's content); an unreferenced o1-o2; a tag on a1."""
        root = chain.append(None, "root")
        a1 = chain.append(root, "a1")
        a2 = chain.append(a1, "shared text")
        b1 = chain.append(a1, "b1 only")
        b2 = chain.append(b1, "shared text")
        o1 = chain.append(None, "orphan root")
        o2 = chain.append(o1, "orphan child")
        store.write(
            **chain.batch(root, a1, a2, b1, b2, o1, o2),
            refs=[
                RefUpdate(MAIN, a2.hash, None),
                RefUpdate(SIDE, b2.hash, None),
                RefUpdate("HEAD", "ref: refs/heads/main", None),
            ],
        )
        store.add_annotations(
            [
                Annotation(a2.hash, Priority.PINNED, "kept", at(1)),
                Annotation(b1.hash, Priority.SKIP, "goes with b1", at(2)),
                Annotation(o2.hash, Priority.SKIP, "goes with o2", at(3)),
                Annotation(o2.hash, Priority.NORMAL, "goes with o2 too", at(4)),
            ]
        )
        store.put_token_counts("approx", {o1.content_hash: 2, a1.content_hash: 1})  # type: ignore[dict-item]
        return {"root": root, "a1": a1, "a2": a2, "b1": b1, "b2": b2, "o1": o1, "o2": o2}

    def test_gc_removes_only_what_no_ref_reaches(self, store: Store, chain: Chain) -> None:
        h = self._gc_history(store, chain)
        store.delete_ref(SIDE, expected=h["b2"].hash)
        before = store.stats()

        dry = store.gc(dry_run=True)
        assert dry == GcReport(commits_removed=4, blobs_removed=3, annotations_removed=3, dry_run=True)
        after_dry = store.stats()
        assert (after_dry.blobs, after_dry.commits, after_dry.annotations) == (
            before.blobs,
            before.commits,
            before.annotations,
        ), "dry_run removed something"

        report = store.gc()
        assert report == GcReport(commits_removed=4, blobs_removed=3, annotations_removed=3, dry_run=False)
        live = [h["root"], h["a1"], h["a2"]]
        dead = [h["b1"], h["b2"], h["o1"], h["o2"]]
        assert set(store.get_commits(c.hash for c in live + dead)) == {c.hash for c in live}
        live_blobs = {c.content_hash for c in live}
        dead_blobs = {c.content_hash for c in dead} - live_blobs
        assert set(store.get_blobs(live_blobs | dead_blobs)) == live_blobs  # type: ignore[arg-type]
        assert store.annotation_history(h["b1"].hash) == [] and store.annotation_history(h["o2"].hash) == []
        assert len(store.annotation_history(h["a2"].hash)) == 1
        assert store.get_token_counts("approx", [h["o1"].content_hash, h["a1"].content_hash]) == {
            h["a1"].content_hash: 1
        }
        assert store.list_refs() == {"HEAD": "ref: refs/heads/main", MAIN: h["a2"].hash}
        assert store.children(h["a1"].hash) == [h["a2"]]
        assert store.check() == []
        assert store.gc() == GcReport(0, 0, 0, False)

    def test_gc_keeps_everything_any_ref_reaches(self, store: Store, chain: Chain) -> None:
        h = self._gc_history(store, chain)
        store.set_ref("refs/tags/orphans", h["o2"].hash, expected=None)
        assert store.gc() == GcReport(0, 0, 0, False)
        assert store.stats().commits == 7
        store.delete_ref(MAIN, expected=h["a2"].hash)  # HEAD now names a missing branch: nothing to follow
        report = store.gc()
        assert report.commits_removed == 1 and report.annotations_removed == 1  # a2 only: b2 reaches root-a1
        assert set(store.get_commits(c.hash for c in h.values())) == {
            h[k].hash for k in ("root", "a1", "b1", "b2", "o1", "o2")
        }
        assert store.get_blobs([h["a2"].content_hash]) != {}, "a blob a surviving commit uses was removed"
        assert store.check() == []

    def test_gc_never_breaks_a_surviving_link(self, store: Store, chain: Chain) -> None:
        root = chain.append(None, "root")
        side = chain.append(root, "only on the side branch")
        main = chain.append(root, "main")
        edit = chain.edit(main, side, "main edits a commit of the side branch")
        store.write(
            **chain.batch(root, side, main, edit),
            refs=[RefUpdate(MAIN, edit.hash, None), RefUpdate(SIDE, side.hash, None)],
        )
        store.delete_ref(SIDE, expected=side.hash)
        store.gc()
        assert store.get_commits([edit.hash]) == {edit.hash: edit}
        assert store.check() == [], "gc removed a commit that a surviving commit links to"

    def test_check_is_empty_on_a_healthy_store(self, store: Store, chain: Chain) -> None:
        assert store.check() == []
        line = chain.line(12)
        edit = chain.edit(line[-1], line[2], "edited")
        delete = chain.delete(edit, line[3])
        branch = chain.append(line[5], "branch")
        store.write(
            **chain.batch(*line, edit, delete, branch),
            refs=[
                RefUpdate(MAIN, delete.hash, None),
                RefUpdate(SIDE, branch.hash, None),
                RefUpdate("HEAD", "ref: refs/heads/main", None),
            ],
        )
        store.add_annotations([Annotation(line[0].hash, Priority.PINNED, "p", at(1))])
        store.put_token_counts("approx", {line[0].content_hash: 2})  # type: ignore[dict-item]
        assert store.check() == []

    # Each case: which commit of ``_planted_history`` to damage, and how. The damaged commit is
    # written through the store's own ``write`` (which trusts derived fields) in place of the
    # right one; ``check`` must name it, and only it.
    _DAMAGE: dict[str, tuple[str, Callable[[Commit, dict[str, Commit]], dict[str, Any]]]] = {
        "depth": ("a5", lambda c, h: {"depth": 9}),
        "depth of a root": ("a0", lambda c, h: {"depth": 1}),
        "skip to the parent": ("a5", lambda c, h: {"skip": c.parent}),
        "skip missing": ("a6", lambda c, h: {"skip": None}),
        "skip to another branch": ("a6", lambda c, h: {"skip": h["side"].hash}),
        "content type": ("a3", lambda c, h: {"content_type": "artifact"}),
        "content type of a delete": ("delete", lambda c, h: {"content_type": "dialogue"}),
        "tokens of a delete": ("delete", lambda c, h: {"token_count": 3}),
        "negative tokens": ("a1", lambda c, h: {"token_count": -1}),
        "cumulative of an append": ("a4", lambda c, h: {"cumulative_tokens": c.cumulative_tokens + 1}),
        "cumulative of an edit": ("edit", lambda c, h: {"cumulative_tokens": c.cumulative_tokens + 5}),
        "cumulative of a delete": ("delete", lambda c, h: {"cumulative_tokens": c.cumulative_tokens + 2}),
    }

    def _planted_history(self, chain: Chain) -> dict[str, Commit]:
        """Seven appends, an edit, a delete, and a side branch; every derived field right."""
        line = chain.line(7)
        history = {f"a{i}": commit for i, commit in enumerate(line)}
        history["edit"] = chain.edit(line[6], line[2], "an edit with more words than before")
        history["delete"] = chain.delete(history["edit"], line[4])
        history["after"] = chain.append(history["delete"], "after the delete")
        history["side"] = chain.append(line[3], "on the side")
        return history

    @pytest.mark.parametrize("case", sorted(_DAMAGE))
    def test_check_finds_each_wrong_derived_field(self, store: Store, chain: Chain, case: str) -> None:
        import attrs

        history = self._planted_history(chain)
        name, damage = self._DAMAGE[case]
        right = history[name]
        wrong = attrs.evolve(right, **damage(right, history))
        commits = [wrong if c is right else c for c in history.values()]
        store.write(
            **chain.batch(*commits),
            refs=[RefUpdate(MAIN, history["after"].hash, None), RefUpdate(SIDE, history["side"].hash, None)],
        )
        problems = store.check()
        assert ("derived", right.hash) in [(p.kind, p.object) for p in problems], problems
        # Counts follow from the parent's stored counts, so a wrong cumulative count also
        # shows on the children counted from it; anything else is one problem.
        children = {c.hash for c in history.values() if c.parent == right.hash} if "cumulative" in case else set()
        assert {(p.kind, p.object) for p in problems} <= {("derived", h) for h in {right.hash, *children}}, problems

    def test_check_finds_content_that_is_not_a_content_item(self, store: Store, chain: Chain) -> None:
        import attrs

        one = chain.append(None, "fine")
        data = canonical_json(["not", "a", "content", "item"])
        odd = attrs.evolve(chain.append(one, "placeholder"), content_hash=sha256_hex(data))
        odd = attrs.evolve(odd, hash=odd.computed_hash())
        store.write(blobs={one.content_hash: chain.blobs[one.content_hash], odd.content_hash: data}, commits=[one, odd])  # type: ignore[dict-item]
        assert [(p.kind, p.object) for p in store.check()] == [("other", odd.hash)]

    @pytest.mark.parametrize(
        ("name", "value", "kind"),
        [
            ("refs/heads/../../etc/passwd", "commit", "bad_ref"),
            ("refs/heads/-x", "commit", "bad_ref"),
            ("refs/heads/🪨", "commit", "bad_ref"),
            ("refs/heads/main", "zzz", "bad_ref"),
            ("refs/heads/main", "ref: refs/heads/side", "bad_ref"),
            ("HEAD", "ref: ../../etc", "bad_ref"),
            ("HEAD", "ref: refs/heads/a..b", "bad_ref"),
            ("HEAD", "zzz", "bad_ref"),
            ("loose", "commit", "bad_ref"),
            ("refs/heads/main", "d" * 64, "dangling_ref"),
            ("HEAD", "d" * 64, "dangling_ref"),
        ],
    )
    def test_check_finds_refs_with_bad_names_or_values(
        self, store: Store, chain: Chain, name: str, value: str, kind: str
    ) -> None:
        one = chain.append(None, "one")
        store.write(**chain.batch(one), refs=[RefUpdate(name, one.hash if value == "commit" else value, None)])
        assert [(p.kind, p.object) for p in store.check()] == [(kind, name)]

    def test_check_accepts_refs_the_engine_writes(self, store: Store, chain: Chain) -> None:
        one = chain.append(None, "one")
        store.write(
            **chain.batch(one),
            refs=[
                RefUpdate("HEAD", "ref: refs/heads/feature/x-1", None),
                RefUpdate("refs/heads/feature/x-1", one.hash, None),
                RefUpdate("refs/heads/cafe", one.hash, None),  # named before branch names could not look like hashes
                RefUpdate("refs/tags/v1.0", one.hash, None),
            ],
        )
        assert store.check() == []
        store.set_ref("HEAD", one.hash, expected="ref: refs/heads/feature/x-1")  # detached
        assert store.check() == []

    def test_check_finds_a_tampered_blob(self, store: Store, chain: Chain, corrupt_blob: CorruptBlob | None) -> None:
        if corrupt_blob is None:
            pytest.skip("the backend provides no corrupt_blob hook")
        one, two = chain.line(2)
        store.write(**chain.batch(one, two), refs=[RefUpdate(MAIN, two.hash, None)])
        assert store.check() == []
        corrupt_blob(store, one.content_hash, b'{"content_type":"dialogue","text":"tampered"}')  # type: ignore[arg-type]
        problems = store.check()
        assert [(p.kind, p.object) for p in problems if p.kind == "blob_hash"] == [("blob_hash", one.content_hash)]

    # -- durability and concurrency -------------------------------------------------------------

    def test_reopened_store_sees_everything(self, store_opener: StoreOpener, store_dir: Path, chain: Chain) -> None:
        self._needs_persistence()
        line = chain.line(5)
        edit = chain.edit(line[-1], line[0], "edited")
        note = Annotation(line[1].hash, Priority.PINNED, "pinned", at(7))
        loose = b"loose blob"
        first = store_opener(store_dir)
        try:
            store_dict = chain.batch(*line, edit)
            store_dict["blobs"][sha256_hex(loose)] = loose
            first.write(
                **store_dict, refs=[RefUpdate(MAIN, edit.hash, None), RefUpdate("HEAD", "ref: refs/heads/main", None)]
            )
            first.add_annotations([note])
            first.put_token_counts("approx", {line[0].content_hash: 5})  # type: ignore[dict-item]
        finally:
            first.close()
        second = store_opener(store_dir)
        try:
            assert second.list_refs() == {"HEAD": "ref: refs/heads/main", MAIN: edit.hash}
            assert second.get_commits(c.hash for c in [*line, edit]) == {c.hash: c for c in [*line, edit]}
            assert second.get_blobs([sha256_hex(loose)]) == {sha256_hex(loose): loose}
            assert [c.hash for c in second.ancestors(edit.hash)] == [edit.hash] + [c.hash for c in reversed(line)]
            assert second.latest_annotations([line[1].hash]) == {line[1].hash: note}
            assert second.get_token_counts("approx", [line[0].content_hash]) == {line[0].content_hash: 5}  # type: ignore[list-item]
            assert second.commits_targeting([line[0].hash]) == [edit]
            assert second.check() == []
        finally:
            second.close()

    def test_concurrent_writers_across_processes_lose_nothing(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        workers, per_worker = 4, 50
        try:
            pickle.dumps(store_opener)
        except Exception as exc:  # a lambda or a closure
            pytest.fail(f"store_opener must be a picklable module-level callable for this test: {exc}")
        outcomes = run_workers(
            _append_worker, lambda i, b, r: (store_opener, str(store_dir), MAIN, i, per_worker, b, r), workers
        )
        acked = [h for _, hashes, _, _ in outcomes for h in hashes]
        assert len(acked) == workers * per_worker, f"{len(acked)} writes acknowledged"
        assert len(set(acked)) == len(acked), "the same commit was acknowledged twice"

        store = store_opener(store_dir)
        try:
            head = store.get_ref(MAIN)
            assert head is not None
            history = store.ancestors(head)
            lost = set(acked) - {c.hash for c in history}
            assert not lost, f"{len(lost)} acknowledged commits are not on the branch"
            assert len(history) == workers * per_worker, f"the branch holds {len(history)} commits"
            assert history[0].depth == workers * per_worker - 1
            for i, commit in enumerate(history):
                assert commit.depth == len(history) - 1 - i
            assert store.stats().commits == workers * per_worker
            assert store.check() == []
        finally:
            store.close()

    # -- properties -----------------------------------------------------------------------------

    def test_property_round_trips(self, store: Store) -> None:
        pytest.importorskip("hypothesis", reason="install cairn[test] to run the property tests")
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        # Lone surrogates are not Unicode text; canonical JSON refuses them.
        text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
        scalars = (
            st.none()
            | st.booleans()
            | st.integers(min_value=-(2**63), max_value=2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False)
            | text
        )
        json_values = st.recursive(
            scalars,
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
            max_leaves=20,
        )
        counter = iter(range(10**9))

        @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
        @given(data=st.binary(max_size=512), metadata=st.dictionaries(text, json_values, max_size=5), message=text)
        def round_trip(data: bytes, metadata: dict[str, Any], message: str) -> None:
            digest = sha256_hex(data)
            store.write(blobs={digest: data})
            assert store.get_blobs([digest]) == {digest: data}
            content = content_bytes(f"property {next(counter)}")
            commit = Commit.new(
                parent=None,
                operation=Operation.APPEND,
                content_hash=sha256_hex(content),
                message=message,
                metadata=metadata,
                created_at=now(),
                content_type="dialogue",
            )
            store.write(blobs={commit.content_hash: content}, commits=[commit])  # type: ignore[dict-item]
            stored = store.get_commits([commit.hash])[commit.hash]
            assert stored == commit
            assert canonical_json(stored.metadata) == canonical_json(metadata)
            assert stored.computed_hash() == commit.hash

        round_trip()


# -- the run ledger ---------------------------------------------------------------------------


def make_run(run_id: str, seconds: float, *, type: str = "job", status: str = "ok", **fields: Any) -> Run:
    """A run started ``seconds`` after the suite's epoch."""
    return Run(run_id=run_id, type=type, status=status, started_at=at(seconds), **fields)


def make_events(run_id: str, count: int, start: int = 0) -> list[RunEvent]:
    return [
        RunEvent(run_id, seq, at(seq), "step", {"n": seq, "text": f"étape {seq} ✓", "nested": {"ok": True}})
        for seq in range(start, start + count)
    ]


def _run_worker(opener: StoreOpener, directory: str, worker: int, count: int, barrier: Any, results: Any) -> None:
    """Record ``count`` runs with events in their own process; report the ids acknowledged."""
    acked: list[str] = []
    try:
        store = opener(Path(directory))
        try:
            barrier.wait(timeout=120)
            for i in range(count):
                run_id = f"w{worker}-r{i:03d}"
                store.put_run(make_run(run_id, i, metadata={"worker": worker}), make_events(run_id, 3))
                acked.append(run_id)
        finally:
            store.close()
        results.put((worker, acked, None))
    except BaseException as exc:
        barrier.abort()
        results.put((worker, acked, f"{type(exc).__name__}: {exc}"))


class LedgerConformance:
    """The run-ledger group of the contract. Mixed into ``StoreConformance``."""

    def test_run_round_trips_with_its_events(self, store: Store) -> None:
        run = make_run(
            "20260101T000000.000000Z_job_0a1b2c3d",
            5,
            subtype="nightly",
            user="ann",
            code_ref="a" * 40,
            ended_at=at(9),
            duration_ms=4000,
            environment={"python": "3.11", "nested": {"k": [1, 2]}},
            modules_affected=["kernel", "plugins/x"],
            summary="did the thing — ✓",
            metadata={"n": 1, "ünï": "cödé"},
        )
        events = make_events(run.run_id, 5)
        store.put_run(run, events)
        assert store.get_run(run.run_id) == run
        assert store.run_events(run.run_id) == events
        assert store.run_events(run.run_id, after_seq=2) == events[3:]
        assert store.get_run("20260101T000000.000000Z_job_ffffffff") is None
        assert store.run_events("20260101T000000.000000Z_job_ffffffff") == []

    def test_creating_an_existing_run_is_a_conflict_and_changes_nothing(self, store: Store) -> None:
        first = make_run("r-1", 1, summary="first")
        store.put_run(first, make_events("r-1", 2))
        with pytest.raises(ConflictError) as info:
            store.put_run(make_run("r-1", 2, summary="second"), make_events("r-1", 1, start=2))
        assert info.value.actual == "ok"
        assert store.get_run("r-1") == first
        assert [e.seq for e in store.run_events("r-1")] == [0, 1]

    def test_open_append_close(self, store: Store) -> None:
        opened = make_run("r-open", 1, status="open")
        store.put_run(opened)
        store.append_events("r-open", make_events("r-open", 2))
        store.append_events("r-open", make_events("r-open", 1, start=2))
        with pytest.raises(ConflictError):
            store.append_events("r-open", make_events("r-open", 1, start=1))  # seq 1 is taken
        closed = make_run("r-open", 1, status="failed", ended_at=at(3), duration_ms=2000)
        store.put_run(closed, make_events("r-open", 1, start=3), expected_status="open")
        assert store.get_run("r-open") == closed
        assert [e.seq for e in store.run_events("r-open")] == [0, 1, 2, 3]
        with pytest.raises(ConflictError) as info:  # closing twice: the status moved on
            store.put_run(closed, expected_status="open")
        assert info.value.actual == "failed"
        with pytest.raises(ConflictError):  # a closed run takes no more events
            store.append_events("r-open", make_events("r-open", 1, start=4))
        from cairn.errors import NotFoundError

        with pytest.raises(NotFoundError):
            store.append_events("r-missing", make_events("r-missing", 1))

    def test_a_failed_batch_writes_nothing(self, store: Store) -> None:
        store.put_run(make_run("r-taken", 1))
        with pytest.raises(ConflictError):
            store.put_runs([(make_run("r-new", 2), make_events("r-new", 2)), (make_run("r-taken", 3), [])])
        assert store.get_run("r-new") is None and store.run_events("r-new") == []

    def test_put_runs_records_many(self, store: Store) -> None:
        batch = [(make_run(f"b-{i:03d}", i), make_events(f"b-{i:03d}", i % 3)) for i in range(60)]
        store.put_runs(batch)
        assert len(store.list_runs()) == 60
        for run, events in batch[::7]:
            assert store.get_run(run.run_id) == run and store.run_events(run.run_id) == events

    def test_list_runs_filters_and_orders_newest_first(self, store: Store) -> None:
        store.put_runs(
            [
                (make_run("a", 10, type="eval"), []),
                (make_run("b", 20, type="job", status="failed"), []),
                (make_run("c", 30, type="eval", status="partial"), []),
                (make_run("d", 30, type="job"), []),  # same time as c: run id breaks the tie
                (make_run("e", 40, type="job", status="open"), []),
            ]
        )
        ids = lambda runs: [r.run_id for r in runs]  # noqa: E731
        assert ids(store.list_runs()) == ["e", "d", "c", "b", "a"]
        assert ids(store.list_runs(type="eval")) == ["c", "a"]
        assert ids(store.list_runs(status="failed")) == ["b"]
        assert ids(store.list_runs(since=at(20), until=at(30))) == ["d", "c", "b"]
        assert ids(store.list_runs(limit=2)) == ["e", "d"]
        assert ids(store.list_runs(type="job", status="ok")) == ["d"]

    def test_delete_runs(self, store: Store) -> None:
        store.put_runs([(make_run(f"x-{i}", i), make_events(f"x-{i}", 2)) for i in range(4)])
        assert store.delete_runs(["x-1", "x-3", "x-missing"]) == 2
        assert [r.run_id for r in store.list_runs()] == ["x-2", "x-0"]
        assert store.run_events("x-1") == []
        # A deleted id can be used again.
        store.put_run(make_run("x-1", 9))
        assert store.get_run("x-1") is not None and store.run_events("x-1") == []

    def test_spend_records(self, store: Store) -> None:
        from cairn.model import SpendRecord

        records = [
            SpendRecord(at(1), "openai", "gpt-x", "ok", input_tokens=10, output_tokens=5, cost=0.25, run_id="r1"),
            SpendRecord(at(2), "openai", "gpt-x", "rate_limited", run_id="r2"),
            SpendRecord(at(3), "local", "hashing", "ok", input_tokens=7, cost=None),
        ]
        store.add_spend(records[1:])
        store.add_spend(records[:1])
        assert store.spend() == records  # oldest first, whatever the order of writing
        assert store.spend(since=at(2)) == records[1:]
        assert store.spend(until=at(2)) == records[:2]
        assert store.spend(run_id="r1") == records[:1]
        assert store.spend()[2].cost is None  # unknown stays unknown, never 0

    def test_ledger_survives_reopen(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()  # type: ignore[attr-defined]
        first = store_opener(store_dir)
        try:
            first.put_run(make_run("keep", 1), make_events("keep", 3))
        finally:
            first.close()
        second = store_opener(store_dir)
        try:
            assert second.get_run("keep") is not None and len(second.run_events("keep")) == 3
        finally:
            second.close()

    def test_concurrent_run_writers_across_processes_lose_nothing(
        self, store_opener: StoreOpener, store_dir: Path
    ) -> None:
        self._needs_persistence()  # type: ignore[attr-defined]
        workers, per_worker = 4, 25
        outcomes = run_workers(
            _run_worker, lambda i, b, r: (store_opener, str(store_dir), i, per_worker, b, r), workers
        )
        acked = {run_id for _, ids, _ in outcomes for run_id in ids}
        assert len(acked) == workers * per_worker
        store = store_opener(store_dir)
        try:
            assert {r.run_id for r in store.list_runs()} == acked
            for run_id in sorted(acked)[::9]:
                assert [e.seq for e in store.run_events(run_id)] == [0, 1, 2]
        finally:
            store.close()


# -- chat ----------------------------------------------------------------------------------------


def _message(
    n: int,
    *,
    run_id: str | None = None,
    thread_id: str | None = "general",
    publish: bool = False,
    seconds: float | None = None,
) -> Any:
    from cairn.model.chat import ChatMessage

    return ChatMessage(
        id=f"m-{n:04d}",
        ts=at(n if seconds is None else seconds),
        text=f"message {n} — ✓",
        user="ann",
        thread_id=thread_id,
        run_id=run_id,
        publish=publish,
    )


def _chat_worker(
    opener: StoreOpener, directory: str, worker: int, count: int, run_id: str, barrier: Any, results: Any
) -> None:
    from cairn.model.chat import ChatMessage

    acked: list[str] = []
    try:
        store = opener(Path(directory))
        try:
            barrier.wait(timeout=120)
            for i in range(count):
                target = {"run_id": run_id, "thread_id": None} if i % 2 else {"run_id": None, "thread_id": "busy"}
                message = ChatMessage(id=f"w{worker}-{i:03d}", ts=now(), text=f"{worker}/{i}", **target)
                store.add_chat_message(message)
                acked.append(message.id)
        finally:
            store.close()
        results.put((worker, acked, None))
    except BaseException as exc:
        barrier.abort()
        results.put((worker, acked, f"{type(exc).__name__}: {exc}"))


class ChatConformance:
    """The chat group of the contract: messages on runs and threads, and threads."""

    def test_messages_round_trip_newest_first(self, store: Store) -> None:
        store.put_run(make_run("r-chat", 1))
        messages = [
            _message(1),
            _message(2, run_id="r-chat", thread_id=None, publish=True),
            _message(3, run_id="r-chat"),  # both a run and a thread
            _message(4, thread_id="other"),
        ]
        for message in messages:
            store.add_chat_message(message)
        ids = lambda found: [m.id for m in found]  # noqa: E731
        assert ids(store.chat_messages()) == ["m-0004", "m-0003", "m-0002", "m-0001"]
        assert ids(store.chat_messages(run_id="r-chat")) == ["m-0003", "m-0002"]
        assert ids(store.chat_messages(thread_id="general")) == ["m-0003", "m-0001"]
        assert ids(store.chat_messages(thread_id="general", limit=1)) == ["m-0003"]
        assert ids(store.chat_messages(published=True)) == ["m-0002"]
        assert store.chat_messages(run_id="r-chat")[1] == messages[1]

    def test_a_message_id_is_stored_once(self, store: Store) -> None:
        store.add_chat_message(_message(1))
        with pytest.raises(ConflictError):
            store.add_chat_message(_message(1))
        assert len(store.chat_messages()) == 1

    def test_threads(self, store: Store) -> None:
        from cairn.model.chat import Thread

        first = Thread("t-1", "First", at(1), created_by="ann", tags=["a", "b"])
        second = Thread("t-2", "Second ✓", at(2), anchor_run=None)
        store.put_thread(first)
        store.put_thread(second)
        with pytest.raises(ConflictError):
            store.put_thread(Thread("t-1", "Again", at(3)))
        assert store.get_thread("t-1") == first and store.get_thread("t-9") is None
        assert store.list_threads() == [second, first]

    def test_concurrent_chat_writers_across_processes_lose_nothing(
        self, store_opener: StoreOpener, store_dir: Path
    ) -> None:
        self._needs_persistence()  # type: ignore[attr-defined]
        workers, per_worker = 4, 50
        setup = store_opener(store_dir)
        try:
            setup.put_run(make_run("r-busy", 1))
        finally:
            setup.close()
        outcomes = run_workers(
            _chat_worker, lambda i, b, r: (store_opener, str(store_dir), i, per_worker, "r-busy", b, r), workers
        )
        acked = [m for _, ids, _ in outcomes for m in ids]
        store = store_opener(store_dir)
        try:
            on_run = [m.id for m in store.chat_messages(run_id="r-busy")]
            on_thread = [m.id for m in store.chat_messages(thread_id="busy")]
            assert len(on_run) == len(set(on_run)) == workers * per_worker // 2
            assert len(on_thread) == len(set(on_thread)) == workers * per_worker // 2
            assert set(on_run) | set(on_thread) == set(acked)
        finally:
            store.close()


class StoreConformance(_ObjectConformance, LedgerConformance, ChatConformance):
    """The whole contract of ``cairn.storage.Store`` as tests: objects, refs, annotations, token
    counts, maintenance, the run ledger and chat. Subclass it and provide ``store_opener``."""
