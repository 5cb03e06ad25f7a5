"""The kernel's configuration tables, typed: one frozen attrs class per table, unknown keys refused.

``[cairn]``, ``[context]``, ``[chat]``, ``[providers]``, ``[memory]``,
``[artifacts]``, ``[policy]`` and ``[telemetry]`` are structured into the classes here (``Config.settings``);
``KERNEL_SECTIONS`` lists them, ``BACKEND_SECTIONS`` names the section that
holds one table per backend of each registry kind. A validator's message
names the key and what it must be; ``cairn.config`` locates it in the file.
A new kernel table is a class here and an entry in ``KERNEL_SECTIONS``.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from cairn.errors import ValidationError

__all__ = [
    "AGENT_SECTIONS",
    "BACKEND_SECTIONS",
    "KERNEL_SECTIONS",
    "MAX_INLINE_BYTES",
    "ArtifactsSettings",
    "CairnSettings",
    "ChatSettings",
    "ContextSettings",
    "MemorySettings",
    "PolicySettings",
    "ProvidersSettings",
    "TelemetrySettings",
    "check_env_name",
]


#: Registry kind -> the config section that holds one table per backend of that kind.
BACKEND_SECTIONS: dict[str, str] = {
    "storage": "storage",
    "tokenizers": "tokenizer",
    "llm": "llm",
    "embeddings": "embeddings",
    "evaluators": "evaluators",
    "vector_indexes": "vector_index",
    # [artifacts] is also a kernel table: its values are ArtifactsSettings, its sub-tables the stores'.
    "artifact_stores": "artifacts",
    "executors": "exec",
}


#: Sections of one table per tool, skill and MCP server, typed and checked by ``cairn.config_agents``.
AGENT_SECTIONS = ("tools", "skills", "mcp")


def _not_blank(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


def check_env_name(value: object, *, empty_ok: bool = False) -> str | None:
    """The problem with ``value`` as the NAME of an environment variable, or None when it is one."""
    if not isinstance(value, str):
        return None  # the type check reports it
    if value == "" and empty_ok:
        return None
    if not _ENV_NAME.match(value):
        # Never echo the value: a key pasted here by mistake must not reach a terminal or a log.
        return "must name an environment variable (letters, digits and '_', not first a digit), not hold the key itself"
    return None


def _env_name(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    problem = check_env_name(value)
    if problem:
        raise ValueError(f"{attribute.name} {problem}")


def _env_name_or_empty(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    problem = check_env_name(value, empty_ok=True)
    if problem:
        raise ValueError(f"{attribute.name} {problem}")


def _branch_name(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    from cairn.model import validate_branch_name

    try:
        validate_branch_name(value)
    except ValidationError as exc:
        rules = f" ({exc.hint})" if exc.hint else ""
        raise ValueError(f"{attribute.name} must be a valid branch name{rules}, got {value!r:.60}") from None


@attrs.frozen
class CairnSettings:
    """The ``[cairn]`` table: which backends to use and which plugins to block."""

    storage: str = "sqlite"
    tokenizer: str = "approx"
    #: The LLM provider, by registered name; ``noop`` refuses every call (see docs/providers.md).
    llm: str = "noop"
    #: The embedding provider, by registered name; ``noop`` refuses every call.
    embeddings: str = "noop"
    data_dir: str = attrs.field(default=".cairn", validator=_not_blank)
    disabled_plugins: list[str] = attrs.field(factory=list)
    strict_plugins: bool = False


@attrs.frozen
class ContextSettings:
    """The ``[context]`` table: the default branch and the token budget of the effective context."""

    default_branch: str = attrs.field(default="main", validator=_branch_name)
    max_tokens: int | None = None
    budget_action: str = attrs.field(
        default="reject",
        validator=attrs.validators.in_(("reject", "warn")),
    )
    #: How many facts and episodes ``cairn materialize --recall`` adds (the most relevant first).
    recall_k: int = attrs.field(default=5, validator=[attrs.validators.ge(1), attrs.validators.le(100)])
    #: Compact automatically once the effective tokens pass this fraction of ``max_tokens`` (0 < x < 1); off when unset.
    compact_at: float | None = None
    #: How many of the newest items a compaction keeps as they are.
    compact_keep_last: int = attrs.field(default=8, validator=[attrs.validators.ge(0), attrs.validators.le(100_000)])

    def __attrs_post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive number of tokens, got {self.max_tokens}")
        if self.compact_at is not None:
            if isinstance(self.compact_at, bool) or not 0 < self.compact_at < 1:
                raise ValueError(f"compact_at must be a fraction between 0 and 1, got {self.compact_at}")
            if self.max_tokens is None:
                raise ValueError("compact_at is a fraction of max_tokens: set max_tokens too")


def _positive_number(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value}")


def _not_negative_number(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be 0 or more, got {value}")


@attrs.frozen
class ProvidersSettings:
    """The ``[providers]`` table: how the kernel calls every LLM and embedding provider.

    Retries, the deadline of one call and the spend ceilings live here because
    the kernel owns them; network timeouts, keys and prices belong to each
    provider's own table (``[llm.openai]``), since they differ per endpoint.
    Amounts are in the currency of the providers' price tables (USD for the
    first-party ones).
    """

    #: Attempts per call, the first included; 1 turns retries off.
    max_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    #: Upper bound of the first retry's randomized delay (full jitter); doubles per retry.
    backoff_initial_s: float = attrs.field(default=0.5, validator=_not_negative_number)
    #: Cap of the randomized delay between attempts.
    backoff_max_s: float = attrs.field(default=20.0, validator=_not_negative_number)
    #: A Retry-After longer than this is not waited for: the call fails at once.
    max_retry_after_s: float = attrs.field(default=60.0, validator=_not_negative_number)
    #: Wall-clock limit of one call across all its attempts and waits; none when unset.
    call_deadline_s: float | None = attrs.field(default=None, validator=_positive_number)
    #: Refuse calls once this much was spent today (UTC), in the price tables' currency.
    max_spend_per_day: float | None = attrs.field(default=None, validator=_positive_number)
    #: Refuse calls once this much was spent in the current run (a ledger run, or one command).
    max_spend_per_run: float | None = attrs.field(default=None, validator=_positive_number)


@attrs.frozen
class ChatSettings:
    """The ``[chat]`` table: where the encryption key comes from."""

    #: The NAME of the environment variable holding the key material (``cairn chat keygen`` makes a key).
    key_env: str = attrs.field(default="CAIRN_CHAT_KEY", validator=_env_name)


_INDEX_NAME = re.compile(r"\A[a-z][a-z0-9_]{0,63}\Z")


def _index_name(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not _INDEX_NAME.match(value):
        raise ValueError(
            f"{attribute.name} must name a vector index (lowercase letters, digits and '_'), got {value!r}"
        )


@attrs.frozen
class MemorySettings:
    """The ``[memory]`` table: how vectors are searched (the index's own settings: ``[vector_index.<name>]``)."""

    #: The vector index, by registered name: ``exact`` (brute force) or ``hnsw`` (approximate, cairn-vectors[hnsw]).
    index: str = attrs.field(default="exact", validator=_index_name)


#: The most a size routing threshold may be: inline artifacts live in the project store, read whole.
MAX_INLINE_BYTES = 16 * 1024 * 1024


@attrs.frozen
class ArtifactsSettings:
    """The ``[artifacts]`` table: which artifact store keeps files, and which are small enough to keep inline.

    Each store's own settings are a sub-table, ``[artifacts.<name>]``.
    """

    #: The artifact store, by registered name (``local`` comes with cairn-artifacts, ``s3`` with cairn-s3).
    store: str = "local"
    #: Artifacts up to this many bytes are kept inline in the project store (its artifact_meta
    #: facet); larger ones in the artifact store. 0 sends every artifact to the artifact store.
    inline_max_bytes: int = attrs.field(
        default=64 * 1024, validator=[attrs.validators.ge(0), attrs.validators.le(MAX_INLINE_BYTES)]
    )


_DECISIONS = ("allow", "deny", "needs-approval")


def _age(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not re.match(r"\A\s*\d{1,9}\s*[smhdw]\s*\Z", value):
        raise ValueError(f"{attribute.name} must be an age such as 90s, 30m, 1h, 7d or 2w, got {value!r}")


@attrs.frozen
class PolicySettings:
    """The ``[policy]`` table: the rules of the policy gate (``cairn.policy``), checked there, key by key.

    Each rule is a sub-table ``[policy.rules.<name>]``; docs/governance.md lists their keys.
    """

    #: Bumped whenever the rules change; every recorded decision names the version that made it.
    version: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: The decision when no rule matches: allow, deny or needs-approval.
    default: str = attrs.field(default="allow", validator=attrs.validators.in_(_DECISIONS))
    #: How long a pending approval waits for a person before it expires.
    approval_ttl: str = attrs.field(default="1h", validator=_age)
    #: How long an idempotency key keeps its recorded result.
    idempotency_ttl: str = attrs.field(default="7d", validator=_age)
    #: How long a claimed key stays claimed when its owner never finishes (a crash).
    claim_ttl: str = attrs.field(default="1h", validator=_age)
    rules: dict[str, dict[str, Any]] = attrs.field(factory=dict)


@attrs.frozen
class TelemetrySettings:
    """The ``[telemetry]`` table: where a telemetry plugin (cairn-otel) sends spans and metrics.

    The kernel keeps no telemetry dependency: it publishes events, and a plugin
    implementing ``cairn_observe`` turns them into spans and metrics.
    """

    #: "none" (nothing is exported), "otlp" (OTLP over HTTP to ``endpoint``) or "console" (stderr).
    exporter: str = attrs.field(default="none", validator=attrs.validators.in_(("none", "otlp", "console")))
    #: The OTLP/HTTP collector's base URL; /v1/traces and /v1/metrics are appended.
    endpoint: str = "http://127.0.0.1:4318"
    #: The NAME of a variable holding extra OTLP headers, "key=value,key2=value2" (an API key stays out of files).
    headers_env: str = attrs.field(default="", validator=_env_name_or_empty)
    #: The service.name resource attribute.
    service_name: str = attrs.field(default="cairn", validator=_not_blank)


#: Kernel tables and their settings classes; later kernel modules add theirs here.
KERNEL_SECTIONS: dict[str, type] = {
    "cairn": CairnSettings,
    "context": ContextSettings,
    "chat": ChatSettings,
    "providers": ProvidersSettings,
    "memory": MemorySettings,
    "artifacts": ArtifactsSettings,
    "policy": PolicySettings,
    "telemetry": TelemetrySettings,
}
