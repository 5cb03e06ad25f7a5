"""``cairn session``: new, list, show, resume, close and delete sessions (see docs/sessions.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import State, echo_json, json_option, pass_state, print_table

if TYPE_CHECKING:  # pragma: no cover
    from cairn.sessions import Session, Sessions


def register(cli: click.Group) -> None:
    cli.add_command(session_group)


def _sessions(state: State) -> Sessions:
    from cairn.sessions import Sessions

    return Sessions(state.repo)


def _cost(totals: dict[str, Any]) -> str:
    cost = f"{totals['cost']:.6f}"
    return cost + (f" (+{totals['unpriced']} unpriced)" if totals["unpriced"] else "")


@click.group("session")
def session_group() -> None:
    """Named, resumable conversations: each a branch (sessions/<id>) plus a session record.

    `cairn ask` on a session's branch appends to the session and updates its
    totals (turns, tokens, spend, runs).
    """


@session_group.command("new")
@click.option("--title", help="A title (default: the time it was made).")
@click.option("--from", "start", metavar="BRANCH|CHECKPOINT|REV", help="Start from here (default: HEAD).")
@click.option("--model", help="The model the session asks (default: the provider's).")
@click.option("--tool", "tools", multiple=True, metavar="NAME", help="A tool the session may use (repeatable).")
@click.option("--no-switch", is_flag=True, help="Leave HEAD where it is.")
@json_option("Print the new session as JSON.")
@pass_state
def new_command(
    state: State,
    title: str | None,
    start: str | None,
    model: str | None,
    tools: tuple[str, ...],
    no_switch: bool,
    as_json: bool,
) -> None:
    """Start a session and switch to its branch."""
    session = _sessions(state).new(title, start=start, model=model, tools=tools, switch=not no_switch)
    if as_json:
        echo_json(session.to_dict())
        return
    where = "" if no_switch else "; switched to its branch"
    click.echo(f"session {session.id} ({session.record.title}) on branch {session.branch}{where}")


@session_group.command("list")
@json_option()
@pass_state
def list_command(state: State, as_json: bool) -> None:
    """List sessions, the most recently active first."""
    sessions = _sessions(state)
    found = sessions.list()
    if as_json:
        echo_json([s.to_dict() for s in found])
        return
    if not found:
        click.echo("no sessions yet: start one with `cairn session new --title TITLE`")
        return
    current = state.repo.branch
    rows = []
    for s in found:
        data = s.to_dict()
        totals = data["totals"]
        mark = "*" if s.branch == current else ""
        rows.append(
            [
                mark,
                s.id,
                s.record.status,
                data["last_active"][:19].replace("T", " "),
                totals["turns"],
                totals["input_tokens"] + totals["output_tokens"],
                _cost(totals),
                s.record.title,
            ]
        )
    print_table(["", "id", "status", "last active", "turns", "tokens", "cost", "title"], rows)


def _show(session: Session) -> None:
    data = session.to_dict(runs=True)
    totals = data["totals"]
    click.echo(f"session  {data['id']}  ({data['status']})")
    click.echo(f"title    {data['title']}")
    click.echo(f"branch   {data['branch']}")
    click.echo(f"llm      {data['provider'] or '-'} {data['model'] or '(default model)'}")
    if data["tools"]:
        click.echo(f"tools    {', '.join(data['tools'])}")
    click.echo(f"created  {data['created']}")
    click.echo(f"active   {data['last_active']}")
    click.echo(
        f"turns    {totals['turns']} ({totals['partial']} partial); "
        f"tokens {totals['input_tokens']} in / {totals['output_tokens']} out; cost {_cost(totals)}"
    )
    click.echo(f"runs     {len(data['runs'])}" + (f": {', '.join(data['runs'][-5:])}" if data["runs"] else ""))


@session_group.command("show")
@click.argument("session_id", required=False)
@json_option()
@pass_state
def show_command(state: State, session_id: str | None, as_json: bool) -> None:
    """Show a session (default: the current one): record, totals and the runs it made."""
    session = _sessions(state)._named(session_id)
    if as_json:
        echo_json(session.to_dict(runs=True))
        return
    _show(session)


@session_group.command("resume")
@click.argument("session_id")
@pass_state
def resume_command(state: State, session_id: str) -> None:
    """Switch to a session's branch (reopening it if it was closed)."""
    session = _sessions(state).resume(session_id)
    click.echo(f"resumed session {session.id} ({session.record.title}) on branch {session.branch}")


@session_group.command("close")
@click.argument("session_id", required=False)
@pass_state
def close_command(state: State, session_id: str | None) -> None:
    """Close a session (default: the current one); its branch and history stay."""
    session = _sessions(state).close(session_id)
    click.echo(f"closed session {session.id}")


@session_group.command("delete")
@click.argument("session_id")
@click.option("--force", is_flag=True, help="Delete it even if it is open.")
@pass_state
def delete_command(state: State, session_id: str, force: bool) -> None:
    """Delete a session's record and branch (an open one only with --force); checkpoints keep what they name."""
    session = _sessions(state).delete(session_id, force=force)
    click.echo(f"deleted session {session.id} and its branch {session.branch}")
