"""``cairn logs``: the provider calls cairn made, and ``cairn logs show ID`` for one with its prompt and reply.

The log is the ledger's ``llm`` runs (``cairn.calls``); bodies are read from
context on request, never copied into the ledger.
"""

from __future__ import annotations

from typing import Any

import click

from cairn.cli._app import Count, State, echo_json, json_option, pass_state, print_table

__all__ = ["register"]


def register(cli: click.Group) -> None:
    cli.add_command(logs_group)


def _money(cost: float | None) -> str:
    return "unknown" if cost is None else f"{cost:.6f}"


def _tokens(usage: dict[str, Any] | None) -> str:
    if not usage:
        return ""
    mark = "~" if usage.get("estimated") else ""
    return f"{mark}{usage.get('input_tokens', 0)}/{mark}{usage.get('output_tokens', 0)}"


def _operation(call: Any) -> str:
    if call.kind == "call":
        return str(call.operation)
    return f"{call.operation} ({call.calls} call{'' if call.calls == 1 else 's'})"


def _short(digest: str | None) -> str:
    return digest[:12] if digest else ""


@click.group("logs", invoke_without_command=True)
@click.option("-n", "--limit", type=Count(), default=20, show_default=True, help="At most this many calls.")
@click.option("-m", "--model", help="Only calls to this model.")
@click.option("--since", help="Only calls at or after this time (ISO-8601) or this long ago (7d, 12h).")
@click.option("-q", "--query", "text", help="Only calls whose prompt or reply contains this (case-insensitive).")
@click.option("--conversation", metavar="SESSION", help="Only calls made on this branch (a session is a branch).")
@click.option("--bodies", is_flag=True, help="With --json: include the prompt and reply texts, read from context.")
@json_option()
@click.pass_context
def logs_group(
    ctx: click.Context,
    limit: int,
    model: str | None,
    since: str | None,
    text: str | None,
    conversation: str | None,
    bodies: bool,
    as_json: bool,
) -> None:
    """Provider calls, newest first: time, provider, model, usage, cost, latency, outcome and their commits.

    Each `cairn ask` or `cairn embed` is one call. An ask's question and
    reply are context commits (the prompt and reply columns); `cairn logs
    show ID` prints the materialized prompt and the reply. Calls made inside
    another run (an evaluation's generation and judges) are one entry per run, with the number of calls and their summed usage and cost.
    """
    if ctx.invoked_subcommand is not None:
        return
    from cairn.calls import list_calls

    state = ctx.ensure_object(State)
    if bodies and not as_json:
        raise click.UsageError("--bodies goes with --json")
    needs_repo = text is not None or bodies
    repo = state.repo if needs_repo else None
    calls = list_calls(
        state.ledger, limit=limit, model=model, since=since, text=text, conversation=conversation, repo=repo
    )
    if as_json:
        rows: list[dict[str, Any]] = []
        for call in calls:
            row = call.to_dict()
            if bodies:
                assert repo is not None
                row.update(call.bodies(repo))
            rows.append(row)
        echo_json(rows)
        return
    if not calls:
        filtered = any(v is not None for v in (model, since, text, conversation))
        click.echo("no provider calls recorded" + (" matching that" if filtered else ""))
        return
    print_table(
        [
            "id",
            "time",
            "operation",
            "provider",
            "model",
            "tokens in/out",
            "cost",
            "latency",
            "outcome",
            "prompt",
            "reply",
        ],
        [
            [
                call.id,
                call.time[:19],
                _operation(call),
                call.provider or "",
                call.model or "",
                _tokens(call.usage),
                _money(call.cost) if call.outcome == "ok" else "",
                "" if call.latency_ms is None else f"{call.latency_ms:.0f} ms",
                call.outcome,
                _short(call.prompt_commit),
                _short(call.reply_commit),
            ]
            for call in calls
        ],
    )


@logs_group.command("show")
@click.argument("call_id")
@json_option()
@pass_state
def logs_show(state: State, call_id: str, as_json: bool) -> None:
    """One call (an id from `cairn logs`, or @last) with its materialized prompt and its reply."""
    from cairn.calls import get_call_and_spend

    call, records = get_call_and_spend(state.ledger, call_id)
    if call.kind != "call":
        _show_within(call, records, as_json)
        return
    prompt = None
    if call.prompt_commit:
        budget = state.ledger.get(call.id).metadata.get("budget")
        # As of the question: later annotations and edits do not rewrite what was sent.
        prompt = state.repo.materialize(call.prompt_commit, as_of=call.prompt_commit, budget=budget)
    reply = call.bodies(state.repo)["reply"]
    attempts = [e.to_record() for e in state.ledger.events(call.id) if e.type == "attempt"]
    if as_json:
        echo_json(
            {
                **call.to_dict(),
                "prompt": None if prompt is None else list(prompt.messages),
                "reply": reply,
                "attempt_events": attempts,
            }
        )
        return
    for key, value in call.to_dict().items():
        if value not in (None, "", [], {}):
            click.echo(f"{key:<14}{value}")
    click.echo(
        "\n-- prompt" + ("" if prompt is None else f" ({prompt.token_count} tokens, {prompt.commit_count} items)")
    )
    if prompt is None:
        click.echo("(no prompt commit recorded)")
    else:
        for message in prompt.neutral_messages:
            click.echo(f"[{message.role}] {message.content or ''}")
    click.echo("\n-- reply")
    click.echo(reply if reply is not None else "(no reply)")


def _show_within(call: Any, records: list[Any], as_json: bool) -> None:
    """The provider calls made inside another run, by provider, model and outcome."""
    from cairn.calls import spend_breakdown

    breakdown = spend_breakdown(records)
    if as_json:
        echo_json({**call.to_dict(), "breakdown": breakdown})
        return
    for key, value in call.to_dict().items():
        if value not in (None, "", [], {}) and key not in ("prompt_commit", "reply_commit"):
            click.echo(f"{key:<14}{value}")
    click.echo(f"\n-- calls made inside {call.operation} run {call.id} (`cairn runs show {call.id}` shows the run)")
    print_table(
        ["provider", "model", "outcome", "calls", "tokens in/out", "cost"],
        [
            [
                row["provider"],
                row["model"],
                row["outcome"],
                str(row["calls"]),
                f"{row['input_tokens']}/{row['output_tokens']}",
                _money(row["cost"]),
            ]
            for row in breakdown
        ],
    )
