"""A repository written by cairn-git 0.1.0 opens and reads back unchanged, and takes new writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cairn_git.store import GitStore
from helpers import fsck, git
from release_fixture import MAIN, NAME, TEAM, snapshot

from cairn.model.ledger import Run
from cairn.storage import RefUpdate
from cairn.testing.storage import Chain, at

DATA = Path(__file__).parent / "data"


@pytest.fixture
def released(tmp_path: Path) -> Path:
    """A repository holding every ref of the 0.1.0 bundle, as a clone of that machine would."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "fetch", "-q", "--update-head-ok", str(DATA / f"{NAME}.bundle"), "+refs/*:refs/*")
    return repo


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads((DATA / f"{NAME}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_every_facet_reads_back_what_the_release_wrote(released: Path, expected: dict[str, Any]) -> None:
    with GitStore(released) as store, GitStore(released, **TEAM) as team:
        assert snapshot(store) == expected["default"]
        assert snapshot(team) == expected["team"]
    assert fsck(released) == ""


def test_a_released_repository_takes_new_writes_beside_the_old(released: Path, expected: dict[str, Any]) -> None:
    with GitStore(released) as store:
        head = store.get_ref(MAIN)
        assert head is not None
        chain = Chain(10_000)
        chain.commits.update({c.hash: c for c in store.ancestors(head)})  # for the new commit's skip pointer
        parent = chain.commits[head]
        new = chain.append(parent, "written after the split")
        store.write(**chain.batch(new), refs=[RefUpdate(MAIN, new.hash, head)])
        store.append_events("r-live", [])
        store.put_run(Run("r-live", "job", "ok", at(20), metadata={"who": "me"}), expected_status="open")
        now = snapshot(store)
    with GitStore(released) as reopened:
        assert snapshot(reopened) == now
    old = expected["default"]
    assert [c["hash"] for c in now["commits"] if c["hash"] != new.hash] == [c["hash"] for c in old["commits"]]
    assert now["ancestors"][MAIN] == [new.hash, *old["ancestors"][MAIN]]
    assert {r["run_id"]: r["status"] for r in now["runs"]}["r-live"] == "ok"
    assert now["events"]["r-live"] == old["events"]["r-live"]
    assert now["problems"] == [] and fsck(released) == ""
