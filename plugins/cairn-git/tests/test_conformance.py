"""cairn-git runs the storage conformance suite unchanged."""

from __future__ import annotations

import subprocess

import pytest
from cairn_git.store import GitStore, open_in_directory

from cairn.storage import Store
from cairn.testing.storage import CorruptBlob, StoreConformance, StoreOpener


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


class TestGitStore(StoreConformance):
    @pytest.fixture
    def store_opener(self) -> StoreOpener:
        return open_in_directory

    @pytest.fixture
    def corrupt_blob(self) -> CorruptBlob:
        return overwrite_blob
