"""cairn's hook module for cairn-s3: registers the ``s3`` artifact store.

Light on purpose (cairn imports it at start-up): boto3 is imported by the
factory, when a store is actually opened.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from cairn.errors import ConfigError
from cairn.hookspecs import hookimpl
from cairn_s3.config import S3Config

__all__ = ["cairn_register_artifact_stores", "create_store"]

TABLE = "artifacts.s3"


def _credential(environ: Mapping[str, str], variable: str, key: str) -> str:
    value = environ.get(variable, "")
    if not value:
        raise ConfigError(
            f"the environment variable {variable} is not set",
            table=TABLE,
            key=key,
            hint=f"export {variable} with the credential, or name another variable in [{TABLE}] {key}",
        )
    return value


def create_store(config: S3Config, context: Any = None, *, environ: Mapping[str, str] | None = None) -> Any:
    """An ``S3ArtifactStore`` for ``config``, with credentials read from the variables it names."""
    environ = os.environ if environ is None else environ
    if not config.bucket:
        raise ConfigError(
            "no bucket is set",
            table=TABLE,
            key="bucket",
            hint=f'add bucket = "<name>" to [{TABLE}] in cairn.toml (and endpoint_url for R2 or MinIO)',
        )
    access_key = _credential(environ, config.access_key_env, "access_key_env")
    secret_key = _credential(environ, config.secret_key_env, "secret_key_env")
    token = environ.get(config.session_token_env) if config.session_token_env else None

    from cairn_s3.store import S3ArtifactStore  # boto3 is imported here, only when a store is opened

    return S3ArtifactStore(config, access_key=access_key, secret_key=secret_key, session_token=token or None)


@hookimpl
def cairn_register_artifact_stores(register: Callable[..., None]) -> None:
    """Register ``s3``."""
    register(
        "s3",
        create_store,
        S3Config,
        description="artifacts in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO), multipart for large files",
    )
