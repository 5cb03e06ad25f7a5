"""cairn.evaluate: scores, datasets, specs and tables, runs, statistics, the ledger record, comparisons.

Kernel only: the evaluators and providers here are small test classes
registered through ``cairn_register_evaluators`` / ``cairn_register_llm_providers``
on a plugin set without entry points, and the store is in memory.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import statistics
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.config import load_config
from cairn.errors import ConfigError, NotFoundError, PluginError, ValidationError
from cairn.evaluate import (
    EVAL_RUN_TYPE,
    SAMPLE_EVENT,
    DatasetError,
    Evaluator,
    EvaluatorSpec,
    Sample,
    Score,
    ScoringContext,
    aggregate,
    build_evaluators,
    compare_runs,
    compare_scores,
    describe_evaluators,
    load_dataset,
    load_eval_run,
    mcnemar_exact,
    mean_interval,
    paired_bootstrap,
    record_evaluation,
    resolve_dataset_path,
    resolve_eval_run,
    run_evaluation,
    student_t_cdf,
    t_quantile,
)
from cairn.hookspecs import hookimpl
from cairn.ledger import Ledger
from cairn.plugins import load_plugins
from cairn.providers import (
    AuthFailedError,
    ChatRequest,
    ChatResponse,
    ContentFilteredError,
    LLMCapabilities,
    LLMProvider,
    Price,
    ProviderDisabledError,
    Providers,
    Usage,
)
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore

# -- test evaluators and providers -------------------------------------------------------------


@attrs.frozen
class MatchConfig:
    threshold: float | None = None
    ignore_case: bool = False
    label: str = ""
    weight: float = 1.0
    words: list[str] = attrs.field(factory=list)


class Match(Evaluator):
    """1 when output equals expected (optionally ignoring case)."""

    kind = "deterministic"
    inputs = ("output", "expected")
    threshold = 1.0

    def __init__(self, config: MatchConfig, context: Any) -> None:
        self.config = config
        if config.threshold is not None:
            self.threshold = config.threshold

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        a, b = str(sample.output), str(sample.expected)
        if self.config.ignore_case:
            a, b = a.lower(), b.lower()
        return self.result(1.0 if a == b else 0.0, reason="" if a == b else f"{a!r} != {b!r}")


class Length(Evaluator):
    """A graded score: min(1, len(output) / 10)."""

    kind = "deterministic"
    inputs = ("output",)
    threshold = 0.5

    def __init__(self, config: Any, context: Any) -> None:
        pass

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        if sample.output == "boom":
            raise RuntimeError("boom happened")
        return self.result(min(1.0, len(str(sample.output)) / 10))


class Batched(Evaluator):
    """Overrides score_many; fails a whole batch holding 'bad'."""

    kind = "embedding"
    inputs = ("output",)
    threshold = 0.5
    batches: list[int] = []

    def __init__(self, config: Any, context: Any) -> None:
        pass

    def score(self, sample: Sample, context: ScoringContext) -> Score:  # pragma: no cover - score_many is used
        raise AssertionError("score_many must be used")

    def score_many(self, samples: Sequence[Sample], context: ScoringContext) -> list[Score]:
        Batched.batches.append(len(samples))
        if any(s.output == "bad" for s in samples):
            raise ValueError("the batch went wrong")
        return [self.result(0.75) for _ in samples]


class Judge(Evaluator):
    """Asks [cairn] llm; skipped when the provider is disabled (like the real judges)."""

    kind = "judge"
    inputs = ("output",)
    threshold = 0.5

    def __init__(self, config: Any, context: Any) -> None:
        pass

    def prepare(self, context: ScoringContext) -> Score | None:
        problem = context.llm().provider.readiness()
        if isinstance(problem, ProviderDisabledError):
            return Score.skip(f"skipped: {problem.message}")
        return None

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        response = context.llm().complete([{"role": "user", "content": f"grade {sample.output}"}])
        return self.result(0.8, usage=response.usage, cost=response.cost, metadata={"reply": response.content})


class Weird(Evaluator):
    kind = "magic"

    def __init__(self, config: Any, context: Any) -> None:
        pass

    def score(self, sample: Sample, context: ScoringContext) -> Score:  # pragma: no cover
        raise AssertionError


class Scripted(LLMProvider):
    """Replies 'echo: <last user text>' unless the text says otherwise; usage 3 in / 2 out."""

    default_model = "m1"
    prices = {"m1": Price(1.0, 2.0)}

    def __init__(self, disabled: bool = False) -> None:
        self.disabled = disabled
        self.requests: list[ChatRequest] = []

    def capabilities(self, model: str) -> LLMCapabilities:
        return LLMCapabilities()

    def readiness(self) -> Any:
        if self.disabled:
            return ProviderDisabledError("this test provider is disabled", hint="use 'scripted'", retryable=False)
        return None

    def complete(self, request: ChatRequest) -> ChatResponse:
        if self.disabled:
            raise self.readiness()
        self.requests.append(request)
        text = request.messages[-1].content or ""
        if "filtered" in text:
            raise ContentFilteredError("withheld", retryable=False)
        if "locked" in text:
            raise AuthFailedError("the key was refused", retryable=False)
        return ChatResponse(f"echo: {text}", finish_reason="stop", usage=Usage(3, 2), model="m1")


PROVIDERS: dict[str, Scripted] = {}


class TestPlugin:
    @hookimpl
    def cairn_register_evaluators(self, register):
        register("match", Match, MatchConfig, description="output equals expected")
        register("length", Length, description="longer is better, up to 10 characters")
        register("batched", Batched)
        register("judge", Judge)
        register("weird", Weird)
        register("returns_text", lambda config, context: "not an evaluator")

    @hookimpl
    def cairn_register_llm_providers(self, register):
        register("scripted", lambda config, context: PROVIDERS.setdefault("scripted", Scripted()))
        register("off", lambda config, context: PROVIDERS.setdefault("off", Scripted(disabled=True)))


@pytest.fixture
def plugins():
    PROVIDERS.clear()
    Batched.batches = []
    loaded = load_plugins(entry_points=False)
    assert loaded.register(TestPlugin(), "testevals")
    return loaded


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cairn.toml").write_text('[cairn]\nllm = "scripted"\n', encoding="utf-8")
    return tmp_path


@pytest.fixture
def config(project: Path):
    return load_config(project, environ={"CAIRN_USER_CONFIG": ""})


def providers_for(config, plugins, store=None, run_id=None) -> Providers:
    return Providers(
        config, plugins, store=store if store is not None else MemoryStore(), tokenizer=WordTokenizer(), run_id=run_id
    )


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


# -- scores ----------------------------------------------------------------------------------


def test_a_score_passes_at_its_threshold_and_round_trips():
    score = Score.of(0.5, threshold=0.5, reason="half", metadata={"k": 1}, usage=Usage(3, 2), cost=0.25)
    assert (score.outcome, score.value, score.passed, score.ok) == ("ok", 0.5, True, True)
    assert score.usage["total_tokens"] == 5
    assert Score.of(0.49, threshold=0.5).passed is False
    assert Score.from_dict(score.to_dict()) == score
    assert Score.skip("no expected").to_dict() == {"outcome": "skipped", "reason": "no expected"}
    assert Score.from_dict(Score.error("bad").to_dict()) == Score.error("bad")


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Score("ok", 1.5, True),
        lambda: Score("ok", -0.1, False),
        lambda: Score("ok", float("nan"), False),
        lambda: Score("ok", True, True),
        lambda: Score("ok", 0.5, None),
        lambda: Score("skipped"),
        lambda: Score("error", 0.5, reason="x"),
        lambda: Score("maybe", reason="x"),
    ],
)
def test_invalid_scores_are_refused(bad):
    with pytest.raises((ValidationError, ValueError)):
        bad()


@given(st.floats(0, 1), st.floats(0, 1))
def test_of_always_makes_a_valid_score(value: float, threshold: float):
    score = Score.of(value, threshold=threshold)
    assert 0.0 <= score.value <= 1.0 and score.passed == (value >= threshold)


# -- datasets --------------------------------------------------------------------------------


def test_a_dataset_loads_in_order_with_its_hash(tmp_path: Path):
    path = write(
        tmp_path / "d.jsonl",
        [
            {"id": "a", "input": "q?", "expected": ["x", "y"], "output": "", "metadata": {"latency_ms": 3}},
            "",
            {"id": "b", "input": [{"role": "user", "content": "hi"}], "context": ["p1", "p2"]},
            {"id": "c", "output": {"k": [1, 2]}},
        ],
    )
    data = load_dataset(path)
    assert [s.id for s in data.samples] == ["a", "b", "c"]
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    first = data.samples[0]
    assert first.output == "" and first.has("output") and first.line == 1  # empty is present
    assert not data.samples[1].has("output") and data.samples[1].line == 3
    assert data.samples[2].metadata == {} and data.name == "d" and len(data) == 3


def test_every_bad_row_is_listed_with_its_line_and_nothing_loads(tmp_path: Path):
    path = write(
        tmp_path / "bad.jsonl",
        [
            {"id": "q1", "output": "x"},
            '{"id": "q2", "output": "x"',
            '["not", "an", "object"]',
            {"output": "no id"},
            {"id": "q1", "output": "again"},
            {"id": 7},
            {"id": "q8", "metadata": ["a"], "context": 3},
            {"id": "q9", "expectd": "typo"},
            '{"id": "q10", "output": NaN}',
            {"id": "  "},
        ],
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    error = caught.value
    lines = [(p.line, p.message) for p in error.problems]
    assert lines[0][0] == 2 and lines[0][1].startswith("invalid JSON") and error.problems[0].column == 27
    assert (3, "expected a JSON object, got a list") in lines
    assert (4, "missing id") in lines
    assert (5, "duplicate id 'q1' (first on line 1)") in lines
    assert (6, "id must be a string, got an integer 7") in lines
    assert (7, "metadata must be an object, got a list") in lines
    assert (7, "context must be a string or a list of strings, got an integer") in lines
    assert any(n == 8 and "unknown key(s) 'expectd'" in m for n, m in lines)
    assert any(n == 9 and "NaN is not a JSON number" in m for n, m in lines)
    assert (10, "id is empty") in lines
    assert len(error.problems) == 10
    assert error.message.startswith("10 problems in dataset ")
    assert f"{path}:2:27: invalid JSON" in error.message and f"{path}:5: duplicate id" in error.message


def test_empty_and_undecodable_datasets_are_refused(tmp_path: Path):
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="holds no samples"):
        load_dataset(tmp_path / "empty.jsonl")
    (tmp_path / "latin.jsonl").write_bytes(b'{"id": "a"}\n{"id": "caf\xe9"}\n')
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path / "latin.jsonl")
    assert caught.value.problems[0].line == 2 and "not UTF-8" in caught.value.problems[0].message
    with pytest.raises(NotFoundError, match="no dataset"):
        load_dataset(tmp_path / "missing.jsonl")


def test_a_dataset_reference_is_a_path_or_a_file_in_a_package(tmp_path: Path, monkeypatch):
    import json as json_module

    inside = resolve_dataset_path("json:decoder.py")
    assert inside == Path(json_module.__file__).parent / "decoder.py"
    with pytest.raises(NotFoundError, match="has no file"):
        resolve_dataset_path("json:nothing/here.jsonl")
    with pytest.raises(NotFoundError, match="no installed Python package"):
        resolve_dataset_path("no_such_package_xyz:data.jsonl")
    with pytest.raises(NotFoundError):
        resolve_dataset_path("C:data.jsonl")  # a drive letter, not a package
    monkeypatch.chdir(tmp_path)
    (tmp_path / "json:decoder.py").write_text("{}", encoding="utf-8")
    assert resolve_dataset_path("json:decoder.py") == Path("json:decoder.py")  # a real file wins
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.jsonl").write_text("{}", encoding="utf-8")
    assert resolve_dataset_path("x.jsonl", base=tmp_path / "sub") == tmp_path / "sub" / "x.jsonl"
    with pytest.raises(NotFoundError, match="no dataset 'y.jsonl'"):
        resolve_dataset_path("y.jsonl", base=tmp_path / "sub")


# -- specs and building ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "params"),
    [
        ("match", "match", ()),
        ("match:ignore_case=true", "match", (("ignore_case", "true"),)),
        ("match:label=a,b,weight=2", "match", (("label", "a,b"), ("weight", "2"))),
        (r"regex:pattern=\d{1,3},flags=i", "regex", (("pattern", r"\d{1,3}"), ("flags", "i"))),
        ('match:label="x,weight=3",weight=1', "match", (("label", '"x,weight=3"'), ("weight", "1"))),
        ('match:words=["a", "b"],weight=1', "match", (("words", '["a", "b"]'), ("weight", "1"))),
    ],
)
def test_specs_split_at_commas_that_start_a_key(text, name, params):
    spec = EvaluatorSpec.parse(text)
    assert (spec.name, spec.params, spec.label) == (name, params, text if params else name)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Match", "is not an evaluator name"),
        ("match:", "nothing after the colon"),
        ("match:oops", "is not key=value"),
        ("match:a=1,a=2", "a is given twice"),
    ],
)
def test_bad_specs_are_refused(text, message):
    with pytest.raises(ValidationError, match=message):
        EvaluatorSpec.parse(text)


def test_spec_values_take_the_type_of_their_field(plugins, config):
    (built,) = build_evaluators(
        ["match:label=123,ignore_case=true,weight=2,words=a|b|c,threshold=0.5"], plugins, config
    )
    cfg = built.evaluator.config
    assert (cfg.label, cfg.ignore_case, cfg.weight, cfg.words, cfg.threshold) == (
        "123",
        True,
        2.0,
        ["a", "b", "c"],
        0.5,
    )
    assert built.params == {
        "threshold": 0.5,
        "ignore_case": True,
        "label": "123",
        "weight": 2.0,
        "words": ["a", "b", "c"],
    }
    assert (built.label, built.name, built.plugin, built.kind, built.threshold) == (
        "match:label=123,ignore_case=true,weight=2,words=a|b|c,threshold=0.5",
        "match",
        "testevals",
        "deterministic",
        0.5,
    )
    (quoted,) = build_evaluators(['match:label="a,b",words=["x", "y"]'], plugins, config)
    assert (quoted.evaluator.config.label, quoted.evaluator.config.words) == ("a,b", ["x", "y"])


def test_spec_parameters_override_the_table_and_errors_name_the_key(plugins, project):
    (project / "cairn.toml").write_text('[evaluators.match]\nignore_case = true\nlabel = "from toml"\n')
    config = load_config(project, environ={"CAIRN_USER_CONFIG": ""})
    (built,) = build_evaluators(["match:label=cli"], plugins, config)
    assert (built.evaluator.config.ignore_case, built.evaluator.config.label) == (True, "cli")
    with pytest.raises(ConfigError) as caught:
        build_evaluators(["match:ignore_cas=true"], plugins, config)
    assert caught.value.key == "ignore_cas" and caught.value.file == "--evaluator match:ignore_cas=true"
    assert "valid keys: threshold, ignore_case, label, weight, words" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        build_evaluators(["match:weight=heavy"], plugins, config)
    assert caught.value.key == "weight" and "expected a number" in str(caught.value)
    (project / "cairn.toml").write_text('[evaluators.match]\nweight = "x"\n')
    config = load_config(project, environ={"CAIRN_USER_CONFIG": ""})
    with pytest.raises(ConfigError) as caught:
        build_evaluators(["match"], plugins, config)
    assert caught.value.file.endswith("cairn.toml") and caught.value.line == 2 and caught.value.key == "weight"


def test_building_refuses_unknown_names_duplicates_and_bad_declarations(plugins, config):
    with pytest.raises(NotFoundError, match="no evaluator 'nope'") as caught:
        build_evaluators(["nope"], plugins, config)
    assert "batched, judge, length, match" in caught.value.hint
    with pytest.raises(ValidationError, match="given twice"):
        build_evaluators(["match", "match"], plugins, config)
    assert len(build_evaluators(["match", "match:ignore_case=true"], plugins, config)) == 2
    with pytest.raises(PluginError, match="declares kind 'magic'"):
        build_evaluators(["weird"], plugins, config)
    with pytest.raises(PluginError, match="not a cairn.evaluate.Evaluator"):
        build_evaluators(["returns_text"], plugins, config)


def test_describe_lists_every_evaluator_and_why_one_cannot_be_built(plugins, config):
    infos = {i.name: i for i in describe_evaluators(plugins, config)}
    assert set(infos) == {"match", "length", "batched", "judge", "weird", "returns_text"}
    match = infos["match"]
    assert (match.kind, match.inputs, match.threshold, match.problem) == (
        "deterministic",
        ["output", "expected"],
        1.0,
        None,
    )
    assert match.parameters["words"] == [] and match.description == "output equals expected"
    assert infos["weird"].problem and "magic" in infos["weird"].problem and infos["weird"].kind is None
    assert infos["returns_text"].kind is None and "not a cairn.evaluate.Evaluator" in infos["returns_text"].problem


def test_a_factory_may_declare_kind_inputs_and_threshold_for_listings(plugins, config):
    class Declaring:
        kind = "judge"
        inputs = ("output", "context")
        threshold = 0.25

        def __call__(self, config, context):
            raise ConfigError("needs a key", table="evaluators.declaring", key="x")

    class Plugin:
        @hookimpl
        def cairn_register_evaluators(self, register):
            register("declaring", Declaring())

    assert plugins.register(Plugin(), "declares")
    info = next(i for i in describe_evaluators(plugins, config) if i.name == "declaring")
    assert (info.kind, info.inputs, info.threshold) == ("judge", ["output", "context"], 0.25)
    assert info.problem == "[evaluators.declaring] x: needs a key"


# -- running ---------------------------------------------------------------------------------


def dataset(tmp_path: Path, rows: list[dict], name: str = "d.jsonl"):
    return load_dataset(write(tmp_path / name, rows))


def test_a_run_scores_skips_and_turns_exceptions_into_errors(plugins, config, tmp_path):
    data = dataset(
        tmp_path,
        [
            {"id": "1", "output": "Paris", "expected": "Paris"},
            {"id": "2", "output": "paris", "expected": "Paris"},
            {"id": "3", "output": "boom", "expected": "x"},
            {"id": "4", "expected": "no output"},
            {"id": "5", "output": "", "expected": ""},
        ],
    )
    seen: list[tuple[int, int, str]] = []
    evaluation = run_evaluation(
        data,
        build_evaluators(["match", "length"], plugins, config),
        progress=lambda done, total, phase: seen.append((done, total, phase)),
    )
    scores = evaluation.scores()
    assert scores["1"]["match"].passed and not scores["2"]["match"].passed
    assert scores["2"]["match"].reason == "'paris' != 'Paris'"
    assert scores["4"]["match"] == Score.skip("the sample has no output")
    assert scores["5"]["match"].value == 1.0  # empty strings are inputs like any other
    assert scores["3"]["length"] == Score.error("RuntimeError: boom happened")
    assert scores["2"]["length"].value == 0.5 and scores["2"]["length"].passed
    match = evaluation.aggregates["match"]
    assert (match.count, match.scored, match.passed, match.failed, match.errors, match.skipped) == (5, 4, 2, 2, 0, 1)
    assert evaluation.aggregates["length"].errors == 1 and evaluation.has_errors
    assert seen[-1] == (10, 10, "length") and all(d <= t for d, t, _ in seen)


def test_a_batching_evaluator_gets_batches_and_a_failed_batch_fails_its_samples(plugins, config, tmp_path):
    rows = [{"id": str(i), "output": "bad" if i == 70 else "ok"} for i in range(100)]
    evaluation = run_evaluation(dataset(tmp_path, rows), build_evaluators(["batched"], plugins, config))
    assert Batched.batches == [64, 36]
    scores = evaluation.scores()
    assert scores["0"]["batched"].value == 0.75
    assert scores["70"]["batched"] == Score.error("ValueError: the batch went wrong")
    assert scores["99"]["batched"].outcome == "error" and evaluation.aggregates["batched"].errors == 36


def test_no_evaluators_is_an_error(plugins, config, tmp_path):
    with pytest.raises(ValidationError, match="no evaluators"):
        run_evaluation(dataset(tmp_path, [{"id": "1"}]), [])


def test_a_judge_is_skipped_with_a_disabled_provider_and_records_usage_with_a_real_one(plugins, project, tmp_path):
    data = dataset(tmp_path, [{"id": "1", "output": "a"}, {"id": "2", "output": "b"}])
    config = load_config(project, environ={"CAIRN_USER_CONFIG": ""}, flags=["cairn.llm=off"])
    judges = build_evaluators(["judge"], plugins, config)
    store = MemoryStore()
    skipped = run_evaluation(data, judges, providers=lambda: providers_for(config, plugins, store))
    assert {s["judge"].outcome for s in skipped.scores().values()} == {"skipped"}
    assert skipped.scores()["1"]["judge"].reason == "skipped: this test provider is disabled"
    assert store.spend() == []  # no refused call per sample
    assert PROVIDERS["off"].requests == []
    # No providers at all (a Python caller that passed none): skipped the same way.
    assert (
        run_evaluation(data, judges)
        .scores()["2"]["judge"]
        .reason.startswith("skipped: this evaluation was given no providers (pass providers=")
    )

    config = load_config(project, environ={"CAIRN_USER_CONFIG": ""})
    graded = run_evaluation(
        data, build_evaluators(["judge"], plugins, config), providers=lambda: providers_for(config, plugins, store)
    )
    score = graded.scores()["1"]["judge"]
    assert score.value == 0.8 and score.usage["input_tokens"] == 3 and score.cost == pytest.approx(7e-6)
    assert score.metadata == {"reply": "echo: grade a"}
    agg = graded.aggregates["judge"]
    assert (agg.input_tokens, agg.output_tokens, agg.cost) == (6, 4, pytest.approx(14e-6))
    assert len(store.spend()) == 2


def test_generation_fills_outputs_through_the_provider(plugins, config, tmp_path):
    data = dataset(
        tmp_path,
        [
            {"id": "1", "input": "hello", "output": "ignored", "expected": "echo: hello"},
            {
                "id": "2",
                "input": [{"role": "system", "content": "s"}, {"role": "user", "content": "there"}],
                "expected": "echo: there",
            },
            {"id": "3", "input": "filtered please", "expected": "x"},
            {"id": "4", "input": {"not": "messages"}, "expected": "x"},
        ],
    )
    store = MemoryStore()
    evaluation = run_evaluation(
        data,
        build_evaluators(["match"], plugins, config),
        generate=True,
        providers=lambda: providers_for(config, plugins, store, run_id="r1"),
    )
    scores = evaluation.scores()
    assert scores["1"]["match"].passed and scores["2"]["match"].passed
    assert scores["3"]["match"].outcome == "error"
    assert scores["3"]["match"].reason.startswith("no output: generation failed: [content_filtered] withheld")
    assert scores["4"]["match"].reason.startswith("no output: generation failed: sample '4': input must be a string")
    results = {r.sample_id: r for r in evaluation.results}
    assert results["1"].output == "echo: hello" and results["1"].generation["usage"]["input_tokens"] == 3
    assert results["3"].output is None and results["3"].generation["error_facts"]["kind"] == "content_filtered"
    assert evaluation.generation == {
        "provider": "scripted",
        "models": ["m1"],
        "samples": 4,
        "failed": 2,
        "input_tokens": 6,
        "output_tokens": 4,
        "cost": pytest.approx(14e-6),
    }
    assert {r.run_id for r in store.spend()} == {"r1"} and evaluation.has_errors


def test_generation_with_a_disabled_provider_refuses_before_any_call(plugins, project, tmp_path):
    config = load_config(project, environ={"CAIRN_USER_CONFIG": ""}, flags=["cairn.llm=off"])
    store = MemoryStore()
    with pytest.raises(ProviderDisabledError, match="disabled"):
        run_evaluation(
            dataset(tmp_path, [{"id": "1", "input": "hi"}]),
            build_evaluators(["length"], plugins, config),
            generate=True,
            providers=lambda: providers_for(config, plugins, store),
        )
    assert store.spend() == []


def test_a_failure_that_would_repeat_for_every_call_stops_the_run(plugins, config, tmp_path):
    data = dataset(tmp_path, [{"id": "1", "input": "fine"}, {"id": "2", "input": "locked"}, {"id": "3", "input": "x"}])
    with pytest.raises(AuthFailedError):
        run_evaluation(
            data,
            build_evaluators(["length"], plugins, config),
            generate=True,
            providers=lambda: providers_for(config, plugins),
        )
    assert len(PROVIDERS["scripted"].requests) == 2  # it stopped at the refused key


# -- statistics ------------------------------------------------------------------------------

# Two-sided 95% and 99% critical values of Student's t, from published tables.
T_TABLE = [
    (1, 12.7062, 63.6567),
    (2, 4.3027, 9.9248),
    (3, 3.1824, 5.8409),
    (4, 2.7764, 4.6041),
    (5, 2.5706, 4.0321),
    (9, 2.2622, 3.2498),
    (10, 2.2281, 3.1693),
    (19, 2.0930, 2.8609),
    (20, 2.0860, 2.8453),
    (30, 2.0423, 2.7500),
    (60, 2.0003, 2.6603),
    (120, 1.9799, 2.6174),
    (1000, 1.9623, 2.5808),
    (5000, 1.9604, 2.5768),
]


@pytest.mark.parametrize(("df", "t95", "t99"), T_TABLE)
def test_t_quantiles_match_the_tables(df, t95, t99):
    assert t_quantile(0.975, df) == pytest.approx(t95, abs=5e-5)
    assert t_quantile(0.995, df) == pytest.approx(t99, abs=5e-5)
    assert t_quantile(0.025, df) == pytest.approx(-t95, abs=5e-5)
    assert student_t_cdf(t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-12)


def test_the_t_distribution_has_closed_forms_for_one_and_two_degrees_of_freedom():
    for t in (-3.0, -0.5, 0.0, 0.7, 2.0, 40.0):
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-15)  # Cauchy
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-15)
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-12)
    assert t_quantile(0.5, 7) == 0.0
    with pytest.raises(ValidationError):
        t_quantile(1.0, 3)
    with pytest.raises(ValidationError):
        student_t_cdf(1.0, 0)


def test_the_large_df_expansion_agrees_with_the_exact_series(monkeypatch):
    import cairn.evaluate._stats as module

    for df in (300, 1001, 4000):
        monkeypatch.setattr(module, "_SERIES_MAX_DF", 10**9)
        exact = [t_quantile(p, df) for p in (0.9, 0.975, 0.995)]
        monkeypatch.setattr(module, "_SERIES_MAX_DF", 0)
        approx = [t_quantile(p, df) for p in (0.9, 0.975, 0.995)]
        assert approx == pytest.approx(exact, abs=1e-10)


@given(st.integers(1, 60), st.floats(-50, 50))
@settings(max_examples=200, deadline=None)
def test_the_t_cdf_is_a_symmetric_distribution_function(df: int, t: float):
    value = student_t_cdf(t, df)
    assert 0.0 <= value <= 1.0
    assert value + student_t_cdf(-t, df) == pytest.approx(1.0, abs=1e-12)
    assert student_t_cdf(t + 0.5, df) >= value - 1e-15


def test_the_mean_interval_matches_the_textbook_formula():
    values = [0.2, 0.9, 0.4, 0.4, 1.0, 0.0, 0.7]
    interval = mean_interval(values, bounds=None)
    sd = statistics.stdev(values)
    se = sd / math.sqrt(len(values))
    assert interval.mean == pytest.approx(statistics.mean(values))
    assert (interval.stdev, interval.stderr) == (pytest.approx(sd), pytest.approx(se))
    assert interval.low == pytest.approx(statistics.mean(values) - 2.4469 * se, abs=1e-4)  # t(0.975, 6)
    assert interval.high == pytest.approx(statistics.mean(values) + 2.4469 * se, abs=1e-4)
    clipped = mean_interval([1.0, 1.0, 0.0])
    assert clipped.low == 0.0 and clipped.high == pytest.approx(1.0)
    assert mean_interval([]).mean is None and mean_interval([0.3]).low is None
    same = mean_interval([0.4] * 5)
    assert (same.stdev, same.low, same.high) == (0.0, pytest.approx(0.4), pytest.approx(0.4))


@given(st.lists(st.floats(0, 1), min_size=2, max_size=40))
def test_the_interval_holds_the_mean_within_bounds(values: list[float]):
    interval = mean_interval(values)
    assert 0.0 <= interval.low <= interval.mean + 1e-12 and interval.mean - 1e-12 <= interval.high <= 1.0


def test_aggregate_counts_outcomes_and_averages_only_ok_scores():
    scores = [
        Score.of(1.0, threshold=0.5),
        Score.of(0.25, threshold=0.5),
        Score.skip("no expected"),
        Score.error("broke"),
        Score.of(0.5, threshold=0.5, usage=Usage(10, 1), cost=0.5),
    ]
    agg = aggregate(scores)
    assert (agg.count, agg.scored, agg.passed, agg.failed, agg.errors, agg.skipped) == (5, 3, 2, 1, 1, 1)
    assert agg.mean == pytest.approx(statistics.mean([1.0, 0.25, 0.5]))
    assert agg.stderr == pytest.approx(statistics.stdev([1.0, 0.25, 0.5]) / math.sqrt(3))
    assert agg.pass_rate == pytest.approx(2 / 3) and (agg.input_tokens, agg.output_tokens, agg.cost) == (10, 1, 0.5)
    unknown = aggregate([Score.of(1.0, threshold=1.0, usage=Usage(1, 1), cost=None)])
    assert unknown.cost is None
    empty = aggregate([Score.skip("x")])
    assert (empty.mean, empty.pass_rate, empty.cost) == (None, None, 0.0)


def brute_force_mcnemar(b: int, c: int) -> float:
    """Two-sided: the probability, over all 2^n fair-coin labelings of the discordant pairs, of a split at
    least as uneven as the one seen."""
    n = b + c
    seen = abs(b - c)
    extreme = sum(1 for flips in itertools.product((0, 1), repeat=n) if abs(2 * sum(flips) - n) >= seen)
    return extreme / 2**n


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 9), (0, 7), (2, 10), (5, 5), (3, 4), (0, 1), (6, 1)])
def test_exact_mcnemar_matches_a_brute_force_count(b: int, c: int):
    assert mcnemar_exact(b, c) == pytest.approx(brute_force_mcnemar(b, c), abs=1e-15)
    assert mcnemar_exact(b, c) == mcnemar_exact(c, b)


def test_exact_mcnemar_known_values():
    assert mcnemar_exact(1, 9) == 22 / 1024
    assert mcnemar_exact(2, 10) == float(Fraction(2 * (1 + 12 + 66), 2**12))
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 200) < 1e-50


def test_the_bootstrap_is_seeded_and_its_p_value_matches_the_exact_probability():
    diffs = [1.0, 0.0, 0.0, 0.0]
    first = paired_bootstrap(diffs, resamples=20_000, seed=3)
    assert first == paired_bootstrap(diffs, resamples=20_000, seed=3)
    assert first != paired_bootstrap(diffs, resamples=20_000, seed=4)
    # |m* - 0.25| >= 0.25 means m* = 0 (no 1 drawn) or m* >= 0.5 (two or more 1s drawn), with m* the mean of
    # four draws from {1, 0, 0, 0}: P = (3/4)^4 + 1 - (3/4)^4 - 4 (1/4) (3/4)^3.
    exact = 1 - 4 * 0.25 * 0.75**3
    assert first.p_value == pytest.approx(exact, abs=0.015)
    assert first.low == 0.0 and first.high == 0.75 and first.mean == 0.25


def multinomial_p_value(plus: int, minus: int, zero: int) -> float:
    """The exact two-sided p-value the bootstrap estimates, for differences of +1, -1 and 0.

    A resample's mean is (P - M) / n with (P, M, Z) ~ Multinomial(n; plus/n, minus/n, zero/n); it counts
    as extreme when |(P - M) / n - mean| >= |mean|.
    """
    n = plus + minus + zero
    mean = (plus - minus) / n
    total = Fraction(0)
    for p in range(n + 1):
        for m in range(n - p + 1):
            if abs((p - m) / n - mean) >= abs(mean) - 1e-12:
                z = n - p - m
                total += Fraction(math.comb(n, p) * math.comb(n - p, m) * plus**p * minus**m * zero**z, n**n)
    return float(total)


@pytest.mark.parametrize(
    ("plus", "minus", "zero"),
    [
        (18, 14, 8),  # +1 drawn as a count, the rest one by one
        (24, 20, 16),  # every value drawn as a count
        (3, 1, 0),
    ],
)
def test_the_bootstrap_p_value_matches_the_exact_multinomial_probability(plus, minus, zero):
    diffs = [1.0] * plus + [-1.0] * minus + [0.0] * zero
    result = paired_bootstrap(diffs, resamples=20_000, seed=11)
    assert result.p_value == pytest.approx(multinomial_p_value(plus, minus, zero), abs=0.015)
    assert result.low <= result.mean <= result.high


def test_binomial_counts_have_the_binomial_distribution():
    import random

    from cairn.evaluate._stats import _binomial

    rng = random.Random(2)
    for n, p in [(7, 0.3), (60, 0.4), (2000, 0.45), (500, 0.98), (10, 0.0), (10, 1.0)]:
        draws = [_binomial(n, p, rng) for _ in range(20_000)]
        assert all(0 <= x <= n for x in draws)
        assert statistics.fmean(draws) == pytest.approx(n * p, abs=4 * math.sqrt(n * p * (1 - p) / 20_000) + 1e-9)
        if 0 < p < 1:
            assert statistics.variance(draws) == pytest.approx(n * p * (1 - p), rel=0.05)
    # Goodness of fit against the exact probabilities: chi-square within a generous bound for its 31 cells.
    n, p, count = 60, 0.4, 100_000
    seen = [0] * (n + 1)
    for _ in range(count):
        seen[_binomial(n, p, rng)] += 1
    cells = [(seen[k], count * math.comb(n, k) * p**k * (1 - p) ** (n - k)) for k in range(n + 1)]
    chi2 = sum((o - e) ** 2 / e for o, e in cells if e > 5)
    assert chi2 < 70  # the 99.99th percentile of chi-square with 30 degrees of freedom is about 70


def test_identical_runs_have_p_one_and_a_clear_winner_a_small_p():
    same = paired_bootstrap([0.0] * 30)
    assert (same.p_value, same.low, same.high) == (1.0, 0.0, 0.0)
    better = paired_bootstrap([1.0] * 10 + [0.0] * 10)
    assert better.p_value < 0.001 and better.p_value > 0  # never 0
    assert 0.2 <= better.low < 0.5 < better.high <= 0.8


# -- the ledger record and comparisons --------------------------------------------------------


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def put_run(self, run, events=(), *, expected_status=None):
        self.writes.append("put_run")
        return super().put_run(run, events, expected_status=expected_status)

    def append_events(self, run_id, events):
        self.writes.append("append_events")
        return super().append_events(run_id, events)


def system_rows(correct: set[int], n: int = 20, prefix: str = "") -> list[dict]:
    return [{"id": f"s{i}", "output": "right" if i in correct else "wrong", "expected": "right"} for i in range(n)]


def record(ledger, plugins, config, tmp_path, rows, name, specs=("match", "length")):
    evaluation = run_evaluation(
        dataset(tmp_path, rows, f"{name}.jsonl"), build_evaluators(list(specs), plugins, config)
    )
    return record_evaluation(ledger, evaluation, name=name, plugins=plugins, config=config), evaluation


def test_a_run_is_recorded_in_one_write_with_one_event_per_sample_and_its_manifest(plugins, config, tmp_path):
    store = CountingStore()
    ledger = Ledger(store, project_dir=tmp_path)
    run, evaluation = record(ledger, plugins, config, tmp_path, system_rows({0, 1, 2}, n=12), "base")
    assert store.writes == ["put_run"]
    assert (run.type, run.status, run.subtype) == (EVAL_RUN_TYPE, "ok", "base")
    assert run.summary == "base: 12 samples; match 0.250 (3/12 passed), length 0.500 (12/12 passed)"
    events = ledger.events(run.run_id)
    assert [e.type for e in events] == [SAMPLE_EVENT] * 12 and [e.fields["id"] for e in events][:2] == ["s0", "s1"]
    assert events[3].fields["scores"]["match"] == {
        "outcome": "ok",
        "value": 0.0,
        "passed": False,
        "reason": "'wrong' != 'right'",
    }
    meta = run.metadata
    path = tmp_path / "base.jsonl"
    assert meta["dataset"] == {
        "reference": str(path),
        "path": str(path.resolve()),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "samples": 12,
    }
    assert [e["label"] for e in meta["evaluators"]] == ["match", "length"]
    assert meta["evaluators"][0]["params"]["ignore_case"] is False and meta["evaluators"][0]["plugin"] == "testevals"
    assert meta["evaluators"][1] == {
        "label": "length",
        "name": "length",
        "plugin": "testevals",
        "kind": "deterministic",
        "inputs": ["output"],
        "threshold": 0.5,
        "params": {},
    }
    assert meta["providers"] == {"llm": "scripted", "embeddings": "noop"} and meta["plugins"]["cairn"]
    assert meta["aggregates"]["match"] == evaluation.aggregates["match"].to_dict()
    assert meta["name"] == "base" and meta["generated"] is False


def test_a_run_with_errors_is_partial(plugins, config, tmp_path):
    ledger = Ledger(MemoryStore(), project_dir=tmp_path)
    run, _ = record(ledger, plugins, config, tmp_path, [{"id": "x", "output": "boom"}], "errs", ["length"])
    assert run.status == "partial"


def test_runs_are_found_by_last_prev_offset_id_and_name(plugins, config, tmp_path):
    ledger = Ledger(MemoryStore(), project_dir=tmp_path)
    with pytest.raises(NotFoundError, match="no eval run '@last'"):
        resolve_eval_run(ledger, "@last")
    first, _ = record(ledger, plugins, config, tmp_path, system_rows({0}), "first")
    ledger.record("command", summary="not an eval")
    second, _ = record(ledger, plugins, config, tmp_path, system_rows({1}), "second")
    assert resolve_eval_run(ledger, "@last") == second.run_id
    assert resolve_eval_run(ledger, "@prev") == first.run_id == resolve_eval_run(ledger, "@last~1")
    assert resolve_eval_run(ledger, "first") == first.run_id
    assert resolve_eval_run(ledger, second.run_id) == second.run_id
    with pytest.raises(NotFoundError, match="2 eval runs recorded"):
        resolve_eval_run(ledger, "@last~2")
    with pytest.raises(NotFoundError):
        resolve_eval_run(ledger, "third")
    with pytest.raises(ValidationError, match="not a run reference"):
        resolve_eval_run(ledger, "@first")
    command = ledger.list(type="command")[0]
    with pytest.raises(ValidationError, match="not an eval run"):
        load_eval_run(ledger, command.run_id)
    loaded = load_eval_run(ledger, "@prev")
    assert loaded.name == "first" and loaded.labels == ["match", "length"] and len(loaded.sample_ids) == 20
    assert loaded.scores["s0"]["match"].passed and loaded.aggregates()["match"].passed == 1


def test_a_clear_winner_is_better_with_small_p_values(plugins, config, tmp_path):
    ledger = Ledger(MemoryStore(), project_dir=tmp_path)
    base_rows = system_rows(set(range(8)))  # 8 of 20 right
    run_rows = system_rows(set(range(1, 20)))  # 19 of 20: 12 improvements, 1 regression (s0)
    record(ledger, plugins, config, tmp_path, base_rows, "base")
    record(ledger, plugins, config, tmp_path, run_rows, "cand")
    comparison = compare_runs(load_eval_run(ledger, "base"), load_eval_run(ledger, "cand"))
    match = comparison.evaluators[0]
    assert match.label == "match" and match.paired == 20 and match.verdict == "better"
    assert (match.base_mean, match.run_mean, match.mean_difference) == (0.4, 0.95, pytest.approx(0.55))
    assert match.p_value < 0.05 and match.mcnemar_p_value == pytest.approx(brute_force_mcnemar(1, 12))
    assert match.mcnemar_p_value < 0.05
    assert match.regressions == ["s0"] and len(match.improvements) == 12 and match.unchanged == 7
    assert (match.passed_in_base_only, match.passed_in_run_only) == (1, 12)
    diffs = [1.0] * 12 + [-1.0] + [0.0] * 7
    se = statistics.stdev(diffs) / math.sqrt(20)
    assert match.ci_low == pytest.approx(0.55 - t_quantile(0.975, 19) * se)
    length = comparison.evaluators[1]
    assert length.mean_difference == 0 and length.p_value == 1.0 and length.verdict == "no significant difference"
    assert comparison.only_in_base == [] and comparison.resamples == 10_000 and comparison.seed == 0


def test_identical_runs_compare_as_no_difference(plugins, config, tmp_path):
    ledger = Ledger(MemoryStore(), project_dir=tmp_path)
    rows = system_rows({0, 3, 5, 9})
    record(ledger, plugins, config, tmp_path, rows, "a")
    record(ledger, plugins, config, tmp_path, rows, "b")
    comparison = compare_runs(load_eval_run(ledger, "@prev"), load_eval_run(ledger, "@last"))
    for result in comparison.evaluators:
        assert result.p_value == pytest.approx(1.0) and result.mcnemar_p_value == 1.0
        assert result.mean_difference == 0 and result.improvements == [] and result.regressions == []
        assert result.verdict == "no significant difference"


def test_unpaired_samples_evaluators_and_changed_parameters_are_reported(plugins, config, tmp_path):
    ledger = Ledger(MemoryStore(), project_dir=tmp_path)
    base = system_rows({0, 1}, n=5) + [{"id": "only-base", "output": "right", "expected": "right"}]
    run = system_rows({0, 1, 2}, n=5) + [
        {"id": "only-run", "output": "x", "expected": "x"},
        {"id": "s9", "expected": "right"},
    ]
    base[4] = {"id": "s4", "output": "boom", "expected": "right"}
    record(ledger, plugins, config, tmp_path, base, "a", ["match", "length", "match:ignore_case=true"])
    record(ledger, plugins, config, tmp_path, run, "b", ["match", "length:", "length"][:1] + ["length", "batched"])
    comparison = compare_runs(load_eval_run(ledger, "a"), load_eval_run(ledger, "b"))
    assert comparison.only_in_base == ["only-base"] and comparison.only_in_run == ["only-run", "s9"]
    assert comparison.evaluators_only_in_base == ["match:ignore_case=true"]
    assert comparison.evaluators_only_in_run == ["batched"]
    length = next(e for e in comparison.evaluators if e.label == "length")
    assert length.paired == 4 and length.not_comparable == 1  # s4 errored in the base run


def test_compare_scores_warns_nothing_comparable(plugins):
    base = {"1": {"x": Score.skip("no")}}
    run = {"1": {"x": Score.of(1.0, threshold=1.0)}}
    (result,) = compare_scores(base, run, ["x"])
    assert (result.paired, result.not_comparable, result.verdict, result.p_value) == (0, 1, "not comparable", None)


def test_different_parameters_are_flagged(plugins, project, tmp_path):
    ledger = Ledger(MemoryStore(), project_dir=tmp_path)
    config = load_config(project, environ={"CAIRN_USER_CONFIG": ""})
    record(ledger, plugins, config, tmp_path, system_rows({0}), "a", ["match"])
    (project / "cairn.toml").write_text("[evaluators.match]\nignore_case = true\n")
    config = load_config(project, environ={"CAIRN_USER_CONFIG": ""})
    record(ledger, plugins, config, tmp_path, system_rows({0}), "b", ["match"])
    (result,) = compare_runs(load_eval_run(ledger, "a"), load_eval_run(ledger, "b")).evaluators
    assert result.warnings == ["the evaluator's parameters differ between the runs"]


def test_the_hook_registers_evaluators_under_the_registry(plugins):
    # cairn_register_evaluators feeds the "evaluators" registry, whose tables are [evaluators.<name>].
    assert "match" in plugins.evaluators and plugins.info["testevals"].registers["evaluators"][:2] == [
        "match",
        "length",
    ]


def test_the_package_exports_the_public_names_of_every_module_and_nothing_else():
    import importlib
    import pkgutil

    import cairn.evaluate as package

    modules = [importlib.import_module(f"cairn.evaluate.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    assert modules and all(m.__name__.rsplit(".", 1)[1].startswith("_") for m in modules)
    declared = {name: module for module in modules for name in module.__all__}
    assert sorted(package.__all__) == sorted(declared)
    for name, module in declared.items():
        assert getattr(package, name) is getattr(module, name), name
