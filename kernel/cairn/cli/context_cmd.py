"""Versioned-context commands: commit, edit, delete, log, show, diff, branch, switch,
pin / skip / unpin, materialize, status, gc, fsck, export, import."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import click

from cairn.cli._app import Count, State, echo_json, json_option, pass_state, read_stdin, read_text_file
from cairn.errors import ValidationError

#: The field ``--text`` fills for each built-in type.
TEXT_FIELD = {
    "instruction": "text",
    "dialogue": "text",
    "reasoning": "text",
    "output": "text",
    "artifact": "content",
}


def register(cli: click.Group) -> None:
    for command in (
        commit_command,
        edit_command,
        delete_command,
        log_command,
        show_command,
        diff_command,
        branch_group,
        switch_command,
        pin_command,
        skip_command,
        unpin_command,
        materialize_command,
        status_command,
        gc_command,
        fsck_command,
        export_command,
        import_command,
    ):
        cli.add_command(command)


# -- building content from options ---------------------------------------------


def _read_text(text: str | None) -> str | None:
    if text == "-":
        return read_stdin("the text")
    return text


def _loads(text: str, what: str) -> Any:
    """``json.loads`` for JSON typed on the command line: nesting past the parser's stack is a user error."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValidationError(
            f"{what} is nested too deeply to read", hint="cairn stores JSON nested at most 100 levels deep"
        ) from None


def _parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=what)
        try:
            out[key] = _loads(value, f"{what} {key}")
        except ValueError:
            out[key] = value  # not JSON: the text itself
    return out


def _text_field(content_types: Any, content_type: str) -> str | None:
    """The field a plain TEXT argument fills: the built-ins' main text, or a field called ``text``."""
    import attrs

    cls = content_types.get(content_type)  # unknown type: a clear error listing the known ones
    if content_type in TEXT_FIELD:
        return TEXT_FIELD[content_type]
    return "text" if any(a.name == "text" for a in attrs.fields(cls)) else None


def _content_from_options(
    content_types: Any,
    content_type: str,
    text: str | None,
    role: str | None,
    payload: str | None,
    fields: tuple[str, ...],
) -> dict[str, Any]:
    if payload is not None:
        raw = read_text_file(payload[1:], "--payload file") if payload.startswith("@") else _read_text(payload)
        try:
            data = _loads(raw or "", "--payload")
        except ValueError as exc:
            raise ValidationError(
                f"--payload is not valid JSON: {exc}", hint="pass a JSON object, @file.json, or - for stdin"
            ) from None
        if not isinstance(data, dict):
            raise ValidationError("--payload must be a JSON object")
        if "content_type" not in data:
            data["content_type"] = content_type
        data.update(_parse_pairs(fields, "--field"))
        return data
    data = {"content_type": content_type, **_parse_pairs(fields, "--field")}
    text = _read_text(text)
    if text is not None:
        field = _text_field(content_types, content_type)
        if field is None:
            raise ValidationError(
                f"type {content_type!r} takes no text",
                hint="give its fields with --payload '{...}' or --field KEY=VALUE",
            )
        data[field] = text
    if content_type == "dialogue":
        data.setdefault("role", role or "user")
    elif role is not None:
        raise click.BadParameter("--role only applies to dialogue", param_hint="--role")
    return data


def _summary(content: Any, width: int = 60) -> str:
    if content is None:
        return ""
    text = content.text_for_search().replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _commit_dict(repo: Any, commit: Any, content: Any = None) -> dict[str, Any]:
    data = commit.to_record()
    if content is not None:
        data["content"] = content.to_dict()
    return data


content_options = [
    click.option("-t", "--type", "content_type", default="dialogue", show_default=True, help="Content type."),
    click.option("--role", help="Dialogue role: user, assistant or system (default user)."),
    click.option("--payload", "payload", metavar="JSON|@FILE|-", help="The content as a JSON object."),
    click.option("--field", "fields", multiple=True, metavar="KEY=VALUE", help="Set a content field (repeatable)."),
    click.option("-m", "--message", default="", help="Commit message."),
    click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Commit metadata (repeatable)."),
    click.option("--json", "as_json", is_flag=True, help="Print the commit as JSON."),
]


