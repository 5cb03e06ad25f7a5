"""``cairn directive new|show|list|approve|reject|cancel|start|finish|history``: frozen intent and its status.

Every status change goes through ``cairn.directives.Directives.move``, one
compare-and-swap; a directive whose status another process changed first is
an error that names the status it lost to, and nothing changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import Count, State, echo_json, json_option, pass_state, print_table

if TYPE_CHECKING:  # pragma: no cover
    from cairn.directives import Directives

__all__ = ["register"]


def register(cli: click.Group) -> None:
    cli.add_command(directive_group)


def directives(state: State) -> Directives:
    from cairn.directives import Directives

    return Directives(state.store)


def _short(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


@click.group("directive")
def directive_group() -> None:
    """Directives: what an agent is to do, within which scope and budget, approved before it runs."""


@directive_group.command("new")
@click.argument("intent")
@click.option("--constraint", "constraints", multiple=True, help="A constraint, in words (repeatable).")
@click.option("--tool", "tools", multiple=True, help="A tool it may use; glob patterns allowed (repeatable).")
@click.option("--provider", "providers", multiple=True, help="A provider it may call (repeatable).")
@click.option("--model", "models", multiple=True, help="A model it may call (repeatable).")
@click.option("--path", "paths", multiple=True, help="A path it may touch (repeatable).")
@click.option("--executor", "executors", multiple=True, help="An execution module it may run (repeatable).")
@click.option("--remote", "remotes", multiple=True, help="A remote it may push the ledger to (repeatable).")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Token budget across its provider calls.")
@click.option("--max-cost", type=click.FloatRange(min=0, min_open=True), help="Cost budget (price-table currency).")
@click.option(
    "--max-time", "max_time", type=click.FloatRange(min=0, min_open=True), help="Wall-time budget in seconds."
)
@click.option("--supersedes", help="The directive this one replaces (it is cancelled unless finished).")
@json_option()
@pass_state
def new_cmd(
    state: State,
    intent: str,
    constraints: tuple[str, ...],
    tools: tuple[str, ...],
    providers: tuple[str, ...],
    models: tuple[str, ...],
    paths: tuple[str, ...],
    executors: tuple[str, ...],
    remotes: tuple[str, ...],
    max_tokens: int | None,
    max_cost: float | None,
    max_time: float | None,
    supersedes: str | None,
    as_json: bool,
) -> None:
    """Write a new directive (a draft: approve it before anything runs under it).

    A scope kind left out allows everything of that kind; one given allows
    only what it names.
    """
    scope = {
        k: list(v)
        for k, v in {
            "tools": tools,
            "providers": providers,
            "models": models,
            "paths": paths,
            "executors": executors,
            "remotes": remotes,
        }.items()
        if v
    }
    budget = {k: v for k, v in {"tokens": max_tokens, "cost": max_cost, "wall_time_s": max_time}.items() if v}
    made = directives(state).new(intent, constraints=constraints, scope=scope, budget=budget, supersedes=supersedes)
    if as_json:
        echo_json({**made.to_record(), "status": "draft"})
        return
    click.echo(f"directive {made.id} (draft)")
    click.echo(f"  approve it: cairn directive approve {made.id}")


@directive_group.command("show")
@click.argument("directive_id")
@json_option()
@pass_state
def show_cmd(state: State, directive_id: str, as_json: bool) -> None:
    """A directive: its intent, scope, budget, status, runs and history."""
    found = directives(state).get(directive_id)
    if as_json:
        echo_json(found.to_dict())
        return
    d = found.directive
    click.echo(f"directive {d.id}  [{found.status}]")
    click.echo(f"  intent:      {d.intent}")
    for c in d.constraints:
        click.echo(f"  constraint:  {c}")
    for kind, names in d.scope.items():
        click.echo(f"  scope.{kind}: {', '.join(names)}")
    for key, amount in d.budget.items():
        click.echo(f"  budget.{key}: {amount:g}")
    click.echo(f"  created:     {d.created_at} by {d.created_by}")
    if d.supersedes:
        click.echo(f"  supersedes:  {d.supersedes}")
    click.echo(f"  hash:        {d.content_hash}")
    for run_id in found.runs:
        click.echo(f"  run:         {run_id}")


@directive_group.command("list")
@click.option("--status", help="Only directives in this status.")
@click.option("-n", "--limit", type=Count(), help="At most this many.")
@json_option()
@pass_state
def list_cmd(state: State, status: str | None, limit: int | None, as_json: bool) -> None:
    """Directives, newest first."""
    found = directives(state).list(status=status, limit=limit)
    if as_json:
        echo_json([{**d.to_record(), "status": s} for d, s in found])
        return
    print_table(
        ["id", "status", "created", "by", "intent"],
        [(d.id, s, d.created_at, d.created_by, _short(d.intent)) for d, s in found],
    )


def _mover(name: str, to: str | None, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("directive_id")
    @click.option("--reason", help="Why, recorded in its history.")
    @json_option()
    @pass_state
    # state positional-only: with **extra beside it, mypy's strict Concatenate would not let pass_state supply it.
    def command(state: State, /, directive_id: str, reason: str | None, as_json: bool, **extra: Any) -> None:
        target = to or extra["status"]
        event = directives(state).move(directive_id, target, reason=reason)
        if as_json:
            echo_json(event.to_record())
        else:
            click.echo(f"directive {directive_id}: {event.from_status} -> {event.to_status}")

    if to is None:
        command = click.option(
            "--status", type=click.Choice(["succeeded", "failed"]), default="succeeded", show_default=True
        )(command)
    return command


directive_group.add_command(_mover("approve", "approved", "Approve a draft: actions may then run under it."))
directive_group.add_command(_mover("reject", "rejected", "Reject a draft."))
directive_group.add_command(_mover("cancel", "cancelled", "Cancel a directive that is not finished."))
directive_group.add_command(
    _mover("start", "running", "Start an approved directive (the first action under it also does).")
)
directive_group.add_command(_mover("finish", None, "Finish a running directive as succeeded or failed."))


@directive_group.command("history")
@click.argument("directive_id")
@json_option()
@pass_state
def history_cmd(state: State, directive_id: str, as_json: bool) -> None:
    """Every transition and linked run of a directive, oldest first."""
    found = directives(state).get(directive_id)
    if as_json:
        echo_json([e.to_record() for e in found.events])
        return
    rows = []
    for e in found.events:
        what = f"{e.from_status or ''} -> {e.to_status}" if e.type != "run" else f"run {e.run_id}"
        rows.append((e.seq, e.ts, e.by, e.type, what, e.reason or ""))
    print_table(["seq", "time", "by", "event", "what", "reason"], rows)
