"""Garbage collection of artifacts: what no root reaches, and no one stored recently, goes.

Roots are the places that keep an artifact: each is a function of the
project store that yields ``("artifact", hash)`` or ``("tree", hash)``. A
tree reached keeps itself and every file it names (the snapshot's
contents). The built-in roots:

- ``context``: artifact references (``sha256``) in the content of every
  ``artifact`` commit the store holds (``cairn gc`` collects unreachable
  commits first, so what is left is what some branch reaches);
- ``runs``: ``artifact``, ``snapshot`` and ``changes`` events of every run
  (``cairn.run_artifacts``);
- ``chat``: the attachments of every chat message.

A later feature adds its own with ``register_root(name, finder)`` (the
checkpoints of sessions will); ``ROOTS`` lists them. A root whose facet the
store lacks yields nothing.

**Grace period.** Anything stored or recorded less than ``grace`` ago is
kept whether or not a root reaches it, as git keeps recent loose objects:
a file put a moment ago by a command still running (``cairn run`` attaches
before it records the event) must not vanish under it. A recent tree keeps
its contents too.

Collecting deletes each object from wherever it lives (inline bytes, the
artifact store) and forgets its records (``ArtifactMetaStore.delete_artifacts``),
then clears the snapshot stat caches, which may name what was deleted.
``dry_run`` reports the same and deletes nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from cairn.errors import CairnError, ValidationError
from cairn.trees import SYMLINK

if TYPE_CHECKING:  # pragma: no cover
    from cairn.project_artifacts import ProjectArtifacts
    from cairn.storage import Facet

__all__ = [
    "DEFAULT_GRACE",
    "ROOTS",
    "ArtifactGcReport",
    "Collected",
    "RootFinder",
    "collect",
    "register_root",
]

#: ``(kind, hash)`` pairs a root yields: kind is ``"artifact"`` or ``"tree"``.
RootFinder = Callable[["Facet"], Iterable[tuple[str, str]]]

#: How recent a stored object or record must be to be kept regardless of roots.
DEFAULT_GRACE = _dt.timedelta(days=14)
#: Recent objects at most this big are looked at to see if they are trees (whose contents they keep).
_TREE_PROBE_BYTES = 64 << 20
_TREE_HEAD = b'{"entries":['

#: name -> finder, in the order they were registered.
ROOTS: dict[str, RootFinder] = {}


def register_root(name: str, finder: RootFinder) -> None:
    """Add a source of artifacts gc must keep; a name registered twice is an error."""
    if not isinstance(name, str) or not name:
        raise ValidationError("a gc root needs a name")
    if name in ROOTS:
        raise ValidationError(f"gc root {name!r} is registered already")
    ROOTS[name] = finder


def _context_root(store: Facet) -> Iterable[tuple[str, str]]:
    from cairn.storage import ObjectStore

    if not isinstance(store, ObjectStore):
        return
    commits = store.commits_by_type("artifact")
    wanted = sorted({c.content_hash for c in commits if c.content_hash})
    for start in range(0, len(wanted), 1000):
        for data in store.get_blobs(wanted[start : start + 1000]).values():
            try:
                item = json.loads(data)
            except ValueError:
                continue
            digest = item.get("sha256") if isinstance(item, dict) else None
            if isinstance(digest, str):
                yield "artifact", digest


def _runs_root(store: Facet) -> Iterable[tuple[str, str]]:
    from cairn.run_artifacts import hashes_of_event
    from cairn.storage import RunStore

    if not isinstance(store, RunStore):
        return
    for run in store.list_runs():
        for event in store.run_events(run.run_id):
            yield from hashes_of_event(event)


def _chat_root(store: Facet) -> Iterable[tuple[str, str]]:
    from cairn.storage import ChatStore

    if not isinstance(store, ChatStore):
        return
    for message in store.chat_messages():
        for ref in message.attachments:
            yield "artifact", ref.hash


register_root("context", _context_root)
register_root("runs", _runs_root)
register_root("chat", _chat_root)


@attrs.frozen
class Collected:
    """One artifact gc removes (or would): its hash, size, where it lives and the names it was put under."""

    hash: str
    size: int | None
    where: str  # inline | store | records (only records were left)
    names: tuple[str, ...]

    def to_record(self) -> dict[str, Any]:
        return {"hash": self.hash, "size": self.size, "where": self.where, "names": list(self.names)}


@attrs.frozen
class ArtifactGcReport:
    """What ``collect`` found: what goes, how much is kept, and trees a root names that are missing."""

    collected: tuple[Collected, ...]
    kept: int
    missing_trees: tuple[str, ...]
    dry_run: bool
    caches_cleared: int = 0

    @property
    def bytes(self) -> int:
        return sum(c.size or 0 for c in self.collected)

    def to_record(self) -> dict[str, Any]:
        return {
            "removed": [c.to_record() for c in self.collected],
            "removed_count": len(self.collected),
            "removed_bytes": self.bytes,
            "kept": self.kept,
            "missing_trees": list(self.missing_trees),
            "dry_run": self.dry_run,
        }


def _reached(store: Facet) -> tuple[set[str], set[str]]:
    artifacts: set[str] = set()
    trees: set[str] = set()
    for finder in ROOTS.values():
        for kind, digest in finder(store):
            (trees if kind == "tree" else artifacts).add(digest)
    return artifacts, trees


def _looks_like_tree(artifacts: ProjectArtifacts, digest: str) -> bool:
    try:
        with artifacts.open(digest) as stream:
            return (stream.read(len(_TREE_HEAD)) or b"") == _TREE_HEAD
    except CairnError:
        return False


def collect(
    artifacts: ProjectArtifacts,
    store: Facet,
    *,
    grace: _dt.timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
) -> ArtifactGcReport:
    """Remove every artifact no root reaches and nothing recent keeps; see the module docstring."""
    from cairn.ledger import time_ago
    from cairn.snapshots import clear_stat_caches

    cutoff = time_ago(grace)
    meta = artifacts.meta
    # What is stored, before looking for roots: an object stored after this listing is simply not seen.
    stored = {info.hash: (info, where) for info, where in artifacts.list_all()}
    records = meta.artifact_records()
    snapshots = meta.snapshot_records()
    reached, trees = _reached(store)
    reached |= {r.hash for r in records if r.created >= cutoff}
    trees |= {s.tree for s in snapshots if s.created >= cutoff}
    for digest, (info, where) in stored.items():
        recent = info.created is None or info.created >= cutoff
        if where == "store" and recent:
            reached.add(digest)
            if digest not in trees and info.size <= _TREE_PROBE_BYTES and _looks_like_tree(artifacts, digest):
                trees.add(digest)
    missing = []
    for tree_hash in sorted(trees):
        if tree_hash not in stored:
            missing.append(tree_hash)
            continue
        reached.add(tree_hash)
        try:
            tree = artifacts.load_tree(tree_hash)
        except CairnError:
            continue  # not a tree after all (a recent object that only looked like one), or damaged
        reached.update(e.hash for e in tree if e.mode != SYMLINK)
    candidates = set(stored) | {r.hash for r in records} | {s.tree for s in snapshots}
    doomed = sorted(candidates - reached)
    names: dict[str, list[str]] = {}
    for record in reversed(records):
        names.setdefault(record.hash, []).append(record.name)
    collected = tuple(
        Collected(
            digest,
            stored[digest][0].size if digest in stored else None,
            stored[digest][1] if digest in stored else "records",
            tuple(names.get(digest, ())),
        )
        for digest in doomed
    )
    cleared = 0
    if not dry_run and doomed:
        from_store = [c.hash for c in collected if c.where == "store"]
        for digest in from_store:
            artifacts.store.delete(digest)
        meta.delete_artifacts(doomed)
        if from_store and artifacts.cache_dir is not None:
            cleared = clear_stat_caches(artifacts.cache_dir)  # they may vouch for objects that are gone
    return ArtifactGcReport(
        collected, len(stored) - len([c for c in collected if c.where != "records"]), tuple(missing), dry_run, cleared
    )
