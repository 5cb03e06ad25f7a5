"""Provider commands: ``cairn ask``, ``cairn embed``, ``cairn providers``, ``cairn spend``.

Nothing heavy is imported at module level: ``cairn.providers`` is imported
by each command, and a provider's own libraries (httpx, numpy) by its factory.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

import click

from cairn.asking import MAX_TOOL_ROUNDS
from cairn.cli._app import Count, State, echo_json, json_option, pass_state, print_table

if TYPE_CHECKING:  # pragma: no cover
    from cairn.providers import Providers


def register(cli: click.Group) -> None:
    for command in (ask_command, embed_command, providers_command, spend_command):
        cli.add_command(command)


def _providers(state: State, **options: Any) -> Providers:
    from cairn.providers import Providers

    repo = state.repo
    return Providers(state.config, state.plugins, store=repo.store, tokenizer=repo.tokenizer, **options)


# -- ask -----------------------------------------------------------------------------------


@click.command("ask")
@click.argument("text")
@click.option("--model", help="The model to ask (default: the provider's model).")
@click.option("--budget", type=Count(), help="Token budget of the context sent (capped by the model's window).")
@click.option("--no-stream", is_flag=True, help="Wait for the whole reply instead of printing it as it arrives.")
@json_option("Print the reply, its commits, usage and cost as JSON (implies --no-stream).")
@click.option("--directive", "directive_id", help="Ask under this directive: its scope and budget bound the call.")
@click.option(
    "--tools",
    "use_tools",
    is_flag=True,
    help=f"Offer the model the tools of [tools.NAME]; each call and result is committed (at most {MAX_TOOL_ROUNDS} rounds).",
)
@pass_state
def ask_command(
    state: State,
    text: str,
    model: str | None,
    budget: int | None,
    no_stream: bool,
    as_json: bool,
    directive_id: str | None,
    use_tools: bool,
) -> None:
    """Ask the configured LLM about the current branch and commit both the question and the reply.

    TEXT ("-" reads standard input) is committed as a user dialogue item; the
    branch is materialized within the model's context window (and --budget),
    sent to [cairn] llm, and the reply is committed as an assistant item whose
    commit metadata holds the model, usage and cost. With --directive the call
    is a run (type ask) linked to the directive, and the policy gate bounds it
    by the directive's scope and budget.

    With --tools the configured tools are sent too: each tool call is
    committed as a tool_io item, run through the policy gate and the
    execution path, its result committed, and the model asked again until it
    answers (docs/configuration.md, [tools.NAME]).
    """
    if directive_id is None:
        _ask(state, text, model, budget, no_stream, as_json, use_tools=use_tools)
        return
    from cairn.directives import Directives
    from cairn.gate import Gate

    directives = Directives(state.store)
    directives.running(directive_id)  # an approved directive starts here; any other status is refused
    with state.ledger.open("ask", summary="cairn ask", metadata={"directive": directive_id}) as run:
        directives.link_run(directive_id, run.run_id)
        gate = Gate.from_config(state.config, state.store, directive_id=directive_id, run=run)
        _ask(state, text, model, budget, no_stream, as_json, use_tools=use_tools, gate=gate, run_id=run.run_id)


def _ask(
    state: State,
    text: str,
    model: str | None,
    budget: int | None,
    no_stream: bool,
    as_json: bool,
    *,
    use_tools: bool = False,
    **provider_options: Any,
) -> None:
    from cairn.asking import ask
    from cairn.cli.artifacts_cmd import image_reader
    from cairn.sessions import Sessions

    if text == "-":
        text = sys.stdin.read().rstrip("\n")  # the newline that ends the input is not part of the question
    repo = state.repo
    tools = _configured_tools(state) if use_tools else None
    # On a session's branch the ask is the session's: its provider and model, its running totals.
    session = Sessions(repo).on_branch(repo.branch)
    if session is not None:
        session.check_open()
        model = model or session.record.model
    streamed = False

    def show(piece: str) -> None:
        nonlocal streamed
        streamed = True
        click.echo(piece, nl=False)
        sys.stdout.flush()

    # The recording closes after the providers: a failure that escapes is recorded as the call's outcome.
    with contextlib.ExitStack() as recording, _providers(state, **provider_options) as providers:
        llm = providers.llm(session.record.provider if session is not None else None)
        if llm.provider.readiness() is None:
            recorder = recording.enter_context(_call_recorder(state, providers))
        else:
            recorder = None  # ask raises the readiness problem before anything is recorded
        try:
            result = ask(
                repo,
                llm,
                text,
                model=model,
                budget=budget,
                stream=not (no_stream or as_json),
                on_text=show,
                recorder=recorder,
                images=lambda: image_reader(state),
                derive_metadata=session.totals_after if session is not None else None,
                tools=[spec.to_provider() for spec in tools.values()] if tools is not None else None,
                run_tools=(
                    (lambda response: _run_tool_calls(state, repo, response, tools, provider_options.get("gate")))
                    if tools is not None
                    else None
                ),
            )
        finally:
            if streamed:
                click.echo()
                streamed = False
    if as_json:
        echo_json(result.to_dict())
        return
    if no_stream:
        click.echo(result.content)
    meta = result.metadata
    usage, cost = meta["usage"], meta["cost"]
    cost_text = "unknown cost" if cost is None else f"cost {cost:.6f}"
    tokens = f"{usage['input_tokens']} in / {usage['output_tokens']} out" if usage else "no usage"
    estimated = " (estimated)" if usage and usage["estimated"] else ""
    click.echo(
        f"[{meta['provider']} {meta['model']}] {tokens}{estimated}, {cost_text}; "
        f"committed {result.question.short} and {result.reply.short}",
        err=True,
    )


def _configured_tools(state: State) -> dict[str, Any]:
    """The tools of [tools.NAME], by name; a problem in their tables is an error before anything is asked."""
    from cairn.config_agents import load_agent_config
    from cairn.errors import ValidationError

    agents, problems = load_agent_config(state.config)
    if problems:
        raise problems[0]
    if not agents.tools:
        raise ValidationError(
            "--tools: no tools are configured",
            hint="add a [tools.NAME] table to cairn.toml (docs/configuration.md), or ask without --tools",
        )
    return dict(agents.tools)


def _run_tool_calls(state: State, repo: Any, response: Any, tools: dict[str, Any], gate: Any) -> None:
    """Commit each tool call, run it through the gate and the execution path, and commit its result."""
    import json

    from cairn.agent_tools import ToolOutcome, run_tool
    from cairn.gate import Gate

    gate = gate or Gate.from_config(state.config, state.store)
    if response.content:  # words said beside the calls are part of the conversation too
        repo.append({"content_type": "dialogue", "role": "assistant", "text": response.content}, message="cairn ask")
    for call in response.tool_calls:
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        payload = arguments if isinstance(arguments, dict) else {}
        repo.append(
            {
                "content_type": "tool_io",
                "tool_name": call.name,
                "direction": "call",
                "payload": payload,
                "call_id": call.id,
            },
            message=f"cairn ask: tool call {call.name}",
        )
        spec = tools.get(call.name)
        if spec is None:
            outcome = ToolOutcome("error", {"error": f"no tool called {call.name!r}; offered: {', '.join(tools)}"})
        elif not isinstance(arguments, dict):
            outcome = ToolOutcome("error", {"error": "the arguments are not a JSON object"})
        else:
            outcome = run_tool(
                spec, arguments, config=state.config, plugins=state.plugins, store=state.store, gate=gate
            )
        repo.append(
            {
                "content_type": "tool_io",
                "tool_name": call.name,
                "direction": "result",
                "payload": outcome.payload,
                "status": outcome.status,
                "call_id": call.id,
            },
            message=f"cairn ask: tool result {call.name}",
            metadata={"run_id": outcome.run_id} if outcome.run_id else None,
        )
        click.echo(f"[tool {call.name}: {outcome.status}]", err=True)


def _call_recorder(state: State, providers: Providers, operation: str = "ask") -> Any:
    """A ``CallRecorder`` whose run the meter's spend records point at; a no-op on a store without a ledger."""
    from cairn.storage import RunStore

    if not isinstance(state.store, RunStore):
        return _Unrecorded()
    from cairn.calls import CallRecorder

    return CallRecorder(state.ledger, operation=operation, branch=state.repo.branch, meter=providers.meter)


