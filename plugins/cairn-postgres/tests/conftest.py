"""Every test here talks to a real PostgreSQL server, in a database of this session's own.

The server is ``CAIRN_PG_SERVER`` (default: 127.0.0.1:5432, user postgres,
trust authentication). Without one the tests are skipped with the reason,
except in CI (``CI`` or ``CAIRN_PG_REQUIRED`` set, as ``.ci/run`` does), where
that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cairn_postgres.testing import SERVER_DSN, TEST_DSN_ENV, scratch_database, server_problem


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The DSN of a database created for this session (dropped at its end); also in ``CAIRN_PG_TEST_DSN``."""
    problem = server_problem(SERVER_DSN)
    if problem:
        if os.environ.get("CI") or os.environ.get("CAIRN_PG_REQUIRED"):
            pytest.fail(f"{problem}; CI needs the server (.ci/run starts it)")
        pytest.skip(f"{problem} (set CAIRN_PG_SERVER, or start PostgreSQL 15 on 127.0.0.1:5432)")
    with scratch_database(SERVER_DSN) as dsn:
        previous = os.environ.get(TEST_DSN_ENV)
        os.environ[TEST_DSN_ENV] = dsn  # spawned workers inherit it
        try:
            yield dsn
        finally:
            if previous is None:
                os.environ.pop(TEST_DSN_ENV, None)
            else:
                os.environ[TEST_DSN_ENV] = previous


@pytest.fixture(autouse=True)
def _needs_server(pg_database: str) -> None:
    """Every test needs the server: skipped (or failed in CI) together when there is none."""
