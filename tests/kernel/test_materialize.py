"""Materialization: budgets, pins, instructions, tool pairs, time travel, formats."""

from __future__ import annotations

import itertools
import json

import pytest

from cairn.errors import BudgetExceededError, ValidationError
from cairn.materialize import to_anthropic, to_openai, to_text
from cairn.model import Message, ToolCall


def say(text: str, role: str = "user") -> dict:
    return {"content_type": "dialogue", "role": role, "text": text}


def call(call_id: str, **payload) -> dict:
    return {
        "content_type": "tool_io",
        "tool_name": "search",
        "direction": "call",
        "payload": payload,
        "call_id": call_id,
    }


def result(call_id: str, **payload) -> dict:
    return {
        "content_type": "tool_io",
        "tool_name": "search",
        "direction": "result",
        "payload": payload,
        "call_id": call_id,
        "status": "success",
    }


def texts(result) -> list[str | None]:
    return [m.content for m in result.neutral_messages]


def test_instructions_come_first_and_are_always_kept(repo):
    repo.append(say("old question"))
    repo.append({"content_type": "instruction", "text": "You are terse."})
    for i in range(20):
        repo.append(say(f"turn {i} with a few words"))
    result = repo.materialize(budget=40)
    assert result.neutral_messages[0].role == "system"
    assert texts(result)[0] == "You are terse."
    assert result.token_count <= 40
    assert texts(result)[-1] == "turn 19 with a few words"
    # The kept stretch is contiguous and newest.
    kept = texts(result)[1:]
    assert kept == [f"turn {i} with a few words" for i in range(20 - len(kept), 20)]


def test_budget_fill_stops_at_first_unit_that_does_not_fit(repo):
    repo.append(say("small"))  # 4 tokens
    repo.append(say("this one is much much much longer than the rest"))  # 13
    repo.append(say("tiny"))  # 4
    result = repo.materialize(budget=3 + 4 + 5)
    assert texts(result) == ["tiny"]
    assert [d.reason for d in result.dropped] == ["budget", "budget"]


def test_token_count_matches_tokenizer_on_the_messages(repo):
    repo.append({"content_type": "instruction", "text": "rules here"})
    repo.append(say("hi there", "user"))
    repo.append({"content_type": "dialogue", "role": "assistant", "text": "hello", "name": "bot"})
    result = repo.materialize()
    assert result.token_count == repo.tokenizer.count_messages(result.neutral_messages)
    assert result.token_source == "exact"
    assert result.commit_count == 3


def test_pinned_items_survive_any_budget(repo):
    pinned = repo.append(say("remember the API key rotates monthly"))
    for i in range(30):
        repo.append(say(f"chatter {i}"))
    repo.pin(pinned.hash, "policy")
    result = repo.materialize(budget=30)
    assert result.items[0].item == pinned.hash
    assert texts(result)[-1] == "chatter 29"


def test_required_over_budget_is_a_clear_error(repo):
    repo.append({"content_type": "instruction", "text": "a very long instruction " * 10})
    with pytest.raises(BudgetExceededError, match="pinned items and instructions"):
        repo.materialize(budget=10)


def test_skipped_instruction_is_left_out_and_unpinned_one_is_normal(repo):
    rule = repo.append({"content_type": "instruction", "text": "old rule"})
    repo.skip(rule.hash)
    assert texts(repo.materialize()) == []
    assert repo.materialize().dropped[0].reason == "skipped"
    repo.unpin(rule.hash)
    for i in range(10):
        repo.append(say(f"message number {i}"))
    assert "old rule" not in texts(repo.materialize(budget=20))


def test_edits_apply_to_pinned_items_far_back(repo):
    first = repo.append(say("version one"))
    repo.edit(first.hash, say("version two"))
    for i in range(200):
        repo.append(say(f"filler {i}"))
    repo.pin(first.hash)
    result = repo.materialize(budget=30)
    assert texts(result)[0] == "version two"
    deleted = repo.append({"content_type": "instruction", "text": "temporary rule"})
    repo.delete(deleted.hash)
    assert "temporary rule" not in texts(repo.materialize(budget=30))


def test_tool_call_and_result_are_never_split(repo):
    repo.append(say("what is the weather"))
    repo.append(call("c1", city="Oslo"))
    repo.append(result("c1", temp=3, sky="grey clouds over the fjord today"))
    repo.append(say("it is cold", "assistant"))
    full = repo.materialize()
    call_tokens = full.items[1].tokens
    result_tokens = full.items[2].tokens
    last_tokens = full.items[3].tokens
    # Room for the last message and the result, but not the call too.
    result_ = repo.materialize(budget=3 + last_tokens + result_tokens + call_tokens - 1)
    roles = [m.role for m in result_.neutral_messages]
    assert "tool" not in roles and roles == ["assistant"]
    reasons = {d.commit: d.reason for d in result_.dropped}
    assert reasons[full.items[1].item] == reasons[full.items[2].item] == "budget"
    # With room for both, both are kept, in order.
    ok = repo.materialize(budget=3 + last_tokens + result_tokens + call_tokens)
    assert [m.role for m in ok.neutral_messages] == ["assistant", "tool", "assistant"]


def test_pinned_tool_result_brings_its_call(repo):
    repo.append(call("c7", q="x"))
    res = repo.append(result("c7", answer="42"))
    for i in range(50):
        repo.append(say(f"later {i}"))
    repo.pin(res.hash)
    got = repo.materialize(budget=40)
    assert got.neutral_messages[0].tool_calls[0].id == "c7"
    assert got.neutral_messages[1].tool_call_id == "c7"


