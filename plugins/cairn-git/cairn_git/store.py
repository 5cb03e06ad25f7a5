"""``GitStore``: everything cairn keeps, inside the git repository the project lives in.

Nothing touches the working tree, the index, HEAD, hooks or ``.gitignore``:
objects are written in process (the few of a small write as one small pack,
or loose files with ``gc_auto`` off; a big write as one pack), and every ref
change is one ``git update-ref --stdin`` transaction that names each ref's
old value, so git checks them all under its locks and applies all or none
(compare-and-swap). A transaction that loses a race is rebuilt on the new
state and retried; a cairn-level compare-and-swap that fails raises
``ConflictError``. Refs (``<ns>`` is the namespace, ``cairn`` by default)::

    refs/<ns>/objects                     catalog of context objects (see cairn_git._catalog)
    refs/<ns>/context/<name>.ref          one per cairn ref (HEAD, refs/heads/<branch>, ...),
                                          pointing at a blob that holds its value
    refs/heads/<ledger_branch>            the run ledger (see cairn_git._ledger), chat in threads and
                                          artifact metadata (see cairn_git.facets.artifacts), directives,
                                          approvals and idempotency keys (see cairn_git.facets.governance)
    refs/<ns>/runs/<run_id>               an annotated tag per run (or refs/tags/<ns>/run/<run_id>)
    refs/notes/<ns>-chat                  run-attached chat messages: a JSONL note on each run's tag
                                          (see cairn_git._notes)
    refs/<ns>/remotes/<remote>/...        what the last fetch saw of the remote's cairn refs
    refs/<ns>/sync/<remote>               the remote's context refs as the last sync merged them

Each facet of the storage contract is a mixin in ``cairn_git.facets`` over
``cairn_git._base.GitBase`` (the repository, its git processes and the
compare-and-swap transaction); ``GitStore`` composes them.

Reads: the catalog is indexed in memory and brought up to date from a tree
diff whenever its ref has moved (one ``cat-file`` round trip to find out);
blobs, refs, runs and events are read through one long-lived
``git cat-file --batch-command`` process, many per round trip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from cairn.storage import Store
from cairn_git._git import GitCommandError, git_environment
from cairn_git.config import GitConfig, repository_path
from cairn_git.facets import (
    GitAnnotations,
    GitArtifactMeta,
    GitChat,
    GitGovernance,
    GitLedger,
    GitMaintenance,
    GitMemoryCache,
    GitNonces,
    GitObjects,
    GitRefs,
    GitSync,
    GitTokenCounts,
)

__all__ = ["GitStore", "open_in_directory"]


class GitStore(
    GitObjects,
    GitRefs,
    GitAnnotations,
    GitTokenCounts,
    GitLedger,
    GitChat,
    GitMaintenance,
    GitSync,
    GitArtifactMeta,
    GitGovernance,
    GitNonces,
    GitMemoryCache,
    Store,
):
    """A ``cairn.storage.Store`` kept in git objects and refs, with the sync facet (see the module docstring).

    Safe to share between threads (calls are serialized) and between
    processes (git's ref locks decide every race, and losers retry).
    """

    name = "git"
    capabilities = frozenset({"sync"})

    @classmethod
    def from_config(cls, config: GitConfig, *, project_dir: Path) -> GitStore:
        """Open the store ``[storage.git]`` describes; ``repo`` is relative to ``project_dir``."""
        repo = repository_path(config, project_dir)
        return cls(
            repo,
            namespace=config.namespace,
            ledger_branch=config.ledger_branch,
            run_refs=config.run_refs,
            remote=config.remote,
            gc_auto=config.gc_auto,
        )


# -- opening in a directory ---------------------------------------------------------------------------------


def open_in_directory(directory: str | os.PathLike[str]) -> GitStore:
    """``git init`` ``directory`` if it is not a repository yet, and open the store there (default settings).

    The conformance suite's ``store_opener``: several processes may call it
    at once on a fresh directory, so the repository is made aside and moved
    into place in one rename.
    """
    path = Path(directory)
    if not (path / ".git").exists():
        scratch = tempfile.mkdtemp(prefix=".cairn-git-init-", dir=path)
        try:
            done = subprocess.run(
                ["git", "init", "-q", scratch], capture_output=True, env=git_environment(), stdin=subprocess.DEVNULL
            )
            if done.returncode != 0:
                raise GitCommandError(["init"], done.returncode, done.stderr.decode(errors="replace"))
            try:
                os.rename(os.path.join(scratch, ".git"), path / ".git")
            except OSError:
                if not (path / ".git").exists():
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return GitStore(path)