class _Unrecorded:
    """Stands in for ``CallRecorder`` when the store keeps no run ledger (context-only backends)."""

    def __enter__(self) -> _Unrecorded:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def note(self, **metadata: Any) -> None:
        return None

    def finish(self, **metadata: Any) -> None:
        return None


# -- embed ---------------------------------------------------------------------------------


@click.command("embed")
@click.argument("texts", nargs=-1, required=True)
@json_option("Print every vector, usage and cost as JSON.")
@pass_state
def embed_command(state: State, texts: tuple[str, ...], as_json: bool) -> None:
    """Embed each TEXT with the configured embedding provider ([cairn] embeddings)."""
    with contextlib.ExitStack() as recording, _providers(state) as providers:
        embedder = providers.embeddings()
        recorder = recording.enter_context(_call_recorder(state, providers, operation="embed"))
        response = embedder.embed(list(texts))
        recorder.finish(
            provider=response.provider,
            model=response.model,
            usage=response.usage.to_dict() if response.usage else None,
            cost=None if response.cost is None else round(response.cost, 12),
            latency_ms=round(response.latency_s * 1000, 1),
            request_id=response.request_id,
            texts=len(texts),
        )
    if as_json:
        echo_json({**response.to_dict(), "texts": list(texts)})
        return
    rows = []
    for text, vector in zip(texts, response.vectors, strict=True):
        values = [float(x) for x in vector]
        norm = sum(v * v for v in values) ** 0.5
        head = ", ".join(f"{v:+.4f}" for v in values[:4])
        rows.append([_clip(text), len(values), f"{norm:.4f}", f"[{head}, …]"])
    print_table(["text", "dimensions", "norm", "vector"], rows)
    cost = "unknown cost" if response.cost is None else f"cost {response.cost:.6f}"
    tokens = response.usage.input_tokens if response.usage else 0
    click.echo(f"[{response.provider} {response.model}] {tokens} tokens, {cost}", err=True)


