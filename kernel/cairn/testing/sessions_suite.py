"""Sessions and checkpoints over a backend: run unchanged by every store with the objects and refs facets.

Sessions and checkpoints are no facet of their own: they are commits and
refs (``cairn.sessions``). This suite proves that a backend keeps them as
the context engine writes them: records, running totals, restores by
compare-and-swap, deletes, reopening, and a clean integrity check::

    from cairn.testing.sessions_suite import SessionsOverStore

    class TestSessions(SessionsOverStore):
        @pytest.fixture
        def store_opener(self):
            return my_backend.open_in_directory   # opener(directory: pathlib.Path) -> store
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.checkpoints import Checkpoints
from cairn.errors import ValidationError
from cairn.repo import Repo
from cairn.sessions import Session, Sessions, summary
from cairn.storage import check_store
from cairn.testing.fakes import WordTokenizer

__all__ = ["SessionsOverStore"]


def _reply(session: Session, text: str, *, input_tokens: int, output_tokens: int, cost: float | None) -> str:
    meta: dict[str, Any] = {
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "cost": cost,
        "run_id": f"r-{text}",
    }
    view: Any = session.view  # a Repo on the session's branch
    view.append({"content_type": "dialogue", "role": "user", "text": f"{text}?"}, message="cairn ask")
    commit = view.append(
        {"content_type": "dialogue", "role": "assistant", "text": text},
        message="cairn ask: reply",
        metadata=meta,
        derive_metadata=lambda head: session.totals_after(head, meta),
    )
    return str(commit.hash)


class SessionsOverStore:
    """The suite; a backend's test class overrides ``store_opener``."""

    @pytest.fixture
    def store_opener(self) -> Callable[[Path], Any]:
        raise NotImplementedError(f"{type(self).__name__} must override the store_opener fixture")

    @pytest.fixture
    def store_dir(self, tmp_path: Path) -> Path:
        directory = tmp_path / "store"
        directory.mkdir()
        return directory

    @pytest.fixture
    def open_repo(self, store_opener: Callable[[Path], Any], store_dir: Path) -> Iterator[Callable[[], Repo]]:
        from cairn.plugins import load_plugins

        content_types = load_plugins(entry_points=False).content_types
        opened: list[Any] = []

        def open_one() -> Repo:
            store = store_opener(store_dir)
            opened.append(store)
            return Repo(store, WordTokenizer(), content_types)

        yield open_one
        for store in opened:
            store.close()

    def test_a_session_its_totals_and_checkpoints_survive_reopening(self, open_repo: Callable[[], Repo]) -> None:
        repo = open_repo()
        repo.append({"content_type": "instruction", "text": "Be brief."})
        sessions = Sessions(repo)
        session = sessions.new("Over this store", tools=["search"])
        _reply(session, "one", input_tokens=10, output_tokens=3, cost=0.25)
        first = Checkpoints(repo).create("after-one", "the first answer", rev=session.branch)
        last = _reply(session, "two", input_tokens=12, output_tokens=4, cost=None)
        assert session.totals().to_dict() == {
            "turns": 2,
            "partial": 0,
            "input_tokens": 22,
            "output_tokens": 7,
            "cost": 0.25,
            "unpriced": 1,
            "runs": 2,
        }
        done = Checkpoints(repo).restore("after-one")
        assert done.branch == session.branch and done.saved is not None and done.saved.target.hash == last
        sessions.close(session.id)
        repo.store.close()

        again = open_repo()
        [found] = Sessions(again).list()
        assert (found.id, found.record.title, found.record.status, found.record.tools) == (
            session.id,
            "Over this store",
            "closed",
            ["search"],
        )
        assert found.totals().turns == 1 and found.run_ids() == ["r-one"]
        point = Checkpoints(again).get("after-one")
        assert point.target.hash == first.target.hash and point.record.session == session.id
        assert {c.name for c in Checkpoints(again).list()} == {"after-one", done.saved.name}
        assert summary(again) == {"count": 1, "open": 0, "last_active": found.last_active(), "checkpoints": 2}
        assert check_store(again.store) == []

    def test_names_are_checked_and_deletes_are_clean(self, open_repo: Callable[[], Repo]) -> None:
        repo = open_repo()
        repo.append({"content_type": "dialogue", "role": "user", "text": "hi"})
        with pytest.raises(ValidationError):
            Checkpoints(repo).create("../escape")
        with pytest.raises(ValidationError):
            Sessions(repo).get("s-../x")
        session = Sessions(repo).new("to delete")
        Checkpoints(repo).create("keep", rev=session.branch)
        with pytest.raises(ValidationError, match="is open"):
            Sessions(repo).delete(session.id)
        Sessions(repo).delete(session.id, force=True)
        assert Sessions(repo).list() == []
        assert Checkpoints(repo).get("keep").target.hash == session.record.start
        Checkpoints(repo).delete("keep")
        assert summary(repo)["checkpoints"] == 0
        assert check_store(repo.store) == []
