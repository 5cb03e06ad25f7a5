"""cairn-openai runs cairn's provider conformance suite against the fake server, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from cairn_openai.chat import OpenAIChat
from cairn_openai.config import ChatConfig, EmbeddingsConfig
from cairn_openai.embeddings import OpenAIEmbeddings
from openai_testkit import KEY

from cairn.testing.fake_openai import FakeOpenAI, Fault, Reply, Stall
from cairn.testing.provider_suite import CANARY_PROMPT, EmbeddingProviderConformance, LLMProviderConformance

# What the fake server answers to make the next call fail with each kind; messages echo the prompt and
# the key, as careless gateways do, so the suite's leak checks have something to catch.
ECHO = f"request with key {KEY} and prompt '{CANARY_PROMPT}'"

FAULTS = {
    "misconfigured": Fault.openai(404, f"The model does not exist; {ECHO}", code="model_not_found"),
    "auth_failed": Fault.openai(401, f"Incorrect API key provided: {KEY}", code="invalid_api_key"),
    "invalid_request": Fault.openai(400, f"Invalid value for temperature; {ECHO}"),
    "context_window_exceeded": Fault.openai(
        400,
        f"This model's maximum context length is 8 tokens; {ECHO}",
        code="context_length_exceeded",
        param="messages",
    ),
    "content_filtered": Fault.openai(400, f"Flagged by the content filter: {ECHO}", code="content_filter"),
    "rate_limited": Fault.openai(
        429, f"Rate limit reached; {ECHO}", type="requests", code="rate_limit_exceeded", headers={"Retry-After": "0"}
    ),
    "provider_error": Fault.openai(500, f"The server had an error; {ECHO}", type="server_error"),
}


def provoker(server: FakeOpenAI, endpoint: str) -> Callable[[str], bool]:
    def provoke(kind: str) -> bool:
        if kind == "timeout":
            server.script(Stall(3.0, Reply()), endpoint=endpoint)
            return True
        if kind not in FAULTS:
            return False
        server.script(FAULTS[kind], endpoint=endpoint)
        return True

    return provoke


class TestOpenAIChatConformance(LLMProviderConformance):
    @pytest.fixture
    def llm_provider(self, server: FakeOpenAI, chat_config: ChatConfig):
        provider = OpenAIChat(attrs.evolve(chat_config, read_timeout_s=0.5))
        yield provider
        provider.close()

    @pytest.fixture
    def provoke(self, server: FakeOpenAI) -> Callable[[str], bool]:
        return provoker(server, "chat")

    @pytest.fixture
    def backend_requests(self, server: FakeOpenAI) -> Callable[[], int]:
        return lambda: len(server.calls("chat"))

    @pytest.fixture
    def secret(self) -> str:
        return KEY


class TestOpenAIEmbeddingsConformance(EmbeddingProviderConformance):
    @pytest.fixture
    def embedding_provider(self, server: FakeOpenAI, embeddings_config: EmbeddingsConfig):
        provider = OpenAIEmbeddings(attrs.evolve(embeddings_config, read_timeout_s=0.5))
        yield provider
        provider.close()

    @pytest.fixture
    def provoke(self, server: FakeOpenAI) -> Callable[[str], bool]:
        return provoker(server, "embeddings")

    @pytest.fixture
    def backend_requests(self, server: FakeOpenAI) -> Callable[[], int]:
        return lambda: len(server.calls("embeddings"))

    @pytest.fixture
    def secret(self) -> str:
        return KEY
