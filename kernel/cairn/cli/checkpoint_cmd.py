"""``cairn checkpoint``: create, list, show, restore and delete checkpoints (see docs/sessions.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cairn.cli._app import State, echo_json, json_option, pass_state, print_table

if TYPE_CHECKING:  # pragma: no cover
    from cairn.checkpoints import Checkpoints


def register(cli: click.Group) -> None:
    cli.add_command(checkpoint_group)


def _checkpoints(state: State) -> Checkpoints:
    from cairn.checkpoints import Checkpoints

    return Checkpoints(state.repo)


@click.group("checkpoint")
def checkpoint_group() -> None:
    """Immutable named points of a branch (refs/checkpoints/NAME), to go back to without losing anything."""


@checkpoint_group.command("create")
@click.argument("name")
@click.option("-m", "--message", help="What this point is.")
@json_option("Print the checkpoint as JSON.")
@pass_state
def create_command(state: State, name: str, message: str | None, as_json: bool) -> None:
    """Name the current commit NAME, with its session, token count and time."""
    checkpoint = _checkpoints(state).create(name, message)
    if as_json:
        echo_json(checkpoint.to_dict())
        return
    click.echo(f"checkpoint {checkpoint.name} at {checkpoint.target.short} ({checkpoint.record.tokens} tokens)")


@checkpoint_group.command("list")
@json_option()
@pass_state
def list_command(state: State, as_json: bool) -> None:
    """List checkpoints, newest first."""
    found = _checkpoints(state).list()
    if as_json:
        echo_json([c.to_dict() for c in found])
        return
    if not found:
        click.echo("no checkpoints yet: make one with `cairn checkpoint create NAME`")
        return
    rows = [
        [
            c.name,
            c.target.short,
            c.record.branch or "-",
            c.record.session or "-",
            c.record.tokens,
            c.record.created[:19].replace("T", " "),
            c.record.message or "",
        ]
        for c in found
    ]
    print_table(["name", "commit", "branch", "session", "tokens", "created", "message"], rows)


@checkpoint_group.command("show")
@click.argument("name")
@json_option()
@pass_state
def show_command(state: State, name: str, as_json: bool) -> None:
    """Show a checkpoint."""
    data = _checkpoints(state).get(name).to_dict()
    if as_json:
        echo_json(data)
        return
    for key in ("name", "commit", "branch", "session", "tokens", "created", "message", "auto"):
        value = data[key]
        click.echo(f"{key:<8} {'-' if value is None else value}")


@checkpoint_group.command("restore")
@click.argument("name")
@click.option("--as-branch", "as_branch", metavar="NEW", help="Make branch NEW at the checkpoint instead.")
@pass_state
def restore_command(state: State, name: str, as_branch: str | None) -> None:
    """Move the checkpoint's branch back to it, after saving the branch's tip as an automatic checkpoint."""
    done = _checkpoints(state).restore(name, as_branch=as_branch)
    target = done.checkpoint.target.short
    if as_branch is not None:
        click.echo(f"made branch {done.branch} at checkpoint {name} ({target})")
    elif done.saved is None:
        click.echo(f"branch {done.branch} is at checkpoint {name} ({target})")
    else:
        click.echo(
            f"moved branch {done.branch} back to checkpoint {name} ({target}); "
            f"its tip was saved as checkpoint {done.saved.name}"
        )


@checkpoint_group.command("delete")
@click.argument("name")
@pass_state
def delete_command(state: State, name: str) -> None:
    """Delete a checkpoint (the commits it named stay while a branch or another checkpoint reaches them)."""
    checkpoint = _checkpoints(state).delete(name)
    click.echo(f"deleted checkpoint {checkpoint.name} ({checkpoint.target.short})")
