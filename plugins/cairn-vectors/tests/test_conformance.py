"""Both indexes run cairn's vector-index conformance suite unchanged."""

from __future__ import annotations

import pytest
from cairn_vectors.config import ExactConfig, HNSWConfig
from cairn_vectors.exact import ExactOpener

from cairn.testing.index_suite import VectorIndexConformance


class TestExactConformance(VectorIndexConformance):
    @pytest.fixture
    def index_opener(self) -> ExactOpener:
        # Small blocks, so the suite's few thousand rows cross block boundaries.
        return ExactOpener(ExactConfig(chunk_rows=1024))


class TestHNSWConformance(VectorIndexConformance):
    exact = False
    min_recall = 0.9

    @pytest.fixture
    def index_opener(self) -> object:
        pytest.importorskip("usearch", reason="the hnsw index needs the [hnsw] extra")
        from cairn_vectors.hnsw import HNSWOpener

        # A small exact_filter_below, so the suite's filters also take the graph path.
        return HNSWOpener(HNSWConfig(exact_filter_below=16))
