"""json_valid, json_schema and json_diff."""

from __future__ import annotations

import json

import pytest
from cairn_evals.structured import json_path, leaves
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.errors import ConfigError

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["city", "population"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("spec", "output", "value"),
    [
        ("json_valid", '{"a": 1}', 1.0),
        ("json_valid", "[1, 2]", 1.0),
        ("json_valid", '"just a string"', 1.0),
        ("json_valid", "{'a': 1}", 0.0),
        ("json_valid", "", 0.0),
        ("json_valid", "NaN", 0.0),
        ("json_valid", '{"é": "東京"}', 1.0),
        ("json_valid", {"already": "json"}, 1.0),
        ("json_valid:require=object", "[1]", 0.0),
        ("json_valid:require=array", "[1]", 1.0),
        ("json_valid", '```json\n{"a": 1}\n```', 0.0),
        ("json_valid:strip_fences=true", '```json\n{"a": 1}\n```', 1.0),
    ],
)
def test_json_valid(scorer, spec, output, value):
    assert scorer(spec, output=output).value == value


def test_json_valid_reason_has_the_parser_position(scorer):
    assert scorer("json_valid", output='{"a": 1,}').reason.startswith("not valid JSON: ")
    assert "line 1, column 9" in scorer("json_valid", output='{"a": 1,}').reason
    assert scorer("json_valid:require=object", output="[]").reason == "valid JSON, but not an object: list"


def test_json_schema_from_the_table(make_scorer):
    scorer = make_scorer(
        "[evaluators.json_schema]\nschema = "
        + json.dumps(SCHEMA).replace('": ', '" = ').replace('{"', '{ "').replace(', "', ', "')
        + "\n"
    )
    good = scorer("json_schema", output='{"city": "Zürich", "population": 421878}')
    assert good.value == 1.0 and good.passed
    bad = scorer("json_schema", output='{"city": 3, "population": -1, "extra": true}')
    assert bad.value == 0.0
    paths = [e["path"] for e in bad.metadata["errors"]]
    assert paths == ["$", "$.city", "$.population"]
    assert bad.reason.startswith("3 schema violations: $: Additional properties are not allowed")
    assert scorer("json_schema", output="not json").reason.startswith("not valid JSON")
    nested = scorer("json_schema", output='{"city": "a", "population": 1, "tags": ["x", 2]}')
    assert nested.metadata["errors"] == [{"path": "$.tags[1]", "message": "2 is not of type 'string'"}]


