"""The annotations facet's conformance suite: append-only priority records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn.errors import IntegrityError
from cairn.model import Annotation, Priority, sha256_hex
from cairn.testing.storage._support import (
    Chain,
    FacetSuite,
    StoreOpener,
    at,
)


class AnnotationsConformance(FacetSuite):
    """The ``annotations`` facet's contract as tests: latest as of a time, history, ties, idempotence, stored targets."""

    facet = "annotations"

    def test_annotations_latest_history_and_priority(self, store: Any, chain: Chain) -> None:
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

        def latest(target: str, as_of: str | None = None) -> Annotation | None:
            found: Annotation | None = store.latest_annotations([target], as_of=as_of).get(target)
            return found

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

    def test_annotation_ties_go_to_the_one_added_last(self, store: Any, chain: Chain) -> None:
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

    def test_annotations_are_idempotent_and_need_stored_targets(self, store: Any, chain: Chain) -> None:
        one, two = chain.line(2)
        store.write(**chain.batch(one))
        note = Annotation(one.hash, Priority.PINNED, "once", at(10))
        store.add_annotations([note])
        store.add_annotations([note, note])
        assert store.annotation_history(one.hash) == [note]
        valid = Annotation(one.hash, Priority.SKIP, "would be fine", at(20))
        with pytest.raises(IntegrityError) as info:
            store.add_annotations([valid, Annotation(two.hash, Priority.SKIP, "two is not stored", at(20))])
        assert two.short in str(info.value)
        assert store.annotation_history(one.hash) == [note], "a refused batch stored some of its annotations"
        assert store.annotation_history(two.hash) == []
        store.add_annotations([])

    # -- token counts ---------------------------------------------------------------------------

    def test_annotations_survive_reopen(self, store_opener: StoreOpener, store_dir: Path, chain: Chain) -> None:
        self._needs_persistence()
        one, two = chain.line(2)
        note = Annotation(two.hash, Priority.PINNED, "pinned", at(7))
        first = store_opener(store_dir)
        try:
            first.write(**chain.batch(one, two))
            first.add_annotations([note])
        finally:
            first.close()
        second = store_opener(store_dir)
        try:
            assert second.latest_annotations([two.hash]) == {two.hash: note}
            assert second.annotated(Priority.PINNED) == {two.hash: note}
        finally:
            second.close()
