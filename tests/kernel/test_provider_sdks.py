"""Materialized messages as the official SDKs take them: their request types, the APIs' ordering rules,
and each SDK's client sending them to a loopback server that records the body."""

from __future__ import annotations

import hashlib

import pytest

from cairn.errors import ValidationError
from cairn.model import Image
from cairn.model.artifacts import ArtifactRef

pytest.importorskip("openai", reason="the [test-sdks] extra (tox -e kernel installs it)")
pytest.importorskip("anthropic", reason="the [test-sdks] extra (tox -e kernel installs it)")

from sdk_checks import (  # after the skips: it imports the SDKs lazily, but only means anything with them
    Recorder,
    anthropic_request_problems,
    anthropic_sequence_problems,
    conforms,
    openai_request_problems,
    openai_sequence_problems,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
PNG_REF = ArtifactRef(hashlib.sha256(PNG).hexdigest(), "chart.png", "image/png", len(PNG))


def read_image(ref: ArtifactRef) -> bytes | None:
    return PNG if ref == PNG_REF else None


@pytest.fixture(scope="module")
def server():
    recorder = Recorder()
    yield recorder
    recorder.close()


def call(name="search", payload=None, **extra):
    return {
        "content_type": "tool_io",
        "tool_name": name,
        "direction": "call",
        "payload": payload or {"q": "x"},
        **extra,
    }


def result(call_id, payload=None, **extra):
    return {
        "content_type": "tool_io",
        "tool_name": "search",
        "direction": "result",
        "payload": payload or {"hits": 1},
        "call_id": call_id,
        **extra,
    }


def say(role, text, **extra):
    return {"content_type": "dialogue", "role": role, "text": text, **extra}


def accepted(repo, server, **options):
    """Materialize for both providers, check both against their SDK and rules, send both; return them."""
    openai_messages = repo.materialize(format="openai", **options).messages
    assert openai_request_problems(openai_messages) == []
    assert server.send_openai(openai_messages)["messages"] == openai_messages
    anthropic_request = repo.materialize(format="anthropic", **options).messages
    assert anthropic_request_problems(anthropic_request) == []
    body = server.send_anthropic(anthropic_request)
    assert body["messages"] == anthropic_request["messages"]
    assert body.get("system", "") == anthropic_request["system"]
    return openai_messages, anthropic_request


def test_every_builtin_content_type_is_accepted_by_both_sdks(repo, server):
    repo.append({"content_type": "instruction", "text": "Answer briefly.", "name": "style"})
    repo.append(say("user", "What is in the chart?", name="ann"))
    repo.append(Image.stored(PNG_REF, text="the chart"))
    repo.append({"content_type": "image", "url": "https://example.org/photo.jpg"})
    repo.append(
        {"content_type": "artifact", "sha256": PNG_REF.hash, "name": "chart.png", "mime": "image/png", "size": len(PNG)}
    )
    repo.append({"content_type": "reasoning", "text": "Look at the axes first."})
    asked = repo.append(call(payload={"q": "chart"}))
    repo.append(result(repo.content_of(asked).call_id, status="success"))
    failed = repo.append(call(name="fetch"))
    repo.append(result(repo.content_of(failed).call_id, payload={"error": "timeout"}, status="error"))
    repo.append({"content_type": "artifact", "artifact_type": "patch", "content": "+ a line", "language": "diff"})
    repo.append({"content_type": "output", "text": "It rises.", "format": "markdown"})
    repo.append({"content_type": "freeform", "payload": {"note": "seen"}})
    repo.append(say("system", "Keep going."))
    repo.append(say("assistant", "Done.", name="bot"))
    repo.append(say("user", "Thanks."))

    for reasoning in (False, True):
        openai_messages, anthropic_request = accepted(repo, server, images=read_image, include_reasoning=reasoning)
        roles = [m["role"] for m in openai_messages]
        assert roles.count("tool") == 2
        assert ("Look at the axes first." in str(openai_messages)) is reasoning

    user_parts = [p for m in openai_messages if isinstance(m["content"], list) for p in m["content"]]
    assert {"type": "image_url", "image_url": {"url": "https://example.org/photo.jpg"}} in user_parts
    assert sum(p["type"] == "image_url" for p in user_parts) == 3  # the URL, the stored image, the artifact reference
    blocks = [b for turn in anthropic_request["messages"] for b in turn["content"]]
    assert {"type": "image", "source": {"type": "url", "url": "https://example.org/photo.jpg"}} in blocks
    errors = [b for b in blocks if b["type"] == "tool_result" and b.get("is_error")]
    assert len(errors) == 1 and '"timeout"' in errors[0]["content"]
    assert {"type": "text", "text": "ann: What is in the chart?"} in blocks  # the name kept, as a prefix
    assert {"type": "text", "text": "bot: Done."} in blocks
    assert anthropic_request["system"] == "Answer briefly.\n\nKeep going."
    assert {"role": "user", "content": "What is in the chart?", "name": "ann"} in openai_messages


def test_images_without_a_reader_are_placeholders_both_sdks_take(repo, server):
    repo.append({"content_type": "image", "url": "https://example.org/a.png", "text": "look"})
    openai_messages, request = accepted(repo, server)
    assert openai_messages == [{"role": "user", "content": "[image https://example.org/a.png]\nlook"}]
    assert request["messages"][0]["content"] == [{"type": "text", "text": "[image https://example.org/a.png]\nlook"}]


def test_a_call_without_call_id_gets_a_stable_id_from_the_commit(repo, server, content_types, clock):
    made = repo.append(call())
    first = repo.content_of(made).call_id
    assert first.startswith("call_") and len(first) <= 40
    repo.append(result(first))
    openai_messages, request = accepted(repo, server)
    assert openai_messages[0]["tool_calls"][0]["id"] == first and openai_messages[1]["tool_call_id"] == first

    # Deterministic: the same history built again gives the same id.
    from cairn.repo import Repo
    from cairn.testing.fakes import WordTokenizer
    from cairn.testing.memory import MemoryStore

    again = Repo(MemoryStore(), WordTokenizer(), content_types)
    assert again.content_of(again.append(call())).call_id == first
    # ... and the same call later in history gets another.
    assert repo.content_of(repo.append(call())).call_id != first


@pytest.mark.parametrize("bad", ["", "   ", "a b", "x" * 41, "id/1"])
def test_an_explicit_call_id_providers_refuse_is_refused_at_commit(repo, bad):
    with pytest.raises(ValidationError, match="call_id"):
        repo.append(call(call_id=bad))
    assert repo.head() is None


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "dots.not.allowed"])
def test_a_tool_name_providers_refuse_is_refused_at_commit(repo, bad):
    with pytest.raises(ValidationError, match="tool.name"):
        repo.append(call(name=bad))


