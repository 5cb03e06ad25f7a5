"""The objects facet's conformance suite: blobs, commits, atomic writes, history look-ups."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from cairn.errors import ConflictError, IntegrityError, MissingFacetError
from cairn.model import Commit, Operation, canonical_json, now, sha256_hex
from cairn.storage import RefUpdate, check_store
from cairn.testing.storage._support import (
    MAIN,
    SIDE,
    WORDS,
    Chain,
    FacetSuite,
    StoreOpener,
    _append_worker,
    at,
    content_bytes,
    run_workers,
)


class ObjectsConformance(FacetSuite):
    """The ``objects`` facet's contract as tests: blobs, commits, all-or-nothing writes, ancestry and look-ups."""

    facet = "objects"

    def test_blobs_round_trip(self, store: Any) -> None:
        items = [b"", b"\x00\xff binary \x00", content_bytes("héllo wörld ✓ 日本語 🪨"), bytes(range(256)) * 40]
        blobs = {sha256_hex(b): b for b in items}
        store.write(blobs=blobs)
        got = store.get_blobs(list(blobs))
        assert got == blobs
        assert all(type(v) is bytes for v in got.values())

    def test_commits_round_trip_every_field(self, store: Any, chain: Chain) -> None:
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
        # delete is at depth 3, so it has a parent.
        assert got[delete.hash].depth == 3 and got[delete.hash].skip == chain.lookup(delete.parent).parent  # type: ignore[arg-type]
        assert got[reply.hash].cumulative_tokens == root.token_count + reply.token_count

    def test_merge_commits_round_trip_with_both_parents(self, store: Any, chain: Chain) -> None:
        base = chain.append(None, "base")
        ours = chain.line(3, base, prefix="ours")
        theirs = chain.line(2, base, prefix="theirs")
        merge = chain.merge(ours[-1], theirs[-1], base)
        after = chain.append(merge, "after the merge")
        commits = [base, *ours, *theirs, merge, after]
        # Children before parents: the merged-in parent orders the batch too.
        store.write(**chain.batch(*reversed(commits)), refs=[RefUpdate(MAIN, after.hash, None)])
        got = store.get_commits(c.hash for c in commits)
        for original in commits:
            assert got[original.hash].to_record() == original.to_record(), f"{original.short} changed in storage"
        assert got[merge.hash].merge_parent == theirs[-1].hash and got[merge.hash].last_merge == merge.hash
        assert got[after.hash].last_merge == merge.hash and got[base.hash].last_merge is None
        assert got[merge.hash].computed_hash() == merge.hash
        # ``ancestors`` follows the first parent only.
        assert [c.hash for c in store.ancestors(after.hash)] == [after.hash, merge.hash] + [
            c.hash for c in [*reversed(ours), base]
        ]
        assert check_store(store) == []

    def test_missing_merged_in_parent_writes_nothing(self, store: Any, chain: Chain) -> None:
        base = chain.append(None, "base")
        ours = chain.append(base, "ours")
        store.write(**chain.batch(base, ours), refs=[RefUpdate(MAIN, ours.hash, None)])
        theirs = chain.append(base, "theirs, never written")
        merge = chain.merge(ours, theirs, base)
        with pytest.raises(IntegrityError) as info:
            store.write(**chain.batch(merge), refs=[RefUpdate(MAIN, merge.hash, ours.hash)])
        assert merge.short in str(info.value) and theirs.short in str(info.value)
        self._assert_untouched(store, [merge, theirs], chain, {MAIN: ours.hash})

    def test_changes_since_lists_edits_and_deletes_oldest_first(self, store: Any, chain: Chain) -> None:
        line = chain.line(3)
        edit = chain.edit(line[-1], line[0], "revised")
        delete = chain.delete(edit, line[1])
        later = chain.append(delete, "after")
        store.write(**chain.batch(*line, edit, delete, later), refs=[RefUpdate(MAIN, later.hash, None)])
        assert [c.hash for c in store.changes_since(line[0].created_at)] == [edit.hash, delete.hash]
        assert [c.hash for c in store.changes_since(delete.created_at)] == [delete.hash]  # inclusive
        assert store.changes_since(later.created_at) == []

    def test_same_blob_and_commit_twice_store_once(self, store: Any, chain: Chain) -> None:
        first, second = chain.line(2)
        store.write(**chain.batch(first, second))
        store.write(**chain.batch(first, second))
        store.write(**chain.batch(first, first))
        other = chain.append(second, "item 0")  # same content as ``first``: one blob
        store.write(**chain.batch(other))
        assert len(store.commits_by_time()) == 3
        assert store.get_blobs([first.content_hash, other.content_hash]) == {
            first.content_hash: chain.blobs[first.content_hash]  # type: ignore[index]  # an append: its hash is set
        }
        assert store.get_commits([first.hash, second.hash, other.hash]).keys() == {first.hash, second.hash, other.hash}

    def test_batch_reads_return_exactly_the_known_subset(self, store: Any, chain: Chain) -> None:
        commits = chain.line(5)
        stored, missing = commits[:3], commits[3:]
        store.write(**chain.batch(*stored))
        unknown = sha256_hex(b"never stored")
        wanted = [c.hash for c in commits] + [unknown, stored[0].hash]
        got = store.get_commits(h for h in wanted)  # a generator: read once
        assert set(got) == {c.hash for c in stored}
        blob_hashes = [c.content_hash for c in commits] + [unknown]
        blobs = store.get_blobs(iter(blob_hashes))
        assert set(blobs) == {c.content_hash for c in stored}
        assert all(c.hash not in got for c in missing)
        assert store.get_commits([]) == {} and store.get_blobs([]) == {}

    def test_batch_may_list_children_before_parents(self, store: Any, chain: Chain) -> None:
        line = chain.line(4)
        edit = chain.edit(line[-1], line[1], "replacement")
        store.write(**chain.batch(edit, *reversed(line)), refs=[RefUpdate(MAIN, edit.hash, None)])
        assert [c.hash for c in store.ancestors(edit.hash)] == [edit.hash] + [c.hash for c in reversed(line)]

    def test_empty_write_is_a_no_op(self, store: Any) -> None:
        store.write()
        store.write(blobs={}, commits=[], refs=[])
        assert store.commits_by_time() == [] and store.list_refs() == {}

    # -- write atomicity --------------------------------------------------------------------

    def _assert_untouched(self, store: Any, commits: list[Commit], chain: Chain, refs: dict[str, str]) -> None:
        assert store.get_commits(c.hash for c in commits) == {}, "a failed write stored commits"
        blobs = [c.content_hash for c in commits if c.content_hash]
        assert store.get_blobs(b for b in blobs if b) == {}, "a failed write stored blobs"
        assert store.list_refs() == refs, "a failed write moved refs"

    def test_missing_parent_writes_nothing(self, store: Any, chain: Chain) -> None:
        root = chain.append(None, "root")
        store.write(**chain.batch(root), refs=[RefUpdate(MAIN, root.hash, None)])
        lost = chain.append(root, "never written")
        orphan = chain.append(lost, "orphan")
        fine = chain.append(root, "would be fine alone")
        with pytest.raises(IntegrityError) as info:
            store.write(**chain.batch(fine, orphan), refs=[RefUpdate(SIDE, fine.hash, None)])
        assert orphan.short in str(info.value) and lost.short in str(info.value)
        self._assert_untouched(store, [fine, orphan], chain, {MAIN: root.hash})

    def test_missing_blob_writes_nothing(self, store: Any, chain: Chain) -> None:
        root = chain.append(None, "root")
        store.write(**chain.batch(root), refs=[RefUpdate(MAIN, root.hash, None)])
        child = chain.append(root, "content left out of the batch")
        with pytest.raises(IntegrityError) as info:
            store.write(commits=[child], refs=[RefUpdate(MAIN, child.hash, root.hash)])
        # child is an append: its content_hash is set.
        assert child.short in str(info.value) and child.content_hash[:12] in str(info.value)  # type: ignore[index]
        self._assert_untouched(store, [child], chain, {MAIN: root.hash})

    def test_missing_target_writes_nothing(self, store: Any, chain: Chain) -> None:
        root = chain.append(None, "root")
        store.write(**chain.batch(root), refs=[RefUpdate(MAIN, root.hash, None)])
        elsewhere = chain.append(None, "a commit this store never saw")
        edit = chain.edit(root, elsewhere, "edit of it")
        with pytest.raises(IntegrityError) as info:
            store.write(**chain.batch(edit), refs=[RefUpdate(MAIN, edit.hash, root.hash)])
        assert edit.short in str(info.value) and elsewhere.short in str(info.value)
        self._assert_untouched(store, [edit, elsewhere], chain, {MAIN: root.hash})

    def test_failed_compare_and_swap_writes_nothing(self, store: Any, chain: Chain) -> None:
        root = chain.append(None, "root")
        store.write(**chain.batch(root), refs=[RefUpdate(MAIN, root.hash, None)])
        ours = chain.append(root, "ours")
        stale = sha256_hex(b"what we thought main was")
        with pytest.raises(ConflictError):
            store.write(
                **chain.batch(ours),
                refs=[RefUpdate(SIDE, ours.hash, None), RefUpdate(MAIN, ours.hash, stale)],
            )
        self._assert_untouched(store, [ours], chain, {MAIN: root.hash})

    def test_ancestors_order_limit_and_branches(self, store: Any, chain: Chain) -> None:
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

    def test_children_oldest_first(self, store: Any, chain: Chain) -> None:
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

    def _typed_history(self, store: Any, chain: Chain) -> list[Commit]:
        root = chain.append(None, "be brief", content_type="instruction", created_at=at(10))
        a = chain.append(root, "question", content_type="dialogue", created_at=at(20))
        b = chain.append(a, "call", content_type="tool_io", created_at=at(30))
        c = chain.append(b, "answer", content_type="dialogue", created_at=at(40))
        side = chain.append(root, "other branch", content_type="dialogue", created_at=at(50))
        store.write(**chain.batch(root, a, b, c, side), refs=[RefUpdate(MAIN, c.hash, None)])
        return [root, a, b, c, side]

    def test_commits_by_type_newest_first_with_bounds(self, store: Any, chain: Chain) -> None:
        root, a, b, c, side = self._typed_history(store, chain)

        def hashes(commits: Iterable[Commit]) -> list[str]:
            return [x.hash for x in commits]

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

    def test_commits_by_time_newest_first_with_bounds(self, store: Any, chain: Chain) -> None:
        root, a, b, c, side = self._typed_history(store, chain)

        def hashes(commits: Iterable[Commit]) -> list[str]:
            return [x.hash for x in commits]

        assert hashes(store.commits_by_time()) == [side.hash, c.hash, b.hash, a.hash, root.hash]
        assert hashes(store.commits_by_time(since=at(20), until=at(40))) == [c.hash, b.hash, a.hash]
        assert hashes(store.commits_by_time(since=at(40))) == [side.hash, c.hash]
        assert hashes(store.commits_by_time(until=at(10))) == [root.hash]
        assert hashes(store.commits_by_time(limit=2)) == [side.hash, c.hash]
        assert hashes(store.commits_by_time(until=at(35), limit=2)) == [b.hash, a.hash]
        assert store.commits_by_time(since=at(60)) == []

    def test_commits_targeting_oldest_first(self, store: Any, chain: Chain) -> None:
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

    def test_find_commits_by_prefix(self, store: Any, chain: Chain) -> None:
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

    def test_reopened_store_sees_every_object_and_ref(
        self, store_opener: StoreOpener, store_dir: Path, chain: Chain
    ) -> None:
        self._needs_persistence()
        line = chain.line(5)
        edit = chain.edit(line[-1], line[0], "edited")
        loose = b"loose blob"
        first = store_opener(store_dir)
        try:
            store_dict = chain.batch(*line, edit)
            store_dict["blobs"][sha256_hex(loose)] = loose
            first.write(
                **store_dict, refs=[RefUpdate(MAIN, edit.hash, None), RefUpdate("HEAD", "ref: refs/heads/main", None)]
            )
        finally:
            first.close()
        second = store_opener(store_dir)
        try:
            assert second.list_refs() == {"HEAD": "ref: refs/heads/main", MAIN: edit.hash}
            assert second.get_commits(c.hash for c in [*line, edit]) == {c.hash: c for c in [*line, edit]}
            assert second.get_blobs([sha256_hex(loose)]) == {sha256_hex(loose): loose}
            assert [c.hash for c in second.ancestors(edit.hash)] == [edit.hash] + [c.hash for c in reversed(line)]
            assert second.commits_targeting([line[0].hash]) == [edit]
            assert check_store(second) == []
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
            assert len(store.commits_by_time()) == workers * per_worker
            assert check_store(store) == []
        finally:
            store.close()

    # -- properties -----------------------------------------------------------------------------

    def test_property_round_trips(self, store: Any) -> None:
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
            store.write(blobs={commit.content_hash: content}, commits=[commit])
            stored = store.get_commits([commit.hash])[commit.hash]
            assert stored == commit
            assert canonical_json(stored.metadata) == canonical_json(metadata)
            assert stored.computed_hash() == commit.hash

        round_trip()

    # -- the run ledger ---------------------------------------------------------------------------

    def test_token_counts_without_the_facet_are_refused(self, store: Any, chain: Chain) -> None:
        from cairn.storage import TokenCountStore

        if isinstance(store, TokenCountStore):
            pytest.skip("the backend caches token counts: the token_counts suite covers write(token_counts=...)")
        root = chain.append(None, "counted")
        with pytest.raises(MissingFacetError):
            store.write(**chain.batch(root), token_counts={WORDS: {root.content_hash: 1}})
        assert store.get_commits([root.hash]) == {}
