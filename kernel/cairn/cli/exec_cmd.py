"""``cairn exec MODULE --input JSON``: run an execution module through the policy gate, recorded as a run."""

from __future__ import annotations

import json

import click

from cairn.cli._app import State, echo_json, json_option, pass_state

__all__ = ["register"]


def register(cli: click.Group) -> None:
    cli.add_command(exec_command)


@click.command("exec")
@click.argument("module")
@click.option(
    "--input", "input_text", default="{}", show_default=True, help="The module's input, a JSON object (- reads stdin)."
)
@click.option("--directive", "directive_id", help="Run under this directive (it must be approved or running).")
@click.option(
    "--idempotency-key", metavar="KEY", help="Act only once for this key; a repeat returns the recorded result."
)
@json_option()
@pass_state
def exec_command(
    state: State, module: str, input_text: str, directive_id: str | None, idempotency_key: str | None, as_json: bool
) -> None:
    """Run execution MODULE (shell, http, python, or a plugin's) on its JSON input.

    The call asks the policy gate first, is recorded as a run (type exec) with
    its decision and result, and exits 0 when the module succeeded, 1 when it
    failed or timed out, 130 when it was cancelled.
    """
    from cairn.cli._app import read_stdin
    from cairn.errors import ValidationError
    from cairn.execution import execute

    text = read_stdin("the input") if input_text == "-" else input_text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--input is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ValidationError("--input must be a JSON object", hint='e.g. --input \'{"argv": ["ls"]}\'')
    outcome = execute(
        module,
        data,
        config=state.config,
        plugins=state.plugins,
        store=state.store,
        directive_id=directive_id,
        idempotency_key=idempotency_key,
        ledger=state.ledger,
    )
    result = outcome.result
    if as_json:
        echo_json(outcome.to_dict())
    else:
        for stream in ("stdout", "body"):
            if result.output.get(stream):
                click.echo(result.output[stream], nl=not str(result.output[stream]).endswith("\n"))
        if "result" in result.output:
            click.echo(json.dumps(result.output["result"]))
    note = (
        f"replayed run {outcome.original_run_id} (idempotency key {idempotency_key!r}); nothing was run again"
        if outcome.replayed
        else f"recorded {outcome.run_id} ({result.status})"
    )
    click.echo(note + (f": {result.error}" if result.error and not outcome.replayed else ""), err=True)
    click.get_current_context().exit({"ok": 0, "failed": 1, "timed_out": 1, "cancelled": 130}[result.status])