def test_pinned_tool_call_brings_its_result(repo):
    c = repo.append(call("c8", q="y"))
    repo.append(result("c8", answer="yes"))
    for i in range(50):
        repo.append(say(f"later {i}"))
    repo.pin(c.hash)
    got = repo.materialize(budget=40)
    assert [m.role for m in got.neutral_messages[:2]] == ["assistant", "tool"]


def test_orphaned_tool_result_is_dropped_with_reason(repo):
    c = repo.append(call("c2", q="x"))
    r = repo.append(result("c2", a=1))
    repo.delete(c.hash)
    got = repo.materialize()
    assert got.messages == []
    assert {d.commit: d.reason for d in got.dropped} == {c.hash: "deleted", r.hash: "orphaned_tool_result"}


def test_as_of_commit_and_time_see_edits_and_annotations_as_they_were(repo, clock):
    a = repo.append(say("original"))
    b = repo.append(say("second"))
    moment = clock.last
    repo.edit(a.hash, say("edited later"))
    repo.skip(b.hash)
    assert texts(repo.materialize()) == ["edited later"]
    assert texts(repo.materialize(as_of=b.hash)) == ["original", "second"]
    assert texts(repo.materialize(as_of=moment)) == ["original", "second"]
    assert texts(repo.materialize(as_of=a.hash)) == ["original"]
    assert repo.materialize(as_of="2000-01-01").messages == []


def test_as_of_commit_must_be_on_the_branch(repo):
    repo.append(say("base"))
    repo.switch("side", create=True)
    side = repo.append(say("side"))
    repo.switch("main")
    with pytest.raises(ValidationError, match="not in the history"):
        repo.materialize(as_of=side.hash)
    assert texts(repo.materialize("side", as_of=side.hash)) == ["base", "side"]


def test_materialize_is_pure(repo):
    for i in range(10):
        repo.append(say(f"m {i}"))
    one = repo.materialize(budget=30).to_dict()
    two = repo.materialize(budget=30).to_dict()
    assert one == two


def test_cost_grows_with_output_not_history(repo):
    for i in range(3000):
        repo.append(say(f"message {i}"))
    reads = {"ancestors": 0}
    real = repo.store.ancestors

    def counting(start, *, limit=None):
        found = real(start, limit=limit)
        reads["ancestors"] += len(found)
        return found

    repo.store.ancestors = counting  # type: ignore[method-assign]
    result = repo.materialize(budget=100)
    assert 0 < result.commit_count < 30
    assert reads["ancestors"] <= 64 + 256  # the first two batches at most
    assert len(result.dropped) == 3000 - result.commit_count


def test_iter_dropped_reads_history_only_as_far_as_it_is_read(repo):
    for i in range(3000):
        repo.append(say(f"message {i}"))
    repo.skip("HEAD~40", "left out on purpose")
    reads = {"ancestors": 0}
    real = repo.store.ancestors

    def counting(start, *, limit=None):
        found = real(start, limit=limit)
        reads["ancestors"] += len(found)
        return found

    repo.store.ancestors = counting  # type: ignore[method-assign]
    result = repo.materialize(budget=100)
    first = list(itertools.islice(result.iter_dropped(), 10))
    assert len(first) == 10 and reads["ancestors"] <= 64 + 256
    assert list(itertools.islice(result.iter_dropped(), 10)) == first  # read again from the start
    every = result.dropped
    assert every[:10] == tuple(first) and len(every) == 3000 - result.commit_count
    assert tuple(result.iter_dropped()) == every
    assert "skipped" in {d.reason for d in every}


def test_bad_arguments(repo):
    with pytest.raises(ValidationError, match="unknown format"):
        repo.materialize(format="xml")
    with pytest.raises(ValidationError, match="positive"):
        repo.materialize(budget=0)


def test_openai_format_merges_parallel_tool_calls():
    messages = [
        Message("assistant", None, tool_calls=(ToolCall("a", "f", "{}"),)),
        Message("assistant", None, tool_calls=(ToolCall("b", "g", "{}"),)),
        Message("tool", "1", name="f", tool_call_id="a"),
        Message("tool", "2", name="g", tool_call_id="b"),
        Message("user", "hi", name="ann"),
    ]
    out = to_openai(messages)
    assert [m["role"] for m in out] == ["assistant", "tool", "tool", "user"]
    assert [c["id"] for c in out[0]["tool_calls"]] == ["a", "b"]
    assert out[1] == {"role": "tool", "content": "1", "tool_call_id": "a"}
    assert out[3]["name"] == "ann"


def test_anthropic_format():
    messages = [
        Message("system", "rule one"),
        Message("assistant", "I start"),
        Message("system", "rule two"),
        Message("user", "q1"),
        Message("user", "q2"),
        Message("assistant", None, tool_calls=(ToolCall("t1", "f", json.dumps({"x": 1})),)),
        Message("tool", "done", tool_call_id="t1"),
        Message("user", "thanks"),
    ]
    out = to_anthropic(messages)
    assert out["system"] == "rule one\n\nrule two"
    roles = [m["role"] for m in out["messages"]]
    assert roles[0] == "user" and all(a != b for a, b in itertools.pairwise(roles))
    user_turn = out["messages"][2]
    assert [b["text"] for b in user_turn["content"]] == ["q1", "q2"]
    assert out["messages"][3]["content"][0] == {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}
    last = out["messages"][4]["content"]
    assert last[0] == {"type": "tool_result", "tool_use_id": "t1", "content": "done"}
    assert last[1] == {"type": "text", "text": "thanks"}


def test_text_format():
    out = to_text(
        [
            Message("system", "s"),
            Message("user", "u", name="ann"),
            Message("assistant", None, tool_calls=(ToolCall("1", "f", "{}"),)),
            Message("tool", "r", name="f"),
        ]
    )
    assert out == "system: s\n\nuser (ann): u\n\nassistant: [tool call] f({})\n\ntool f: r"
