"""The sync facet's conformance suite: push and pull between two stores through one remote."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cairn.storage import RefUpdate, RunStore
from cairn.testing.storage._support import MAIN, Chain, FacetSuite
from cairn.testing.storage.ledger import make_events, make_run

__all__ = ["SyncConformance"]


def _reachable(store: Any) -> set[str]:
    found: set[str] = set()
    for value in store.list_refs("refs/").values():
        found.update(c.hash for c in store.ancestors(value))
    return found


def _append(store: Any, chain: Chain, text: str) -> str:
    """Append ``text`` to ``store``'s main branch, wherever a sync left it; the new commit's hash."""
    head = store.get_ref(MAIN)
    # The new commit's skip pointer names an ancestor: ``chain`` must know them all, not just the parent.
    chain.commits.update({c.hash: c for c in store.ancestors(head)} if head else {})
    parent = chain.commits[head] if head else None
    commit = chain.append(parent, text)
    store.write(**chain.batch(commit), refs=[RefUpdate(MAIN, commit.hash, head)])
    return commit.hash


class SyncConformance(FacetSuite):
    """The ``sync`` facet's contract as tests: nothing is lost, whoever pushes first.

    Besides ``store_opener``, a backend provides ``sync_pair``: two stores
    (two clones, two machines) that share one remote, opened fresh for each
    test, with nothing pushed yet.
    """

    facet = "sync"

    @pytest.fixture
    def sync_pair(self) -> Iterator[tuple[Any, Any]]:
        raise NotImplementedError(
            f"{type(self).__name__} must override the sync_pair fixture: yield two stores sharing one remote"
        )

    def test_without_a_remote_push_and_pull_say_so(self, store: Any) -> None:
        pushed, pulled = store.push(), store.pull()
        assert (pushed.pushed, pulled.fetched) == (0, 0)
        assert pushed.message and pulled.message

    def test_what_one_pushes_the_other_pulls(self, sync_pair: tuple[Any, Any]) -> None:
        a, b = sync_pair
        chain = Chain()
        made = [_append(a, chain, f"from a {i}") for i in range(3)]
        assert a.sync_status().ahead > 0
        assert a.push().pushed > 0
        assert a.sync_status().ahead == 0
        b.pull()
        assert set(made) <= _reachable(b)
        assert b.get_ref(MAIN) == made[-1]

    @pytest.mark.parametrize("first", ["a", "b"])
    def test_diverged_histories_merge_losing_nothing(self, sync_pair: tuple[Any, Any], first: str) -> None:
        a, b = sync_pair
        chains = {"a": Chain(), "b": Chain(1000)}
        made = {
            "a": [_append(a, chains["a"], f"a {i}") for i in range(3)],
            "b": [_append(b, chains["b"], f"b {i}") for i in range(3)],
        }
        one, two = (a, b) if first == "a" else (b, a)
        one.push()
        two.push()  # the remote moved on: merges first, loses nothing
        one.pull()
        every = set(made["a"]) | set(made["b"])
        for side in (a, b):
            assert every <= _reachable(side), "a commit made before the sync is not reachable after it"

    def test_runs_recorded_apart_are_all_kept(self, sync_pair: tuple[Any, Any]) -> None:
        a, b = sync_pair
        # Asked of the pair, not of `a`: narrowing `a` to RunStore would hide its sync methods from mypy.
        if not isinstance(sync_pair[0], RunStore):
            pytest.skip("the backend keeps no ledger")
        a.put_run(make_run("a-run", 1), make_events("a-run", 2))
        b.put_run(make_run("b-run", 2), make_events("b-run", 3))
        a.push()
        b.push()
        a.pull()
        for side in (a, b):
            assert {r.run_id for r in side.list_runs()} >= {"a-run", "b-run"}
            assert len(side.run_events("b-run")) == 3
