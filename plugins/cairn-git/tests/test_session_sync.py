"""Sessions and checkpoints travel with push and pull: they are cairn refs over ordinary commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from cairn_git.store import GitStore
from helpers import two_clones

from cairn.checkpoints import Checkpoints
from cairn.plugins import load_plugins
from cairn.repo import Repo
from cairn.sessions import Sessions, summary
from cairn.testing.fakes import WordTokenizer


@pytest.fixture(scope="module")
def content_types():  # type: ignore[no-untyped-def]
    return load_plugins(entry_points=False).content_types


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    return two_clones(tmp_path)


def say(repo: Repo, role: str, text: str) -> str:
    return repo.append({"content_type": "dialogue", "role": role, "text": text}).hash


def test_a_session_and_its_checkpoints_push_and_pull(world, content_types) -> None:  # type: ignore[no-untyped-def]
    a_dir, b_dir = world
    with GitStore(a_dir) as a_store, GitStore(b_dir) as b_store:
        a = Repo(a_store, WordTokenizer(), content_types)
        say(a, "user", "a shared start")
        session = Sessions(a).new("Travel", switch=True)
        say(a, "user", "where to?")
        first = say(a, "assistant", "Lyon.")
        Checkpoints(a).create("decided", "the city is chosen")
        say(a, "user", "when?")
        a_store.push()

        b_store.pull()
        b = Repo(b_store, WordTokenizer(), content_types)
        [seen] = Sessions(b).list()
        assert (seen.id, seen.record.title, seen.branch) == (session.id, "Travel", session.branch)
        point = Checkpoints(b).get("decided")
        assert point.target.hash == first and point.record.session == session.id
        assert point.record.message == "the city is chosen"
        assert summary(b)["count"] == 1 and summary(b)["checkpoints"] == 1

        # B restores the checkpoint (saving the tip automatically) and closes the session; A pulls both.
        done = Checkpoints(b).restore("decided")
        assert done.saved is not None and done.saved.target.hash != first
        Sessions(b).close(session.id)
        b_store.push()
        a_store.pull()
        assert a.refs.get_ref(f"refs/heads/{session.branch}") == first
        assert Sessions(a).get(session.id).record.status == "closed"
        assert {c.name for c in Checkpoints(a).list()} == {"decided", done.saved.name}

        # A checkpoint deleted on one side is deleted on the other after a sync.
        Checkpoints(a).delete(done.saved.name)
        a_store.push()
        b_store.pull()
        assert [c.name for c in Checkpoints(b).list()] == ["decided"]
