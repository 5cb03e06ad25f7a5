"""Combining and revisiting history: merge, cherry-pick, an item's history, and restoring one of its versions."""

from __future__ import annotations

import sys

import click

from cairn.cli._app import State, echo_json, json_option, pass_state, report
from cairn.cli.inspect_cmd import commit_dict
from cairn.errors import MergeConflictError
from cairn.repo_merge import STRATEGIES


def register(cli: click.Group) -> None:
    for command in (merge_command, cherry_pick_command, history_command, restore_command):
        cli.add_command(command)


def _conflicts(error: MergeConflictError, as_json: bool) -> None:
    """Print every conflict (stdout as JSON, or one line each on stderr) and exit 1."""
    if as_json:
        echo_json({"conflicts": [c.to_dict() for c in error.conflicts], "written": False})
    else:
        for conflict in error.conflicts:
            ours = conflict.ours[:12] or "-"
            click.echo(
                f"conflict: {conflict.item[:12]} {conflict.kind} (ours {ours}, theirs {conflict.theirs[:12]})", err=True
            )
    report(error.message, error.hint)
    sys.exit(1)


@click.command("merge")
@click.argument("branch")
@click.option("--strategy", type=click.Choice(STRATEGIES), help="Resolve every conflict with our or their version.")
@click.option("-m", "--message", default=None, help="The merge commit's message.")
@json_option()
@pass_state
def merge_command(state: State, branch: str, strategy: str | None, message: str | None, as_json: bool) -> None:
    """Merge BRANCH into the current branch: fast-forward, or a merge commit with two parents.

    When both sides changed an item differently the merge stops, lists the
    conflicts, writes nothing and exits 1; --strategy ours|theirs resolves them.
    """
    repo = state.repo
    try:
        result = repo.merge(branch, strategy=strategy, message=message)
    except MergeConflictError as error:
        _conflicts(error, as_json)
        return
    if as_json:
        echo_json(result.to_dict())
        return
    if result.kind == "up_to_date":
        click.echo("Already up to date.")
    elif result.kind == "fast_forward":
        click.echo(f"Fast-forward to {result.head[:12]}")
    else:
        assert result.merge is not None
        click.echo(f"[{repo.branch} {result.merge.short}] {result.merge.message}")
        for conflict in result.conflicts:
            click.echo(f"resolved {conflict.item[:12]} ({conflict.kind}): took {strategy}")


@click.command("cherry-pick")
@click.argument("rev")
@click.option("-m", "--message", default=None, help="The new commit's message (default: the original's).")
@json_option()
@pass_state
def cherry_pick_command(state: State, rev: str, message: str | None, as_json: bool) -> None:
    """Apply one commit (append, edit or delete) on the current branch.

    An edit or delete whose item is not on the current branch is a conflict: exit 1, nothing written.
    """
    repo = state.repo
    try:
        commit = repo.cherry_pick(rev, message=message)
    except MergeConflictError as error:
        _conflicts(error, as_json)
        return
    if as_json:
        echo_json(commit_dict(repo, commit))
        return
    click.echo(f"[{repo.branch or 'detached HEAD'} {commit.short}] {commit.operation.value} (picked {rev})")


@click.command("history")
@click.argument("rev")
@json_option()
@pass_state
def history_command(state: State, rev: str, as_json: bool) -> None:
    """The item REV names (original, edit or delete) and every change of it, oldest first, numbered by version."""
    repo = state.repo
    entries = repo.edit_history(rev)
    rows = []
    version = 0
    for entry in entries:
        if entry.content is not None:
            version += 1
        number = version if entry.content is not None else None
        rows.append({"version": number, **commit_dict(repo, entry.commit, entry.content)})
    from cairn.compaction import compactions_of

    compactions = compactions_of(repo, entries[0].commit) if entries else []
    # A compaction that replaced the item follows its changes: it is no version (restore cannot pick it).
    rows.extend({"version": None, "compacted_by": True, **commit_dict(repo, c)} for c in compactions)
    if as_json:
        echo_json(rows)
        return
    for row, entry in zip(rows, entries, strict=False):  # compaction rows follow, without entries
        label = f"v{row['version']}" if row["version"] is not None else "--"
        text = entry.content.text_for_search().replace("\n", " ")[:60] if entry.content is not None else ""
        click.echo(
            f"{label:<4} {entry.commit.short} {entry.commit.created_at} {entry.commit.operation.value:<6} {text}"
        )
    for compaction in compactions:
        meta = compaction.metadata.get("compaction") or {}
        click.echo(
            f"{'--':<4} {compaction.short} {compaction.created_at} {'compact':<6} "
            f"compacted: {meta.get('replaced', '?')} items summarised ({meta.get('summarizer', '?')})"
        )


@click.command("restore")
@click.argument("rev")
@click.option("--version", "version", type=int, required=True, help="The version to bring back (1 = the original).")
@click.option("-m", "--message", default=None, help="The new edit's message.")
@json_option()
@pass_state
def restore_command(state: State, rev: str, version: int, message: str | None, as_json: bool) -> None:
    """Bring back version K of an item as a new edit (`cairn history REV` numbers the versions)."""
    repo = state.repo
    commit = repo.restore(rev, version=version, message=message)
    if as_json:
        echo_json(commit_dict(repo, commit))
        return
    click.echo(f"[{repo.branch or 'detached HEAD'} {commit.short}] {commit.message}")
