"""The documents facet's conformance suite: documents by key, filters, full-text search ranked by BM25."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import ValidationError
from cairn.model.embedding import Document, text_hash
from cairn.testing.storage._support import FacetSuite, StoreOpener, at

__all__ = ["DocumentsConformance", "make_document"]


def make_document(collection: str, id: str, text: str, n: int = 0, **kwargs: Any) -> Document:
    """A document created at ``at(n)``."""
    return Document(collection, id, text, at(n), **kwargs)


_WORDS = ["apple", "banana", "cherry", "delta", "echo", "fig", "grape", "hotel"]


class DocumentsConformance(FacetSuite):
    """The ``documents`` facet's contract as tests."""

    facet = "documents"

    def test_round_trip_and_replace_by_key(self, store: Any) -> None:
        one = make_document("notes", "a", "the first note ✓", 1, metadata={"source": "test"})
        two = make_document("notes", "b", "the second note", 2)
        elsewhere = make_document("@context", "a", "a context item", 3, branch="main")
        store.put_documents([one, two, elsewhere])
        assert store.get_documents("notes", ["a", "b", "zz"]) == {"a": one, "b": two}
        assert store.get_documents("@context", ["a"]) == {"a": elsewhere}
        replaced = make_document("notes", "a", "the first note, edited", 4)
        store.put_documents([replaced])
        assert store.get_documents("notes", ["a"]) == {"a": replaced}
        assert store.collections() == {"@context": 1, "notes": 2}

    def test_duplicate_keys_in_one_call_store_nothing(self, store: Any) -> None:
        with pytest.raises(ValidationError):
            store.put_documents([make_document("n", "a", "x"), make_document("n", "a", "y")])
        assert store.collections() == {}

    def test_documents_newest_first_with_filters(self, store: Any) -> None:
        docs = [
            make_document("notes", "old", "old note", 1),
            make_document("@context", "c1", "context on main", 2, branch="main"),
            make_document("@context", "c2", "context on side", 3, branch="side"),
            make_document("notes", "new", "new note", 4),
        ]
        store.put_documents(docs)
        assert [d.id for d in store.documents()] == ["new", "c2", "c1", "old"]
        assert [d.id for d in store.documents(["notes"])] == ["new", "old"]
        assert [d.id for d in store.documents(branch="main")] == ["c1"]
        assert [d.id for d in store.documents(since=at(2))] == ["new", "c2", "c1"]
        assert [d.id for d in store.documents(limit=2)] == ["new", "c2"]
        assert store.text_hashes(["@context"]) == {text_hash("context on main"), text_hash("context on side")}
        assert store.text_hashes(["@context"], branch="side") == {text_hash("context on side")}

    def test_documents_by_hash_finds_every_holder(self, store: Any) -> None:
        store.put_documents(
            [
                make_document("a", "1", "shared text", 1),
                make_document("b", "2", "shared text", 2),
                make_document("b", "3", "other text", 3),
            ]
        )
        found = store.documents_by_hash([text_hash("shared text")])
        assert [(d.collection, d.id) for d in found] == [("b", "2"), ("a", "1")]
        assert [d.id for d in store.documents_by_hash([text_hash("shared text")], ["a"])] == ["1"]
        assert store.documents_by_hash([text_hash("nothing")]) == []
        assert store.texts([text_hash("shared text"), text_hash("other text"), text_hash("no")]) == {
            text_hash("shared text"): "shared text",
            text_hash("other text"): "other text",
        }
        assert store.texts([]) == {}

    def test_delete(self, store: Any) -> None:
        store.put_documents([make_document("n", str(i), f"text {i}", i) for i in range(5)])
        store.put_documents([make_document("m", "0", "kept", 0)])
        assert store.delete_documents("n", ["0", "1", "missing"]) == 2
        assert store.collections() == {"m": 1, "n": 3}
        assert store.delete_documents("n") == 3
        assert store.collections() == {"m": 1}
        assert store.search_text("text", k=10) == []

    def test_search_text_ranks_by_bm25(self, store: Any) -> None:
        store.put_documents(
            [
                make_document("n", "both", "the quick brown fox jumps", 1),
                make_document("n", "fox", "a fox and some other words here today", 2),
                make_document("n", "none", "nothing relevant at all", 3),
                make_document("n", "quick", "quick thinking and many other long words in this one", 4),
            ]
        )
        hits = store.search_text("Quick FOX!", k=10)
        ids = [d.id for d, _ in hits]
        assert ids[0] == "both"
        assert set(ids) == {"both", "fox", "quick"}
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
        assert [d.id for d, _ in store.search_text("fox quick", k=1)] == ["both"]

    def test_search_text_filters(self, store: Any) -> None:
        store.put_documents(
            [
                make_document("@context", "m", "deploy the service", 1, branch="main"),
                make_document("@context", "s", "deploy the database", 2, branch="side"),
                make_document("notes", "n", "deploy notes", 3),
            ]
        )
        assert {d.id for d, _ in store.search_text("deploy", k=10, collections=["@context"])} == {"m", "s"}
        assert [d.id for d, _ in store.search_text("deploy", k=10, branch="side")] == ["s"]
        assert {d.id for d, _ in store.search_text("deploy", k=10, since=at(2))} == {"s", "n"}

    def test_search_text_is_not_a_query_language(self, store: Any) -> None:
        store.put_documents([make_document("n", "a", 'he said "NOT" AND OR near(x) * -minus', 1)])
        for query in ['"NOT"', "AND OR", "near(x)", "* -minus", "col:umn ^ ( )"]:
            store.search_text(query, k=5)  # operators of the backend's text index are words here
        assert [d.id for d, _ in store.search_text("minus AND", k=5)] == ["a"]

    @pytest.mark.parametrize("query", ["", "   ", "!!! ???"])
    def test_a_query_without_words_is_refused(self, store: Any, query: str) -> None:
        with pytest.raises(ValidationError):
            store.search_text(query, k=5)

    @pytest.mark.parametrize("k", [0, -1, 10**9])
    def test_k_out_of_range_is_refused(self, store: Any, k: int) -> None:
        with pytest.raises(ValidationError):
            store.search_text("word", k=k)

    def test_every_hit_holds_a_query_word(self, store: Any) -> None:
        counter = iter(range(10**9))

        @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
        @given(
            texts=st.lists(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=6), min_size=1, max_size=8),
            query=st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3),
        )
        def check(texts: list[list[str]], query: list[str]) -> None:
            collection = f"p{next(counter)}"
            store.put_documents([make_document(collection, str(i), " ".join(t), i) for i, t in enumerate(texts)])
            hits = store.search_text(" ".join(query), k=50, collections=[collection])
            expected = {str(i) for i, t in enumerate(texts) if set(t) & set(query)}
            assert {d.id for d, _ in hits} == expected

        check()

    def test_documents_survive_reopening(self, store_opener: StoreOpener, store_dir: Path) -> None:
        self._needs_persistence()
        doc = make_document("n", "a", "persisted words", 1)
        with store_opener(store_dir) as store:
            store.put_documents([doc])
        with store_opener(store_dir) as store:
            assert store.get_documents("n", ["a"]) == {"a": doc}
            assert [d for d, _ in store.search_text("persisted", k=3)] == [doc]
