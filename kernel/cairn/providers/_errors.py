"""The error taxonomy: nine kinds of ``cairn.errors.ProviderError``, ``error_for`` and ``kind_of``.

The tree of kinds is drawn in the package docstring (``cairn.providers``).
"""

from __future__ import annotations

import re
from typing import Any

from cairn.errors import ProviderError
from cairn.providers._usage import Usage

__all__ = [
    "ERROR_KINDS",
    "AuthFailedError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "InvalidRequestError",
    "ProviderDisabledError",
    "ProviderMisconfiguredError",
    "ProviderTimeoutError",
    "RateLimitedError",
    "SpendCeilingError",
    "UpstreamError",
    "error_for",
    "kind_of",
]


_CODE = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")


class _TaxonomyError(ProviderError):
    """Shared constructor of the nine kinds; catch ``ProviderError`` or a kind, not this."""

    kind: str = "provider_error"
    default_retryable: bool = False
    #: Set (by ``_redact._own``) on errors the kernel wrote itself: they quote nothing, so are not redacted.
    _kernel_made: bool = False

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
        status: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        code: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.retryable = self.default_retryable if retryable is None else bool(retryable)
        self.retry_after_s = retry_after_s if retry_after_s is None or retry_after_s >= 0 else None
        self.status = status
        self.provider = provider
        self.model = model
        self.request_id = request_id
        # A provider's error code is a short identifier; anything longer might be echoed text.
        self.code = code if isinstance(code, str) and _CODE.match(code) else None
        self.usage = usage
        self.attempts = 1

    def __str__(self) -> str:
        text = f"[{self.kind}] {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def facts(self) -> dict[str, Any]:
        """What may be recorded about this error: its kind and metadata, never its message."""
        return {
            "kind": self.kind,
            "retryable": self.retryable,
            "retry_after_s": self.retry_after_s,
            "status": self.status,
            "code": self.code,
            "request_id": self.request_id,
            "attempts": self.attempts,
        }


class ProviderDisabledError(_TaxonomyError):
    """``disabled``: no real provider is configured (the ``noop`` default); the hint says how to enable one."""

    kind = "disabled"


class ProviderMisconfiguredError(_TaxonomyError):
    """``misconfigured``: the provider cannot work as configured (missing key, unknown model, wrong URL)."""

    kind = "misconfigured"


class AuthFailedError(_TaxonomyError):
    """``auth_failed``: the provider refused the credentials (HTTP 401, 403)."""

    kind = "auth_failed"


class InvalidRequestError(_TaxonomyError):
    """``invalid_request``: the request is malformed or asks for what the model cannot do."""

    kind = "invalid_request"


class ContextWindowExceededError(_TaxonomyError):
    """``context_window_exceeded``: the input (plus the output asked for) does not fit the model."""

    kind = "context_window_exceeded"


class ContentFilteredError(_TaxonomyError):
    """``content_filtered``: the provider's content filter refused the request or withheld the answer."""

    kind = "content_filtered"


class RateLimitedError(_TaxonomyError):
    """``rate_limited``: too many requests (retryable, often with ``retry_after_s``) or a spent quota (not)."""

    kind = "rate_limited"
    default_retryable = True


class SpendCeilingError(RateLimitedError):
    """A ``[providers]`` spend ceiling is reached: names the ceiling, its limit and the spend so far."""

    default_retryable = False

    def __init__(self, message: str, *, ceiling: str, limit: float, spent: float, **facts: Any) -> None:
        super().__init__(message, **facts)
        self.ceiling = ceiling
        self.limit = limit
        self.spent = spent


class ProviderTimeoutError(_TaxonomyError):
    """``timeout``: no (complete) answer in time."""

    kind = "timeout"
    default_retryable = True


class UpstreamError(_TaxonomyError):
    """``provider_error``: the provider failed on its side or answered something unusable."""

    kind = "provider_error"
    default_retryable = True


#: Every kind of the taxonomy and its error class.
ERROR_KINDS: dict[str, type[_TaxonomyError]] = {
    cls.kind: cls
    for cls in (
        ProviderDisabledError,
        ProviderMisconfiguredError,
        AuthFailedError,
        InvalidRequestError,
        ContextWindowExceededError,
        ContentFilteredError,
        RateLimitedError,
        ProviderTimeoutError,
        UpstreamError,
    )
}


def error_for(kind: str, message: str, **facts: Any) -> ProviderError:
    """Build the taxonomy error of ``kind`` (plugins map their provider's codes to kinds with it)."""
    try:
        cls = ERROR_KINDS[kind]
    except KeyError:
        raise ValueError(f"{kind!r} is not a provider error kind; one of {', '.join(ERROR_KINDS)}") from None
    return cls(message, **facts)


def kind_of(error: BaseException) -> str:
    """The taxonomy kind of any error a provider raised; anything outside the taxonomy is ``provider_error``."""
    return getattr(error, "kind", None) or "provider_error"


def _as_taxonomy(error: BaseException, provider: str, model: str) -> _TaxonomyError:
    """Bring any exception from a provider into the taxonomy (a plugin bug must not escape as a traceback)."""
    if isinstance(error, _TaxonomyError):
        if error.provider is None:
            error.provider = provider
        if error.model is None:
            error.model = model
        return error
    if isinstance(error, ProviderError):
        # A bare cairn.errors.ProviderError: keep its message, give it a kind.
        wrapped = UpstreamError(error.message, hint=error.hint, retryable=False, provider=provider, model=model)
    else:
        # Never str(error): an SDK's exception text may quote the request.
        wrapped = UpstreamError(
            f"the {provider} provider failed with {type(error).__name__}",
            hint="this is a bug in the provider plugin; report it with the error type",
            retryable=False,
            provider=provider,
            model=model,
        )
    wrapped.__cause__ = None
    return wrapped
