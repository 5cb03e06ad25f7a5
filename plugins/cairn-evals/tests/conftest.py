"""Shared fixtures: the installed plugins, a one-sample scorer through the kernel, and no network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cairn.config import load_config
from cairn.evaluate import Dataset, Sample, Score, build_evaluators, run_evaluation
from cairn.plugins import load_plugins
from cairn.providers import Providers
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore


@pytest.fixture(autouse=True)
def _no_network(loopback_only: None) -> None:
    """Every test here runs with cairn.testing's loopback_only guard."""


@pytest.fixture(scope="session")
def plugins():
    return load_plugins(strict=False, environ={})


class Scorer:
    """Scores samples with one evaluator spec through ``cairn.evaluate``, as ``cairn eval run`` does."""

    def __init__(self, plugins: Any, project: Path, toml: str = "") -> None:
        self.plugins = plugins
        self.project = project
        self.store = MemoryStore()
        (project / "cairn.toml").write_text(toml, encoding="utf-8")
        self.config = load_config(project, environ={"CAIRN_USER_CONFIG": ""})

    def providers(self) -> Providers:
        return Providers(self.config, self.plugins, store=self.store, tokenizer=WordTokenizer())

    def many(self, spec: str, samples: list[dict[str, Any]]) -> list[Score]:
        evaluators = build_evaluators([spec], self.plugins, self.config)
        rows = tuple(Sample(str(i), **row) for i, row in enumerate(samples))
        evaluation = run_evaluation(Dataset(rows, "memory", "memory", "0" * 64), evaluators, providers=self.providers)
        return [r.scores[spec] for r in evaluation.results]

    def __call__(self, spec: str, **sample: Any) -> Score:
        return self.many(spec, [sample])[0]


@pytest.fixture
def scorer(plugins: Any, cairn_env: Path) -> Scorer:
    return Scorer(plugins, cairn_env)


@pytest.fixture
def make_scorer(plugins: Any, cairn_env: Path) -> Callable[[str], Scorer]:
    return lambda toml: Scorer(plugins, cairn_env, toml)
