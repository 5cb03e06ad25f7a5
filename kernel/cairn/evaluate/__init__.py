"""Evaluators and evaluation runs: the contract, datasets, statistics, comparisons, and the ledger record.

An evaluator plugin registers a factory through ``cairn_register_evaluators``;
the factory returns an ``Evaluator``: it declares its ``kind``
(``deterministic``, ``embedding`` or ``judge``), the sample ``inputs`` it
needs (``output``, ``expected``, ``input``, ``context``) and a default
``threshold``, and turns one ``Sample`` into one ``Score``. Everything else is
the kernel's, the same for every evaluator:

- ``load_dataset`` reads a JSONL dataset and lists every bad row with its file
  and line before anything runs;
- ``build_evaluators`` makes evaluators from ``[evaluators.<name>]`` tables and
  ``NAME:key=value,...`` specs, validated like any backend table;
- ``run_evaluation`` generates outputs through the configured LLM provider when
  asked (``cairn.providers``: retries, spend ceilings and redaction apply),
  skips a sample that lacks an input an evaluator needs, turns an evaluator's
  exception into an ``error`` score, and aggregates each evaluator's scores
  (mean, standard error, 95% confidence interval from the t distribution, pass
  rate, errors, skips);
- ``record_evaluation`` writes the run (type ``eval``) with its manifest and one
  event per sample in one ``Ledger.record`` call, so a run never half-records;
- ``compare_runs`` pairs two recorded runs by sample id: per-evaluator mean
  difference with a confidence interval, improvements and regressions, a seeded
  paired bootstrap test on the scores and an exact McNemar test on pass/fail.

A score has one of three outcomes: ``ok`` (a ``value`` in [0, 1] and
``passed``), ``skipped`` (the evaluator could not apply: an input is missing, or
a judge has no real provider) and ``error`` (it tried and failed). Only ``ok``
scores enter the statistics; skips and errors are counted apart.

The public API is this package; its modules are private, each one concern,
each importing only those above it::

    _scores     Score and its outcomes
    _datasets   Sample, Dataset, load_dataset, DatasetError
    _contract   Evaluator, ScoringContext, KINDS, INPUTS
    _build      EvaluatorSpec, ConfiguredEvaluator, build_evaluators, describe_evaluators
    _stats      the t distribution, mean_interval, aggregate, paired_bootstrap, mcnemar_exact
    _run        run_evaluation, Evaluation, SampleResult
    _record     record_evaluation, manifest, EvalRun, resolve_eval_run, load_eval_run
    _compare    compare_scores, compare_runs, Comparison

Datasets and statistics stay in the kernel rather than in cairn-evals:
``cairn eval run``, ``show`` and ``compare`` are kernel commands, and they
read datasets, aggregate scores and compare recorded runs whichever
evaluator plugins are installed (a third-party evaluator set without
cairn-evals included); reading comparisons back from the ledger (a viewer,
``cairn eval compare`` on a machine that only pulled the ledger) must not
depend on which plugins recorded the runs. Both are small and use the
standard library only, so keeping them costs no dependency; ``cairn.evaluate``
is imported by the commands that use it, never at ``cairn`` start-up.
cairn-evals holds the evaluators themselves and the sample datasets.

Errors raised here (besides those of ``cairn.errors``)::

    cairn.errors.ValidationError
    └── DatasetError        a dataset has bad rows: every problem, with file and line
"""

from __future__ import annotations

from cairn.evaluate._build import (
    ConfiguredEvaluator,
    EvaluatorInfo,
    EvaluatorSpec,
    build_evaluators,
    describe_evaluators,
)
from cairn.evaluate._compare import Comparison, EvaluatorComparison, compare_runs, compare_scores
from cairn.evaluate._contract import INPUTS, KINDS, Evaluator, ScoringContext
from cairn.evaluate._datasets import (
    Dataset,
    DatasetError,
    DatasetProblem,
    Sample,
    load_dataset,
    resolve_dataset_path,
)
from cairn.evaluate._record import (
    EvalRun,
    load_eval_run,
    manifest,
    new_eval_run_id,
    record_evaluation,
    resolve_eval_run,
)
from cairn.evaluate._run import EVAL_RUN_TYPE, SAMPLE_EVENT, Evaluation, SampleResult, run_evaluation
from cairn.evaluate._scores import OUTCOMES, Score
from cairn.evaluate._stats import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    Aggregate,
    BootstrapResult,
    Interval,
    aggregate,
    mcnemar_exact,
    mean_interval,
    paired_bootstrap,
    student_t_cdf,
    t_quantile,
)

__all__ = [
    "Aggregate",
    "BootstrapResult",
    "Comparison",
    "ConfiguredEvaluator",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "DatasetError",
    "DatasetProblem",
    "Dataset",
    "EVAL_RUN_TYPE",
    "EvalRun",
    "Evaluation",
    "Evaluator",
    "EvaluatorComparison",
    "EvaluatorInfo",
    "EvaluatorSpec",
    "INPUTS",
    "KINDS",
    "Interval",
    "OUTCOMES",
    "SAMPLE_EVENT",
    "Sample",
    "SampleResult",
    "Score",
    "ScoringContext",
    "aggregate",
    "build_evaluators",
    "compare_runs",
    "compare_scores",
    "describe_evaluators",
    "load_dataset",
    "load_eval_run",
    "manifest",
    "mcnemar_exact",
    "mean_interval",
    "new_eval_run_id",
    "paired_bootstrap",
    "record_evaluation",
    "resolve_dataset_path",
    "resolve_eval_run",
    "run_evaluation",
    "student_t_cdf",
    "t_quantile",
]
