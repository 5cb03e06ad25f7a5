"""Embeddings over real HTTP: order by index, batches, dimensions, base64, and malformed answers."""

from __future__ import annotations

import base64
import struct

import attrs
import pytest
from cairn_openai.config import EmbeddingsConfig
from cairn_openai.embeddings import OpenAIEmbeddings

from cairn.providers import EmbeddingRequest, ProviderError, Usage
from cairn.testing.fake_openai import EmbeddingReply, FakeOpenAI, fake_vector

TEXTS = ["first text", "second", "third one here"]


def test_vectors_are_put_back_in_input_order(server: FakeOpenAI, embedder: OpenAIEmbeddings) -> None:
    server.script(EmbeddingReply(shuffle=True), endpoint="embeddings")
    response = embedder.embed(EmbeddingRequest(TEXTS, "text-embedding-3-small"))
    assert response.vectors == [pytest.approx(fake_vector(t, 8)) for t in TEXTS]
    assert response.usage == Usage(6)
    body = server.calls("embeddings")[0].json
    assert body == {"model": "text-embedding-3-small", "input": TEXTS, "encoding_format": "float", "dimensions": 8}


def test_the_kernel_splits_batches_and_prices_them(
    server: FakeOpenAI, embeddings_config: EmbeddingsConfig, kernel
) -> None:
    provider = OpenAIEmbeddings(attrs.evolve(embeddings_config, max_batch=2))
    response = kernel.embedder(provider).embed(TEXTS + ["four", "five"])
    assert [len(c.json["input"]) for c in server.calls("embeddings")] == [2, 2, 1]
    assert len(response.vectors) == 5 and response.dimensions == 8
    assert response.cost == pytest.approx(8 * 0.02 / 1e6)
    provider.close()


def test_base64_vectors_are_decoded(server: FakeOpenAI, embedder: OpenAIEmbeddings) -> None:
    raw = [base64.b64encode(struct.pack("<8f", *fake_vector(t, 8))).decode() for t in TEXTS]
    server.script(EmbeddingReply(vectors=raw), endpoint="embeddings")
    response = embedder.embed(EmbeddingRequest(TEXTS, "text-embedding-3-small"))
    assert response.vectors[1] == pytest.approx(fake_vector("second", 8), abs=1e-6)


def test_a_wrong_size_is_caught_by_the_kernel(server: FakeOpenAI, embedder: OpenAIEmbeddings, kernel) -> None:
    server.script(EmbeddingReply(dimensions=4), endpoint="embeddings")
    with pytest.raises(ProviderError, match="4 dimensions for text 0, expected 8"):
        kernel.embedder(embedder).embed(TEXTS)


@pytest.mark.parametrize(
    "vectors",
    [
        [[0.1] * 8, [0.2] * 8],  # one missing
        [[0.1] * 8] * 4,  # one too many
    ],
)
def test_missing_or_extra_vectors_are_errors(server: FakeOpenAI, embedder: OpenAIEmbeddings, vectors) -> None:
    server.script(EmbeddingReply(vectors=vectors), endpoint="embeddings")
    with pytest.raises(ProviderError) as info:
        embedder.embed(EmbeddingRequest(TEXTS, "text-embedding-3-small"))
    assert info.value.kind == "provider_error" and not info.value.retryable


def test_capabilities_for_known_and_local_models(embeddings_config: EmbeddingsConfig) -> None:
    provider = OpenAIEmbeddings(attrs.evolve(embeddings_config, dimensions=None, max_batch=64))
    assert attrs.astuple(provider.capabilities("text-embedding-3-large")) == (3072, 64, 8191)
    assert attrs.astuple(provider.capabilities("nomic-embed-text")) == (None, 64, None)
    provider.close()
    shortened = OpenAIEmbeddings(attrs.evolve(embeddings_config, dimensions=256))
    assert shortened.capabilities("text-embedding-3-small").dimensions == 256
    shortened.close()
    ada = OpenAIEmbeddings(attrs.evolve(embeddings_config, model="text-embedding-ada-002", dimensions=256))
    assert ada.readiness().kind == "misconfigured"
    ada.close()


def test_the_kernel_refuses_a_text_over_the_token_limit_locally(
    server: FakeOpenAI, embedder: OpenAIEmbeddings, kernel
) -> None:
    with pytest.raises(ProviderError) as info:
        kernel.embedder(embedder).embed(["word " * 9000])
    assert info.value.kind == "context_window_exceeded" and server.calls("embeddings") == []