def test_json_schema_from_a_file_or_the_expected(make_scorer, cairn_env):
    (cairn_env / "schema.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    scorer = make_scorer('[evaluators.json_schema]\nschema_file = "schema.json"\n')
    assert scorer("json_schema", output='{"city": "x", "population": 1}').value == 1.0
    plain = make_scorer("")
    assert plain("json_schema", output='{"n": 5}', expected={"properties": {"n": {"maximum": 3}}}).value == 0.0
    assert (
        plain("json_schema", output='{"n": 2}', expected=json.dumps({"properties": {"n": {"maximum": 3}}})).value == 1.0
    )
    assert plain("json_schema", output="{}").reason == "the sample has no expected"
    assert plain("json_schema", output="{}", expected="plain text").outcome == "error"
    assert plain("json_schema", output="{}", expected={"type": 12}).reason.startswith(
        "expected is not a valid JSON Schema"
    )


def test_an_invalid_schema_or_unreadable_file_is_a_config_error(make_scorer):
    scorer = make_scorer('[evaluators.json_schema]\nschema = { type = "strnig" }\n')
    with pytest.raises(ConfigError) as caught:
        scorer("json_schema", output="{}")
    assert caught.value.key == "schema" and "not a valid JSON Schema" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        make_scorer("")("json_schema:schema_file=missing.json", output="{}")
    assert caught.value.key == "schema_file" and "cannot read" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        make_scorer("")('json_schema:schema={type = "object"},schema_file=x.json', output="{}")
    assert "not be set together" in str(caught.value)


def test_format_checking_is_opt_in(make_scorer):
    scorer = make_scorer("")
    schema = {"type": "string", "format": "date"}
    assert scorer("json_schema", output='"not a date"', expected=schema).value == 1.0
    assert scorer("json_schema:check_formats=true", output='"not a date"', expected=schema).value == 0.0
    assert scorer("json_schema:check_formats=true", output='"2024-02-29"', expected=schema).value == 1.0


def test_json_diff_scores_the_share_of_equal_leaves_and_names_the_paths(scorer):
    expected = {"name": "Ada", "langs": ["en", "fr"], "age": 36, "admin": False, "meta": {}}
    same = scorer("json_diff", output=json.dumps(expected), expected=expected)
    assert same.value == 1.0 and same.reason == ""
    diff = scorer(
        "json_diff",
        output=json.dumps({"name": "Ada", "langs": ["en", "de"], "age": "36", "admin": 0, "extra": 1}),
        expected=expected,
    )
    assert diff.metadata["matching"] == 2 and diff.metadata["total"] == 7
    assert diff.value == pytest.approx(2 / 7)
    kinds = {d["path"]: d["kind"] for d in diff.metadata["differences"]}
    assert kinds == {
        "$.admin": "type",
        "$.age": "type",
        "$.extra": "extra",
        "$.langs[1]": "changed",
        "$.meta": "missing",
    }
    assert diff.reason.startswith("5 of 7 leaves differ: $.admin (type)")


def test_json_diff_options_and_edge_cases(scorer):
    assert scorer("json_diff", output="[3, 2, 1]", expected=[1, 2, 3]).value == pytest.approx(1 / 3)
    assert scorer("json_diff:ignore_order=true", output="[3, 1, 2]", expected=[1, 2, 3]).value == 1.0
    assert scorer("json_diff", output='{"x": 0.30000000000000004}', expected={"x": 0.3}).value == 0.0
    assert scorer("json_diff:float_tol=1e-9", output='{"x": 0.30000000000000004}', expected={"x": 0.3}).value == 1.0
    assert scorer("json_diff", output="1", expected=1.0).value == 1.0
    assert scorer("json_diff", output="true", expected=1).value == 0.0  # a boolean is not a number
    assert scorer("json_diff", output="{}", expected={}).value == 1.0
    assert scorer("json_diff", output='{"a b": {"ü": 1}}', expected={"a b": {"ü": 2}}).metadata["differences"] == [
        {"path": '$["a b"].ü', "kind": "changed"}
    ]
    assert scorer("json_diff", output="oops", expected={}).reason.startswith("the output is not valid JSON")


def test_json_path_and_leaves():
    assert json_path(()) == "$" and json_path(("a", 0, "b c", "ü")) == '$.a[0]["b c"].ü'
    assert dict(leaves({"a": [1, {"b": None}], "c": []})) == {("a", 0): 1, ("a", 1, "b"): None, ("c",): []}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)


@given(json_values.filter(lambda v: v is not None), json_values.filter(lambda v: v is not None))
@settings(max_examples=80, deadline=None)
def test_json_diff_is_in_range_and_one_exactly_for_equal_values(plugins, a, b):
    from cairn.evaluate import Dataset, Sample, build_evaluators, run_evaluation

    (diff,) = build_evaluators(["json_diff"], plugins)
    data = Dataset(
        (Sample("ab", output=json.dumps(a), expected=b), Sample("aa", output=json.dumps(a), expected=a)),
        "m",
        "m",
        "0" * 64,
    )
    ab, aa = (r.scores["json_diff"] for r in run_evaluation(data, [diff]).results)
    assert aa.value == 1.0 and 0.0 <= ab.value <= 1.0
    # A string expected holding an object or array is parsed first, so compare the parsed forms.
    parsed_b = b
    if isinstance(b, str):
        try:
            candidate = json.loads(b)
            parsed_b = candidate if isinstance(candidate, (dict, list)) else b
        except ValueError:
            pass
    if ab.value == 1.0:
        assert json.dumps(a, sort_keys=True) == json.dumps(parsed_b, sort_keys=True)
