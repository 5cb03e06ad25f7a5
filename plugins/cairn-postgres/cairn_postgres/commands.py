"""The commands cairn-postgres adds: ``cairn store info | migrate | copy`` and ``cairn watch``.

``store info`` and ``store copy`` work with any backend; ``store migrate``
shows the schema version the store was at and is now; ``watch`` needs the
postgres backend (LISTEN/NOTIFY).
"""

from __future__ import annotations

from typing import Any

import click

from cairn.cli._app import State, echo_json, json_option, pass_state

__all__ = ["register"]


def register(cli: click.Group) -> None:
    cli.add_command(store_group)
    cli.add_command(watch_command)


@click.group("store")
def store_group() -> None:
    """The configured store: what it is, its schema, and copying it to another backend."""


def _configured(state: State) -> str:
    return str(state.config.cairn.storage)


@store_group.command("info")
@json_option()
@pass_state
def store_info(state: State, as_json: bool) -> None:
    """The backend, its facets, what it holds and its schema version."""
    from cairn.storage import Maintenance, facets_of

    store = state.store
    info: dict[str, Any] = {"backend": _configured(state), "facets": sorted(facets_of(store))}
    if isinstance(store, Maintenance):
        stats = store.stats()
        info.update(
            blobs=stats.blobs, commits=stats.commits, refs=stats.refs, annotations=stats.annotations, bytes=stats.bytes
        )
        info.update({k: v for k, v in stats.details.items() if k != "backend"})
    latest = _latest_version(info["backend"])
    if latest is not None:
        info["latest_schema_version"] = latest
    if as_json:
        echo_json(info)
        return
    for key, value in info.items():
        click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


def _latest_version(backend: str) -> int | None:
    if backend != "postgres":
        return None
    from cairn_postgres.schema import schema_version

    return schema_version()


@store_group.command("migrate")
@json_option()
@pass_state
def store_migrate(state: State, as_json: bool) -> None:
    """Bring the store's schema up to date (under an advisory lock: safe while other machines run)."""
    from cairn.errors import StorageError

    backend = _configured(state)
    if backend != "postgres":
        raise StorageError(
            f"cairn store migrate is for the postgres backend; the configured store is {backend}",
            hint=f"the {backend} store migrates itself when it is opened",
        )
    from cairn_postgres.config import PostgresConfig
    from cairn_postgres.store import PostgresStore

    config = state.config.structure_table(("storage", "postgres"), PostgresConfig)
    with PostgresStore(config, migrate=True) as store:
        before, after = store.found_version, store.schema_version
    if as_json:
        echo_json({"dsn": store.shown, "schema": config.schema, "from": before, "to": after})
        return
    if before == after:
        click.echo(f"{store.shown}: schema version {after}, up to date")
    else:
        click.echo(f"{store.shown}: migrated from schema version {before or 0} to {after}")


