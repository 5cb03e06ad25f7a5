"""The plugin as cairn sees it: what it registers, that its hook module stays light, the shipped datasets."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys

from cairn.evaluate import build_evaluators, compare_scores, describe_evaluators, load_dataset, run_evaluation

NAMES = {
    "exact": "deterministic",
    "includes": "deterministic",
    "regex": "deterministic",
    "numeric": "deterministic",
    "token_f1": "deterministic",
    "edit_distance": "deterministic",
    "rouge_l": "deterministic",
    "json_valid": "deterministic",
    "json_schema": "deterministic",
    "json_diff": "deterministic",
    "embedding_similarity": "embedding",
    "rubric": "judge",
    "factuality": "judge",
    "latency": "deterministic",
    "cost": "deterministic",
}


def test_cairn_register_evaluators_registers_fifteen_evaluators(plugins):
    info = plugins.info["evals"]
    assert info.status == "ok" and info.hooks == ["cairn_register_evaluators"]
    assert sorted(info.registers["evaluators"]) == sorted(NAMES)
    described = {i.name: i for i in describe_evaluators(plugins)}
    assert {name: described[name].kind for name in NAMES} == NAMES
    assert all(described[name].description for name in NAMES)
    # latency and cost need a limit: listed with the reason, and with what their class declares.
    assert described["latency"].problem and "max_ms is required" in described["latency"].problem
    assert described["exact"].problem is None and described["exact"].threshold == 1.0


def test_the_deferred_factories_declare_what_their_classes_declare(plugins):
    from cairn_evals.plugin import EVALUATORS

    from cairn.evaluate import Evaluator

    for name, (factory, _, _) in EVALUATORS.items():
        cls = factory.load()
        assert issubclass(cls, Evaluator) and (factory.kind, factory.threshold) == (cls.kind, cls.threshold), name
        registration = plugins.evaluators.get(name)
        if name in ("latency", "cost"):
            assert factory.inputs == cls.inputs == ()
            continue
        built = factory(registration.config_cls(), None)  # defaults: no parameters set
        assert tuple(built.inputs) == factory.inputs, name


def test_the_hook_module_imports_nothing_heavy():
    code = (
        "import sys\n"
        "import cairn_evals.plugin\n"
        "from cairn.plugins import load_plugins\n"
        "load_plugins(environ={'CAIRN_LOAD_PLUGINS': 'evals'})\n"
        "heavy = [m for m in ('jsonschema', 'numpy', 'httpx', 'cairn.providers', 'cairn.evaluate',\n"
        "                     'cairn_evals.deterministic', 'cairn_evals.models') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_the_shipped_datasets_have_a_known_winner(plugins):
    root = importlib.resources.files("cairn_evals") / "datasets"
    base = load_dataset(str(root / "capitals-baseline.jsonl"))
    cand = load_dataset("cairn_evals:datasets/capitals-candidate.jsonl")
    assert len(base) == len(cand) == 20 and [s.id for s in base.samples] == [s.id for s in cand.samples]
    assert [s.expected for s in base.samples] == [s.expected for s in cand.samples]
    assert all(s.metadata["latency_ms"] > 0 for s in base.samples + cand.samples)
    specs = ["exact:ignore_case=true,strip_punctuation=true"]
    evaluators = build_evaluators(specs, plugins)
    a, b = (run_evaluation(data, evaluators) for data in (base, cand))
    assert (a.aggregates[specs[0]].passed, b.aggregates[specs[0]].passed) == (11, 19)
    (result,) = compare_scores(a.scores(), b.scores(), specs)
    assert result.verdict == "better" and result.p_value < 0.05 and result.mcnemar_p_value == 22 / 1024
    assert result.regressions == ["myanmar"]
