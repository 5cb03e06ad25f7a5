"""The refs facet's conformance suite: compare-and-swap, symbolic HEAD, listing."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.errors import ConflictError
from cairn.model import sha256_hex
from cairn.storage import RefUpdate
from cairn.testing.storage._support import (
    MAIN,
    Chain,
    FacetSuite,
)


class RefsConformance(FacetSuite):
    """The ``refs`` facet's contract as tests: compare-and-swap moves, all-or-nothing batches, literal prefixes."""

    facet = "refs"

    def test_compare_and_swap_semantics(self, store: Any, chain: Chain) -> None:
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

    def test_symbolic_ref_values_are_stored_as_given(self, store: Any) -> None:
        store.set_ref("HEAD", "ref: refs/heads/main", expected=None)
        assert store.get_ref("HEAD") == "ref: refs/heads/main"
        store.set_ref("HEAD", "ref: refs/heads/other", expected="ref: refs/heads/main")
        assert store.get_ref("HEAD") == "ref: refs/heads/other"

    def test_several_refs_in_one_write_are_all_or_nothing(self, store: Any, chain: Chain) -> None:
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

    def test_list_refs_by_literal_prefix_sorted(self, store: Any, chain: Chain) -> None:
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
