"""``[storage.postgres]``: the settings of the PostgreSQL store (light: imports only attrs).

The password never sits in TOML: ``dsn`` may not carry one (``user:pw@`` or
``password=``), and ``password_env`` names the environment variable that
holds it, as providers' ``api_key_env`` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import attrs

if TYPE_CHECKING:
    from cairn.plugins import FactoryContext

__all__ = ["DEFAULT_DSN", "PostgresConfig", "check_settings", "dsn_problem", "schema_problem", "shown_dsn"]

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/cairn"
#: A schema name cairn accepts: a plain lowercase identifier that never needs quoting.
_SCHEMA = re.compile(r"\A[a-z_][a-z0-9_]{0,62}\Z")
_KEYWORD_PASSWORD = re.compile(r"(?:\A|\s)password\s*=", re.IGNORECASE)
_ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")


def dsn_problem(dsn: object) -> str | None:
    """What is wrong with a DSN as config may hold it (never a password), or None."""
    if not isinstance(dsn, str) or not dsn.strip():
        return "must be a PostgreSQL connection string such as 'postgresql://cairn@db.internal/cairn'"
    if "\x00" in dsn:
        return "must not hold a NUL character"
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        if parts.password is not None:
            return (
                f"must not hold a password (got {shown_dsn(dsn)!r:.120}): remove it and put it in the "
                "environment variable that password_env names"
            )
        if any(key.lower() == "password" for key, _ in parse_qsl(parts.query)):
            return "must not hold password=...: put the password in the environment variable that password_env names"
        return None
    if "://" in dsn:
        return f"must start with postgresql:// (got {shown_dsn(dsn)!r:.80})"
    if _KEYWORD_PASSWORD.search(dsn):
        return "must not hold password=...: put the password in the environment variable that password_env names"
    return None


def shown_dsn(dsn: str) -> str:
    """The DSN as errors and ``cairn store info`` show it: any password masked."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        if parts.password is not None:
            netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
            dsn = parts._replace(netloc=netloc).geturl()
    return re.sub(r"(password\s*=\s*)(\S+)", r"\1***", dsn, flags=re.IGNORECASE)


def schema_problem(schema: object) -> str | None:
    if not isinstance(schema, str) or not _SCHEMA.match(schema) or schema.startswith("pg_"):
        return f"must be a lowercase identifier (letters, digits, _; at most 63; not pg_...) such as 'cairn'; got {schema!r:.80}"
    return None


def _dsn(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    problem = dsn_problem(value)
    if problem:
        raise ValueError(f"{attribute.name} {problem}")


def _schema(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    problem = schema_problem(value)
    if problem:
        raise ValueError(f"{attribute.name} {problem}")


def _env_name(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    # The NAME of a variable: a password pasted here would end up in config files and logs.
    if not isinstance(value, str) or (value and not _ENV_NAME.match(value)):
        raise ValueError(
            f"{attribute.name} must name an environment variable (like CAIRN_PG_PASSWORD), not hold the password itself"
        )


def _count(low: int, high: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{attribute.name} must be a whole number from {low} to {high}; got {value!r}")

    return check


@attrs.frozen
class PostgresConfig:
    """The ``[storage.postgres]`` table.

    ``dsn``: where the server is (``postgresql://user@host:port/dbname`` or
    ``host=... dbname=...``), never with a password.
    ``password_env``: the name of the environment variable holding the
    password ("" sends none: trust, peer or ``~/.pgpass`` authentication).
    ``schema``: the schema this project's tables live in, so many projects
    share one database; created on first use.
    ``pool_size``: connections each process keeps at most.
    ``statement_timeout_ms``: the server cancels a statement running longer (0: never).
    ``connect_timeout_s``: how long to wait for the server.
    ``auto_migrate``: bring the schema up to date when a store is opened;
    false leaves it to ``cairn store migrate`` (opening a store behind then fails).
    """

    dsn: str = attrs.field(default=DEFAULT_DSN, validator=_dsn)
    password_env: str = attrs.field(default="", validator=_env_name)
    schema: str = attrs.field(default="cairn", validator=_schema)
    pool_size: int = attrs.field(default=4, validator=_count(1, 1000))
    statement_timeout_ms: int = attrs.field(default=60000, validator=_count(0, 2**31 - 1))
    connect_timeout_s: int = attrs.field(default=10, validator=_count(1, 3600))
    auto_migrate: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))


def check_settings(config: PostgresConfig, context: FactoryContext) -> Iterator[tuple[str, str]]:
    """What ``cairn config validate`` reports about ``[storage.postgres]`` without connecting."""
    if config.password_env and config.password_env not in os.environ:
        yield "password_env", f"the environment variable {config.password_env} is not set"
