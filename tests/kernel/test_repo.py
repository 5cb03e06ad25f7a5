"""The context engine over the reference in-memory store."""

from __future__ import annotations

import threading

import pytest

from cairn.errors import BudgetExceededError, ConflictError, NotFoundError, ValidationError
from cairn.events import EventBus, EventName
from cairn.model import Operation, Priority
from cairn.repo import Budget, BudgetWarning, Repo
from cairn.testing.fakes import WordTokenizer
from cairn.testing.memory import MemoryStore


def say(text: str, role: str = "user") -> dict:
    return {"content_type": "dialogue", "role": role, "text": text}


def texts(result) -> list[str]:
    return [m.content for m in result.neutral_messages]


def test_empty_repo(repo):
    assert repo.head() is None
    assert repo.branch == "main"
    assert repo.log() == []
    result = repo.materialize()
    assert result.messages == [] and result.token_count == 0 and result.dropped == ()
    with pytest.raises(NotFoundError):
        repo.resolve("HEAD")


def test_append_records_derived_fields(repo):
    a = repo.append(say("one two three"))
    b = repo.append(say("four"))
    assert a.parent is None and b.parent == a.hash
    assert (a.depth, b.depth) == (0, 1)
    # WordTokenizer: 3 per message + 1 for the role + the words.
    assert a.token_count == 7 and b.token_count == 5
    assert b.cumulative_tokens == 12
    assert repo.effective_tokens() == 12 + 3  # reply priming
    assert repo.store.get_ref("refs/heads/main") == b.hash


def test_edit_and_delete_change_what_is_materialized_not_history(repo):
    a = repo.append(say("hello"))
    b = repo.append(say("world"))
    e = repo.edit(a.hash, say("hello again"))
    assert e.operation is Operation.EDIT and e.target == a.hash
    assert texts(repo.materialize()) == ["hello again", "world"]
    assert e.cumulative_tokens == b.cumulative_tokens + 1
    d = repo.delete(b.hash)
    assert texts(repo.materialize()) == ["hello again"]
    assert d.cumulative_tokens == e.cumulative_tokens - b.token_count
    assert [entry.commit.hash for entry in repo.log()] == [d.hash, e.hash, b.hash, a.hash]


def test_edit_rules(repo):
    a = repo.append(say("x"))
    e = repo.edit(a.hash, say("y"))
    with pytest.raises(ValidationError, match="is itself an edit"):
        repo.edit(e.hash, say("z"))
    with pytest.raises(NotFoundError):
        repo.edit("f" * 64, say("z"))
    d = repo.delete(a.hash)
    with pytest.raises(ValidationError, match=f"was deleted by {d.short}"):
        repo.edit(a.hash, say("z"))
    with pytest.raises(ValidationError, match="was deleted"):
        repo.delete(a.hash)


def test_edit_of_commit_on_another_branch_is_refused(repo):
    repo.append(say("base"))
    repo.switch("side", create=True)
    side = repo.append(say("side only"))
    repo.switch("main")
    with pytest.raises(ValidationError, match="not on the current branch"):
        repo.edit(side.hash, say("nope"))


def test_branches_create_switch_rename_delete(repo):
    a = repo.append(say("a"))
    repo.create_branch("feature")
    repo.switch("feature")
    f = repo.append(say("f"))
    assert repo.branches() == {"feature": f.hash, "main": a.hash}
    assert texts(repo.materialize("main")) == ["a"]
    assert texts(repo.materialize()) == ["a", "f"]
    with pytest.raises(ValidationError, match="current branch"):
        repo.delete_branch("feature")
    repo.rename_branch("feature", "feat")
    assert repo.branch == "feat"
    with pytest.raises(ValidationError, match="already exists"):
        repo.create_branch("main")
    with pytest.raises(NotFoundError):
        repo.switch("missing")
    repo.switch("main")
    with pytest.raises(ValidationError, match="no other branch reaches"):
        repo.delete_branch("feat")  # f is on feat alone
    repo.delete_branch("feat", force=True)
    assert set(repo.branches()) == {"main"}
    with pytest.raises(ValidationError):
        repo.create_branch("../evil")


def test_branch_from_older_commit_and_detached_head(repo):
    a = repo.append(say("a"))
    repo.append(say("b"))
    repo.create_branch("old", a.hash)
    assert repo.resolve("old") == a
    repo.detach(a.hash)
    assert repo.branch is None
    # A detached HEAD is read like any revision; committing there is refused, saying how to branch.
    assert texts(repo.materialize()) == ["a"] and [e.commit for e in repo.log()] == [a]
    with pytest.raises(ValidationError, match="detached") as info:
        repo.append(say("c on detached"))
    assert "switch -c" in str(info.value)
    assert repo.store.get_ref("HEAD") == a.hash
    assert repo.resolve("main~1") == a


