"""``cairn hello ...``: the plugin's commands.

Commands get the shared ``State`` through ``cairn.cli.pass_state``: its
``config``, ``plugins`` and ``repo`` are built on first use, so a command
that never touches the repository never opens the store. Library errors
(``cairn.errors.CairnError``) are left to propagate: the ``cairn`` entry
point prints them as one line with their hint.
"""

from __future__ import annotations

import click

from cairn.cli import State, pass_state
from cairn_hello.content import GREETINGS, make_greeting

__all__ = ["hello_group"]


@click.group("hello")
def hello_group() -> None:
    """Greet people; optionally keep the greetings in the context (example plugin)."""


@hello_group.command("greet")
@click.argument("name")
@click.option(
    "-l",
    "--language",
    type=click.Choice(sorted(GREETINGS)),
    default="en",
    show_default=True,
    help="Language of the greeting.",
)
@click.option("--greeter", default="cairn", show_default=True, help="Who says it (recorded with --commit).")
@click.option(
    "--commit",
    "commit_it",
    is_flag=True,
    help="Also append the greeting to the project's context as a hello.greeting item.",
)
@click.option("-m", "--message", default=None, help="Commit message (with --commit; default 'greet NAME').")
@pass_state
def greet_command(state: State, name: str, language: str, greeter: str, commit_it: bool, message: str | None) -> None:
    """Print a greeting for NAME, and with --commit record it in the context."""
    greeting = make_greeting(name, language=language, greeter=greeter)
    # Open the repository before printing anything: a project without a usable
    # store fails with its own error instead of half-succeeding.
    repo = state.repo if commit_it else None
    click.echo(greeting.text)
    if repo is None:
        return
    commit = repo.append(greeting, message=message if message is not None else f"greet {name.strip()}")
    where = repo.branch or "detached HEAD"
    click.echo(f"[{where} {commit.short}] append {greeting.content_type} ({commit.token_count} tokens)")