def _with(options: list[Any]):
    def decorate(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


@click.command("commit")
@click.argument("text", required=False)
@_with(content_options)
@click.option("--reply-to", metavar="REV", help="The commit this one answers.")
@pass_state
def commit_command(
    state: State,
    text: str | None,
    content_type: str,
    role: str | None,
    payload: str | None,
    fields: tuple[str, ...],
    message: str,
    meta: tuple[str, ...],
    as_json: bool,
    reply_to: str | None,
) -> None:
    """Append a content item. TEXT, or - to read it from stdin."""
    repo = state.repo
    data = _content_from_options(repo.content_types, content_type, text, role, payload, fields)
    commit = repo.append(data, message=message, reply_to=reply_to, metadata=_parse_pairs(meta, "--meta"))
    _report(repo, commit, as_json)


@click.command("edit")
@click.argument("target")
@click.argument("text", required=False)
@_with(content_options)
@pass_state
def edit_command(
    state: State,
    target: str,
    text: str | None,
    content_type: str,
    role: str | None,
    payload: str | None,
    fields: tuple[str, ...],
    message: str,
    meta: tuple[str, ...],
    as_json: bool,
) -> None:
    """Replace the content of item TARGET in what is materialized.

    Without --type the item keeps its own type (and, for dialogue, its role).
    """
    repo = state.repo
    original = repo.resolve(target)
    ctx = click.get_current_context()
    if ctx.get_parameter_source("content_type") is click.core.ParameterSource.DEFAULT and original.content_type:
        content_type = original.content_type
        if content_type == "dialogue" and role is None and payload is None:
            role = getattr(repo.content_of(original), "role", None)
    data = _content_from_options(repo.content_types, content_type, text, role, payload, fields)
    commit = repo.edit(original.hash, data, message=message, metadata=_parse_pairs(meta, "--meta"))
    _report(repo, commit, as_json)


@click.command("delete")
@click.argument("target")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("--json", "as_json", is_flag=True, help="Print the commit as JSON.")
@pass_state
def delete_command(state: State, target: str, message: str, as_json: bool) -> None:
    """Remove item TARGET from what is materialized (history keeps it)."""
    repo = state.repo
    commit = repo.delete(target, message=message)
    _report(repo, commit, as_json)


def _report(repo: Any, commit: Any, as_json: bool) -> None:
    if as_json:
        echo_json(_commit_dict(repo, commit))
        return
    where = repo.branch or "detached HEAD"
    what = commit.content_type or ""
    target = f" {commit.target[:12]}" if commit.target else ""
    click.echo(
        f"[{where} {commit.short}] {commit.operation.value}{target} {what} ({commit.token_count} tokens)".rstrip()
    )


# -- reading -------------------------------------------------------------------


@click.command("log")
@click.argument("rev", required=False)
@click.option("-n", "--limit", type=Count(), help="At most this many commits.")
@click.option("-t", "--type", "content_type", help="Only this content type.")
@click.option("--since", help="Only commits at or after this time (ISO-8601).")
@click.option("--until", help="Only commits at or before this time (ISO-8601).")
@click.option("--grep", help="Only commits whose message or text contains this (case-insensitive).")
@click.option("--graph", is_flag=True, help="Draw every branch as a graph.")
@json_option()
@pass_state
def log_command(
    state: State,
    rev: str | None,
    limit: int | None,
    content_type: str | None,
    since: str | None,
    until: str | None,
    grep: str | None,
    graph: bool,
    as_json: bool,
) -> None:
    """Show history, newest first."""
    repo = state.repo
    if graph:
        _log_graph(repo, limit)
        return
    entries = repo.log(rev, limit=limit, content_type=content_type, since=since, until=until, grep=grep)
    if as_json:
        echo_json([_commit_dict(repo, e.commit, e.content) for e in entries])
        return
    for entry in entries:
        c = entry.commit
        target = f" → {c.target[:8]}" if c.target else ""
        label = c.content_type or ""
        click.echo(
            f"{click.style(c.short, fg='yellow')} {c.created_at[:19]} {c.operation.value:<6}{target} "
            f"{label:<11} {_summary(entry.content)}" + (f"  # {c.message}" if c.message else "")
        )


def _log_graph(repo: Any, limit: int | None) -> None:
    """Every branch as a tree, newest first: one lane per line of descent."""
    branches = repo.branches()
    labels: dict[str, list[str]] = {}
    for name, digest in branches.items():
        labels.setdefault(digest, []).append(name)
    _, head = repo.head_state()
    if head:
        labels.setdefault(head, []).insert(0, "HEAD")
    commits: dict[str, Any] = {}
    for digest in set(branches.values()) | ({head} if head else set()):
        for commit in repo.walk(repo.commit(digest)):
            if commit.hash in commits:
                break
            commits[commit.hash] = commit
    ordered = sorted(commits.values(), key=lambda c: (c.created_at, c.depth), reverse=True)
    if limit:
        ordered = ordered[:limit]
    lanes: list[str | None] = []
    for commit in ordered:
        if commit.hash in lanes:
            column = lanes.index(commit.hash)
        else:
            lanes.append(commit.hash)
            column = len(lanes) - 1
        row = "".join("* " if i == column else ("| " if lane else "  ") for i, lane in enumerate(lanes))
        names = f" ({', '.join(labels[commit.hash])})" if commit.hash in labels else ""
        content = repo.content_of(commit) if commit.content_hash else None
        click.echo(
            f"{row}{click.style(commit.short, fg='yellow')}{click.style(names, fg='green')} "
            f"{commit.operation.value} {commit.content_type or ''} {_summary(content, 50)}".rstrip()
        )
        merged = [i for i, lane in enumerate(lanes) if lane == commit.parent and i != column and commit.parent]
        lanes[column] = commit.parent
        for i in merged:  # another line of descent joins this one: its branch forked here
            click.echo("".join("|/" if j == i else ("| " if lane else "  ") for j, lane in enumerate(lanes)))
            lanes[i] = None
        while lanes and lanes[-1] is None:
            lanes.pop()


@click.command("show")
@click.argument("rev", required=False)
@json_option()
@pass_state
def show_command(state: State, rev: str | None, as_json: bool) -> None:
    """Show one commit: fields, content and the item's annotations."""
    repo = state.repo
    commit = repo.resolve(rev)
    content = repo.content_of(commit)
    item = commit.hash if commit.operation.value == "append" else commit.target
    history = repo.store.annotation_history(item) if item else []
    if as_json:
        data = _commit_dict(repo, commit, content)
        data["annotations"] = [a.to_record() for a in history]
        echo_json(data)
        return
    click.echo(f"commit    {commit.hash}")
    for key in (
        "parent",
        "operation",
        "target",
        "reply_to",
        "created_at",
        "content_type",
        "token_count",
        "cumulative_tokens",
    ):
        value = getattr(commit, key)
        if value is not None:
            click.echo(f"{key:<10}{value.value if hasattr(value, 'value') else value}")
    if commit.message:
        click.echo(f"message   {commit.message}")
    if commit.metadata:
        click.echo(f"metadata  {json.dumps(commit.metadata, ensure_ascii=False)}")
    if content is not None:
        click.echo("")
        click.echo(json.dumps(content.to_dict(), indent=2, ensure_ascii=False))
    for annotation in history:
        click.echo(f"annotation {annotation.created_at} {annotation.priority.value} {annotation.reason}".rstrip())


@click.command("diff")
@click.argument("a")
@click.argument("b", required=False, default="HEAD")
@json_option()
@pass_state
def diff_command(state: State, a: str, b: str, as_json: bool) -> None:
    """What differs in the materialized context between A and B (default HEAD)."""
    repo = state.repo
    entries = repo.diff(a, b)
    if as_json:
        echo_json(
            [
                {
                    "status": e.status,
                    "item": e.item,
                    "before": e.before.to_dict() if e.before else None,
                    "after": e.after.to_dict() if e.after else None,
                }
                for e in entries
            ]
        )
        return
    if not entries:
        click.echo("no differences")
    marks = {"added": ("+", "green"), "removed": ("-", "red"), "changed": ("~", "yellow")}
    for entry in entries:
        mark, colour = marks[entry.status]
        if entry.status == "changed":
            click.secho(f"{mark} {entry.item[:12]} {_summary(entry.before)}  →  {_summary(entry.after)}", fg=colour)
        else:
            click.secho(f"{mark} {entry.item[:12]} {_summary(entry.after or entry.before)}", fg=colour)


# -- branches ------------------------------------------------------------------


@click.group("branch", invoke_without_command=True)
@json_option()
@click.pass_context
def branch_group(ctx: click.Context, as_json: bool) -> None:
    """List branches, or create / delete / rename one."""
    if ctx.invoked_subcommand is not None:
        return
    state = ctx.find_object(State)
    repo = state.repo
    current = repo.branch
    branches = repo.branches()
    if as_json:
        echo_json([{"name": n, "commit": h, "current": n == current} for n, h in branches.items()])
        return
    if current is None:
        _, head = repo.head_state()
        click.echo(f"* (detached at {head[:12] if head else 'nothing'})")
    elif current not in branches:
        click.echo(f"* {current} (no commits yet)")
    for name, digest in branches.items():
        click.echo(f"{'*' if name == current else ' '} {name:<20} {digest[:12]}")


@branch_group.command("create")
@click.argument("name")
@click.argument("start", required=False)
@pass_state
def branch_create(state: State, name: str, start: str | None) -> None:
    """Create branch NAME at START (default HEAD)."""
    commit = state.repo.create_branch(name, start)
    click.echo(f"created {name} at {commit.short}")


@branch_group.command("delete")
@click.argument("name")
@pass_state
def branch_delete(state: State, name: str) -> None:
    """Delete branch NAME (not the current one); its commits stay until `cairn gc`."""
    state.repo.delete_branch(name)
    click.echo(f"deleted {name}")


@branch_group.command("rename")
@click.argument("old")
@click.argument("new")
@pass_state
def branch_rename(state: State, old: str, new: str) -> None:
    """Rename branch OLD to NEW."""
    state.repo.rename_branch(old, new)
    click.echo(f"renamed {old} to {new}")


@click.command("switch")
@click.argument("name", required=False)
@click.option("-c", "--create", is_flag=True, help="Create the branch at HEAD first.")
@click.option("--detach", metavar="REV", help="Point HEAD at a commit instead of a branch.")
@pass_state
def switch_command(state: State, name: str | None, create: bool, detach: str | None) -> None:
    """Make NAME the current branch (or detach HEAD at a commit)."""
    repo = state.repo
    if detach:
        commit = repo.detach(detach)
        click.echo(f"HEAD is now at {commit.short} (detached)")
        return
    if not name:
        raise click.UsageError("give a branch name, or --detach REV")
    repo.switch(name, create=create)
    click.echo(f"switched to {name}")


# -- annotations ---------------------------------------------------------------


def _annotation_command(name: str, priority: str, doc: str) -> click.Command:
    @click.command(name, help=doc)
    @click.argument("targets", nargs=-1, required=True)
    @click.option("-r", "--reason", default="", help="Why, for the record.")
    @pass_state
    def command(state: State, targets: tuple[str, ...], reason: str) -> None:
        for target in targets:
            annotation = state.repo.annotate(target, priority, reason)
            click.echo(f"{annotation.target[:12]} {priority}")

    return command


pin_command = _annotation_command("pin", "pinned", "Always keep items in what is materialized.")
skip_command = _annotation_command("skip", "skip", "Leave items out of what is materialized (history keeps them).")
unpin_command = _annotation_command("unpin", "normal", "Return items to normal priority.")


# -- materialize and status ----------------------------------------------------


@click.command("materialize")
@click.argument("rev", required=False)
@click.option("--budget", type=Count(), help="Token budget.")
@click.option("--as-of", "as_of", help="A commit or an ISO-8601 time: materialize history as it was then.")
@click.option(
    "--format", "fmt", type=click.Choice(["openai", "anthropic", "text"]), default="openai", show_default=True
)
@click.option(
    "--images", is_flag=True, help="Send artifact references to images as images, for a model that takes them."
)
@click.option("--json", "as_json", is_flag=True, help="Print messages, counts and dropped items as JSON.")
@pass_state
def materialize_command(
    state: State, rev: str | None, budget: int | None, as_of: str | None, fmt: str, images: bool, as_json: bool
) -> None:
    """Print the context as provider-ready messages within a budget."""
    from cairn.cli.artifacts_cmd import image_reader

    with image_reader(state) if images else contextlib.nullcontext() as reader:
        result = state.repo.materialize(rev, as_of=as_of, budget=budget, format=fmt, images=reader)
    if as_json:
        echo_json(result.to_dict())
        return
    if fmt == "text":
        click.echo(result.messages)
    else:
        echo_json(result.messages)
    dropped = result.dropped
    reasons: dict[str, int] = {}
    for d in dropped:
        reasons[d.reason] = reasons.get(d.reason, 0) + 1
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
    click.echo(
        f"{result.commit_count} items, {result.token_count} tokens ({result.token_source})"
        + (f" of {budget}" if budget else "")
        + f"; dropped: {detail}",
        err=True,
    )


@click.command("status")
@json_option()
@pass_state
def status_command(state: State, as_json: bool) -> None:
    """Current branch, HEAD and effective tokens against the budget."""
    repo = state.repo
    head = repo.head()
    tokens = repo.effective_tokens(head)
    budget = repo.budget.max_tokens
    data = {
        "branch": repo.branch,
        "head": head.hash if head else None,
        "commits": head.depth + 1 if head else 0,
        "effective_tokens": tokens,
        "max_tokens": budget,
        "budget_action": repo.budget.action,
        "tokenizer": repo.tokenizer.name,
        "token_source": "exact" if repo.tokenizer.exact else "estimated",
    }
    if as_json:
        echo_json(data)
        return
    click.echo(f"on branch {data['branch']}" if data["branch"] else "HEAD detached")
    click.echo(f"HEAD {head.short if head else '(no commits yet)'}, {data['commits']} commits")
    budget_text = f" of {budget} ({tokens * 100 // budget}%)" if budget else " (no budget set)"
    click.echo(f"effective context: {tokens} tokens{budget_text}, {data['token_source']} by {repo.tokenizer.name}")


# -- maintenance ---------------------------------------------------------------


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

    report = require(state.repo.store, Maintenance, doing="cairn gc").gc(dry_run=dry_run)
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
        f"{verb} {report.commits_removed} commits, {report.blobs_removed} blobs, "
        f"{report.annotations_removed} annotations"
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
                f"ok: {stats.commits} commits, {stats.blobs} blobs, {stats.refs} refs, {stats.annotations} annotations"
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
        f"imported {result.commits} new commits, {result.present} already present; "
        f"{result.refs} refs, {result.annotations} annotations"
    )
