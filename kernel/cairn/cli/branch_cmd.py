"""Branch commands: list, create, delete and rename branches; switch (or detach HEAD)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cairn.cli._app import State, echo_json, json_option, pass_state
from cairn.errors import ValidationError
from cairn.storage import BRANCH_PREFIX, HEAD, SYMBOLIC_PREFIX

if TYPE_CHECKING:
    from cairn.repo import Repo


def register(cli: click.Group) -> None:
    cli.add_command(branch_group)
    cli.add_command(switch_command)
    cli.add_command(checkout_command)


@click.group("branch", invoke_without_command=True)
@click.option("-v", "--verbose", is_flag=True, help="Show each branch's newest item too (as git branch -v).")
@json_option()
@click.pass_context
def branch_group(ctx: click.Context, verbose: bool, as_json: bool) -> None:
    """List branches, or create / delete / rename one."""
    if ctx.invoked_subcommand is not None:
        return
    state = ctx.ensure_object(State)  # what pass_state does for every other command
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
        line = f"{'*' if name == current else ' '} {name:<20} {digest[:12]}"
        if verbose:
            from cairn.cli.inspect_cmd import one_line

            commit = repo.commit(digest)
            line += f" {one_line(commit, repo.content_of(commit))}"
        click.echo(line.rstrip())


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
@click.option("-f", "--force", is_flag=True, help="Delete it even with commits no other branch reaches.")
@pass_state
def branch_delete(state: State, name: str, force: bool) -> None:
    """Delete branch NAME (not the current one); its commits stay until `cairn gc`.

    A branch with commits no other branch reaches is refused unless --force (as git's -d / -D).
    """
    state.repo.delete_branch(name, force=force)
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
    """Make NAME the current branch (`-`: the previous one), or detach HEAD at a commit.

    A detached HEAD can be materialized, logged and diffed; committing on it is refused.
    """
    repo = state.repo
    if detach:
        with _remembering(state):
            commit = repo.detach(detach)
        click.echo(f"HEAD is now at {commit.short} (detached)")
        return
    if not name:
        raise click.UsageError("give a branch name, or --detach REV")
    with _remembering(state):
        if name == "-" and not create:
            _switch_back(state)
        else:
            repo.switch(name, create=create)
    if name == "-":
        _where(repo)
        return
    click.echo(f"switched to {name}")


def _previous_file(state: State) -> Path:
    return Path(state.config.data_dir) / "previous-head"


@contextlib.contextmanager
def _remembering(state: State) -> Iterator[None]:
    """Record where HEAD was (a local file in the data directory, never synced) once a switch succeeds."""
    before = state.repo.refs.get_ref(HEAD)
    yield
    if before is not None and before != state.repo.refs.get_ref(HEAD):
        path = _previous_file(state)
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(before + "\n", encoding="utf-8")
        os.replace(scratch, path)


def _switch_back(state: State) -> None:
    """Move HEAD to where it was before the last switch (`cairn switch -`)."""
    try:
        value = _previous_file(state).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ValidationError(
            "there is no previous branch to switch back to", hint="`cairn branch` lists branches"
        ) from None
    if value.startswith(SYMBOLIC_PREFIX + BRANCH_PREFIX):
        state.repo.switch(value[len(SYMBOLIC_PREFIX + BRANCH_PREFIX) :])
    else:
        state.repo.detach(value)


def _where(repo: Repo) -> None:
    branch = repo.branch
    if branch is not None:
        click.echo(f"switched to {branch}")
    else:
        head = repo.head()
        click.echo(f"HEAD is now at {head.short if head else '(no commits)'} (detached)")


@click.command("checkout")
@click.argument("rev")
@pass_state
def checkout_command(state: State, rev: str) -> None:
    """Switch to branch REV, or detach HEAD at commit REV (git's order: a branch name first)."""
    repo = state.repo
    with _remembering(state):
        if rev == "-":
            _switch_back(state)
        elif rev in repo.branches():
            repo.switch(rev)
        else:
            repo.detach(rev)
    _where(repo)
