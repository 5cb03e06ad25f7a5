"""The deterministic evaluators, each against hand-checked cases, through the kernel's runner."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.errors import ConfigError

# -- exact -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "output", "expected", "value"),
    [
        ("exact", "Paris", "Paris", 1.0),
        ("exact", "paris", "Paris", 0.0),
        ("exact", "Paris ", "Paris", 0.0),
        ("exact:ignore_case=true", "PARIS", "paris", 1.0),
        ("exact:ignore_case=true", "STRASSE", "Straße", 1.0),  # Unicode case folding
        ("exact:strip_punctuation=true", "Ankara.", "Ankara", 1.0),
        ("exact:strip_punctuation=true", "Washington DC", "Washington, D.C.", 1.0),
        ("exact:collapse_whitespace=true", "  New \t Delhi\n", "New Delhi", 1.0),
        ("exact:nfkc=true", "Ｐａｒｉｓ", "Paris", 1.0),
        ("exact", "Ｐａｒｉｓ", "Paris", 0.0),
        ("exact", "", "", 1.0),
        ("exact", "", "x", 0.0),
        ("exact", "Bern", ["Berne", "Bern"], 1.0),
        ("exact", {"a": 1, "b": [2]}, {"b": [2], "a": 1}, 1.0),  # JSON compared as sorted JSON text
        ("exact", "42", 42, 1.0),
    ],
)
def test_exact(scorer, spec, output, expected, value):
    score = scorer(spec, output=output, expected=expected)
    assert (score.value, score.passed) == (value, value == 1.0)


def test_exact_says_what_it_expected_and_which_alternative_matched(scorer):
    assert scorer("exact", output="Sydney", expected="Canberra").reason == "expected 'Canberra', got 'Sydney'"
    assert scorer("exact", output="Berne", expected=["Bern", "Berne"]).metadata == {"matched": "Berne"}


def test_a_missing_input_is_skipped_with_the_reason(scorer):
    assert scorer("exact", output="x").reason == "the sample has no expected"
    assert scorer("exact", expected="x").outcome == "skipped"


# -- includes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "output", "expected", "value"),
    [
        ("includes", "The capital is Canberra.", "Canberra", 1.0),
        ("includes", "The capital is Sydney.", "Canberra", 0.0),
        ("includes", "canberra", "Canberra", 0.0),
        ("includes:ignore_case=true", "CANBERRA it is", "canberra", 1.0),
        ("includes", "Pretoria, or Cape Town", ["Bloemfontein", "Cape Town"], 1.0),
        ("includes:mode=all", "Pretoria and Cape Town", ["Pretoria", "Cape Town", "Bloemfontein"], 2 / 3),
        ("includes:mode=all", "", ["a", "b"], 0.0),
        ("includes", "anything", "", 1.0),  # the empty string is in every text
        ("includes:nfkc=true", "ｃａｆé au lait", "café", 1.0),
    ],
)
def test_includes(scorer, spec, output, expected, value):
    assert scorer(spec, output=output, expected=expected).value == pytest.approx(value)


def test_includes_with_values_needs_no_expected(scorer):
    score = scorer("includes:values=sorry|apolog,mode=any", output="We apologise for the delay")
    assert score.value == 1.0 and score.metadata == {"found": ["apolog"], "missing": ["sorry"]}
    score = scorer("includes:values=a|b|c,mode=all", output="a c")
    assert score.value == pytest.approx(2 / 3) and not score.passed and score.reason == "missing ['b']"


# -- regex -----------------------------------------------------------------------------------


def test_regex_search_fullmatch_flags_and_the_expected_as_pattern(scorer):
    assert scorer(r"regex:pattern=\d{4}-\d{2}-\d{2}", output="on 2024-01-31, yes").value == 1.0
    assert scorer(r"regex:pattern=\d{4}-\d{2}-\d{2},match=fullmatch", output="on 2024-01-31").value == 0.0
    assert scorer(r"regex:pattern=^paris$,flags=i", output="PARIS").value == 1.0
    assert scorer(r"regex:pattern=^paris$", output="PARIS").reason == "the output has no match for /^paris$/"
    assert scorer("regex", output="Reykjavík", expected=r"^Reykjav[ií]k$").value == 1.0
    assert scorer("regex", output="x", expected="(").outcome == "error"
    assert scorer("regex", output="x", expected=3).outcome == "error"
    assert scorer(r"regex:pattern=^$", output="").value == 1.0
    score = scorer(r"regex:pattern=\w+", output="  東京  ")
    assert score.metadata == {"match": "東京", "span": [2, 4]}


def test_an_invalid_pattern_or_flag_is_a_config_error_naming_the_key(scorer):
    with pytest.raises(ConfigError) as caught:
        scorer("regex:pattern=(unclosed", output="x")
    assert caught.value.key == "pattern" and "valid regular expression" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        scorer("regex:pattern=a,flags=iq", output="x")
    assert caught.value.key == "flags" and "'q'" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        scorer("regex:match=prefix", output="x")
    assert caught.value.key == "match"


# -- numeric ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "output", "expected", "value"),
    [
        ("numeric", "The answer is 42.", 42, 1.0),
        ("numeric", "The answer is 42.", "42", 1.0),
        ("numeric", "about 3,200 people", 3200, 1.0),
        ("numeric", "0.1 + 0.2", 0.1, 1.0),  # the first number
        ("numeric:pick=last", "0.1 + 0.2 = 0.3", 0.3, 1.0),
        ("numeric", "41.5", 42, 0.0),
        ("numeric:abs_tol=0.5", "41.5", 42, 1.0),
        ("numeric:rel_tol=0.01", "99.2", 100, 1.0),
        ("numeric:rel_tol=0.01", "98.9", 100, 0.0),
        ("numeric", "−7 °C", -7, 1.0),
        ("numeric", "４２", 42, 1.0),
        ("numeric", 42, 42.0, 1.0),
        ("numeric", "twelve", 12, 0.0),
        ("numeric", "", 0, 0.0),
        ("numeric", "3 or 4", [4, 3], 1.0),
        ("numeric:pick=only", "3 or 4", 3, 0.0),
    ],
)
def test_numeric(scorer, spec, output, expected, value):
    assert scorer(spec, output=output, expected=expected).value == value


def test_numeric_reports_the_error_and_refuses_a_bad_expected(scorer):
    score = scorer("numeric", output="It is 41.", expected=42)
    assert score.reason == "found 41, expected 42 (off by 1)"
    assert score.metadata == {"found": 41.0, "expected": 42.0, "abs_error": 1.0, "rel_error": 1 / 42}
    assert scorer("numeric", output="1", expected=True).outcome == "error"
    assert (
        scorer("numeric", output="1", expected="one or 2 or 3").reason
        == "expected 'one or 2 or 3' holds 2 numbers, not one"
    )
    assert scorer("numeric", output="1", expected={"n": 1}).outcome == "error"
    assert scorer("numeric", output="nothing", expected=1).reason == "no number in the output"
    with pytest.raises(ConfigError) as caught:
        scorer("numeric:abs_tol=-1", output="1", expected=1)
    assert caught.value.key == "abs_tol"


# -- token F1, edit distance, ROUGE-L ---------------------------------------------------------


def test_token_f1(scorer):
    score = scorer("token_f1", output="The capital is Canberra", expected="Canberra")
    assert score.value == pytest.approx(2 * (1 / 4) * 1 / (1 / 4 + 1)) and not score.passed
    assert score.metadata == {"precision": 0.25, "recall": 1.0}
    assert scorer("token_f1", output="CANBERRA!", expected="canberra").value == 1.0
    assert scorer("token_f1", output="Reykjavík", expected=["Reykjavik", "Reykjavík"]).value == 1.0
    assert scorer("token_f1", output="", expected="").value == 1.0
    assert scorer("token_f1", output="", expected="x").value == 0.0
    assert scorer("token_f1:remove_articles=true", output="the cat", expected="a cat").value == 1.0
    assert scorer("token_f1:ignore_case=false", output="Cat", expected="cat").value == 0.0


def test_edit_distance(scorer):
    assert scorer("edit_distance", output="kitten", expected="sitting").value == pytest.approx(1 - 3 / 7)
    assert scorer("edit_distance", output="Brasilia", expected="Brasília").value == pytest.approx(1 - 1 / 8)
    assert scorer("edit_distance", output="", expected="").value == 1.0
    assert scorer("edit_distance", output="", expected="abc").value == 0.0
    assert scorer("edit_distance:ignore_case=true", output="PARIS", expected="paris").value == 1.0
    words = scorer("edit_distance:unit=words", output="the quick fox", expected="the slow brown fox")
    assert words.value == pytest.approx(1 - 2 / 4) and words.metadata == {"distance": 2}
    assert scorer("edit_distance", output="Bern", expected=["Berlin", "Berne"]).value == pytest.approx(1 - 1 / 5)


def test_rouge_l(scorer):
    score = scorer("rouge_l", output="police kill the gunman", expected="police killed the gunman")
    assert score.value == pytest.approx(0.75) and score.passed
    assert score.metadata == {"precision": 0.75, "recall": 0.75}
    recall_heavy = scorer("rouge_l:beta=2", output="a b", expected="b")
    assert recall_heavy.value == pytest.approx(5 * 0.5 * 1.0 / (1.0 + 4 * 0.5))
    assert scorer("rouge_l", output="東京 です", expected="東京").value == pytest.approx(2 * 0.5 / 1.5)
    assert scorer("rouge_l", output="", expected="").value == 1.0
    with pytest.raises(ConfigError):
        scorer("rouge_l:beta=0", output="a", expected="a")


texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)


@given(a=texts, b=texts)
@settings(max_examples=60, deadline=None)
def test_text_scores_are_always_in_range_and_a_text_matches_itself(plugins, a, b):
    from cairn.evaluate import Dataset, Sample, build_evaluators, run_evaluation

    specs = ["exact", "includes", "token_f1", "edit_distance", "rouge_l", "exact:nfkc=true,ignore_case=true"]
    evaluators = build_evaluators(specs, plugins)
    data = Dataset((Sample("ab", output=a, expected=b), Sample("aa", output=a, expected=a)), "m", "m", "0" * 64)
    results = {r.sample_id: r.scores for r in run_evaluation(data, evaluators).results}
    for label in specs:
        assert 0.0 <= results["ab"][label].value <= 1.0
        assert results["aa"][label].value == 1.0


# -- latency and cost ------------------------------------------------------------------------


def test_latency_and_cost_read_the_sample_metadata(scorer):
    assert scorer("latency:max_ms=500", metadata={"latency_ms": 420}).value == 1.0
    over = scorer("latency:max_ms=500", metadata={"latency_ms": 1000})
    assert (over.value, over.passed, over.reason) == (0.5, False, "latency_ms 1000 is over the limit of 500")
    assert scorer("latency:max_ms=500", metadata={}).reason == "the sample has no latency_ms in its metadata"
    assert scorer("latency:max_ms=500", metadata={"latency_ms": "fast"}).outcome == "error"
    assert scorer("latency:max_ms=500,key=ttft_ms", metadata={"ttft_ms": 250}).value == 1.0
    assert scorer("cost:max_cost=0.01", metadata={"cost": 0.04}).value == pytest.approx(0.25)
    assert scorer("cost:max_cost=0.01,threshold=0.2", metadata={"cost": 0.04}).passed


def test_latency_without_a_limit_is_a_config_error_saying_what_to_set(scorer):
    with pytest.raises(ConfigError) as caught:
        scorer("latency", metadata={"latency_ms": 1})
    assert caught.value.key == "max_ms" and "--evaluator latency:max_ms=" in caught.value.hint
    with pytest.raises(ConfigError) as caught:
        scorer("latency:max_ms=0", metadata={"latency_ms": 1})
    assert caught.value.key == "max_ms"


def test_thresholds_come_from_the_table_and_are_checked(make_scorer):
    scorer = make_scorer("[evaluators.token_f1]\nthreshold = 0.2\n")
    assert scorer("token_f1", output="The capital is Canberra", expected="Canberra").passed
    with pytest.raises(ConfigError) as caught:
        scorer("token_f1:threshold=1.5", output="a", expected="a")
    assert caught.value.key == "threshold" and "from 0 to 1" in str(caught.value)
