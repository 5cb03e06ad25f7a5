"""Run-ledger commands: ``cairn runs ...``, ``cairn run -- COMMAND``, ``cairn ledger push|pull|status``."""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import subprocess
import sys
import threading
import time
from typing import IO, Any

import click

from cairn.cli._app import Count, State, echo_json, json_option, pass_state, plain, plural, print_fields, print_table
from cairn.errors import CairnError, ValidationError

__all__ = ["register"]


def register(cli: click.Group) -> None:
    cli.add_command(runs_group)
    cli.add_command(run_command)
    cli.add_command(ledger_group)


def _run_row(run: Any) -> list[Any]:
    duration = f"{run.duration_ms / 1000:.1f}s" if run.duration_ms is not None else ""
    return [run.run_id, run.type, run.subtype or "", run.status, run.started_at[:19], duration, run.summary[:60]]


@click.group("runs")
def runs_group() -> None:
    """List, show and prune recorded runs."""


@runs_group.command("list")
@click.option("--type", "run_type", help="Only runs of this type.")
@click.option("--status", type=click.Choice(["open", "ok", "failed", "partial"]), help="Only runs with this status.")
@click.option("--since", help="Only runs started at or after this: 7d, 12h, today, yesterday, a date or an ISO time.")
@click.option("-n", "--limit", type=Count(), default=50, show_default=True)
@json_option()
@pass_state
def runs_list(
    state: State, run_type: str | None, status: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """Runs, newest first."""
    from cairn.ledger import parse_moment

    since = parse_moment(since, "--since") if since is not None else None
    runs = state.ledger.list(type=run_type, status=status, since=since, limit=limit)
    if as_json:
        echo_json([r.to_record() for r in runs])
        return
    if not runs:
        click.echo("no runs recorded" + (" matching that" if run_type or status or since else ""))
        return
    print_table(["run", "type", "subtype", "status", "started", "took", "summary"], [_run_row(r) for r in runs])


@runs_group.command("show")
@click.argument("run_id")
@json_option()
@pass_state
def runs_show(state: State, run_id: str, as_json: bool) -> None:
    """One run's record (RUN_ID: an id, or @last, @prev, @last~N)."""
    run = state.ledger.get(run_id)
    if as_json:
        echo_json(run.to_record())
        return
    print_fields(run.to_record().items())


@runs_group.command("events")
@click.argument("run_id")
@json_option()
@pass_state
def runs_events(state: State, run_id: str, as_json: bool) -> None:
    """A run's events, in order (RUN_ID: an id, or @last, @prev, @last~N)."""
    events = state.ledger.events(run_id)
    if as_json:
        echo_json([e.to_record() for e in events])
        return
    for event in events:
        fields = " ".join(f"{k}={plain(v)}" for k, v in event.fields.items())
        click.echo(f"{event.seq:>4} {event.ts[:23]} {event.type:<12} {fields}")


@runs_group.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def runs_delete(state: State, run_ids: tuple[str, ...], yes: bool) -> None:
    """Delete runs and their events."""
    runs = [state.ledger.get(r) for r in run_ids]  # every id checked before anything goes
    if not yes and sys.stdin.isatty():
        click.confirm(f"delete {plural(len(runs), 'run')}?", abort=True)
    for run in runs:
        state.ledger.delete(run.run_id)
        click.echo(f"deleted {run.run_id}")


@runs_group.command("prune")
@click.option("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 2w.")
@click.option("--dry-run", is_flag=True, help="List what would go, delete nothing.")
@json_option()
@pass_state
def runs_prune(state: State, older_than: str, dry_run: bool, as_json: bool) -> None:
    """Delete finished runs that started longer ago than AGE."""
    doomed = state.ledger.prune(older_than, dry_run=dry_run)
    if as_json:
        echo_json({"dry_run": dry_run, "runs": [r.run_id for r in doomed]})
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {plural(len(doomed), 'run')} older than {older_than}")


# -- cairn run -- COMMAND ------------------------------------------------------------------


def _pump(stream: IO[bytes], sink: Any, name: str, tail: collections.deque[tuple[str, str]]) -> None:
    """Copy a child's output to ours as it comes, keeping the last lines for the record."""
    for raw in iter(stream.readline, b""):
        sink.buffer.write(raw)
        sink.flush()
        tail.append((name, raw.decode("utf-8", "replace").rstrip("\n")))
    stream.close()


def _masked(lines: list[tuple[str, str]], redactor: Any) -> list[tuple[str, str]]:
    """Output lines with secrets masked, each stream as a whole (a private key spans lines)."""
    out = list(lines)
    for stream in ("stdout", "stderr"):
        at = [i for i, (name, _) in enumerate(lines) if name == stream]
        for i, line in zip(at, redactor.lines([lines[i][1] for i in at]), strict=True):
            out[i] = (stream, line)
    return out


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--type", "run_type", default="command", show_default=True, help="Run type to record.")
@click.option(
    "--tail",
    "tail_lines",
    default=20,
    show_default=True,
    type=Count(min=0),
    help="How many last lines of output to keep as events.",
)
@click.option(
    "--artifact",
    "artifact_paths",
    multiple=True,
    metavar="PATH",
    help="Attach this file to the run once the command exits (repeatable).",
)
@click.option(
    "--snapshot",
    "snapshot_dirs",
    multiple=True,
    metavar="DIR",
    help="Snapshot this directory before and after; the run records which files changed (repeatable).",
)
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help="With --snapshot: leave out these paths.")
@click.option("--respect-gitignore", is_flag=True, help="With --snapshot: leave out what .gitignore ignores, and .git.")
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Run only if no earlier `cairn run` recorded this key; a repeat reports the recorded run instead.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_state
def run_command(
    state: State,
    run_type: str,
    tail_lines: int,
    artifact_paths: tuple[str, ...],
    snapshot_dirs: tuple[str, ...],
    excludes: tuple[str, ...],
    respect_gitignore: bool,
    idempotency_key: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND (after --) and record it: exit status, duration, code_ref, output tail.

    The command runs directly, never through a shell; its exit status becomes
    cairn's. With --snapshot DIR the run records DIR's tree before and after
    and the paths that changed; with --artifact PATH it attaches the file.
    With --idempotency-key KEY a second run with the key (on any machine
    sharing the store) runs nothing and exits with the recorded status.
    """
    options = (run_type, tail_lines, artifact_paths, snapshot_dirs, excludes, respect_gitignore, command)
    if idempotency_key is None:
        done = _record_command(state, *options)
    else:
        from cairn.config_tables import PolicySettings
        from cairn.idempotency import Idempotency
        from cairn.model import canonical_json, sha256_hex

        settings = state.config.settings("policy", PolicySettings)
        once = Idempotency(state.store, ttl=settings.idempotency_ttl, claim_ttl=settings.claim_ttl).run(
            idempotency_key,
            lambda: _record_command(state, *options),
            fingerprint=sha256_hex(canonical_json(["cairn run", list(command)])),
        )
        done = once.result
        if once.replayed:
            click.echo(
                f"idempotency key {idempotency_key!r} was done already: run {done['run_id']} ({done['status']}, "
                f"exit {done['code']}); nothing was run",
                err=True,
            )
            click.get_current_context().exit(done["code"])
    click.get_current_context().exit(130 if done["interrupted"] else done["code"])


def _record_command(
    state: State,
    run_type: str,
    tail_lines: int,
    artifact_paths: tuple[str, ...],
    snapshot_dirs: tuple[str, ...],
    excludes: tuple[str, ...],
    respect_gitignore: bool,
    command: tuple[str, ...],
) -> dict[str, Any]:
    """Run and record the command; what happened, as the JSON an idempotency key keeps."""
    argv = list(command)
    if any("\x00" in arg for arg in argv):
        raise click.BadParameter(
            "an argument holds a NUL character, which no program can receive", param_hint="COMMAND"
        )
    if (excludes or respect_gitignore) and not snapshot_dirs:
        raise click.UsageError("--exclude and --respect-gitignore go with --snapshot DIR")
    program = os.path.basename(argv[0])
    # What is recorded is masked (the child still gets its arguments unchanged); the ledger masks
    # every field again, this step knows which argument follows --token or -u.
    redactor = state.ledger.redactor
    shown = redactor.argv(argv)
    with contextlib.ExitStack() as stack:
        attachments = None
        if artifact_paths or snapshot_dirs:
            from cairn.cli.artifacts_cmd import Progress, open_artifacts

            artifacts = stack.enter_context(open_artifacts(state, "cairn run --artifact/--snapshot"))
        handle = state.ledger.open(
            run_type,
            subtype=program[:64] or None,
            summary=shlex.join(shown)[:500],
            metadata={"argv": shown, "cwd": redactor.text(str(state.cwd))},
        )
        if artifact_paths or snapshot_dirs:
            from cairn.run_artifacts import RunAttachments

            attachments = RunAttachments(
                artifacts,
                handle.run_id,
                snapshot_dirs,
                artifact_paths,
                excludes,
                respect_gitignore,
                Progress("snapshotting"),
            )
            try:
                for event in attachments.before():
                    handle.event(event.pop("type"), **event)
            except BaseException as exc:
                handle.close("failed", summary=f"could not snapshot before running: {exc}"[:500])
                raise
        # `cairn -C DIR run -- ...` runs the command in DIR, as git -C does.
        code, elapsed, interrupted, lines = _run_child(argv, program, tail_lines, handle, state.cwd)
        events: list[dict[str, Any]] = [
            {"type": "output", "stream": name, "line": line} for name, line in _masked(lines, redactor)
        ]
        events.append({"type": "exit", "code": code, "elapsed_ms": elapsed})
        status = "partial" if interrupted else ("ok" if code == 0 else "failed")
        if attachments is not None:
            try:
                events += attachments.after()
            except BaseException as exc:
                # The command ran: its run is kept, as partial, with what was recorded.
                handle.close("partial", metadata={"exit_code": code}, events=events + attachments.done)
                if isinstance(exc, CairnError):
                    kept = f"the command ran (exit {code}); run {handle.run_id} is recorded as partial"
                    exc.hint = f"{exc.hint}; {kept}" if exc.hint else kept
                raise
        run = handle.close(status, metadata={"exit_code": code}, events=events)
    if attachments is not None:
        for note in attachments.notes:
            click.echo(f"note: {note}", err=True)
    click.echo(f"recorded {run.run_id} ({status}, exit {code})", err=True)
    return {"run_id": run.run_id, "status": status, "code": code, "interrupted": interrupted}


def _run_child(
    argv: list[str], program: str, tail_lines: int, handle: Any, cwd: Any = None
) -> tuple[int, int, bool, list[tuple[str, str]]]:
    """Run the command, copying its output through; (exit code, milliseconds, interrupted, last lines)."""
    tail: collections.deque[tuple[str, str]] = collections.deque(maxlen=tail_lines or None)
    started = time.monotonic()
    try:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    except OSError as exc:
        handle.close("failed", summary=f"could not start {program}: {exc.strerror}")
        raise ValidationError(
            f"could not start {argv[0]!r}: {exc.strerror}", hint="check the command and PATH"
        ) from None
    pumps = [
        threading.Thread(target=_pump, args=(child.stdout, sys.stdout, "stdout", tail), daemon=True),
        threading.Thread(target=_pump, args=(child.stderr, sys.stderr, "stderr", tail), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    interrupted = False
    try:
        code = child.wait()
    except KeyboardInterrupt:
        interrupted = True
        child.terminate()
        code = child.wait()
    for pump in pumps:
        pump.join(timeout=5)
    elapsed = int((time.monotonic() - started) * 1000)
    lines = list(tail)[-tail_lines:] if tail_lines else []
    return code, elapsed, interrupted, lines


# -- cairn ledger push|pull|status --------------------------------------------------------


def _syncable(state: State) -> Any:
    from cairn.storage import Syncable, require

    return require(state.store, Syncable, doing="cairn ledger push, pull and status")


@click.group("ledger")
def ledger_group() -> None:
    """Share the ledger and context between machines (stores with the sync capability)."""


def _progress(verb: str) -> Any:
    """A progress callback for a terminal; None when stderr is piped (nothing to animate)."""
    if not sys.stderr.isatty():
        return None

    def progress(message: str) -> None:
        click.echo(f"{verb}: {message}", err=True)

    return progress


def _gate_push(state: State, remote: str) -> None:
    """Ask the policy gate before the ledger leaves the machine (``action = "push"``, the remote's name)."""
    from cairn.gate import Gate
    from cairn.policy import Action

    gate = Gate.from_config(state.config, state.store)
    if not gate.trivial:
        gate.check(Action("push", remote))


@ledger_group.command("push")
@click.argument("remote", required=False)
@pass_state
def ledger_push(state: State, remote: str | None) -> None:
    """Publish local runs and context, merging first if the remote moved on."""
    store = _syncable(state)
    _gate_push(state, remote or getattr(store, "remote", None) or "origin")
    report = store.push(remote, progress=_progress("push"))
    click.echo(report.message or f"pushed {plural(report.pushed, 'ref')} to {report.remote}")


@ledger_group.command("pull")
@click.argument("remote", required=False)
@pass_state
def ledger_pull(state: State, remote: str | None) -> None:
    """Bring in the remote's runs and context; diverged histories are merged, nothing is lost."""
    report = _syncable(state).pull(remote, progress=_progress("pull"))
    click.echo(
        report.message or f"fetched {plural(report.fetched, 'ref')} from {report.remote}, merged {report.merged}"
    )


@ledger_group.command("status")
@click.argument("remote", required=False)
@json_option()
@pass_state
def ledger_status(state: State, remote: str | None, as_json: bool) -> None:
    """How far local and remote history have diverged."""
    status = _syncable(state).sync_status(remote)
    if as_json:
        echo_json({"remote": status.remote, "ahead": status.ahead, "behind": status.behind, **status.details})
        return
    if status.remote is None:
        click.echo("no remote configured")
        return
    click.echo(f"{status.remote}: {status.ahead} ahead, {status.behind} behind")
