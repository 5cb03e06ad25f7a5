"""Evaluation commands: ``cairn eval run|show|compare`` and ``cairn evaluators``.

``cairn.evaluate`` is imported by each command, never at module level, so
``cairn --help`` does not pay for it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from cairn.cli._app import State, echo_json, json_option, pass_state, print_table

if TYPE_CHECKING:  # pragma: no cover
    from cairn.evaluate import Aggregate, Comparison, EvalRun

__all__ = ["register"]


def register(cli: click.Group) -> None:
    cli.add_command(eval_group)
    cli.add_command(evaluators_command)


@click.group("eval")
def eval_group() -> None:
    """Score a dataset with evaluators, show eval runs, compare two of them."""


# -- formatting ----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def _interval(low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None or high is None:
        return "-"
    fmt = _signed if signed else _num
    return f"[{fmt(low)}, {fmt(high)}]"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


def _aggregate_rows(labels: list[str], kinds: dict[str, str], aggregates: dict[str, Aggregate]) -> list[list[Any]]:
    rows = []
    for label in labels:
        agg = aggregates[label]
        rows.append(
            [
                label,
                kinds.get(label, ""),
                _num(agg.mean),
                _interval(agg.ci_low, agg.ci_high),
                _percent(agg.pass_rate),
                agg.passed,
                agg.failed,
                agg.errors,
                agg.skipped,
            ]
        )
    return rows


_AGGREGATE_COLUMNS = ["evaluator", "kind", "mean", "95% CI", "pass rate", "passed", "failed", "errors", "skipped"]


def _first_reasons(scores_by_label: dict[str, list[Any]]) -> list[str]:
    """One line per evaluator that skipped or failed samples: how many, and the first reason."""
    lines = []
    for label, scores in scores_by_label.items():
        for outcome in ("error", "skipped"):
            hit = [s for s in scores if s.outcome == outcome]
            if hit:
                reason = hit[0].reason.splitlines()[0] if hit[0].reason else ""
                noun = "errors" if outcome == "error" else "skipped"
                lines.append(f"{label}: {len(hit)} {noun}, e.g. {reason[:300]}")
    return lines


# -- eval run ------------------------------------------------------------------------------


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(done: int, total: int, phase: str) -> None:
            key = "generate" if phase == "generate" else "score"
            if key not in tasks:
                tasks[key] = bar.add_task("generating" if key == "generate" else "scoring", total=total)
            bar.update(
                tasks[key],
                completed=done,
                total=total,
                description="generating outputs" if key == "generate" else f"scoring: {phase}",
            )

        yield update


@eval_group.command("run")
@click.argument("dataset")
@click.option(
    "-e",
    "--evaluator",
    "specs",
    multiple=True,
    metavar="NAME[:KEY=VALUE,...]",
    help="An evaluator and its parameters (repeatable); default: every [evaluators.<name>] table.",
)
@click.option("--generate", is_flag=True, help="Generate each output with [cairn] llm from the sample's input.")
@click.option("--model", help="The model that generates outputs (with --generate; default: the provider's).")
@click.option("--name", "label", help="A name for the run, usable wherever a run is asked for.")
@json_option("Print the recorded run: id, status, manifest and aggregates, as JSON.")
@pass_state
def eval_run(
    state: State,
    dataset: str,
    specs: tuple[str, ...],
    generate: bool,
    model: str | None,
    label: str | None,
    as_json: bool,
) -> None:
    """Score DATASET (a JSONL file, or package:path for one shipped in a package) and record the run.

    Each line of DATASET is a JSON object with an "id" and any of "input",
    "expected", "output", "context" and "metadata". Every evaluator scores
    every sample; the run (type eval) is recorded in the ledger with its
    manifest and one event per sample, in one write.
    """
    from cairn.errors import ValidationError
    from cairn.evaluate import build_evaluators, load_dataset, new_eval_run_id, record_evaluation, run_evaluation

    if model and not generate:
        raise ValidationError("--model chooses the model that generates outputs", hint="add --generate")
    data = load_dataset(dataset, base=state.cwd)
    if not specs:
        specs = tuple(sorted(state.config.table("evaluators")))
        if not specs:
            raise ValidationError(
                "no evaluators to run",
                hint="pass --evaluator NAME (repeatable; `cairn evaluators` lists them) "
                "or add [evaluators.<name>] tables to cairn.toml",
            )
    configured = build_evaluators(specs, state.plugins, state.config)
    run_id = new_eval_run_id()

    def providers() -> Any:
        from cairn.providers import Providers

        return Providers(state.config, state.plugins, store=state.store, tokenizer=state.repo.tokenizer, run_id=run_id)

    with _progress(sys.stderr.isatty() and not as_json) as progress:
        evaluation = run_evaluation(
            data, configured, providers=providers, generate=generate, model=model, progress=progress
        )
    run = record_evaluation(
        state.ledger, evaluation, name=label, plugins=state.plugins, config=state.config, run_id=run_id
    )
    if as_json:
        echo_json({"run_id": run.run_id, "status": run.status, "summary": run.summary, **run.metadata})
        return
    kinds = {c.label: c.kind for c in configured}
    print_table(_AGGREGATE_COLUMNS, _aggregate_rows(evaluation.labels, kinds, evaluation.aggregates))
    scores = {c.label: [r.scores[c.label] for r in evaluation.results] for c in configured}
    for line in _first_reasons(scores):
        click.echo(line)
    if evaluation.generation is not None:
        gen = evaluation.generation
        cost = "unknown cost" if gen["cost"] is None else f"cost {gen['cost']:.6f}"
        click.echo(
            f"generated {gen['samples'] - gen['failed']}/{gen['samples']} outputs with {gen['provider']} "
            f"({', '.join(gen['models']) or 'no model answered'}): {gen['input_tokens']} in / "
            f"{gen['output_tokens']} out, {cost}",
            err=True,
        )
    named = f" as {label!r}" if label else ""
    click.echo(
        f"recorded {run.run_id}{named} ({run.status}): {len(data)} samples of {dataset}, sha256 {data.sha256[:12]}",
        err=True,
    )


# -- eval show -----------------------------------------------------------------------------


def _load(state: State, ref: str) -> EvalRun:
    from cairn.evaluate import load_eval_run

    return load_eval_run(state.ledger, ref)


@eval_group.command("show")
@click.argument("run_ref", metavar="RUN")
@click.option("--samples", "show_samples", is_flag=True, help="Also list every sample's scores.")
@json_option("Print the run record and every sample event as JSON.")
@pass_state
def eval_show(state: State, run_ref: str, show_samples: bool, as_json: bool) -> None:
    """One eval run: dataset, evaluators, aggregates (RUN: @last, @prev, @last~N, an id or a --name)."""
    run = _load(state, run_ref)
    if as_json:
        echo_json({"run": run.run.to_record(), "samples": list(run.samples)})
        return
    meta = run.manifest
    dataset = meta.get("dataset", {})
    click.echo(f"run       {run.run_id}" + (f" ({run.name})" if run.name else ""))
    click.echo(f"status    {run.run.status}, {run.run.started_at[:19]}, took {(run.run.duration_ms or 0) / 1000:.1f}s")
    click.echo(
        f"dataset   {dataset.get('reference')} ({dataset.get('samples')} samples, "
        f"sha256 {str(dataset.get('sha256'))[:12]})"
    )
    if meta.get("generated"):
        gen = meta.get("generation") or {}
        click.echo(f"outputs   generated by {gen.get('provider')} ({', '.join(gen.get('models') or [])})")
    plugins = ", ".join(f"{name} {version}" for name, version in sorted((meta.get("plugins") or {}).items()))
    click.echo(f"plugins   {plugins}")
    kinds = {e["label"]: e.get("kind", "") for e in meta.get("evaluators", [])}
    print_table(_AGGREGATE_COLUMNS, _aggregate_rows(run.labels, kinds, run.aggregates()))
    scores = {label: [run.scores[i][label] for i in run.sample_ids if label in run.scores[i]] for label in run.labels}
    for line in _first_reasons(scores):
        click.echo(line)
    if show_samples:
        rows = []
        for sample_id in run.sample_ids:
            row: list[Any] = [sample_id]
            for label in run.labels:
                score = run.scores[sample_id].get(label)
                if score is None:
                    row.append("")
                elif score.ok:
                    row.append(f"{score.value:.3f} {'pass' if score.passed else 'fail'}")
                else:
                    row.append(score.outcome)
            rows.append(row)
        print_table(["sample", *run.labels], rows)


# -- eval compare --------------------------------------------------------------------------


@eval_group.command("compare")
@click.argument("base_ref", metavar="BASE")
@click.argument("run_ref", metavar="RUN")
@click.option(
    "--resamples",
    type=click.IntRange(min=1, max=10_000_000),
    default=10_000,
    show_default=True,
    help="Paired bootstrap resamples.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@json_option()
@pass_state
def eval_compare(state: State, base_ref: str, run_ref: str, resamples: int, seed: int, as_json: bool) -> None:
    """Compare RUN against BASE sample by sample: differences, improvements, regressions, significance.

    Samples are paired by id. For each evaluator both runs used: the mean
    difference with its 95% confidence interval, a paired bootstrap p-value
    on the scores and an exact McNemar p-value on pass/fail.
    """
    from cairn.evaluate import compare_runs

    base = _load(state, base_ref)
    run = _load(state, run_ref)
    comparison = compare_runs(base, run, resamples=resamples, seed=seed)
    if as_json:
        echo_json({**comparison.to_dict(), "base_name": base.name, "run_name": run.name})
        return
    _print_comparison(comparison, base, run)


def _print_comparison(comparison: Comparison, base: EvalRun, run: EvalRun) -> None:
    click.echo(f"base  {base.run_id}" + (f" ({base.name})" if base.name else ""))
    click.echo(f"run   {run.run_id}" + (f" ({run.name})" if run.name else ""))
    rows = []
    for e in comparison.evaluators:
        rows.append(
            [
                e.label,
                e.paired,
                _num(e.base_mean),
                _num(e.run_mean),
                f"{_signed(e.mean_difference)} {_interval(e.ci_low, e.ci_high, signed=True)}",
                _p(e.p_value),
                f"{_percent(e.base_pass_rate)} -> {_percent(e.run_pass_rate)}",
                _p(e.mcnemar_p_value),
                f"+{len(e.improvements)} -{len(e.regressions)} ={e.unchanged}",
                e.verdict,
            ]
        )
    print_table(
        [
            "evaluator",
            "paired",
            "base",
            "run",
            "difference [95% CI]",
            "p (bootstrap)",
            "pass rate",
            "p (McNemar)",
            "better/worse/same",
            "verdict",
        ],
        rows,
    )
    for e in comparison.evaluators:
        if e.not_comparable:
            click.echo(f"{e.label}: {e.not_comparable} samples skipped or errored in a run, left out")
        for warning in e.warnings:
            click.echo(f"{e.label}: warning: {warning}")
        if e.regressions:
            shown = ", ".join(e.regressions[:10]) + (", ..." if len(e.regressions) > 10 else "")
            click.echo(f"{e.label}: regressions: {shown}")
    if comparison.only_in_base or comparison.only_in_run:
        click.echo(f"samples only in base: {len(comparison.only_in_base)}, only in run: {len(comparison.only_in_run)}")
    for label in comparison.evaluators_only_in_base:
        click.echo(f"{label}: only in base, not compared")
    for label in comparison.evaluators_only_in_run:
        click.echo(f"{label}: only in run, not compared")
    click.echo(
        f"paired bootstrap: {comparison.resamples} resamples, seed {comparison.seed}; "
        f"significant below p = {comparison.alpha}",
        err=True,
    )


# -- evaluators ----------------------------------------------------------------------------


@click.command("evaluators")
@json_option()
@pass_state
def evaluators_command(state: State, as_json: bool) -> None:
    """List installed evaluators: kind, the inputs each needs, default threshold, parameters and plugin."""
    from cairn.evaluate import describe_evaluators

    infos = describe_evaluators(state.plugins, state.config)
    if as_json:
        echo_json([info.to_dict() for info in infos])
        return
    if not infos:
        click.echo("no evaluators installed (pip install cairn-evals)")
        return
    rows = []
    for info in infos:
        params = " ".join(f"{k}={_param(v)}" for k, v in info.parameters.items() if v is not None)
        note = f"not ready: {info.problem}" if info.problem else info.description
        rows.append(
            [
                ("* " if info.configured else "  ") + info.name,
                info.kind or "?",
                ", ".join(info.inputs) or "-",
                _num(info.threshold, 2),
                params,
                info.plugin,
                note,
            ]
        )
    print_table(["evaluator", "kind", "needs", "threshold", "parameters", "plugin", "description"], rows)


def _param(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:39] + "…"
