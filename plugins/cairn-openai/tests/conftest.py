"""Shared fixtures: a fake OpenAI server that wants a canary key, providers pointed at it, and no network."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cairn_openai.chat import OpenAIChat
from cairn_openai.config import ChatConfig, EmbeddingsConfig
from cairn_openai.embeddings import OpenAIEmbeddings
from openai_testkit import KEY, KEY_ENV, Kernel

from cairn.testing.fake_openai import FakeOpenAI


@pytest.fixture(autouse=True)
def _no_network(loopback_only: None) -> None:
    """Every test here runs with cairn.testing's loopback_only guard."""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeOpenAI(api_key=KEY, model="gpt-4o-mini") as fake:
        yield fake


@pytest.fixture
def chat_config(server: FakeOpenAI) -> ChatConfig:
    return ChatConfig(base_url=server.url, api_key_env=KEY_ENV, model="gpt-4o-mini", read_timeout_s=2.0)


@pytest.fixture
def chat(chat_config: ChatConfig) -> Iterator[OpenAIChat]:
    provider = OpenAIChat(chat_config)
    yield provider
    provider.close()


@pytest.fixture
def embeddings_config(server: FakeOpenAI) -> EmbeddingsConfig:
    return EmbeddingsConfig(
        base_url=server.url, api_key_env=KEY_ENV, model="text-embedding-3-small", dimensions=8, read_timeout_s=2.0
    )


@pytest.fixture
def embedder(embeddings_config: EmbeddingsConfig) -> Iterator[OpenAIEmbeddings]:
    provider = OpenAIEmbeddings(embeddings_config)
    yield provider
    provider.close()


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


@pytest.fixture
def make_kernel() -> Callable[..., Kernel]:
    return Kernel
