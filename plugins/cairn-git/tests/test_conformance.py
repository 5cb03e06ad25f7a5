"""cairn-git runs the storage conformance suites of every facet it declares, unchanged."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cairn_git.store import GitStore, open_in_directory
from helpers import git, make_repo

from cairn.storage import Store, facets_of
from cairn.testing.sessions_suite import SessionsOverStore
from cairn.testing.storage import (
    ArtifactMetaConformance,
    CorruptBlob,
    DocumentsConformance,
    GovernanceConformance,
    NoncesConformance,
    StoreConformance,
    StoreOpener,
    SyncConformance,
    VectorsConformance,
)


def overwrite_blob(store: Store, digest: str, data: bytes) -> None:
    """Swap a stored blob's bytes behind the store's back, with plain git plumbing only."""
    assert isinstance(store, GitStore)
    git = ["git", f"--git-dir={store.git_dir}", "-c", "user.name=Tamperer", "-c", "user.email=t@example.invalid"]

    def run(*args: str, input: bytes | None = None) -> str:
        return subprocess.run([*git, *args], input=input, capture_output=True, check=True).stdout.decode().strip()

    def replace(tree: str, name: str, kind: str, oid: str) -> str:
        """``tree`` with its entry ``name`` pointing at ``oid`` instead."""
        lines = []
        for line in run("ls-tree", tree).splitlines():
            meta, entry = line.split("\t", 1)
            if entry == name:
                meta = f"{'040000' if kind == 'tree' else '100644'} {kind} {oid}"
            lines.append(f"{meta}\t{entry}")
        return run("mktree", input=("\n".join(lines) + "\n").encode())

    catalog = run("rev-parse", store.objects_ref)
    root = run("rev-parse", f"{catalog}^{{tree}}")
    shard = replace(
        run("rev-parse", f"{root}:blobs/{digest[:2]}"), digest, "blob", run("hash-object", "-w", "--stdin", input=data)
    )
    blobs = replace(run("rev-parse", f"{root}:blobs"), digest[:2], "tree", shard)
    commit = run("commit-tree", "-p", catalog, "-m", "tamper", replace(root, "blobs", "tree", blobs))
    run("update-ref", store.objects_ref, commit, catalog)


class TestGitStore(
    StoreConformance,
    SyncConformance,
    ArtifactMetaConformance,
    VectorsConformance,
    DocumentsConformance,
    GovernanceConformance,
    NoncesConformance,
):
    @pytest.fixture
    def store_opener(self) -> StoreOpener:
        return open_in_directory

    @pytest.fixture
    def sync_pair(self, tmp_path: Path) -> Iterator[tuple[GitStore, GitStore]]:
        """Two clones of one bare remote (which holds one commit of the user's), each with its own identity."""
        seed = make_repo(tmp_path / "seed")
        remote = tmp_path / "remote.git"
        git(tmp_path, "clone", "-q", "--bare", str(seed), str(remote))
        for name in ("a", "b"):
            git(tmp_path, "clone", "-q", str(remote), name)
            git(tmp_path / name, "config", "user.name", f"Machine {name.upper()}")
            git(tmp_path / name, "config", "user.email", f"{name}@example.invalid")
        with GitStore(tmp_path / "a") as a, GitStore(tmp_path / "b") as b:
            yield a, b

    @pytest.fixture
    def corrupt_blob(self) -> CorruptBlob:
        return overwrite_blob


def test_declares_every_facet() -> None:
    assert facets_of(GitStore) == {
        "objects",
        "refs",
        "annotations",
        "token_counts",
        "ledger",
        "chat",
        "maintenance",
        "sync",
        "artifact_meta",
        "vectors",
        "documents",
        "governance",
        "nonces",
    }
    assert GitStore.name == "git"


class TestSessionsOverThisStore(SessionsOverStore):
    """Sessions and checkpoints are commits and refs: this store keeps them with no code of its own."""

    @pytest.fixture
    def store_opener(self):  # type: ignore[no-untyped-def]
        return open_in_directory
