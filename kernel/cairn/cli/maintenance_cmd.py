"""Keeping the store: gc and fsck; moving history between stores: export and import."""

from __future__ import annotations

import sys

import click

from cairn.cli._app import State, echo_json, json_option, pass_state, plural


def register(cli: click.Group) -> None:
    for command in (gc_command, fsck_command, export_command, import_command):
        cli.add_command(command)


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Count what would go and list the artifacts, remove nothing.")
@click.option(
    "--grace",
    default="14d",
    show_default=True,
    metavar="AGE",
    help="Keep artifacts stored or recorded less than AGE ago (90s, 12h, 14d, 2w) even if nothing references them.",
)
@json_option()
@pass_state
def gc_command(state: State, dry_run: bool, grace: str, as_json: bool) -> None:
    """Remove commits no branch reaches and the content only they used, then the artifacts nothing reaches."""
    from cairn.cli.artifacts_cmd import collect_artifacts, print_collected
    from cairn.storage import Maintenance, require

    store = require(state.repo.store, Maintenance, doing="cairn gc")
    report = store.gc(dry_run=dry_run)
    artifacts = collect_artifacts(state, dry_run=dry_run, grace=grace)
    if as_json:
        echo_json(
            {
                "commits_removed": report.commits_removed,
                "blobs_removed": report.blobs_removed,
                "annotations_removed": report.annotations_removed,
                "dry_run": report.dry_run,
                "artifacts": artifacts.to_record() if artifacts is not None else None,
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {plural(report.commits_removed, 'commit')}, {plural(report.blobs_removed, 'blob')}, "
        f"{plural(report.annotations_removed, 'annotation')}"
    )
    print_collected(artifacts)


@click.command("fsck")
@json_option()
@pass_state
def fsck_command(state: State, as_json: bool) -> None:
    """Check stored data against its hashes and links; exit 1 on any problem."""
    from cairn.storage import Maintenance, check_store

    problems = check_store(state.repo.store)
    if as_json:
        echo_json([{"kind": p.kind, "object": p.object, "message": p.message} for p in problems])
    else:
        for problem in problems:
            click.secho(str(problem), fg="red", err=True)
        if any(p.kind in ("bad_ref", "dangling_ref") and p.object.startswith("refs/heads/") for p in problems):
            click.echo("  hint: remove a broken branch with `cairn branch delete NAME`", err=True)
        if not problems and isinstance(state.repo.store, Maintenance):
            stats = state.repo.store.stats()
            click.echo(
                f"ok: {plural(stats.commits, 'commit')}, {plural(stats.blobs, 'blob')}, {plural(stats.refs, 'ref')}, "
                f"{plural(stats.annotations, 'annotation')}"
            )
        elif not problems:
            click.echo("ok: every commit, blob and ref checked")
    if problems:
        click.get_current_context().exit(1)


@click.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write (default stdout).")
@click.option("--branch", help="Only this branch (default: every branch).")
@pass_state
def export_command(state: State, output: str | None, branch: str | None) -> None:
    """Write the store (or one branch) as JSONL that `cairn import` verifies hash for hash.

    The file appears whole or not at all: it is written beside its target
    and renamed into place (see `cairn.files.atomic_write`).
    """
    from cairn.files import atomic_write
    from cairn.model import validate_branch_name

    if output == "":
        raise click.BadParameter("give a file name, or leave -o out to write to stdout", param_hint="'-o'")
    repo = state.repo
    if branch is not None:
        validate_branch_name(branch, existing=True)
    if output is None:
        repo.export(sys.stdout, branch=branch)
        return
    with atomic_write(output) as handle:
        if sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("exporting", total=None)
                lines = repo.export(handle, branch=branch, progress=lambda n: bar.update(task, completed=n))
        else:
            lines = repo.export(handle, branch=branch)
    click.echo(f"exported {lines} records to {output}", err=True)


@click.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, readable=True, allow_dash=True))
@click.option(
    "--batch-size", default=5000, show_default=True, type=click.IntRange(min=1), help="Commits per transaction."
)
@click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(["auto", "bar", "lines", "none"]),
    default="auto",
    show_default=True,
    help="bar on a terminal; lines prints each durable count.",
)
@pass_state
def import_command(state: State, source: str, batch_size: int, progress_mode: str) -> None:
    """Import an export, checking all of it first: a file with a bad record stores nothing.

    Hashes are verified, derived fields recomputed, objects dedupe, and
    existing refs are never moved.
    """
    from cairn.errors import FileError

    repo = state.repo
    try:
        handle = sys.stdin.buffer if source == "-" else open(source, "rb")
    except OSError as exc:
        raise FileError(f"cannot read {source}: {exc.strerror or exc}", path=source, hint="check the path") from None
    label = "<stdin>" if source == "-" else source
    if progress_mode == "auto":
        progress_mode = "bar" if sys.stderr.isatty() else "none"
    try:
        if progress_mode == "bar":
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("importing", total=None)
                result = repo.import_(
                    handle, batch_size=batch_size, source=label, progress=lambda n: bar.update(task, completed=n)
                )
        else:

            def acknowledge(n: int) -> None:
                click.echo(f"durable {n}", err=True)

            result = repo.import_(
                handle, batch_size=batch_size, source=label, progress=acknowledge if progress_mode == "lines" else None
            )
    except OSError as exc:
        raise FileError(f"reading {label}: {exc.strerror or exc}", path=source, hint="check the file") from None
    finally:
        if source != "-":
            handle.close()
    click.echo(
        f"imported {plural(result.commits, 'new commit')}, {result.present} already present; "
        f"{plural(result.refs, 'ref')}, {plural(result.annotations, 'annotation')}"
    )