def test_branch_delete_keeps_what_another_branch_reaches(repo):
    repo.append(say("a"))
    repo.switch("merged", create=True)
    repo.append(say("b"))
    repo.switch("main")
    with pytest.raises(ValidationError, match="--force"):
        repo.delete_branch("merged")
    repo.merge("merged")
    repo.delete_branch("merged")  # main reaches everything it had
    assert set(repo.branches()) == {"main"}


def test_edit_needs_a_target(repo):
    repo.append(say("a"))
    for target in (None, "", "  "):
        with pytest.raises(ValidationError, match="needs the item"):
            repo.edit(target, say("b"))  # type: ignore[arg-type]
    assert texts(repo.materialize()) == ["a"]


def test_revisions(repo):
    a = repo.append(say("a"))
    b = repo.append(say("b"))
    assert repo.resolve("HEAD~1") == a
    assert repo.resolve(b.hash[:8]) == b
    assert repo.resolve(b.hash.upper()[:10]) == b
    with pytest.raises(NotFoundError, match="has only 1 ancestors"):
        repo.resolve("HEAD~5")
    with pytest.raises(NotFoundError):
        repo.resolve("nope")


def test_annotations_are_append_only_and_latest_wins(repo):
    a = repo.append(say("keep me"))
    for _ in range(5):
        repo.append(say("filler words here"))
    repo.skip(a.hash, "noise")
    assert a.hash not in [i.item for i in repo.materialize().items]
    repo.pin(a.hash, "actually important")
    assert repo.materialize(budget=20).items[0].item == a.hash
    repo.unpin(a.hash)
    history = repo.annotations(a.hash)
    assert [x.priority for x in history] == [Priority.SKIP, Priority.PINNED, Priority.NORMAL]
    assert history[0].reason == "noise"


def test_annotating_an_edit_is_refused_with_its_item(repo):
    a = repo.append(say("x"))
    e = repo.edit(a.hash, say("y"))
    with pytest.raises(ValidationError, match=a.hash[:12]):
        repo.pin(e.hash)


def test_budget_reject_says_current_and_max(content_types, clock):
    repo = Repo(MemoryStore(), WordTokenizer(), content_types, budget=Budget(max_tokens=20))
    first = repo.append(say("one two three four five"))  # 9 tokens, 12 with priming
    before = repo.store.stats()
    with pytest.raises(BudgetExceededError) as info:
        repo.append(say("a b c d e f g"))  # +11 -> 23 > 20
    assert (info.value.current, info.value.maximum) == (23, 20)
    assert repo.store.stats() == before and repo.head() == first
    # Skipping frees budget; deletes always go through.
    repo.skip(first.hash)
    repo.append(say("a b c d e f g"))
    assert repo.effective_tokens() == 14


def test_budget_warn_and_callback(content_types, clock):
    repo = Repo(MemoryStore(), WordTokenizer(), content_types, budget=Budget(max_tokens=5, action="warn"))
    with pytest.warns(BudgetWarning, match="over the budget of 5"):
        repo.append(say("one two three"))
    seen = []

    def callback(current, maximum, commit):
        seen.append((current, maximum))
        raise RuntimeError("refused by callback")

    repo.budget = Budget(max_tokens=5, action="callback", callback=callback)
    with pytest.raises(RuntimeError):
        repo.append(say("more"))
    assert seen == [(15, 5)]
    with pytest.raises(ValidationError):
        Budget(max_tokens=5, action="callback")


def test_events_and_hook_on_commit(content_types, clock):
    bus = EventBus()
    events = []
    bus.subscribe(EventName.COMMIT_CREATED, events.append)

    from cairn.hookspecs import hookimpl
    from cairn.plugins import load_plugins

    class Recorder:
        calls: list = []

        @hookimpl
        def cairn_commit_created(self, commit, branch):
            self.calls.append((commit.hash, branch))

    plugins = load_plugins(entry_points=False)
    recorder = Recorder()
    plugins.register(recorder, "recorder")
    repo = Repo(MemoryStore(), WordTokenizer(), content_types, bus=bus, hooks=plugins.pm.hook)
    c = repo.append(say("x"))
    assert events[0].payload["commit"] == c.hash and events[0].payload["branch"] == "main"
    assert events[0].ts == c.created_at
    assert recorder.calls == [(c.hash, "main")]


def test_subscriber_failure_never_breaks_the_commit(content_types, clock):
    bus = EventBus()
    bus.subscribe("*", lambda event: 1 / 0)
    repo = Repo(MemoryStore(), WordTokenizer(), content_types, bus=bus)
    assert repo.append(say("still fine")).depth == 0


