"""The ``[artifacts.s3]`` table: a frozen attrs class the kernel fills from TOML.

Only attrs is imported here, so the hook module stays light. Credentials
never live in the table: ``access_key_env`` and ``secret_key_env`` name the
environment variables that hold them, and a value that looks like a key
rather than a variable's name is refused.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = ["MIN_PART_SIZE", "S3Config"]

MiB = 1 << 20
#: S3's smallest part (every part but the last), and its largest.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB

_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
_ACCESS_KEY_SHAPE = re.compile(r"\A(AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\Z")
_BUCKET = re.compile(r"\A[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_PREFIX = re.compile(r"\A[A-Za-z0-9!_.*'()/-]*\Z")
_REGION = re.compile(r"\A[a-z0-9-]{1,64}\Z")


def _env_name(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    # Never echo the value: if it is a pasted secret, it must not reach a terminal or a log.
    if not isinstance(value, str) or not _ENV_NAME.match(value) or _ACCESS_KEY_SHAPE.match(value):
        raise ValueError(
            f"{attribute.name} must name an environment variable (like AWS_ACCESS_KEY_ID), "
            "not hold a credential: secrets never go in cairn.toml"
        )


def _optional_env_name(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value != "":
        _env_name(instance, attribute, value)


def _bucket(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value and (not isinstance(value, str) or not _BUCKET.match(value) or ".." in value):
        raise ValueError(
            f"bucket must be a bucket name of 3 to 63 lowercase letters, digits, dots and hyphens, got {value!r:.80}"
        )


def _prefix(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    parts = value.split("/") if isinstance(value, str) else [".."]
    if (
        not isinstance(value, str)
        or not _PREFIX.match(value)
        or value.startswith("/")
        or "//" in value
        or any(p in (".", "..") for p in parts)
        or len(value) > 512
    ):
        raise ValueError(
            "prefix must be a relative key prefix such as 'cairn/artifacts' (letters, digits and !_.*'()-, "
            f"parts separated by '/', no '.' or '..' parts), got {value!r:.80}"
        )


def _endpoint(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"endpoint_url must be an http(s) URL such as 'http://127.0.0.1:9000', got {value!r:.80}")
    if parts.username or parts.password:
        raise ValueError("endpoint_url must not carry credentials: use access_key_env and secret_key_env")


def _region(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not _REGION.match(value)):
        raise ValueError(f"region must be a region name such as 'us-east-1' or 'auto' (R2), got {value!r:.40}")


def _part_size(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not MIN_PART_SIZE <= value <= MAX_PART_SIZE:
        raise ValueError(f"{attribute.name} must be between 5 MiB ({MIN_PART_SIZE}) and 5 GiB, got {value}")


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value}")


@attrs.frozen
class S3Config:
    """``[artifacts.s3]``: where the bucket is and how to reach it."""

    #: The bucket; it must exist (cairn never creates buckets).
    bucket: str = attrs.field(default="", validator=_bucket)
    #: Keys start with this (``cairn/`` keeps cairn's objects apart from the rest of a bucket).
    prefix: str = attrs.field(default="cairn", validator=_prefix)
    #: The service's URL for anything but AWS: ``https://<account>.r2.cloudflarestorage.com``,
    #: ``http://127.0.0.1:9000`` (MinIO). None: AWS S3.
    endpoint_url: str | None = attrs.field(default=None, validator=_endpoint)
    #: The region (``us-east-1``; ``auto`` for R2). None: the SDK's default.
    region: str | None = attrs.field(default=None, validator=_region)
    #: The NAMES of the environment variables holding the credentials.
    access_key_env: str = attrs.field(default="AWS_ACCESS_KEY_ID", validator=_env_name)
    secret_key_env: str = attrs.field(default="AWS_SECRET_ACCESS_KEY", validator=_env_name)
    #: Used when that variable is set (temporary credentials); "" never sends a session token.
    session_token_env: str = attrs.field(default="AWS_SESSION_TOKEN", validator=_optional_env_name)
    #: "path" (``endpoint/bucket/key``, MinIO and most local servers), "virtual" (``bucket.endpoint/key``) or "auto".
    addressing_style: str = attrs.field(default="auto", validator=attrs.validators.in_(("auto", "path", "virtual")))
    #: Objects of at least this many bytes are uploaded in parts.
    multipart_threshold: int = attrs.field(default=16 * MiB, validator=_part_size)
    #: Bytes per part (grown automatically for objects that would need more than 10,000 parts).
    part_size: int = attrs.field(default=16 * MiB, validator=_part_size)
    #: Attempts per request, the first included; throttling and transient errors are retried with backoff.
    max_attempts: int = attrs.field(
        default=6, validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(20))
    )
    connect_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    read_timeout_s: float = attrs.field(default=60.0, validator=_positive)

    @property
    def key_prefix(self) -> str:
        """The prefix as keys start: empty, or ending in exactly one '/'."""
        return self.prefix.rstrip("/") + "/" if self.prefix.strip("/") else ""
