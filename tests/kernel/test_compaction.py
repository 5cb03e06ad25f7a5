"""Compaction: summaries in place of runs of older items, originals kept in history, the automatic trigger."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.compaction import COMPACTION_RUN_TYPE, PROMPT_VERSION, SUMMARY_PROMPT
from cairn.config import ContextSettings
from cairn.errors import ValidationError
from cairn.events import EventBus, EventName
from cairn.ledger import Ledger
from cairn.model import Commit, Operation
from cairn.model.compaction import Compaction, Summary
from cairn.repo import Budget, Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore


def say(repo: Repo, n: int, words: int = 12) -> Commit:
    role = "user" if n % 2 == 0 else "assistant"
    return repo.append({"content_type": "dialogue", "role": role, "text": f"turn {n} " + "word " * words})


def kinds(repo: Repo, **options) -> list[str]:
    return [i.content.content_type for i in repo.materialize(**options).items]


def test_pinned_items_and_instructions_keep_their_places_between_the_summaries(repo: Repo) -> None:
    rule = repo.append({"content_type": "instruction", "text": "be brief"})
    turns = [say(repo, n) for n in range(10)]
    repo.pin(turns[3].hash)
    result = repo.compact(keep_last=3)
    assert result.commit is not None and result.commit.operation is Operation.COMPACT
    # Two runs, 0-2 and 4-6, each a summary where it stood; the pinned turn 3 between them, the last three after.
    assert result.runs == (tuple(t.hash for t in turns[:3]), tuple(t.hash for t in turns[4:7]))
    items = repo.materialize().items
    assert [i.item for i in items] == [rule.hash, turns[0].hash, turns[3].hash, turns[4].hash] + [
        t.hash for t in turns[7:]
    ]
    assert kinds(repo) == ["instruction", "compaction.summary", "dialogue", "compaction.summary"] + ["dialogue"] * 3
    summary = items[1].content
    assert isinstance(summary, Summary) and summary.replaces == list(result.runs[0])
    assert items[1].source == result.commit.hash
    assert "extractive" in items[1].messages[0].content and "turn 0" in items[1].messages[0].content
    dropped = {d.commit: d.reason for d in repo.materialize().dropped}
    assert dropped == {t.hash: "compacted" for t in (turns[1], turns[2], turns[5], turns[6])}


def test_the_originals_stay_in_history(repo: Repo) -> None:
    turns = [say(repo, n) for n in range(6)]
    before = repo.materialize()
    result = repo.compact(keep_last=1)
    assert result.commit is not None
    assert repo.materialize(compaction=False).messages == before.messages
    assert repo.materialize(as_of=turns[-1].hash).messages == before.messages  # time travel to before it
    assert repo.materialize().messages != before.messages
    log = repo.log(limit=1)[0]
    assert log.commit == result.commit and isinstance(log.content, Compaction)
    meta = result.commit.metadata["compaction"]
    assert meta["summarizer"] == "extractive" and meta["prompt_version"] is None and meta["replaced"] == 5
    assert meta["provider"] is None and meta["model"] is None and meta["usage"] is None
    # The effective token count the commit records is what materializes.
    assert repo.effective_tokens() == repo.materialize().token_count == result.tokens_after
    assert result.tokens_after < result.tokens_before


def test_a_dry_run_writes_nothing(repo: Repo) -> None:
    [say(repo, n) for n in range(6)]
    head = repo.head()
    seen: list[object] = []
    repo._bus.subscribe(EventName.COMPACTION_CREATED, seen.append)
    plan = repo.compact(keep_last=2, dry_run=True)
    assert plan.dry_run and plan.commit is None and plan.replaced == 4 and plan.summarizer == "extractive"
    assert repo.head() == head and seen == []
    assert not repo.objects.commits_by_type("compaction")
    assert repo.store.list_runs(type=COMPACTION_RUN_TYPE) == []


def test_a_compacted_item_cannot_be_edited_and_a_summary_can_be_compacted_again(repo: Repo) -> None:
    turns = [say(repo, n) for n in range(6)]
    first = repo.compact(keep_last=2)
    with pytest.raises(ValidationError, match="compacted by"):
        repo.edit(turns[0].hash, {"content_type": "dialogue", "role": "user", "text": "late"})
    more = [say(repo, n) for n in range(6, 12)]
    second = repo.compact(keep_last=1)
    assert second.commit is not None and second.runs[0][0] == turns[0].hash  # the first summary, again
    items = repo.materialize().items
    assert [i.item for i in items] == [turns[0].hash, more[-1].hash]
    assert items[0].source == second.commit.hash and first.commit is not None
    assert repo.effective_tokens() == repo.materialize().token_count
    assert len(repo.materialize(compaction=False).items) == 12


def test_nothing_to_compact_commits_nothing(repo: Repo) -> None:
    repo.append({"content_type": "instruction", "text": "be brief"})
    say(repo, 0)
    result = repo.compact(keep_last=1)
    assert result.runs == () and result.commit is None
    short = [repo.append({"content_type": "dialogue", "role": "user", "text": "ok"}) for _ in range(3)]
    assert short
    result = repo.compact(keep_last=0)  # summaries of three words are no shorter
    assert result.commit is None and result.skipped


def test_a_tool_call_stays_with_its_kept_result(repo: Repo) -> None:
    [say(repo, n) for n in range(4)]
    call = repo.append({"content_type": "tool_io", "tool_name": "search", "direction": "call", "payload": {"q": 1}})
    result = repo.append(
        {"content_type": "tool_io", "tool_name": "search", "direction": "result", "payload": {"hits": 2}},
        reply_to=call.hash,
    )
    done = repo.compact(keep_last=1)
    assert done.commit is not None and call.hash not in done.runs[0] and result.hash not in done.runs[0]
    assert [i.item for i in repo.materialize().items][-2:] == [call.hash, result.hash]


def test_target_tokens_compacts_only_the_oldest_runs_it_needs(repo: Repo) -> None:
    turns = [say(repo, n, words=60) for n in range(10)]
    total, each = repo.effective_tokens(), repo.materialize().items[0].tokens
    result = repo.compact(keep_last=0, target_tokens=total - each - 1)  # one item is not enough, two are
    assert result.commit is not None and result.runs == (tuple(t.hash for t in turns[:2]),)


def test_compaction_is_a_ledger_run_and_an_event(content_types, clock) -> None:
    bus = EventBus()
    store = MemoryStore()
    repo = Repo(store, WordTokenizer(), content_types, bus=bus)
    seen: list[dict] = []
    bus.subscribe(EventName.COMPACTION_CREATED, lambda e: seen.append(dict(e.payload)))
    [say(repo, n) for n in range(5)]
    result = repo.compact(keep_last=1)
    assert result.commit is not None and result.run_id is not None
    (event,) = seen
    assert event["commit"] == result.commit.hash and event["replaced"] == 4 and event["run_id"] == result.run_id
    run = Ledger(store).get(result.run_id)
    assert run.type == COMPACTION_RUN_TYPE and run.status == "ok"
    assert run.metadata["commit"] == result.commit.hash and run.metadata["replaced_tokens"] == result.replaced_tokens


def test_a_summarizer_records_its_model_usage_and_prompt_version(repo: Repo) -> None:
    [say(repo, n) for n in range(5)]
    asked: list[list[str]] = []

    def summarize(texts: list[str]) -> tuple[str, str, dict]:
        asked.append(texts)
        return "they talked", "fake/model-1", {"input_tokens": 40, "output_tokens": 3}

    plan = repo.compact(keep_last=1, dry_run=True, summarize=summarize, summarizer="fake")
    assert plan.prompt == SUMMARY_PROMPT and plan.prompt_version == PROMPT_VERSION and asked == []
    result = repo.compact(keep_last=1, summarize=summarize, summarizer="fake")
    assert len(asked) == 1 and asked[0][0].startswith("user: turn 0")
    assert result.commit is not None
    meta = result.commit.metadata["compaction"]
    assert (meta["provider"], meta["model"], meta["prompt_version"]) == ("fake", "model-1", PROMPT_VERSION)
    assert meta["usage"] == {"input_tokens": 40, "output_tokens": 3}
    assert "by fake/model-1" in repo.materialize().items[0].messages[0].content


def test_bad_arguments_are_clear_errors(repo: Repo) -> None:
    say(repo, 0)
    with pytest.raises(ValidationError, match="keep_last"):
        repo.compact(keep_last=-1)
    with pytest.raises(ValidationError, match="no commits"):
        repo.compact(branch="nowhere")


def _auto_repo(content_types, maximum: int) -> Repo:
    settings = ContextSettings(max_tokens=maximum, compact_at=0.5, compact_keep_last=2)
    return Repo(MemoryStore(), WordTokenizer(), content_types, settings=settings, budget=Budget(maximum))


def test_the_automatic_trigger_fires_once_at_the_threshold_and_not_below(content_types, clock) -> None:
    repo = _auto_repo(content_types, 400)
    made = []
    repo._bus.subscribe(EventName.COMPACTION_CREATED, made.append)
    say(repo, 0)
    cost, n = repo.materialize().items[0].tokens, 1  # every turn costs as much
    while repo.effective_tokens() + cost <= 200:
        say(repo, n)
        n += 1
    assert made == [] and not repo.objects.commits_by_type("compaction")  # below the threshold: nothing
    say(repo, n)  # passes 0.5 of 400
    assert len(made) == 1 and repo.effective_tokens() <= 200
    say(repo, n + 1)  # back below: no second compaction
    assert len(made) == 1
    (compaction,) = repo.objects.commits_by_type("compaction")
    assert compaction.metadata["compaction"]["keep_last"] == 2


def test_compact_at_needs_max_tokens_and_a_fraction() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        ContextSettings(compact_at=0.8)
    with pytest.raises(ValueError, match="between 0 and 1"):
        ContextSettings(max_tokens=10, compact_at=1.5)


def test_export_and_import_keep_the_compaction(repo: Repo, content_types) -> None:
    [say(repo, n) for n in range(6)]
    repo.compact(keep_last=2)
    out = io.StringIO()
    repo.export(out)
    other = Repo(MemoryStore(), WordTokenizer(), content_types)
    other.import_(out.getvalue().splitlines(keepends=True))
    assert other.materialize().messages == repo.materialize().messages
    assert other.effective_tokens() == repo.effective_tokens()


@settings(max_examples=40, deadline=None)
@given(
    plan=st.lists(st.sampled_from(["say", "pin", "rule"]), min_size=1, max_size=24),
    keep_last=st.integers(0, 6),
)
def test_every_older_unprotected_item_is_summarised_once_and_protected_ones_keep_their_order(
    content_types, plan: list[str], keep_last: int
) -> None:
    repo = Repo(MemoryStore(), WordTokenizer(), content_types)
    protected = set()
    for n, step in enumerate(plan):
        if step == "rule":
            protected.add(repo.append({"content_type": "instruction", "text": f"rule {n}"}).hash)
            continue
        commit = say(repo, n, words=60)  # long enough that an extractive summary is shorter
        if step == "pin":
            repo.pin(commit.hash)
            protected.add(commit.hash)
    before = [i.item for i in sorted(repo.materialize().items, key=lambda i: i.depth)]
    result = repo.compact(keep_last=keep_last)
    replaced = [h for run in result.runs for h in run]
    assert len(replaced) == len(set(replaced)) and not protected.intersection(replaced)
    older = before[: max(0, len(before) - keep_last)]
    assert replaced == [h for h in older if h not in protected]
    after = [i.item for i in sorted(repo.materialize().items, key=lambda i: i.depth)]
    if result.commit is None:  # nothing older, or summaries no shorter (one short item): nothing written
        assert (not result.runs or result.skipped) and after == before
        return
    # The history order with each run collapsed to its first item: summaries interleaved in place.
    assert after == [h for h in before if h not in replaced or any(h == run[0] for run in result.runs)]
    assert repo.materialize(compaction=False).messages == repo.materialize(as_of=before[-1]).messages
    assert repo.effective_tokens() == repo.materialize().token_count


class CountingStore(MemoryStore):
    """The in-memory store, counting the commits its ancestry reads return."""

    read = 0

    def ancestors(self, start, *, limit=None):  # type: ignore[no-untyped-def]
        found = super().ancestors(start, limit=limit)
        self.read += len(found)
        return found


def test_the_walk_steps_over_a_contiguous_compacted_run_unread(content_types, clock) -> None:
    store = CountingStore()
    repo = Repo(store, WordTokenizer(), content_types)
    turns = [say(repo, n, words=30) for n in range(600)]
    result = repo.compact(keep_last=3)
    assert result.commit is not None
    (part,) = repo.content_of(result.commit).summaries  # type: ignore[union-attr]
    assert part["contiguous"] is True
    store.read = 0
    view = repo.materialize()
    assert [i.item for i in view.items] == [turns[0].hash] + [t.hash for t in turns[-3:]]
    assert store.read < 300  # the 600-commit history is not read through, however long it is
    assert {d.commit for d in view.dropped} == {t.hash for t in turns[1:-3]}
    assert all(d.reason == "compacted" for d in view.dropped)
    # Without the flag's promise (an edit of an older item inside the stretch) the walk reads it all, the same output.
    other = Repo(CountingStore(), WordTokenizer(), content_types)
    first = say(other, 0, words=30)
    [say(other, n, words=30) for n in range(1, 5)]
    other.skip(first.hash)
    other.edit(first.hash, {"content_type": "dialogue", "role": "user", "text": "revised " * 30})
    [say(other, n, words=30) for n in range(5, 10)]
    done = other.compact(keep_last=1)
    assert done.commit is not None
    assert all("contiguous" not in p for p in other.content_of(done.commit).summaries)  # type: ignore[union-attr]
    assert other.materialize().token_count == other.effective_tokens()
