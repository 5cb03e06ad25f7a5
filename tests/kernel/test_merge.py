"""Merge and cherry-pick in the context engine, over the reference in-memory store."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.errors import MergeConflictError, ValidationError
from cairn.model import Operation, Priority
from cairn.repo import Repo
from cairn.storage import check_store
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore


def say(text: str, role: str = "user") -> dict:
    return {"content_type": "dialogue", "role": role, "text": text}


def texts(repo: Repo, rev: str | None = None) -> list[str | None]:
    return [m.content for m in repo.materialize(rev).neutral_messages]


def consistent(repo: Repo) -> None:
    """What every history must keep: a clean store, and budget counts that agree with what is materialized."""
    assert check_store(repo.store) == []
    for name in repo.branches():
        head = repo.resolve(name)
        assert repo.effective_tokens(head) == repo.materialize(name).token_count, name


def test_fast_forward_moves_the_branch_without_a_merge_commit(repo):
    a = repo.append(say("one"))
    repo.switch("side", create=True)
    c = repo.append(say("three"))
    repo.switch("main")
    result = repo.merge("side")
    assert result.kind == "fast_forward" and result.merge is None
    assert repo.head().hash == c.hash and repo.branches()["main"] == c.hash
    assert repo.merge("side").kind == "up_to_date"
    assert [e.commit.hash for e in repo.log()] == [c.hash, a.hash]


def test_merge_commit_has_two_parents_and_interleaves_by_time(repo):
    a = repo.append(say("base"))
    repo.switch("side", create=True)
    repo.switch("main")
    b = repo.append(say("ours early"))
    repo.switch("side")
    c = repo.append(say("theirs middle"))
    repo.switch("main")
    repo.append(say("ours late"))
    result = repo.merge("side")
    merge = result.merge
    assert result.kind == "merge" and merge is not None and result.base == a.hash
    assert merge.operation is Operation.MERGE and merge.merge_parent == c.hash and merge.parent != c.hash
    assert merge.metadata["merge"]["base"] == a.hash and merge.last_merge == merge.hash
    assert texts(repo) == ["base", "ours early", "theirs middle", "ours late"]
    # The merged-in side's items are on the branch: they can be edited, and log shows them.
    repo.edit(c.hash, say("theirs, edited on main"))
    assert texts(repo) == ["base", "ours early", "theirs, edited on main", "ours late"]
    logged = {e.commit.hash for e in repo.log()}
    assert {a.hash, b.hash, c.hash, merge.hash} <= logged
    assert repo.is_ancestor(c, repo.head()) and not repo.is_ancestor(b, c)
    consistent(repo)


def test_equal_times_put_ours_first(repo, clock, monkeypatch):
    repo.append(say("base"))
    repo.switch("side", create=True)
    monkeypatch.setattr("cairn.repo.now", lambda: "2026-06-01T00:00:00.000000Z")
    repo.append(say("theirs"))
    repo.switch("main")
    repo.append(say("ours"))
    repo.merge("side")
    assert texts(repo) == ["base", "ours", "theirs"]


def _diverged(repo: Repo, ours: str | None, theirs: str | None) -> str:
    """A base item, then ``ours``/``theirs`` on main and side: "edit:TEXT", "delete" or None."""
    item = repo.append(say("original")).hash
    repo.append(say("filler"))
    repo.switch("side", create=True)
    for branch, change in (("side", theirs), ("main", ours)):
        repo.switch(branch)
        if change == "delete":
            repo.delete(item)
        elif change is not None:
            repo.edit(item, say(change.split(":", 1)[1]))
        repo.append(say(f"more on {branch}"))
    repo.switch("main")
    return item


def test_conflicts_stop_the_merge_and_write_nothing(repo):
    item = _diverged(repo, "edit:ours", "delete")
    before_refs, before_commits = repo.refs.list_refs(), len(repo.objects.commits_by_time())
    with pytest.raises(MergeConflictError) as info:
        repo.merge("side")
    (conflict,) = info.value.conflicts
    assert conflict.item == item and conflict.kind == "edit/delete"
    assert repo.refs.list_refs() == before_refs and len(repo.objects.commits_by_time()) == before_commits


@pytest.mark.parametrize(
    ("ours", "theirs", "strategy", "expected"),
    [
        ("edit:ours", "edit:theirs", "ours", "ours"),
        ("edit:ours", "edit:theirs", "theirs", "theirs"),
        ("edit:ours", "delete", "ours", "ours"),
        ("edit:ours", "delete", "theirs", None),
        ("delete", "edit:theirs", "theirs", "theirs"),
        ("delete", "edit:theirs", "ours", None),
    ],
)
def test_strategies_resolve_every_conflict_and_the_merge_records_how(repo, ours, theirs, strategy, expected):
    item = _diverged(repo, ours, theirs)
    result = repo.merge("side", strategy=strategy)
    (recorded,) = result.merge.metadata["merge"]["conflicts"]
    assert recorded["item"] == item and recorded["took"] == strategy
    shown = [t for t in texts(repo) if t not in ("filler", "more on main", "more on side")]
    assert shown == ([expected] if expected else [])
    for resolution in result.resolutions:
        assert resolution.metadata["resolves"] == result.merge.hash and resolution.target == item
    consistent(repo)
    # The item stays editable (or deleted) as resolved.
    if expected:
        repo.edit(item, say("after the merge"))
        assert "after the merge" in texts(repo)
    consistent(repo)


def test_the_same_change_on_both_sides_is_no_conflict(repo):
    item = _diverged(repo, "delete", "delete")
    result = repo.merge("side")
    assert result.conflicts == () and result.merge.metadata["merge"]["overlap"] == [item]
    assert "original" not in texts(repo)
    consistent(repo)


def test_merge_refuses_a_detached_head_unknown_strategy_and_unrelated_histories(repo):
    a = repo.append(say("one"))
    repo.append(say("two"))
    with pytest.raises(ValidationError, match="strategy"):
        repo.merge("main", strategy="mine")
    repo.detach(a.hash)
    with pytest.raises(ValidationError, match="detached"):
        repo.merge("main")
    repo.switch("main")
    other = Repo(repo.store, repo.tokenizer, repo.content_types)
    other.refs.set_ref("HEAD", "ref: refs/heads/lonely", expected=other.refs.get_ref("HEAD"))
    other.append(say("unrelated"))
    other.switch("main")
    with pytest.raises(ValidationError, match="no commit in common"):
        repo.merge("lonely")


def test_merging_back_and_forth_keeps_every_item_once(repo):
    repo.append(say("base"))
    repo.switch("side", create=True)
    repo.append(say("s1"))
    repo.switch("main")
    repo.append(say("m1"))
    repo.merge("side")
    repo.switch("side")
    repo.append(say("s2"))
    repo.merge("main")  # main's merge comes in: s1 is on both lines
    repo.switch("main")
    repo.append(say("m2"))
    repo.merge("side")
    assert sorted(texts(repo)) == sorted(["base", "s1", "m1", "s2", "m2"])
    assert texts(repo) == ["base", "s1", "m1", "s2", "m2"]
    consistent(repo)


def test_a_merge_survives_export_and_import_hash_for_hash(repo, content_types):
    _diverged(repo, "edit:ours", "edit:theirs")
    repo.merge("side", strategy="theirs")
    repo.append(say("after"))
    out = io.StringIO()
    repo.export(out)
    copy = Repo(MemoryStore(), WordTokenizer(), content_types)
    copy.import_(out.getvalue().splitlines())
    hashes = {c.hash for c in repo.objects.commits_by_time()}
    assert {c.hash for c in copy.objects.commits_by_time()} == hashes
    assert copy.objects.get_commits(hashes) == repo.objects.get_commits(hashes)
    assert texts(copy, "main") == texts(repo, "main")
    consistent(copy)


# -- cherry-pick ----------------------------------------------------------------------


def test_cherry_pick_applies_one_commit(repo):
    a = repo.append(say("base"))
    repo.switch("side", create=True)
    picked = repo.append(say("wanted"), metadata={"k": 1})
    repo.append(say("not wanted"))
    edit = repo.edit(a.hash, say("base, revised"))
    repo.switch("main")
    copy = repo.cherry_pick(picked.hash)
    assert copy.metadata == {"k": 1, "cherry_picked_from": picked.hash} and copy.content_hash == picked.content_hash
    repo.cherry_pick(edit.hash)
    assert texts(repo) == ["base, revised", "wanted"]
    with pytest.raises(ValidationError, match="already on the current branch"):
        repo.cherry_pick(copy.hash)


def test_cherry_pick_of_an_edit_whose_item_is_absent_is_a_conflict(repo):
    repo.append(say("base"))
    repo.switch("side", create=True)
    item = repo.append(say("only on side"))
    edit = repo.edit(item.hash, say("edited on side"))
    repo.switch("main")
    with pytest.raises(MergeConflictError) as info:
        repo.cherry_pick(edit.hash)
    assert info.value.conflicts[0].item == item.hash
    assert texts(repo) == ["base"]


# -- a property: any history of two branches, merged with either strategy --------------------------------

_steps = st.lists(
    st.tuples(st.sampled_from(["append", "edit", "delete"]), st.integers(0, 50), st.text("abc ", max_size=8)),
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=_steps, ours=_steps, theirs=_steps, strategy=st.sampled_from(["ours", "theirs"]), again=_steps)
def test_any_merge_keeps_counts_consistent_and_hashes_stable(content_types, base, ours, theirs, strategy, again):
    repo = Repo(MemoryStore(), WordTokenizer(), content_types)
    repo.append(say("root"))

    def play(steps: list) -> None:
        for op, pick, text in steps:
            live = [i.item for i in repo.materialize().items]
            if op == "append" or not live:
                repo.append(say(text if text.strip() else "x"))
            elif op == "edit":
                repo.edit(live[pick % len(live)], say(text if text.strip() else "y"))
            else:
                repo.delete(live[pick % len(live)])

    play(base)
    repo.switch("side", create=True)
    play(theirs)
    repo.switch("main")
    play(ours)
    repo.merge("side", strategy=strategy)
    play(again)
    repo.switch("side")
    play(again)
    repo.merge("main", strategy=strategy)
    consistent(repo)
    out = io.StringIO()
    repo.export(out)
    copy = Repo(MemoryStore(), WordTokenizer(), content_types)
    copy.import_(out.getvalue().splitlines())
    assert texts(copy, "main") == texts(repo, "main") and texts(copy, "side") == texts(repo, "side")


# -- named directives ------------------------------------------------------------------------


def instruction(text: str, name: str | None = None) -> dict:
    return {"content_type": "instruction", "text": text, **({"name": name} if name else {})}


def test_only_the_newest_directive_of_each_name_is_materialized(repo):
    repo.append(instruction("be brief", "tone"))
    repo.append(instruction("unnamed one"))
    repo.append(say("hi"))
    old = repo.append(instruction("be formal", "tone")).hash
    repo.append(instruction("unnamed two"))
    newest = repo.append(instruction("be playful", "tone")).hash
    result = repo.materialize()
    assert texts(repo) == ["unnamed one", "unnamed two", "be playful", "hi"]
    assert sorted(d.reason for d in result.dropped) == ["superseded", "superseded"]
    assert repo.directives() == {"tone": newest}
    # The budget's running count still holds superseded directives: it errs on the safe side.
    assert repo.effective_tokens() >= result.token_count
    repo.switch("side", create=True)
    repo.delete(newest)  # per branch: on side the one before is in force again
    assert repo.directives() == {"tone": old} and "be formal" in texts(repo)
    assert repo.directives("main") == {"tone": newest}


def test_reasoning_is_held_back_unless_asked_for(repo):
    repo.append(say("question"))
    thought = repo.append({"content_type": "reasoning", "text": "thinking it over"})
    repo.append(say("answer", "assistant"))
    result = repo.materialize()
    assert texts(repo) == ["question", "answer"]
    assert [(d.commit, d.reason) for d in result.dropped] == [(thought.hash, "held_back")]
    assert [m.content for m in repo.materialize(include_reasoning=True).neutral_messages] == [
        "question",
        "thinking it over",
        "answer",
    ]
    repo.pin(thought.hash)  # pinned, still held back unless asked for: the type's hint decides
    assert texts(repo) == ["question", "answer"]


def test_pinned_and_skipped_say_where_the_priority_comes_from(repo):
    rule = repo.append(instruction("be brief")).hash
    loose = repo.append(instruction("optional")).hash
    note = repo.append(say("keep me")).hash
    noise = repo.append(say("noise")).hash
    repo.pin(note)
    repo.unpin(loose)
    repo.skip(noise)
    assert repo.priority(rule) == (Priority.PINNED, "default")
    assert repo.priority(loose) == (Priority.NORMAL, "annotation")
    assert repo.priority(note) == (Priority.PINNED, "annotation")
    assert repo.pinned() == [(note, "annotation"), (rule, "default")]
    assert repo.skipped() == [(noise, "annotation")]
    assert repo.pinned(limit=1) == [(note, "annotation")]
    repo.switch("other", create=True)
    repo.detach(repo.resolve(rule).hash)
    assert repo.pinned() == [(rule, "default")]  # what is on HEAD's line only
    with pytest.raises(ValidationError):
        repo.pinned(limit=0)


# -- tool calls providers accept --------------------------------------------------------------------


def tool(direction: str, **fields) -> dict:
    return {"content_type": "tool_io", "tool_name": "search", "direction": direction, "payload": {"q": "x"}, **fields}


def test_a_call_without_an_id_gets_a_stable_one_and_its_result_follows_it(repo, content_types):
    call = repo.append(tool("call"))
    call_id = repo.content_of(call).call_id
    assert call_id and call_id.startswith("call_")
    result = repo.append(tool("result"), reply_to=call.hash)
    assert repo.content_of(result).call_id == call_id
    messages = repo.materialize().messages
    assert messages[0]["tool_calls"][0]["id"] == call_id and messages[1]["tool_call_id"] == call_id
    # Deterministic: the same item on the same head gets the same id.
    ids = []
    for _ in range(2):
        fresh = Repo(MemoryStore(), WordTokenizer(), content_types)
        ids.append(fresh.content_of(fresh.append(tool("call"))).call_id)
    assert ids[0] == ids[1]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"call_id": ""}, "call_id"),
        ({"call_id": "has space"}, "call_id"),
        ({"tool_name": "web.search"}, "tool name"),
        ({"tool_name": "x" * 65}, "tool name"),
    ],
)
def test_ids_and_names_providers_reject_are_refused_at_commit_time(repo, fields, problem):
    with pytest.raises(ValidationError, match=problem):
        repo.append(tool("call", **fields))
    assert repo.head() is None


def test_a_result_without_its_call_id_is_refused(repo):
    repo.append(say("hi"))
    with pytest.raises(ValidationError, match="call_id of its call"):
        repo.append(tool("result"))
