"""An export from cairn-sqlite imports into cairn-git (and back) hash for hash, merge commits included."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cairn_git.store import GitStore
from helpers import fsck, make_repo

from cairn.model import Priority
from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.storage import Store
from cairn.testing.fakes import WordTokenizer

sqlite_store = pytest.importorskip("cairn_sqlite.store")


@pytest.fixture(scope="module")
def content_types():  # type: ignore[no-untyped-def]
    return load_plugins(entry_points=False).content_types


def _history(repo: Repo) -> None:
    """Appends, an edit, a delete, a side branch, annotations, unicode and a float that must stay a float."""
    first = repo.append({"content_type": "instruction", "text": "be brief ✓"}, message="start")
    second = repo.append(
        {"content_type": "dialogue", "role": "user", "text": "grüße, 日本語"},
        metadata={"whole": 2.0, "big": 2**64 + 1, "nested": {"k": [1, None, True]}},
    )
    repo.append({"content_type": "dialogue", "role": "assistant", "text": "hello"})
    repo.edit(second.hash, {"content_type": "dialogue", "role": "user", "text": "revised"})
    repo.create_branch("side")
    repo.switch("side")
    repo.append({"content_type": "tool_io", "tool_name": "search", "direction": "call", "payload": {"q": "x"}})
    repo.switch("main")
    third = repo.append({"content_type": "dialogue", "role": "assistant", "text": "to be deleted"})
    repo.delete(third.hash)
    # A merge commit with two parents, whose conflict (both edited ``second``) a resolution settles.
    repo.switch("side")
    repo.edit(second.hash, {"content_type": "dialogue", "role": "user", "text": "theirs"})
    repo.switch("main")
    repo.edit(second.hash, {"content_type": "dialogue", "role": "user", "text": "ours"})
    merged = repo.merge("side", strategy="theirs")
    assert merged.merge is not None and merged.resolutions
    repo.annotate(first.hash, Priority.PINNED, "key")
    repo.annotate(second.hash, Priority.SKIP, "noise")


def _round_trip(source: Store, target: Store, content_types) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    one = Repo(source, WordTokenizer(), content_types)
    _history(one)
    exported = io.StringIO()
    one.export(exported)
    two = Repo(target, WordTokenizer(), content_types)
    two.import_(exported.getvalue().splitlines(keepends=True))
    again = io.StringIO()
    two.export(again)
    for store_ in (source, target):
        assert store_.check() == []
    assert target.list_refs() == source.list_refs()
    commits = {c.hash for c in source.commits_by_time()}
    assert {c.hash for c in target.commits_by_time()} == commits and len(commits) >= 7
    assert target.get_commits(commits) == source.get_commits(commits)
    for digest in commits:
        assert target.annotation_history(digest) == source.annotation_history(digest)
    return exported.getvalue(), again.getvalue()


def test_sqlite_to_git_and_back_hash_for_hash(tmp_path: Path, content_types) -> None:  # type: ignore[no-untyped-def]
    repo_dir = make_repo(tmp_path / "project")
    with sqlite_store.SqliteStore(tmp_path / "a.db") as sqlite, GitStore(repo_dir) as git_store:
        exported, reexported = _round_trip(sqlite, git_store, content_types)
        assert reexported == exported  # every line, hash for hash
    with GitStore(make_repo(tmp_path / "other")) as git_store, sqlite_store.SqliteStore(tmp_path / "b.db") as sqlite:
        exported, reexported = _round_trip(git_store, sqlite, content_types)
        assert reexported == exported
    assert fsck(repo_dir) == ""


def test_a_compaction_on_sqlite_imports_into_git_hash_for_hash(tmp_path: Path, content_types) -> None:  # type: ignore[no-untyped-def]
    """A compaction commit keeps its hash across backends, and materializes the same after the import."""
    with sqlite_store.SqliteStore(tmp_path / "a.db") as sqlite, GitStore(make_repo(tmp_path / "p")) as git_store:
        one = Repo(sqlite, WordTokenizer(), content_types)
        one.append({"content_type": "instruction", "text": "be brief"})
        turns = [
            one.append({"content_type": "dialogue", "role": "user", "text": f"turn {n} " + "word " * 40})
            for n in range(9)
        ]
        one.pin(turns[4].hash)
        result = one.compact(keep_last=2)
        assert result.commit is not None and len(result.runs) == 2
        exported = io.StringIO()
        one.export(exported)
        two = Repo(git_store, WordTokenizer(), content_types)
        two.import_(exported.getvalue().splitlines(keepends=True))
        assert two.head() == one.head() and two.commit(result.commit.hash) == result.commit
        for compaction in (True, False):
            a, b = one.materialize(compaction=compaction), two.materialize(compaction=compaction)
            assert a.messages == b.messages and a.token_count == b.token_count
            assert [i.item for i in a.items] == [i.item for i in b.items]
        assert two.effective_tokens() == one.effective_tokens() == one.materialize().token_count
        assert git_store.check() == [] and sqlite.check() == []
        again = io.StringIO()
        two.export(again)
        assert again.getvalue() == exported.getvalue()  # hash for hash, line for line
