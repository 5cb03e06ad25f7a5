"""The postgres backend through the CLI: a project switched with one line of TOML, copy, export/import, watch, errors."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from cairn_postgres.schema import schema_version
from click.testing import CliRunner

from cairn.cli import cli


class Project:
    """A cairn project directory; runs `cairn` in process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None):
        result = self.runner.invoke(cli, ["-C", str(self.root), *args], input=input, catch_exceptions=False)
        if result.exit_code != 0:
            raise AssertionError(f"cairn {' '.join(args)} exited {result.exit_code}:\n{result.output}")
        return result

    def fails(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``cairn`` as a user does (a process of its own) expecting failure: its exit status and stderr."""
        env = {**os.environ, "CAIRN_USER_CONFIG": ""}
        proc = subprocess.run(
            [sys.executable, "-m", "cairn", "-C", str(self.root), *args], env=env, capture_output=True, text=True
        )
        assert proc.returncode != 0, proc.stdout
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
        return proc

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)

    def use(self, table: str, backend: str | None = None) -> None:
        """Append ``table`` to cairn.toml and (``backend``) switch ``[cairn] storage``: the one line a team changes."""
        toml = self.root / "cairn.toml"
        text = toml.read_text() + "\n" + table
        if backend is not None:
            text = text.replace('storage = "sqlite"', f'storage = "{backend}"', 1)
        toml.write_text(text)


def postgres_table(dsn: str, schema: str, extra: str = "") -> str:
    return f'[storage.postgres]\ndsn = "{dsn}"\nschema = "{schema}"\n{extra}'


@pytest.fixture
def project(cairn_env: Path) -> Project:
    tool = Project(cairn_env)
    tool("init")
    return tool


@pytest.fixture
def schema() -> str:
    return "p_" + secrets.token_hex(6)


def hashes(project: Project) -> list[str]:
    return [c["hash"] for c in project.json("log")]


def test_one_line_of_toml_moves_a_project_to_postgres(project: Project, pg_database: str, schema: str) -> None:
    project.use(postgres_table(pg_database, schema), backend="postgres")
    project("commit", "first item")
    project("commit", "second item")
    assert len(hashes(project)) == 2
    info = project.json("store", "info")
    assert info["backend"] == "postgres" and info["schema"] == schema and info["commits"] == 2
    assert info["schema_version"] == info["latest_schema_version"] == schema_version()
    assert "sync" not in info["facets"] and "ledger" in info["facets"]
    assert project.json("store", "migrate") == {
        "dsn": info["dsn"],
        "schema": schema,
        "from": schema_version(),
        "to": schema_version(),
    }
    assert "ok: 2 commits" in project("fsck").output


def _fill(project: Project) -> None:
    project("commit", "an instruction", "--type", "instruction", "--field", "text=be brief")
    for i in range(30):
        project("commit", f"message number {i}")
    project("branch", "create", "side")
    project("switch", "side")
    project("commit", "on the side")
    project("switch", "main")
    first = hashes(project)[-1]
    project("pin", first, "--reason", "keep it")
    project("run", "--", sys.executable, "-c", "print('hi')")


def test_store_copy_moves_everything_and_verifies_every_hash(project: Project, pg_database: str, schema: str) -> None:
    _fill(project)
    before = hashes(project)
    exported = project("export").stdout
    runs = project.json("runs", "list")
    project.use(postgres_table(pg_database, schema))
    report = project.json("store", "copy", "--to", "postgres")
    assert report["commits"] == report["verified"] == 32 and report["runs"] == len(runs) == 1
    assert report["annotations"] == 1 and report["skipped_facets"] == []
    # Run again: everything is there already, nothing moves, all verified again.
    assert project.json("store", "copy", "--to", "postgres")["verified"] == 32
    toml = project.root / "cairn.toml"
    toml.write_text(toml.read_text().replace('storage = "sqlite"', 'storage = "postgres"', 1))
    assert hashes(project) == before
    assert project("export").stdout == exported
    assert [r["run_id"] for r in project.json("runs", "list")] == [r["run_id"] for r in runs]
    assert "ok: 32 commits" in project("fsck").output


def test_export_from_sqlite_imports_into_postgres_with_identical_hashes(
    project: Project, pg_database: str, schema: str, tmp_path: Path
) -> None:
    _fill(project)
    dump = tmp_path / "history.jsonl"
    project("export", "-o", str(dump))
    project.use(postgres_table(pg_database, schema), backend="postgres")
    assert "imported 32 new commits" in project("import", str(dump)).output
    again = tmp_path / "again.jsonl"
    project("export", "-o", str(again))
    assert again.read_bytes() == dump.read_bytes()


def test_copy_refuses_a_target_whose_refs_differ(project: Project, pg_database: str, schema: str) -> None:
    project("commit", "on sqlite")
    project.use(postgres_table(pg_database, schema))
    postgres = ["--set", "cairn.storage=postgres"]
    project(*postgres, "commit", "already on postgres")
    result = project.fails("store", "copy", "--to", "postgres")
    assert result.returncode == 1 and "copy into an empty store" in result.stderr and "Traceback" not in result.stderr


def test_watch_prints_what_other_processes_write(project: Project, pg_database: str, schema: str) -> None:
    project.use(postgres_table(pg_database, schema), backend="postgres")
    project("commit", "before watching")
    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "cairn", "watch", "--runs", "--json", "--count", "3", "--timeout", "60"],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stderr is not None
        assert watcher.stderr.readline().strip() == "watching"
        project("commit", "seen by the watcher", "-m", "hello")
        project("run", "--", sys.executable, "-c", "pass")
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    events = [json.loads(line) for line in out.splitlines()]
    assert watcher.returncode == 0, err
    assert events[0]["kind"] == "commit" and events[0]["message"] == "hello" and events[0]["branch"] == "main"
    assert [e["kind"] for e in events[1:]] == ["run", "run"]  # recorded open, then closed
    assert [e["status"] for e in events[1:]][0] == "open" and events[2]["status"] != "open"


def test_watch_needs_postgres(project: Project) -> None:
    result = project.fails("watch", "--timeout", "0")
    assert result.returncode == 1 and "needs the postgres backend" in result.stderr


def test_a_literal_password_in_toml_is_refused(project: Project, pg_database: str, schema: str) -> None:
    project.use(postgres_table(pg_database, schema, 'password = "hunter2"\n'), backend="postgres")
    result = project.fails("status")
    assert result.returncode != 0 and "password" in result.stderr and "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_password_in_the_dsn_is_refused_at_its_line(project: Project, schema: str) -> None:
    project.use(postgres_table("postgresql://cairn:hunter2@127.0.0.1/cairn", schema), backend="postgres")
    result = project.fails("status")
    assert result.returncode != 0 and "password_env" in result.stderr and "hunter2" not in result.stderr


def test_password_env_names_a_variable_that_must_be_set(
    project: Project, pg_database: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.use(postgres_table(pg_database, schema, 'password_env = "CAIRN_TEST_PG_PASSWORD"\n'), backend="postgres")
    monkeypatch.delenv("CAIRN_TEST_PG_PASSWORD", raising=False)
    result = project.fails("status")
    assert result.returncode == 1 and "CAIRN_TEST_PG_PASSWORD" in result.stderr and "is not set" in result.stderr
    monkeypatch.setenv("CAIRN_TEST_PG_PASSWORD", "s3cret-value")  # trust authentication ignores it
    project("commit", "with a password from the environment")
    assert "s3cret-value" not in project("config", "show").output


def test_an_unreachable_server_is_a_clear_error(project: Project, schema: str) -> None:
    dsn = "postgresql://cairn@127.0.0.1:1/cairn"
    project.use(postgres_table(dsn, schema, "connect_timeout_s = 2\n"), backend="postgres")
    started = time.monotonic()
    result = project.fails("log")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot reach PostgreSQL" in result.stderr and "127.0.0.1:1/cairn" in result.stderr
    assert "pg_isready" in result.stderr
    assert time.monotonic() - started < 30


def test_missing_permissions_are_a_clear_error(project: Project, pg_database: str, schema: str) -> None:
    role = "cairn_nocreate_" + secrets.token_hex(4)
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        dsn = pg_database.replace("postgres@", f"{role}@", 1)
        project.use(postgres_table(dsn, schema), backend="postgres")
        result = project.fails("log")
        assert result.returncode == 1 and "permission denied" in result.stderr and "grant" in result.stderr
        assert role in result.stderr and "Traceback" not in result.stderr
    finally:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def test_a_schema_from_a_newer_release_is_refused_untouched(project: Project, pg_database: str, schema: str) -> None:
    project.use(postgres_table(pg_database, schema), backend="postgres")
    project("commit", "written by this release")
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {schema}.migrations VALUES (99, 'from the future', 'now')")
    result = project.fails("log")
    assert result.returncode == 1 and "schema version 99" in result.stderr and "upgrade cairn-postgres" in result.stderr
    assert f"{pg_database} (schema {schema})" in result.stderr  # which database, named without a password


def test_auto_migrate_off_leaves_it_to_store_migrate(project: Project, pg_database: str, schema: str) -> None:
    project.use(postgres_table(pg_database, schema, "auto_migrate = false\n"), backend="postgres")
    result = project.fails("log")
    assert result.returncode == 1 and "cairn store migrate" in result.stderr
    assert project.json("store", "migrate")["to"] == schema_version()
    project("commit", "now it works")
