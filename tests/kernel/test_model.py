"""The data model: canonical JSON, content types, commits, names."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.errors import DuplicateNameError, ValidationError
from cairn.model import (
    BUILTIN_CONTENT_TYPES,
    Annotation,
    Commit,
    Content,
    ContentHints,
    ContentTypes,
    Dialogue,
    Instruction,
    Operation,
    Priority,
    UnknownContent,
    canonical_json,
    format_time,
    parse_time,
    skip_depth,
    validate_branch_name,
    validate_name,
    validate_ref_text,
    value_hash,
)

H = "a" * 64


def builtin_types() -> ContentTypes:
    registry = ContentTypes()
    for cls in BUILTIN_CONTENT_TYPES:
        registry.register(cls, plugin="cairn")
    return registry


@pytest.fixture
def types() -> ContentTypes:
    return builtin_types()


def test_canonical_json_is_sorted_compact_utf8():
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_hash_is_sha256_of_canonical_json():
    value = {"z": [1, 2, {"y": None}], "a": "text"}
    expected = hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert value_hash(value) == expected


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {1: "int key"}, object()])
def test_canonical_json_refuses_non_json(bad):
    with pytest.raises(ValidationError):
        canonical_json({"v": bad})


def test_lone_surrogate_is_refused_not_mangled():
    with pytest.raises(ValidationError, match="not valid Unicode"):
        canonical_json({"t": "\ud800"})


def test_times_are_fixed_width_utc_and_parse_back():
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    text = format_time(moment)
    assert text == "2026-01-02T01:04:05.000006Z"
    assert parse_time(text) == moment
    assert parse_time("2026-01-02") == dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    with pytest.raises(ValidationError, match="not an ISO-8601 time"):
        parse_time("yesterday")
    with pytest.raises(ValidationError, match="no timezone"):
        format_time(dt.datetime(2026, 1, 1))


def test_builtin_types_are_the_eight(types):
    assert types.names() == sorted(
        ["instruction", "dialogue", "tool_io", "reasoning", "artifact", "output", "freeform", "image"]
    )


@pytest.mark.parametrize(
    "data",
    [
        {"content_type": "instruction", "text": "Be brief."},
        {"content_type": "dialogue", "role": "assistant", "text": "hi", "name": "bot"},
        {"content_type": "tool_io", "tool_name": "search", "direction": "call", "payload": {"q": "x"}, "call_id": "c1"},
        {
            "content_type": "tool_io",
            "tool_name": "search",
            "direction": "result",
            "payload": {"hits": []},
            "status": "error",
            "call_id": "c1",
        },
        {"content_type": "reasoning", "text": "because"},
        {"content_type": "artifact", "artifact_type": "code", "content": "print(1)", "language": "python"},
        {"content_type": "output", "text": "{}", "format": "json"},
        {"content_type": "freeform", "payload": {"anything": [1, 2]}},
    ],
)
def test_each_type_round_trips_and_renders(types, data):
    item = types.create(data)
    assert item.to_dict() == data
    again = types.decode(json.loads(item.canonical()))
    assert again == item and again.hash == item.hash
    messages = item.render()
    assert messages and all(m.role in {"system", "user", "assistant", "tool"} for m in messages)


def test_hints(types):
    assert Instruction.hints.default_priority is Priority.PINNED
    assert Instruction.hints.order < Dialogue.hints.order
    for cls in BUILTIN_CONTENT_TYPES:
        if cls is not Instruction:
            assert cls.hints.default_priority is Priority.NORMAL
        assert 0 <= cls.hints.compression_priority <= 100


def test_tool_call_renders_as_assistant_tool_call_and_result_as_tool_message(types):
    call = types.create(
        {"content_type": "tool_io", "tool_name": "f", "direction": "call", "payload": {"a": 1}, "call_id": "c9"}
    )
    (message,) = call.render()
    assert message.role == "assistant" and message.tool_calls[0].id == "c9"
    assert json.loads(message.tool_calls[0].arguments) == {"a": 1}
    result = types.create(
        {"content_type": "tool_io", "tool_name": "f", "direction": "result", "payload": {"ok": True}, "call_id": "c9"}
    )
    (message,) = result.render()
    assert message.role == "tool" and message.tool_call_id == "c9"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            {"content_type": "dialogue", "role": "bot", "text": "x"},
            "role must be one of user, assistant, system; got 'bot'",
        ),
        ({"content_type": "dialogue", "role": "user", "text": 5}, "dialogue.text: expected a string"),
        ({"content_type": "dialogue", "role": "user"}, "dialogue.text: required field missing"),
        ({"content_type": "dialogue", "role": "user", "text": "x", "mood": "ok"}, "unknown field(s): mood"),
        (
            {"content_type": "tool_io", "tool_name": "t", "direction": "sideways", "payload": {}},
            "direction must be one of call, result",
        ),
        ({"content_type": "tool_io", "tool_name": "t", "direction": "call", "payload": []}, "payload"),
        ({"content_type": "output", "text": "x", "format": "yaml"}, "format must be one of text, markdown, json"),
        ({"content_type": "nope"}, "unknown content type 'nope'"),
        ({"text": "x"}, "content has no content_type"),
    ],
)
def test_validation_errors_name_type_and_field(types, data, fragment):
    with pytest.raises(ValidationError) as info:
        types.create(data)
    assert fragment in str(info.value)


def test_none_fields_are_left_out_of_the_hash(types):
    with_name = types.create({"content_type": "dialogue", "role": "user", "text": "x"})
    assert "name" not in with_name.to_dict()


def test_unknown_type_is_preserved_exactly(types):
    raw = {"content_type": "vendor.thing", "x": [1, {"y": "é"}]}
    item = types.decode(raw)
    assert isinstance(item, UnknownContent)
    assert item.to_dict() == raw
    assert item.hash == value_hash(raw)
    assert item.render()[0].content == canonical_json(raw).decode()


def test_stored_item_no_longer_valid_is_preserved_not_dropped(types):
    raw = {"content_type": "dialogue", "role": "robot", "text": "x"}
    item = types.decode(raw)
    assert isinstance(item, UnknownContent) and item.hash == value_hash(raw)


@attrs.frozen
class Greeting(Content):
    content_type = "test.greeting"
    hints = ContentHints("user")
    text: str

    def render(self):
        from cairn.model import Message

        return (Message("user", f"greeting: {self.text}"),)


def test_custom_type_registers_validates_and_round_trips(types):
    types.register(Greeting, plugin="tests")
    item = types.create({"content_type": "test.greeting", "text": "hey"})
    assert types.decode(item.to_dict()) == item
    with pytest.raises(ValidationError):
        types.create({"content_type": "test.greeting", "text": 1})


def test_duplicate_content_type_names_both_plugins(types):
    @attrs.frozen
    class Other(Content):
        content_type = "dialogue"
        hints = ContentHints("user")
        text: str

        def render(self):
            return ()

    with pytest.raises(DuplicateNameError) as info:
        types.register(Other, plugin="other-plugin")
    assert "'cairn'" in str(info.value) and "'other-plugin'" in str(info.value)


def test_register_refuses_non_content_classes(types):
    with pytest.raises(ValidationError):
        types.register(dict, plugin="x")  # type: ignore[arg-type]


def test_commit_hash_covers_its_fields_and_not_derived_ones():
    base = dict(parent=None, operation="append", content_hash=H, message="m", created_at="2026-01-01T00:00:00.000000Z")
    one = Commit.new(**base)
    assert one.hash == one.computed_hash()
    assert Commit.new(**base, token_count=99, depth=0).hash == one.hash
    assert Commit.new(**{**base, "message": "other"}).hash != one.hash
    assert Commit.new(**base, metadata={"k": 1}).hash != one.hash
    assert Commit.from_record(one.to_record()) == one


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"operation": "append", "content_hash": H, "target": H}, "an append has no target"),
        ({"operation": "edit", "content_hash": H}, "needs the commit it targets"),
        ({"operation": "delete", "content_hash": H, "target": H}, "a delete carries no content"),
        ({"operation": "edit", "content_hash": None, "target": H}, "needs content"),
    ],
)
def test_commit_shape_rules(kwargs, fragment):
    with pytest.raises(ValidationError, match=fragment):
        Commit.new(parent=None, created_at="2026-01-01T00:00:00.000000Z", **kwargs)


def test_commit_refuses_malformed_hashes():
    with pytest.raises(ValueError):
        Commit.new(parent="abc", operation="append", content_hash=H, created_at="t")


def test_annotation_id_is_stable():
    a = Annotation(H, "pinned", "why", "2026-01-01T00:00:00.000000Z")
    assert a.priority is Priority.PINNED
    assert a.id == Annotation.from_record(a.to_record()).id


def test_skip_depth_points_strictly_back_and_is_logarithmic():
    for depth in range(2, 5000):
        assert 0 <= skip_depth(depth) < depth
    # From any depth, greedy jumps reach 0 in O(log n) steps.
    depth, steps = 4095, 0
    while depth:
        depth = skip_depth(depth) if skip_depth(depth) else depth - 1
        steps += 1
    assert steps < 40


@pytest.mark.parametrize("name", ["main", "feature/x-1", "v1.2", "a_b"])
def test_good_branch_names(name):
    assert validate_branch_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-x", "a..b", "a//b", "x/", "x.lock", "HEAD", "a b", "a~1", "../etc", ".hidden", "a/.b", "é"]
)
def test_bad_branch_names(name):
    with pytest.raises(ValidationError):
        validate_branch_name(name)


@pytest.mark.parametrize("name", ["ffff", "FFFF", "deadbeef", "0123", "a" * 64, "c" * 40])
def test_branch_names_that_look_like_hashes_are_refused_when_new(name):
    with pytest.raises(ValidationError, match="looks like a commit hash"):
        validate_branch_name(name)
    assert validate_branch_name(name, existing=True) == name  # made before the rule: still usable


@pytest.mark.parametrize("name", ["fff", "a" * 65, "cafe-1", "beefy", "b-ffff", "feature/dead"])
def test_names_near_a_hash_are_fine(name):
    assert validate_branch_name(name) == name


@pytest.mark.parametrize("name", ["\udcff\udcfe", "main\udcff", "a\nb", "tab\there"])
def test_names_that_are_not_text_are_refused_everywhere(name):
    for check in (validate_branch_name, lambda v: validate_branch_name(v, existing=True), validate_ref_text):
        with pytest.raises(ValidationError, match="not valid UTF-8|control character"):
            check(name)


def test_ref_text_is_looser_than_a_branch_name():
    for name in ("../../etc/passwd", "-x", "🪨", "ffff"):
        assert validate_ref_text(name) == name
    for bad in ("", None, 7, "x" * 1001):
        with pytest.raises(ValidationError):
            validate_ref_text(bad)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"token_count": 2**63}, "token_count must be an integer"),
        ({"depth": -1}, "depth must be an integer"),
        ({"cumulative_tokens": True}, "cumulative_tokens must be an integer"),
        ({"tokenizer": ""}, "tokenizer must be null or a string"),
        ({"content_type": 5}, "content_type must be null or a string"),
        ({"target": "a" * 64}, "an append has no target"),
        ({"content_hash": None}, "an append needs content"),
    ],
)
def test_validate_refuses_what_commit_new_would_never_make(changes, message):
    good = Commit.new(parent=None, operation="append", content_hash="b" * 64, created_at="2026-01-01T00:00:00.000000Z")
    good.validate()
    with pytest.raises((ValueError, TypeError), match=message):
        attrs.evolve(good, **changes).validate()
    delete = attrs.evolve(good, operation=Operation.DELETE, target="a" * 64)
    with pytest.raises(ValueError, match="a delete carries no content"):
        delete.validate()


@pytest.mark.parametrize("name", ["-rf", "..", "a/b", "", "x" * 200])
def test_bad_plain_names(name):
    with pytest.raises(ValidationError):
        validate_name(name, what="plugin name")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_arbitrary_payloads_round_trip_with_stable_hashes(payload):
    types = builtin_types()
    item = types.create({"content_type": "freeform", "payload": payload})
    stored = item.canonical()
    again = types.decode_bytes(stored)
    assert again == item
    assert again.hash == item.hash == hashlib.sha256(stored).hexdigest()


def test_canonical_json_refuses_nesting_past_the_limit_without_recursing():
    from cairn.model.canonical import MAX_NESTING

    def nested(depth: int) -> object:
        value: object = 1
        for _ in range(depth):
            value = [value]
        return value

    assert canonical_json(nested(MAX_NESTING)) == b"[" * MAX_NESTING + b"1" + b"]" * MAX_NESTING
    for depth in (MAX_NESTING + 1, 200_000):  # far past Python's recursion limit: still a ValidationError
        with pytest.raises(ValidationError, match=f"nested more than {MAX_NESTING} levels deep"):
            canonical_json(nested(depth))
    with pytest.raises(ValidationError, match="nested more than"):
        canonical_json({"a": nested(MAX_NESTING)})