def _clip(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# -- providers -----------------------------------------------------------------------------


@click.command("providers")
@json_option()
@pass_state
def providers_command(state: State, as_json: bool) -> None:
    """List LLM and embedding providers: the chosen ones (*), their capabilities, and whether each is ready."""
    with _providers(state) as providers:
        infos = providers.describe()
    if as_json:
        echo_json([info.to_dict() for info in infos])
        return
    rows = []
    for info in infos:
        ready = "yes" if info.ready else f"no: {info.problem}"
        rows.append(
            [
                info.kind,
                ("* " if info.selected else "  ") + info.name,
                info.model or "",
                _capabilities(info.kind, info.capabilities),
                ready,
                info.plugin,
            ]
        )
    print_table(["kind", "provider", "model", "capabilities", "ready", "plugin"], rows)


def _capabilities(kind: str, caps: dict[str, Any] | None) -> str:
    if not caps:
        return ""
    if kind == "llm":
        flags = [name for name in ("streaming", "tools", "json_schema") if caps.get(name)]
        window = caps.get("context_window")
        out = caps.get("max_output_tokens")
        sizes = f"window {window or '?'}, output {out or '?'}"
        return ", ".join([*flags, sizes])
    dims = caps.get("dimensions")
    limit = caps.get("max_input_tokens")
    return f"{dims or '?'} dimensions, batch {caps.get('max_batch')}, {limit or '?'} tokens per text"


# -- spend ---------------------------------------------------------------------------------


def _since(value: str | None) -> str | None:
    """A stored-time lower bound from ``today``, ``7d``, ``24h``, a date or an ISO time."""
    from cairn.ledger import parse_moment

    return None if value is None else parse_moment(value, "--since")


@click.command("spend")
@click.option("--since", help="Only calls at or after this: today, 7d, 24h, a date or an ISO time (UTC).")
@json_option()
@pass_state
def spend_command(state: State, since: str | None, as_json: bool) -> None:
    """What provider calls cost, by day (UTC), provider and model; an unknown price shows as unknown, never 0."""
    from cairn.storage import RunStore, require

    records = require(state.store, RunStore, doing="cairn spend").spend(since=_since(since))
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    total = _bucket()
    for record in records:
        for bucket in (groups.setdefault((record.day, record.provider, record.model), _bucket()), total):
            bucket["calls"] += record.calls
            bucket["refused"] += 1 if record.calls == 0 else 0
            bucket["failed"] += 1 if record.outcome not in ("ok", "cancelled") and record.calls else 0
            bucket["input_tokens"] += record.input_tokens
            bucket["output_tokens"] += record.output_tokens
            if record.cost is None:
                bucket["unpriced_calls"] += record.calls or 0
            else:
                bucket["priced_cost"] += record.cost
    rows = [
        {"day": day, "provider": provider, "model": model, **_finish(bucket)}
        for (day, provider, model), bucket in sorted(groups.items())
    ]
    if as_json:
        echo_json({"since": _since(since), "groups": rows, "total": _finish(total)})
        return
    if not rows:
        click.echo("no provider calls recorded" + (f" since {since}" if since else ""))
        return
    table = [
        [
            r["day"],
            r["provider"],
            r["model"],
            r["calls"],
            r["failed"],
            r["refused"],
            r["input_tokens"],
            r["output_tokens"],
            _money(r),
        ]
        for r in rows
    ]
    finished = _finish(total)
    table.append(
        [
            "total",
            "",
            "",
            finished["calls"],
            finished["failed"],
            finished["refused"],
            finished["input_tokens"],
            finished["output_tokens"],
            _money(finished),
        ]
    )
    print_table(["day", "provider", "model", "calls", "failed", "refused", "input", "output", "cost"], table)


def _bucket() -> dict[str, Any]:
    return {
        "calls": 0,
        "failed": 0,
        "refused": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "priced_cost": 0.0,
        "unpriced_calls": 0,
    }


def _finish(bucket: dict[str, Any]) -> dict[str, Any]:
    """``cost`` is the total when every call was priced, else None; ``priced_cost`` sums what is known."""
    out = dict(bucket)
    out["priced_cost"] = round(out["priced_cost"], 10)
    out["cost"] = out["priced_cost"] if out["unpriced_calls"] == 0 else None
    return out


def _money(row: dict[str, Any]) -> str:
    if row["cost"] is not None:
        return f"{row['cost']:.6f}"
    if row["priced_cost"]:
        return f"{row['priced_cost']:.6f} + unknown ({row['unpriced_calls']} unpriced calls)"
    return "unknown"