@pytest.mark.parametrize(
    "item",
    [
        {"content_type": "instruction", "text": "  "},
        say("user", ""),
        say("assistant", "\n\t "),
        {"content_type": "output", "text": " "},
        {"content_type": "reasoning", "text": ""},
        {"content_type": "image", "url": "https://example.org/a.png", "text": "  "},
    ],
)
def test_whitespace_only_text_is_refused_at_commit(repo, item):
    with pytest.raises(ValidationError, match="empty|only whitespace"):
        repo.append(item)


def test_checks_apply_to_edits_and_an_edited_call_keeps_its_id(repo):
    asked = repo.append(call())
    call_id = repo.content_of(asked).call_id
    with pytest.raises(ValidationError, match="only whitespace"):
        repo.edit(repo.append(say("user", "hi")).hash, say("user", " "))
    with pytest.raises(ValidationError, match="call_id"):
        repo.edit(asked.hash, call(call_id=""))
    edited = repo.edit(asked.hash, call(payload={"q": "better"}))
    assert repo.content_of(edited).call_id == call_id


@pytest.mark.parametrize("bad", ["ann smith", "a/b", "<x>", "x" * 65])
def test_a_message_name_openai_refuses_is_refused_at_commit(repo, bad):
    with pytest.raises(ValidationError, match="name"):
        repo.append(say("user", "hi", name=bad))


@pytest.mark.parametrize(
    "url", ["http://example.org/a.png", "ftp://x/y.png", "https://", "https://a b", "data:image/png;base64,AA"]
)
def test_an_image_url_providers_do_not_fetch_is_refused(repo, url):
    with pytest.raises(ValidationError, match="url"):
        repo.append({"content_type": "image", "url": url})


def test_an_image_is_a_url_or_a_stored_image_file(repo):
    with pytest.raises(ValidationError, match="not both"):
        repo.append(
            {
                "content_type": "image",
                "url": "https://e.org/a.png",
                "sha256": PNG_REF.hash,
                "name": "a",
                "mime": "image/png",
                "size": 1,
            }
        )
    with pytest.raises(ValidationError, match="not an image type"):
        repo.append(
            {"content_type": "image", "sha256": PNG_REF.hash, "name": "a.pdf", "mime": "application/pdf", "size": 1}
        )
    with pytest.raises(ValidationError, match="needs a url"):
        repo.append({"content_type": "image"})


def test_a_user_turn_between_a_call_and_its_result(repo, server):
    asked = repo.append(call())
    repo.append(say("user", "are you there?"))
    answer = repo.append(result(repo.content_of(asked).call_id))
    openai_messages, request = accepted(repo, server)
    assert [m["role"] for m in openai_messages] == ["assistant", "tool", "user"]
    assert [t["role"] for t in request["messages"]] == ["user", "assistant", "user"]
    assert [i.item for i in repo.materialize().items] == [asked.hash, answer.hash, repo.head().parent]


