"""The nonces facet's conformance suite: claims by compare-and-swap insert, results, lapsing, racing claims."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn.errors import ConflictError
from cairn.model.governance import NonceRecord
from cairn.testing.storage._support import FacetSuite, StoreOpener, at, run_workers

__all__ = ["NoncesConformance", "make_claim"]


def make_claim(key: str, owner: str, n: int, *, lease: int = 60) -> NonceRecord:
    """A pending claim of ``key`` by ``owner`` at ``at(n)``, lapsing ``lease`` seconds later."""
    return NonceRecord(key, owner, at(n), at(n + lease))


def _claim_worker(opener: StoreOpener, directory: str, worker: int, barrier: Any, results: Any) -> None:
    won = False
    try:
        store: Any = opener(Path(directory))
        try:
            barrier.wait(timeout=120)
            if store.claim_nonce(make_claim("deploy ✓ #1", f"w{worker}", 1)) is None:
                won = True
                store.complete_nonce("deploy ✓ #1", f"w{worker}", {"by": worker}, done_at=at(2), expires_at=at(10_000))
        finally:
            store.close()
        results.put((worker, won, None))
    except BaseException as exc:  # report, never hang the parent
        barrier.abort()
        results.put((worker, won, f"{type(exc).__name__}: {exc}"))


class NoncesConformance(FacetSuite):
    """The ``nonces`` facet's contract as tests: one claimant per live key, results recorded once,
    claims released, lapsed records replaced and pruned, concurrent claimants."""

    facet = "nonces"

    def test_first_claim_wins_and_others_see_it(self, store: Any) -> None:
        assert store.claim_nonce(make_claim("k/1 ✓", "a", 1)) is None
        held = store.claim_nonce(make_claim("k/1 ✓", "b", 2))
        assert held == make_claim("k/1 ✓", "a", 1)
        assert store.get_nonce("k/1 ✓") == held
        assert store.get_nonce("other") is None

    def test_complete_records_the_result_once(self, store: Any) -> None:
        store.claim_nonce(make_claim("k", "a", 1))
        with pytest.raises(ConflictError):
            store.complete_nonce("k", "b", {"x": 1}, done_at=at(2), expires_at=at(100))
        done = store.complete_nonce("k", "a", {"x": [1, "two"]}, done_at=at(2), expires_at=at(100))
        assert (done.state, done.result, done.done_at, done.expires_at) == ("done", {"x": [1, "two"]}, at(2), at(100))
        assert store.get_nonce("k") == done
        with pytest.raises(ConflictError):
            store.complete_nonce("k", "a", {"x": 2}, done_at=at(3), expires_at=at(100))
        assert store.claim_nonce(make_claim("k", "c", 50)) == done
        with pytest.raises(ConflictError):
            store.complete_nonce("missing", "a", None, done_at=at(3), expires_at=at(100))

    def test_release_gives_the_key_back(self, store: Any) -> None:
        store.claim_nonce(make_claim("k", "a", 1))
        assert store.release_nonce("k", "b") is False
        assert store.release_nonce("k", "a") is True
        assert store.get_nonce("k") is None
        assert store.claim_nonce(make_claim("k", "b", 2)) is None

    def test_a_released_result_is_never_forgotten(self, store: Any) -> None:
        store.claim_nonce(make_claim("k", "a", 1))
        store.complete_nonce("k", "a", 7, done_at=at(2), expires_at=at(100))
        assert store.release_nonce("k", "a") is False
        assert store.get_nonce("k").result == 7

    def test_lapsed_records_are_replaced_and_pruned(self, store: Any) -> None:
        store.claim_nonce(make_claim("dead", "a", 1, lease=10))
        assert store.claim_nonce(make_claim("dead", "b", 11)) is None  # the claim lapsed at 11
        assert store.get_nonce("dead").owner == "b"
        store.claim_nonce(make_claim("old", "a", 1, lease=5))
        assert store.prune_nonces(at(7)) == 1
        assert store.get_nonce("old") is None
        assert store.get_nonce("dead") is not None

    def test_nonce_records_lists_every_record_live_or_lapsed_in_key_order(self, store: Any) -> None:
        assert store.nonce_records() == []
        store.claim_nonce(make_claim("z ✓", "a", 1, lease=5))  # lapses at 6
        store.claim_nonce(make_claim("B", "b", 2))
        store.claim_nonce(make_claim("a", "c", 3))
        done = store.complete_nonce("a", "c", {"n": [1]}, done_at=at(4), expires_at=at(100))
        assert store.nonce_records() == [make_claim("B", "b", 2), done, make_claim("z ✓", "a", 1, lease=5)]
        store.prune_nonces(at(7))
        assert [r.key for r in store.nonce_records()] == ["B", "a"]

    def test_reopened_store_keeps_records(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        with store_opener(store_dir) as store:
            store.claim_nonce(make_claim("k", "a", 1))
            store.complete_nonce("k", "a", {"ok": True}, done_at=at(2), expires_at=at(100))
        with store_opener(store_dir) as store:
            assert store.get_nonce("k").result == {"ok": True}

    def test_four_processes_claiming_one_key_act_once(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        outcomes = run_workers(
            _claim_worker, lambda i, barrier, results: (store_opener, str(store_dir), i, barrier, results), 4
        )
        winners = [w for w, won, _ in outcomes if won]
        assert len(winners) == 1
        with store_opener(store_dir) as store:
            assert store.get_nonce("deploy ✓ #1").result == {"by": winners[0]}