@store_group.command("copy")
@click.option(
    "--to",
    "target_name",
    required=True,
    metavar="BACKEND",
    help="The backend to copy into (its [storage.BACKEND] table).",
)
@click.option(
    "--batch-size", default=5000, show_default=True, type=click.IntRange(min=1), help="Commits per transaction."
)
@click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(["auto", "bar", "none"]),
    default="auto",
    show_default=True,
    help="A progress bar on a terminal.",
)
@json_option()
@pass_state
def store_copy(state: State, target_name: str, batch_size: int, progress_mode: str, as_json: bool) -> None:
    """Copy everything in the configured store into another backend's store, verifying every hash.

    The target is configured by its own table (`[storage.postgres]` ...); its
    refs must be absent or equal. Interrupted? Run it again: what arrived is skipped.
    Then switch with one line: `[cairn] storage = "BACKEND"`.
    """
    import sys

    from cairn.errors import ValidationError
    from cairn_postgres.store_copy import copy_store

    if target_name == _configured(state):
        raise ValidationError(
            f"the configured store is already {target_name}",
            what="cairn store copy",
            hint="name another backend with --to, configured in its [storage.BACKEND] table",
        )
    source = state.store
    target = state.plugins.create("storage", target_name, state.config)
    try:
        if progress_mode == "auto":
            progress_mode = "bar" if sys.stderr.isatty() else "none"
        if progress_mode == "bar":
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                tasks: dict[str, Any] = {}

                def tell(what: str, done: int, total: int) -> None:
                    if what not in tasks:
                        tasks[what] = bar.add_task(what, total=total)
                    bar.update(tasks[what], completed=done, total=total)

                report = copy_store(source, target, batch_size=batch_size, progress=tell)
        else:
            report = copy_store(source, target, batch_size=batch_size)
    finally:
        target.close()
    if as_json:
        echo_json({"from": _configured(state), "to": target_name, **report.to_record()})
        return
    click.echo(
        f"copied {report.commits} commits, {report.blobs} blobs, {report.refs} refs, {report.annotations} annotations, "
        f"{report.runs} runs, {report.messages} chat messages, {report.artifact_records} artifact records, "
        f"{report.nonces} idempotency keys, {report.directives} directives, {report.approvals} approvals, "
        f"{report.vectors} vectors, {report.documents} documents "
        f"from {_configured(state)} to {target_name}; verified {report.verified} commits hash for hash "
        "and every other record as it was copied"
    )
    if report.skipped_facets:
        click.echo(
            f"not copied (the {target_name} store does not keep them): {', '.join(report.skipped_facets)}", err=True
        )
    click.echo(f'  next: set [cairn] storage = "{target_name}" to use it', err=True)


@click.command("watch")
@click.option("--branch", help="Only commits arriving on this branch.")
@click.option("--runs", is_flag=True, help="Print runs too, as they are recorded and closed.")
@click.option(
    "--timeout", type=click.FloatRange(min=0), help="Stop after this many seconds (default: until interrupted)."
)
@click.option("--count", type=click.IntRange(min=1), help="Stop after printing this many events.")
@json_option("Print one JSON object per line.")
@pass_state
def watch_command(
    state: State, branch: str | None, runs: bool, timeout: float | None, count: int | None, as_json: bool
) -> None:
    """Print commits (and with --runs, runs) as any machine writes them, until interrupted.

    Needs the postgres backend: the server announces each change (LISTEN/NOTIFY).
    """
    import json

    from cairn.errors import StorageError
    from cairn.model import validate_branch_name
    from cairn_postgres.store import PostgresStore
    from cairn_postgres.watch import watch

    if branch is not None:
        validate_branch_name(branch, existing=True)
    store = state.store
    if not isinstance(store, PostgresStore):
        raise StorageError(
            f"cairn watch needs the postgres backend (the server announces each change); "
            f"the configured store is {_configured(state)}",
            hint='keep the store on PostgreSQL ([cairn] storage = "postgres"); `cairn store copy --to postgres` moves it',
        )
    printed = 0
    try:
        for event in watch(
            store, branch=branch, runs=runs, timeout=timeout, ready=lambda: click.echo("watching", err=True)
        ):
            if event.commit is not None:
                commit = event.commit
                if as_json:
                    line = json.dumps(
                        {
                            "kind": "commit",
                            "branch": event.branch,
                            "hash": commit.hash,
                            "operation": commit.operation.value,
                            "message": commit.message,
                            "created_at": commit.created_at,
                        }
                    )
                else:
                    line = f"{event.branch}\t{commit.short}\t{commit.operation.value}\t{commit.created_at}\t{commit.message}"
            else:
                run = event.run
                assert run is not None
                if as_json:
                    line = json.dumps(
                        {
                            "kind": "run",
                            "run_id": run.run_id,
                            "type": run.type,
                            "status": run.status,
                            "started_at": run.started_at,
                        }
                    )
                else:
                    line = f"run\t{run.run_id}\t{run.type}\t{run.status}\t{run.started_at}"
            click.echo(line)
            printed += 1
            if count is not None and printed >= count:
                return
    except KeyboardInterrupt:
        return
