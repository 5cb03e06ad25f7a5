"""cairn-noop: the conformance suite, the message that says how to enable a provider, and no network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from cairn_noop.providers import NoopEmbeddings, NoopLLM

from cairn.config import load_config
from cairn.plugins import load_plugins
from cairn.providers import ProviderDisabledError, Providers
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore
from cairn.testing.provider_suite import EmbeddingProviderConformance, LLMProviderConformance


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """noop must never open a socket: any attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("cairn-noop tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


class TestNoopLLMConformance(LLMProviderConformance):
    disabled = True

    @pytest.fixture
    def llm_provider(self) -> NoopLLM:
        return NoopLLM()


class TestNoopEmbeddingsConformance(EmbeddingProviderConformance):
    disabled = True

    @pytest.fixture
    def embedding_provider(self) -> NoopEmbeddings:
        return NoopEmbeddings()


def test_noop_is_registered_for_both_kinds_and_is_the_default(cairn_env: Path) -> None:
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "noop"})
    assert "noop" in plugins.llm and "noop" in plugins.embeddings
    config = load_config(cairn_env, environ={})
    assert config.cairn.llm == "noop" and config.cairn.embeddings == "noop"
    assert plugins.check_config(config) == [] or all(
        p.key not in ("llm", "embeddings") for p in plugins.check_config(config)
    )


def test_the_disabled_error_says_which_plugin_line_and_key(cairn_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "noop"})
    config = load_config(cairn_env, environ={})
    with Providers(config, plugins, store=MemoryStore(), tokenizer=WordTokenizer()) as providers:
        with pytest.raises(ProviderDisabledError) as info:
            providers.llm().complete([{"role": "user", "content": "hi"}])
        error = info.value
        assert error.kind == "disabled" and not error.retryable
        assert "cairn-openai" in error.hint and 'llm = "openai"' in error.hint and "OPENAI_API_KEY" in error.hint
        assert str(error).startswith("[disabled] no LLM provider is configured")

        with pytest.raises(ProviderDisabledError) as info:
            providers.embeddings().embed(["hi"])
        assert "cairn-local" in info.value.hint and 'embeddings = "hashing"' in info.value.hint


def test_a_refused_call_is_recorded_as_disabled_and_free(cairn_env: Path) -> None:
    store = MemoryStore()
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "noop"})
    with Providers(load_config(cairn_env, environ={}), plugins, store=store, tokenizer=WordTokenizer()) as providers:
        with pytest.raises(ProviderDisabledError):
            providers.llm().complete([{"role": "user", "content": "hi"}])
    [record] = store.spend()
    assert (record.provider, record.model, record.outcome, record.cost) == ("noop", "noop", "disabled", 0.0)


@pytest.mark.parametrize("key", [None, "sk-test"])
def test_the_llm_hint_asks_only_for_what_is_missing(
    cairn_env: Path, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    import importlib.util

    if key is None:
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    else:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "noop"})
    with Providers(load_config(cairn_env, environ={}), plugins, store=MemoryStore(), tokenizer=WordTokenizer()) as p:
        with pytest.raises(ProviderDisabledError) as info:
            p.llm().complete([{"role": "user", "content": "hi"}])
    hint = info.value.hint or ""
    installed = importlib.util.find_spec("cairn_openai") is not None
    assert ("pip install cairn-openai" in hint) is not installed
    assert ("cairn-openai is installed" in hint) is installed
    assert ("export OPENAI_API_KEY" in hint) is (key is None)
    assert 'set llm = "openai" under [cairn]' in hint
