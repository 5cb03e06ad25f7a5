"""One HTTP connection to an OpenAI-compatible server: keys, headers, and transport errors in the taxonomy.

Imported by the factories only: it imports httpx.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from cairn.providers import (
    ProviderError,
    ProviderMisconfiguredError,
    ProviderTimeoutError,
    UpstreamError,
    redact_text,
)
from cairn_openai.config import OPENAI_URL, ConnectionConfig
from cairn_openai.wire import error_from_response

__all__ = ["Connection"]


class Connection:
    """An httpx client for ``config.base_url`` that reads the key from the environment on every request."""

    def __init__(self, config: ConnectionConfig, *, provider: str, section: str) -> None:
        self.config = config
        self.provider = provider
        self.section = section
        timeout = httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s)
        self.client = httpx.Client(
            base_url=config.base_url.rstrip("/") + "/", timeout=timeout, headers={"User-Agent": "cairn-openai/0.1"}
        )
        self.where = redact_text(config.base_url)  # a URL with user:password@ must not be shown

    @property
    def is_openai(self) -> bool:
        return urlsplit(self.config.base_url).netloc == urlsplit(OPENAI_URL).netloc

    def key(self) -> str | None:
        name = self.config.api_key_env
        return os.environ.get(name) or None if name else None

    def secrets(self) -> list[str]:
        key = self.key()
        return [key] if key else []

    def readiness(self) -> ProviderError | None:
        name = self.config.api_key_env
        if name and not os.environ.get(name):
            return ProviderMisconfiguredError(
                f"the API key variable {name} is not set",
                hint=f'export {name}=<your key>, or set api_key_env = "" in [{self.section}.{self.provider}] '
                "for a server that needs no key",
                retryable=False,
                provider=self.provider,
            )
        return None

    def headers(self) -> dict[str, str]:
        problem = self.readiness()
        if problem is not None:
            raise problem
        headers = {}
        key = self.key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if self.config.organization:
            headers["OpenAI-Organization"] = self.config.organization
        return headers

    def post(self, path: str, body: dict[str, Any], *, model: str, bodies: Iterable[str]) -> tuple[Any, httpx.Headers]:
        """POST JSON and return the parsed JSON answer and its headers; every failure is a taxonomy error."""
        headers = self.headers()
        try:
            response = self.client.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc, model) from None
        if response.status_code != 200:
            raise error_from_response(
                response.status_code,
                response.headers,
                response.content,
                provider=self.provider,
                model=model,
                secrets=self.secrets(),
                bodies=bodies,
            )
        try:
            return response.json(), response.headers
        except (ValueError, json.JSONDecodeError):
            raise UpstreamError(
                f"{self.provider} answered HTTP 200 with a body that is not JSON ({len(response.content)} bytes)",
                hint=f"check that {self.where} is an OpenAI-compatible API",
                retryable=True,
                provider=self.provider,
                model=model,
                request_id=response.headers.get("x-request-id"),
            ) from None

    def transport_error(self, exc: httpx.HTTPError, model: str | None) -> ProviderError:
        """A taxonomy error for what went wrong below HTTP (never the exception's own text)."""
        facts: dict[str, Any] = {"provider": self.provider, "model": model}
        if isinstance(exc, httpx.TimeoutException):
            which = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
            limit = self.config.connect_timeout_s if which == "connect" else self.config.read_timeout_s
            return ProviderTimeoutError(
                f"{self.provider}: no {'connection' if which == 'connect' else 'answer'} from {self.where} "
                f"within {limit:g} s",
                hint=f"raise {which}_timeout_s in [{self.section}.{self.provider}], or check the server",
                retryable=True,
                **facts,
            )
        if isinstance(exc, httpx.ConnectError):
            return UpstreamError(
                f"{self.provider}: cannot connect to {self.where}",
                hint=f"check base_url in [{self.section}.{self.provider}] and that the server is running",
                retryable=True,
                **facts,
            )
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            return UpstreamError(
                f"{self.provider}: the connection to {self.where} broke off mid-response", retryable=True, **facts
            )
        if isinstance(exc, httpx.UnsupportedProtocol):
            return ProviderMisconfiguredError(
                f"{self.provider}: {self.where} is not an http(s) URL", retryable=False, **facts
            )
        return UpstreamError(f"{self.provider}: {type(exc).__name__} talking to {self.where}", retryable=True, **facts)

    def close(self) -> None:
        self.client.close()
