"""``cairn policy show|check|explain`` and ``cairn approvals list``, ``cairn approve``, ``cairn deny``.

The policy is ``[policy]`` in cairn.toml (``cairn.policy``); a bad rule is an
error naming the file, line and key. ``check`` evaluates an action offline;
``explain`` shows the decisions recorded in a run. Approvals are actions
the gate parked until a person decides (``cairn.approvals``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import Count, SafePath, State, echo_json, json_option, pass_state, print_table, read_text_file

if TYPE_CHECKING:  # pragma: no cover
    from cairn.approvals import Approvals

__all__ = ["register"]


def register(cli: click.Group) -> None:
    cli.add_command(policy_group)
    cli.add_command(approvals_group)
    cli.add_command(approve_cmd)
    cli.add_command(deny_cmd)


@click.group("policy")
def policy_group() -> None:
    """The policy gate: the rules in [policy], offline checks, and why a run's steps ran or stopped."""


@policy_group.command("show")
@json_option()
@pass_state
def show_cmd(state: State, as_json: bool) -> None:
    """The policy in force: version, default decision and rules, in the order written."""
    from cairn.policy import load_policy

    policy = load_policy(state.config)
    if as_json:
        import attrs

        echo_json(attrs.asdict(policy))
        return
    click.echo(
        f"policy version {policy.version}, default {policy.default}, approvals expire after {policy.approval_ttl}"
    )
    print_table(
        ["rule", "decision", "actions", "reason"],
        [(r.name, r.decision, ",".join(r.actions) or "*", r.reason) for r in policy.rules],
    )


@policy_group.command("check")
@click.argument("action_file", type=SafePath(dir_okay=False, allow_dash=True))
@click.option("--directive", "directive_id", help="Evaluate as if under this directive (read from the store).")
@json_option()
@pass_state
def check_cmd(state: State, action_file: str, directive_id: str | None, as_json: bool) -> None:
    """Evaluate the action in ACTION_FILE (JSON; - reads standard input) offline: nothing is recorded or run.

    Exits 0 when allowed, 3 when it needs approval, 4 when denied.
    """
    from cairn.cli._app import read_stdin
    from cairn.errors import ValidationError
    from cairn.gate import Gate
    from cairn.policy import Action, evaluate, load_policy

    text = read_stdin("the action") if action_file == "-" else read_text_file(action_file, "action file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{action_file}:{exc.lineno}: not JSON ({exc.msg})", hint='e.g. {"kind": "provider", "name": "openai"}'
        ) from None
    action = Action.from_dict(data)
    policy = load_policy(state.config)
    gate = Gate(policy, state.store if directive_id else None, directive_id=directive_id)
    if directive_id is not None and action.directive is None:
        import attrs

        action = attrs.evolve(action, directive=directive_id)
    decision = evaluate(policy, action, gate.context())
    if as_json:
        echo_json({"action": action.to_dict(), **decision.to_dict()})
    else:
        click.echo(
            f"{decision.outcome}: {decision.reason} (rule {decision.rule}, policy version {decision.policy_version})"
        )
    click.get_current_context().exit({"allow": 0, "needs-approval": 3, "deny": 4}[decision.outcome])


@policy_group.command("explain")
@click.argument("run_ref")
@json_option()
@pass_state
def explain_cmd(state: State, run_ref: str, as_json: bool) -> None:
    """Why each gated step of a run ran or was stopped: the decisions recorded in it (@last: the newest run)."""
    from cairn.gate import DECISION_EVENT

    run = state.ledger.get(run_ref)
    decisions = [e.fields for e in state.ledger.events(run.run_id) if e.type == DECISION_EVENT]
    if as_json:
        echo_json({"run_id": run.run_id, "status": run.status, "decisions": decisions})
        return
    if not decisions:
        original = run.metadata.get("replayed_from")
        if original:
            click.echo(
                f"run {run.run_id} replayed run {original} (an idempotency key); see cairn policy explain {original}"
            )
        else:
            click.echo(f"run {run.run_id} recorded no policy decisions")
        return
    rows = []
    for d in decisions:
        action = d.get("action", {})
        what = f"{action.get('kind')} {action.get('name')}" + (f" ({action['model']})" if action.get("model") else "")
        rows.append(
            (what, d.get("outcome"), d.get("rule"), d.get("policy_version"), d.get("approval") or "", d.get("reason"))
        )
    print_table(["action", "outcome", "rule", "version", "approval", "reason"], rows, title=f"run {run.run_id}")


# -- approvals --------------------------------------------------------------------------------


def approvals(state: State) -> Approvals:
    from cairn.approvals import Approvals
    from cairn.directives import _user

    return Approvals(state.store, user=_user())


def _approval_row(a: Any, moment: str) -> tuple[Any, ...]:
    status = "expired" if a.status == "pending" and a.expired(moment) else a.status
    action = a.action
    what = f"{action.get('kind')} {action.get('name')}" + (f" ({action['model']})" if action.get("model") else "")
    return (a.id, status, a.created_at, a.expires_at, what, a.rule, a.reason)


@click.group("approvals")
def approvals_group() -> None:
    """Actions the policy gate parked until a person approves or denies them."""


@approvals_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Every approval, not only those waiting.")
@click.option("-n", "--limit", type=Count(), help="At most this many.")
@json_option()
@pass_state
def list_cmd(state: State, show_all: bool, limit: int | None, as_json: bool) -> None:
    """Approvals waiting for a decision (with --all: every one), newest first."""
    from cairn.model import now

    found = approvals(state).list(status=None if show_all else "pending", limit=limit)
    moment = now()
    if not show_all:
        found = [a for a in found if not a.expired(moment)]
    if as_json:
        echo_json([{**a.to_record(), "expired": a.status == "pending" and a.expired(moment)} for a in found])
        return
    print_table(
        ["id", "status", "created", "expires", "action", "rule", "reason"], [_approval_row(a, moment) for a in found]
    )


def _decider(name: str, approve: bool, help_text: str) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("approval_id")
    @click.option("--reason", help="Why, recorded with the decision.")
    @json_option()
    @pass_state
    def command(state: State, approval_id: str, reason: str | None, as_json: bool) -> None:
        decided = approvals(state).decide(approval_id, approve=approve, reason=reason)
        if as_json:
            echo_json(decided.to_record())
        else:
            click.echo(f"approval {decided.id}: {decided.status}")
            if approve:
                click.echo("  run the action again: it goes through once")

    return command


approve_cmd = _decider("approve", True, "Approve a pending action: the next identical attempt goes through, once.")
deny_cmd = _decider("deny", False, "Deny a pending action: identical attempts are refused.")