def test_a_result_committed_before_its_call(repo, server):
    repo.append(say("user", "look it up"))
    answer = repo.append(result("call_early"))
    asked = repo.append(call(call_id="call_early"))
    openai_messages, _ = accepted(repo, server)
    assert [m["role"] for m in openai_messages] == ["user", "assistant", "tool"]
    got = repo.materialize()
    assert [i.item for i in got.items][1:] == [asked.hash, answer.hash]
    assert got.dropped == ()
    # Under a budget the pair is still one unit: both, or neither.
    for budget in range(1, got.token_count + 1):
        kept = {i.item for i in repo.materialize(budget=budget).items}
        assert (asked.hash in kept) == (answer.hash in kept), budget


def test_a_call_with_no_result_yet_is_left_out_unless_asked_for(repo, server):
    repo.append(say("user", "search please"))
    asked = repo.append(call())
    openai_messages, _ = accepted(repo, server)
    assert [m["role"] for m in openai_messages] == ["user"]
    got = repo.materialize()
    assert [(d.commit, d.reason) for d in got.dropped] == [(asked.hash, "pending_tool_call")]
    assert got.token_count == repo.tokenizer.count_messages(got.neutral_messages)

    kept = repo.materialize(keep_pending_calls=True)
    assert kept.messages[-1]["tool_calls"][0]["id"] == repo.content_of(asked).call_id
    assert openai_sequence_problems(kept.messages, pending_at_end=True) == []
    assert (
        anthropic_sequence_problems(
            repo.materialize(format="anthropic", keep_pending_calls=True).messages["messages"], pending_at_end=True
        )
        == []
    )


def test_a_call_never_answered_before_the_conversation_moved_on_is_orphaned(repo, server):
    asked = repo.append(call())
    repo.append(say("user", "never mind"))
    accepted(repo, server)
    got = repo.materialize(keep_pending_calls=True)  # not pending: something follows it
    assert [(d.commit, d.reason) for d in got.dropped] == [(asked.hash, "orphaned_tool_call")]


def test_a_result_whose_call_is_deleted_is_orphaned(repo, server):
    asked = repo.append(call())
    answer = repo.append(result(repo.content_of(asked).call_id))
    repo.append(say("user", "next"))
    repo.delete(asked.hash)
    accepted(repo, server)
    reasons = {d.commit: d.reason for d in repo.materialize().dropped}
    assert reasons == {asked.hash: "deleted", answer.hash: "orphaned_tool_result"}


def test_parallel_calls_stay_one_turn_with_their_results_after(repo, server):
    a = repo.append(call(call_id="call_a"))
    b = repo.append(call(call_id="call_b"))
    repo.append(say("user", "meanwhile"))
    repo.append(result("call_b"))
    repo.append(result("call_a"))
    openai_messages, request = accepted(repo, server)
    assert [c["id"] for c in openai_messages[0]["tool_calls"]] == ["call_a", "call_b"]
    assert [m.get("tool_call_id") for m in openai_messages[1:3]] == ["call_a", "call_b"]
    assert openai_messages[3] == {"role": "user", "content": "meanwhile"}
    assert [b["type"] for b in request["messages"][2]["content"]] == ["tool_result", "tool_result", "text"]
    assert {a.hash, b.hash} <= {i.item for i in repo.materialize().items}


def test_a_second_result_for_one_call_keeps_the_newest(repo, server):
    repo.append(call(call_id="call_x"))
    old = repo.append(result("call_x", payload={"v": 1}))
    repo.append(result("call_x", payload={"v": 2}))
    openai_messages, _ = accepted(repo, server)
    assert openai_messages[1]["content"] == '{"v": 2}'
    assert {d.commit: d.reason for d in repo.materialize().dropped} == {old.hash: "duplicate_tool_result"}


def test_a_context_of_one_instruction_is_a_valid_request(repo, server):
    repo.append({"content_type": "instruction", "text": "You are terse."})
    openai_messages, request = accepted(repo, server)
    assert openai_messages == [{"role": "system", "content": "You are terse."}]
    assert request == {
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "(begin)"}]}],
    }


def test_a_conversation_opening_with_the_assistant(repo, server):
    repo.append(say("assistant", "Hello, how can I help?"))
    _, request = accepted(repo, server)
    assert request["messages"][0] == {"role": "user", "content": [{"type": "text", "text": "(continuing)"}]}


# -- the checks themselves catch what the APIs refuse (a check that cannot fail proves nothing) --


def test_the_checks_catch_the_sequences_the_issue_reported():
    from anthropic.types import MessageParam
    from openai.types.chat import ChatCompletionMessageParam

    empty_id = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "content": "r"},
    ]
    assert conforms(empty_id[1], ChatCompletionMessageParam)  # no tool_call_id
    assert openai_sequence_problems(empty_id)
    between = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "user", "content": "hi"},
        {"role": "tool", "content": "r", "tool_call_id": "c"},
    ]
    assert openai_sequence_problems(between)
    assert conforms(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c", "content": "r", "status": "error"}]},
        MessageParam,
    )
    assert anthropic_sequence_problems([])
    assert anthropic_sequence_problems([{"role": "user", "content": [{"type": "text", "text": " "}]}])
    assert anthropic_sequence_problems(
        [
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "tool_result", "tool_use_id": "c", "content": "r"},
                ],
            },
        ]
    )
