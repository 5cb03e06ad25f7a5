"""Migration 10 splits each stored run record into columns: every run reads back exactly as it was written."""

from __future__ import annotations

import json

import psycopg
from cairn_postgres.config import PostgresConfig
from cairn_postgres.schema import MIGRATIONS, schema_version
from cairn_postgres.store import PostgresStore

from cairn.model import Run
from cairn.model.canonical import canonical_json

AT = "2026-01-02T03:04:05.000006Z"
RUNS = [
    Run(run_id="plain", type="job", status="open", started_at=AT),
    Run(
        run_id="full",
        type="eval",
        status="ok",
        started_at=AT,
        subtype="nightly",
        user='ana "o\'neil" \\ ü',
        code_ref="abc123",
        ended_at="2026-01-02T03:04:06.000000Z",
        duration_ms=2**62,
        environment={"python": "3.11", "nested": {"k": [1, 2.5, None, True]}, "big": 10**30, "tiny": 1e-300},
        modules_affected=["a", "b/c"],
        summary="line\nnext \x00 nul, a literal \\u0000 and ✓",
        metadata={"\x00key": "\x00", "": [], "float": 1e20},
    ),
    Run(run_id="empty-text", type="job", status="failed", started_at=AT, subtype="", user="", code_ref="", summary=""),
]


def _schema_at_version_9(dsn: str, schema: str) -> None:
    """What cairn-postgres before migration 10 made, with each run stored as a record (canonical JSON)."""
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET LOCAL search_path = {schema}")
        conn.execute(
            "CREATE TABLE migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL)"
        )
        for migration in MIGRATIONS[:9]:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute("INSERT INTO migrations VALUES (%s, %s, %s)", (migration.version, migration.name, AT))
        for run in RUNS:
            conn.execute(
                "INSERT INTO runs (run_id, type, status, started_at, record) VALUES (%s, %s, %s, %s, %s)",
                (run.run_id, run.type, run.status, run.started_at, canonical_json(run.to_record()).decode()),
            )


def test_runs_stored_as_records_read_back_identical_after_migration_10(pg_database: str) -> None:
    _schema_at_version_9(pg_database, "before_runs_columns")
    store = PostgresStore(PostgresConfig(dsn=pg_database, schema="before_runs_columns"))
    try:
        assert (store.found_version, store.schema_version) == (9, schema_version())
        for run in RUNS:
            got = store.get_run(run.run_id)
            assert got == run
            assert json.dumps(got.to_record(), sort_keys=True) == json.dumps(run.to_record(), sort_keys=True)
        assert sorted(r.run_id for r in store.list_runs()) == sorted(r.run_id for r in RUNS)
        # Written after the migration, the same runs read back the same.
        store.delete_runs([r.run_id for r in RUNS])
        store.put_runs([(run, []) for run in RUNS])
        assert {r.run_id: r for r in store.list_runs()} == {r.run_id: r for r in RUNS}
    finally:
        store.close()
