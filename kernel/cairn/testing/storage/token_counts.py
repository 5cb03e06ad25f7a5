"""The token-count facet's conformance suite: the cache per tokenizer and content hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn.errors import ConflictError, IntegrityError
from cairn.model import sha256_hex
from cairn.storage import RefUpdate
from cairn.testing.storage._support import (
    MAIN,
    Chain,
    FacetSuite,
    StoreOpener,
)


class TokenCountsConformance(FacetSuite):
    """The ``token_counts`` facet's contract as tests: counts per tokenizer, cached in the write's transaction."""

    facet = "token_counts"

    def test_token_counts_cache_per_tokenizer(self, store: Any) -> None:
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

    def test_write_caches_token_counts_in_the_same_transaction(self, store: Any, chain: Chain) -> None:
        root = chain.append(None, "three words here")
        store.write(
            **chain.batch(root),
            refs=[RefUpdate(MAIN, root.hash, None)],
            token_counts={"approx": {root.content_hash: 3}, "tiktoken:o200k_base": {root.content_hash: 4}},
        )
        assert store.get_token_counts("approx", [root.content_hash]) == {root.content_hash: 3}
        assert store.get_token_counts("tiktoken:o200k_base", [root.content_hash]) == {root.content_hash: 4}
        store.write(token_counts={"approx": {root.content_hash: 5}})
        assert store.get_token_counts("approx", [root.content_hash]) == {root.content_hash: 5}
        lost = chain.append(root, "never written")
        child = chain.append(lost, "child of a missing parent")
        with pytest.raises(IntegrityError):
            store.write(**chain.batch(child), token_counts={"approx": {child.content_hash: 9}})
        assert store.get_token_counts("approx", [child.content_hash]) == {}

    # -- refs ---------------------------------------------------------------------------------

    def test_a_failed_write_caches_no_counts(self, store: Any, chain: Chain) -> None:
        root = chain.append(None, "root")
        store.write(**chain.batch(root), refs=[RefUpdate(MAIN, root.hash, None)])
        ours = chain.append(root, "ours")
        stale = sha256_hex(b"what we thought main was")
        with pytest.raises(ConflictError):
            store.write(
                **chain.batch(ours),
                refs=[RefUpdate(MAIN, ours.hash, stale)],
                token_counts={"approx": {ours.content_hash: 1}},
            )
        assert store.get_token_counts("approx", [ours.content_hash]) == {}

    def test_counts_survive_reopen(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        digest = sha256_hex(b"counted")
        first = store_opener(store_dir)
        try:
            first.put_token_counts("approx", {digest: 5})
        finally:
            first.close()
        second = store_opener(store_dir)
        try:
            assert second.get_token_counts("approx", [digest]) == {digest: 5}
        finally:
            second.close()
