"""Eval runs in the ledger: recorded in one write with their manifest, referenced, and read back."""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import NotFoundError, ValidationError
from cairn.evaluate._build import ConfiguredEvaluator
from cairn.evaluate._run import EVAL_RUN_TYPE, SAMPLE_EVENT, Evaluation
from cairn.evaluate._scores import Score
from cairn.evaluate._stats import Aggregate
from cairn.model import format_time, new_run_id, parse_time

if TYPE_CHECKING:  # pragma: no cover
    from cairn.config import Config
    from cairn.ledger import Ledger
    from cairn.model import Run
    from cairn.plugins import Plugins

__all__ = [
    "EvalRun",
    "load_eval_run",
    "manifest",
    "new_eval_run_id",
    "record_evaluation",
    "resolve_eval_run",
]


def _plugin_versions(plugins: Plugins | None) -> dict[str, str | None]:
    from cairn._version import kernel_version

    versions: dict[str, str | None] = {"cairn": kernel_version()}
    if plugins is None:
        return versions
    for info in plugins.describe():
        if info.status == "ok" and not info.builtin:
            versions[info.name] = info.version
    return versions


def manifest(
    evaluation: Evaluation, *, name: str | None = None, plugins: Plugins | None = None, config: Config | None = None
) -> dict[str, Any]:
    """The run's metadata: what was evaluated, with what, by which versions, and the aggregates."""
    providers: dict[str, Any] = {}
    if config is not None:
        providers = {"llm": config.cairn.llm, "embeddings": config.cairn.embeddings}
    return {
        "name": name,
        "dataset": {
            "reference": evaluation.dataset.reference,
            "path": evaluation.dataset.path,
            "sha256": evaluation.dataset.sha256,
            "samples": len(evaluation.dataset),
        },
        "evaluators": [_described(e, evaluation) for e in evaluation.evaluators],
        "providers": providers,
        "generated": evaluation.generated,
        "generation": evaluation.generation,
        "plugins": _plugin_versions(plugins),
        "aggregates": {label: agg.to_dict() for label, agg in evaluation.aggregates.items()},
    }


def _described(configured: ConfiguredEvaluator, evaluation: Evaluation) -> dict[str, Any]:
    """The evaluator's manifest entry; a model-based one also lists the models that answered it."""
    entry = configured.describe()
    if configured.kind != "deterministic":
        models = {r.scores[configured.label].metadata.get("model") for r in evaluation.results}
        entry["models"] = sorted(m for m in models if isinstance(m, str))
    return entry


def _summary(evaluation: Evaluation, name: str | None) -> str:
    parts = []
    for label, agg in evaluation.aggregates.items():
        if agg.mean is None:
            parts.append(f"{label} -")
        else:
            parts.append(f"{label} {agg.mean:.3f} ({agg.passed}/{agg.scored} passed)")
    head = f"{name or evaluation.dataset.name}: {len(evaluation.dataset)} samples"
    return (head + "; " + ", ".join(parts))[:500]


def record_evaluation(
    ledger: Ledger,
    evaluation: Evaluation,
    *,
    name: str | None = None,
    plugins: Plugins | None = None,
    config: Config | None = None,
    run_id: str | None = None,
) -> Run:
    """Record ``evaluation`` as a run of type ``eval``: manifest in its metadata, one event per sample.

    One ``Ledger.record`` call, so the run and all its events are one store
    write. Status is ``partial`` when any score is an error or any generation
    failed, else ``ok``. ``run_id`` lets a caller fix the id up front (to tie
    provider spend to the run).
    """
    meta = manifest(evaluation, name=name, plugins=plugins, config=config)
    started = parse_time(evaluation.started_at)
    ended = parse_time(evaluation.ended_at)
    return ledger.record(
        EVAL_RUN_TYPE,
        status="partial" if evaluation.has_errors else "ok",
        # One time for every event: the samples were scored together, and it spares a clock read per event.
        events=[{**r.to_event(), "ts": evaluation.ended_at} for r in evaluation.results],
        run_id=run_id,
        started_at=format_time(started),
        ended_at=format_time(ended),
        duration_ms=max(0, int((ended - started) / _dt.timedelta(milliseconds=1))),
        subtype=(name or evaluation.dataset.name)[:64],
        summary=_summary(evaluation, name),
        metadata=meta,
    )


def new_eval_run_id() -> str:
    """A fresh id for an eval run (``<time>_eval_<random>``)."""
    return new_run_id(EVAL_RUN_TYPE)


@attrs.frozen
class EvalRun:
    """A recorded eval run: the ledger run, its manifest, and every sample's scores in file order."""

    run: Run
    manifest: dict[str, Any]
    sample_ids: tuple[str, ...]
    scores: dict[str, dict[str, Score]]  # sample id -> label -> Score
    samples: tuple[dict[str, Any], ...]  # the raw sample events' fields

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def name(self) -> str | None:
        return self.manifest.get("name")

    @property
    def labels(self) -> list[str]:
        return [e["label"] for e in self.manifest.get("evaluators", [])]

    def evaluator(self, label: str) -> dict[str, Any] | None:
        return next((e for e in self.manifest.get("evaluators", []) if e["label"] == label), None)

    def aggregates(self) -> dict[str, Aggregate]:
        return {label: Aggregate.from_dict(data) for label, data in self.manifest.get("aggregates", {}).items()}


def resolve_eval_run(ledger: Ledger, ref: str) -> str:
    """A run id from a reference to an eval run.

    ``@last`` is the newest eval run, ``@prev`` the one before, ``@last~N``
    the Nth before the newest; a run id is taken as is; anything else is the
    ``--name`` of an eval run (the newest with that name).
    """
    if ref.startswith("@"):
        return ledger.resolve(ref, type=EVAL_RUN_TYPE)
    try:
        from cairn.model import validate_run_id

        validate_run_id(ref)
        if ledger.store.get_run(ref) is not None:
            return ref
    except ValidationError:
        pass
    for run in ledger.list(type=EVAL_RUN_TYPE):
        if run.metadata.get("name") == ref:
            return run.run_id
    raise NotFoundError(
        "eval run",
        ref,
        hint="give @last, @prev, a run id or the --name of an eval run; `cairn runs list --type eval` lists them",
    )


def load_eval_run(ledger: Ledger, ref: str) -> EvalRun:
    """Read an eval run and its sample events back (see ``resolve_eval_run`` for references)."""
    run = ledger.get(resolve_eval_run(ledger, ref))
    if run.type != EVAL_RUN_TYPE:
        raise ValidationError(
            f"run {run.run_id} is a {run.type!r} run, not an eval run",
            hint="`cairn runs list --type eval` lists eval runs",
        )
    ids: list[str] = []
    scores: dict[str, dict[str, Score]] = {}
    samples: list[dict[str, Any]] = []
    for event in ledger.events(run.run_id):
        if event.type != SAMPLE_EVENT:
            continue
        sample_id = event.fields["id"]
        ids.append(sample_id)
        scores[sample_id] = {label: Score.from_dict(data) for label, data in event.fields.get("scores", {}).items()}
        samples.append(event.fields)
    return EvalRun(run, dict(run.metadata), tuple(ids), scores, tuple(samples))
