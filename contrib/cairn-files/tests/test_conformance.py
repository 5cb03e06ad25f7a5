"""FileStore runs the suites of exactly the facets it declares, unchanged."""

from __future__ import annotations

import pytest
from cairn_files.store import FileStore, open_in_directory

from cairn.storage import facets_of
from cairn.testing.sessions_suite import SessionsOverStore
from cairn.testing.storage import AnnotationsConformance, ObjectsConformance, RefsConformance


class TestFileStore(ObjectsConformance, RefsConformance, AnnotationsConformance):
    @pytest.fixture
    def store_opener(self):  # type: ignore[no-untyped-def]
        return open_in_directory


def test_declares_objects_refs_and_annotations_only() -> None:
    assert facets_of(FileStore) == {"objects", "refs", "annotations"}


class TestSessionsOverThisStore(SessionsOverStore):
    """Sessions and checkpoints are commits and refs: this store keeps them with no code of its own."""

    @pytest.fixture
    def store_opener(self):  # type: ignore[no-untyped-def]
        return open_in_directory
