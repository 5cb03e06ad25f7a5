"""The package's shape, and that discovering the plugin stays cheap (psycopg loads in the factory)."""

from __future__ import annotations

import subprocess
import sys

import cairn_postgres
import pytest
from cairn_postgres.config import PostgresConfig, dsn_problem, shown_dsn
from cairn_postgres.store import PostgresStore

from cairn.storage import Syncable, facets_of
from cairn.testing.modules import import_cycles, import_graph, oversized


def test_no_import_cycles_and_small_modules() -> None:
    assert import_cycles(import_graph(cairn_postgres)) == []
    assert oversized(cairn_postgres) == {}


def test_every_facet_but_sync() -> None:
    assert PostgresStore.name == "postgres"
    assert facets_of(PostgresStore) == {
        "objects",
        "refs",
        "annotations",
        "token_counts",
        "ledger",
        "chat",
        "maintenance",
        "artifact_meta",
        "nonces",
        "governance",
        "vectors",
        "documents",
    }
    # One server is the shared store: there is nothing to push or pull, and it says so.
    assert not issubclass(PostgresStore, Syncable)


def test_discovering_the_plugin_imports_no_psycopg() -> None:
    code = "import sys, cairn_postgres.plugin; print('psycopg' in sys.modules, 'psycopg_pool' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://cairn:hunter2@db.internal/cairn",
        "postgres://cairn:hunter2@db.internal:5432/cairn?sslmode=require",
        "postgresql://cairn@db.internal/cairn?password=hunter2",
        "host=db.internal dbname=cairn user=cairn password=hunter2",
        "host=db.internal PASSWORD = hunter2",
    ],
)
def test_a_password_in_the_dsn_is_refused_without_echoing_it(dsn: str) -> None:
    problem = dsn_problem(dsn)
    assert problem is not None and "password_env" in problem and "hunter2" not in problem
    with pytest.raises(ValueError, match="password") as caught:
        PostgresConfig(dsn=dsn)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in shown_dsn(dsn)


@pytest.mark.parametrize(
    "dsn", ["postgresql://cairn@db.internal/cairn", "postgresql:///cairn", "host=/var/run/postgresql dbname=cairn"]
)
def test_dsns_without_a_password_are_accepted(dsn: str) -> None:
    assert dsn_problem(dsn) is None


@pytest.mark.parametrize("schema", ["", "Cairn", "1abc", "a-b", "pg_catalog", "x" * 64, "a;drop table refs"])
def test_bad_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(ValueError, match="schema must be a lowercase identifier"):
        PostgresConfig(schema=schema)


@pytest.mark.parametrize("value", ["hunter2!", "postgres password", "a=b"])
def test_password_env_holds_a_name_not_a_password(value: str) -> None:
    with pytest.raises(ValueError, match="must name an environment variable"):
        PostgresConfig(password_env=value)