def test_concurrent_writers_lose_nothing(content_types):
    store = MemoryStore()
    repos = [Repo(store, WordTokenizer(), content_types) for _ in range(4)]
    made: list[str] = []
    lock = threading.Lock()

    def work(r: Repo, n: int) -> None:
        for i in range(50):
            c = r.append(say(f"writer {n} item {i}"))
            with lock:
                made.append(c.hash)

    threads = [threading.Thread(target=work, args=(r, n)) for n, r in enumerate(repos)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_branch = {c.hash for c in store.ancestors(store.get_ref("refs/heads/main"))}
    assert set(made) == on_branch and len(on_branch) == 200


def test_conflict_is_retried_not_lost(repo, monkeypatch):
    repo.append(say("a"))
    real_write = repo.store.write
    calls = {"n": 0}

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            # Another writer sneaks in first.
            other = Repo(repo.store, WordTokenizer(), repo.content_types)
            monkeypatch.setattr(repo.store, "write", real_write)
            other.append(say("sneaky"))
            monkeypatch.setattr(repo.store, "write", flaky)
            raise ConflictError("refs/heads/main", None, None)
        return real_write(**kwargs)

    monkeypatch.setattr(repo.store, "write", flaky)
    mine = repo.append(say("mine"))
    assert [t for t in texts(repo.materialize())] == ["a", "sneaky", "mine"]
    assert mine.depth == 2


def test_ancestry_and_time_travel_are_logarithmic(repo):
    commits = [repo.append(say(f"m{i}")) for i in range(300)]
    head = commits[-1]
    reads = {"n": 0}
    real = repo.store.get_commits

    def counting(hashes):
        reads["n"] += 1
        return real(hashes)

    repo._commits.clear()
    repo.store.get_commits = counting  # type: ignore[method-assign]
    assert repo.ancestor_at_depth(head, 7) == commits[7]
    assert reads["n"] < 40  # ~2 log2(n) reads, not n
    assert repo.is_ancestor(commits[10], head) and not repo.is_ancestor(head, commits[10])
    assert repo.at_time(head, commits[123].created_at) == commits[123]
    assert repo.at_time(head, "2000-01-01T00:00:00.000000Z") is None


def test_log_filters(repo):
    repo.append({"content_type": "instruction", "text": "Be terse"}, message="setup")
    repo.append(say("Find the bug"))
    b = repo.append(say("Found it in parser", "assistant"))
    assert [e.commit.hash for e in repo.log(content_type="dialogue", limit=1)] == [b.hash]
    assert [e.commit.message for e in repo.log(grep="SETUP")] == ["setup"]
    assert len(repo.log(grep="parser")) == 1
    assert repo.log(since="2100-01-01") == []
    assert len(repo.log(until=b.created_at)) == 3


def test_diff_between_branches(repo):
    a = repo.append(say("shared"))
    repo.switch("alt", create=True)
    repo.edit(a.hash, say("changed"))
    added = repo.append(say("only on alt"))
    diff = {d.status: d for d in repo.diff("main", "alt")}
    assert diff["changed"].item == a.hash and diff["changed"].after.text == "changed"
    assert diff["added"].item == added.hash
    assert [d.status for d in repo.diff("alt", "main")] == ["changed", "removed"]


def test_unknown_content_in_storage_survives(repo):
    blob = b'{"content_type":"gone.plugin","x":1}'
    from cairn.model import Commit, sha256_hex

    digest = sha256_hex(blob)
    commit = Commit.new(
        parent=None,
        operation="append",
        content_hash=digest,
        created_at="2026-01-01T00:00:00.000000Z",
        content_type="gone.plugin",
        token_count=5,
        cumulative_tokens=5,
    )
    repo.store.write(blobs={digest: blob}, commits=[commit], refs=[])
    repo.store.set_ref("refs/heads/main", commit.hash, expected=None)
    result = repo.materialize()
    assert result.items[0].content.to_dict() == {"content_type": "gone.plugin", "x": 1}
    assert result.items[0].content_hash == digest


def test_changing_tokenizer_recounts_lazily_through_the_cache(content_types, clock):
    from cairn.tokenizers import MessageOverhead

    store = MemoryStore()
    first = Repo(store, WordTokenizer("words"), content_types)
    item = first.append(say("one two three"))
    assert item.tokenizer == "words" and item.token_count == 7
    # Another tokenizer: 10 tokens of overhead per message instead of 3.
    other_tok = WordTokenizer("words-big", overhead=MessageOverhead(per_message=10, per_name=1, reply_priming=3))
    other = Repo(store, other_tok, content_types)
    assert other.materialize().items[0].tokens == 14
    assert store.get_token_counts("words-big", [item.content_hash]) == {item.content_hash: 14}
    calls = other_tok.calls
    other.materialize()
    assert other_tok.calls == calls  # served from the cache the first call filled
    # The first repository's own count is still used as recorded.
    assert first.materialize().items[0].tokens == 7
