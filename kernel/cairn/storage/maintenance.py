"""The maintenance facet: stats, garbage collection and the integrity check.

``check_objects`` and ``unreachable`` are the backend-independent parts a
backend builds its ``check`` and ``gc`` from; ``check_store`` checks any
store that keeps objects and refs, through its own ``check`` when it has the
maintenance facet and through the object and ref contracts otherwise.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from cairn.model import MAX_COUNT, Commit, is_hash
from cairn.storage._facet import Facet
from cairn.storage.refs import ref_problem

__all__ = ["GcReport", "Maintenance", "Problem", "StoreStats", "check_objects", "check_store", "unreachable"]


@attrs.frozen
class StoreStats:
    blobs: int
    commits: int
    refs: int
    annotations: int
    bytes: int  # stored size of blobs and commits as the backend reports it
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class GcReport:
    commits_removed: int
    blobs_removed: int
    annotations_removed: int
    dry_run: bool


@attrs.frozen
class Problem:
    """One integrity problem: what kind, which object, and what is wrong."""

    #: blob_hash | commit_hash | missing_parent | missing_blob | missing_target | derived
    #: | dangling_ref | bad_ref | other
    kind: str
    object: str
    message: str

    def __str__(self) -> str:
        shown = self.object[:12] if is_hash(self.object) else self.object  # a ref's name is kept whole
        return f"{self.kind} {shown}: {self.message}"


class Maintenance(Facet, abc.ABC):
    """Stats, garbage collection of what no ref reaches, and an integrity check."""

    facet = "maintenance"
    holds = "maintenance (stats, gc and check)"

    @abc.abstractmethod
    def stats(self) -> StoreStats:
        """Object counts and stored size."""

    @abc.abstractmethod
    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Remove commits no ref reaches (through parents), the blobs only they used and their annotations."""

    @abc.abstractmethod
    def check(self) -> list[Problem]:
        """Every integrity problem found: hashes that do not match, missing objects, dangling refs."""


def check_objects(
    store: Any,
    commits: Iterable[Commit],
    blobs: Mapping[str, bytes],
    refs: Mapping[str, str] | None = None,
) -> list[Problem]:
    """The backend-independent part of ``Maintenance.check``: hashes, links, derived fields and refs.

    Backends call it with everything they hold (``refs``: every ref's name
    and value) and add checks of their own. Each commit's derived fields are
    worked out again by ``cairn.model.lineage`` from its parent and target
    and compared with what is stored: depth, skip pointer, content type (the
    content blob's), and token counts as far as they can be told without a
    tokenizer (a delete costs 0; cumulative counts follow from the parent's
    whenever the tokens an edit or delete takes away were counted by the
    commit's tokenizer). Depth and skip pointer are compared with what the
    parent's should be, so a wrong depth is one problem; counts with the
    parent's stored counts, as the engine derived them, so a wrong cumulative
    count shows on its commit and on the children counted from it.
    """
    from cairn.model import sha256_hex
    from cairn.model.lineage import Lineage

    problems: list[Problem] = []
    by_hash = {c.hash: c for c in commits}
    used = {c.content_hash for c in by_hash.values() if c.content_hash is not None}
    content_types: dict[str, str | None] = {}  # of the blobs commits use: None when not a content item
    for digest, data in blobs.items():
        if sha256_hex(data) != digest:
            problems.append(Problem("blob_hash", digest, "content does not match its hash"))
        if digest in used:
            content_types[digest] = _content_type_of(data)
    changes: dict[str, list[Commit]] = {}
    for commit in by_hash.values():
        if commit.target is not None:
            changes.setdefault(commit.target, []).append(commit)
    right: dict[str, Commit] = {}  # commits with their derived fields as they should be
    lineage = Lineage(lambda h: right.get(h) or by_hash.get(h), lambda t: changes.get(t, ()))
    for commit in _parents_first(by_hash):
        if commit.computed_hash() != commit.hash:
            problems.append(Problem("commit_hash", commit.hash, "fields do not match the hash"))
        content_type = commit.content_type
        if commit.content_hash is not None:
            if commit.content_hash not in content_types:
                problems.append(Problem("missing_blob", commit.hash, f"content {commit.content_hash[:12]} is missing"))
            elif content_types[commit.content_hash] is None:
                problems.append(
                    Problem("other", commit.hash, f"content {commit.content_hash[:12]} is not a content item")
                )
            else:
                content_type = content_types[commit.content_hash]
        derived = lineage.derive(commit, content_type=content_type)
        # Links only: an edit of another branch's item, or a clock that went back, is the
        # context engine's business (import refuses both); a store may hold them.
        problems.extend(Problem(k, commit.hash, m) for k, m in derived.problems if k.startswith("missing_"))
        problems.extend(_derived_problems(commit, derived))
        if not any(kind == "missing_parent" for kind, _ in derived.problems):
            # Ancestry follows the right depth and skip pointer; counts stay as stored, since
            # the engine counted each commit's children from its parent's stored counts.
            right[commit.hash] = attrs.evolve(commit, depth=derived.depth, skip=derived.skip)
    if refs is not None:
        for name, value in refs.items():
            problem = ref_problem(name, value)
            if problem is not None:
                problems.append(Problem("bad_ref", name, problem))
            elif is_hash(value) and value not in by_hash:
                problems.append(Problem("dangling_ref", name, f"points to commit {value[:12]}, which is not stored"))
    return problems


def _content_type_of(data: bytes) -> str | None:
    """The ``content_type`` of a stored content item, or None when the bytes are not one."""
    import json

    try:
        item = json.loads(data)
    except (ValueError, RecursionError):
        return None
    tag = item.get("content_type") if isinstance(item, dict) else None
    return tag if isinstance(tag, str) and tag else None


def _parents_first(commits: Mapping[str, Commit]) -> list[Commit]:
    """Every commit, each after its parent (a commit whose parent is missing starts a line of its own)."""
    children: dict[str, list[Commit]] = {}
    roots = []
    for commit in commits.values():
        if commit.parent is not None and commit.parent in commits and commit.parent != commit.hash:
            children.setdefault(commit.parent, []).append(commit)
        else:
            roots.append(commit)
    ordered: list[Commit] = []
    stack = roots
    while stack:
        commit = stack.pop()
        ordered.append(commit)
        stack.extend(children.get(commit.hash, ()))
    return ordered


def _derived_problems(commit: Commit, derived: Any) -> list[Problem]:
    problems = []

    def wrong(message: str) -> None:
        problems.append(Problem("derived", commit.hash, message))

    for name in ("token_count", "cumulative_tokens", "depth"):
        value = getattr(commit, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
            wrong(f"{name} {value!r:.40} is not a count (0 to {MAX_COUNT})")
            return problems
    if commit.depth != derived.depth:
        wrong(f"depth {commit.depth}, expected {derived.depth}")
    # Below depth 2 a skip pointer could only name the parent: writers may leave it empty.
    if commit.skip != derived.skip and not (derived.depth == 1 and commit.skip == commit.parent):
        wrong(f"skip pointer {_short(commit.skip)}, expected {_short(derived.skip)}")
    if commit.content_type != derived.content_type:
        wrong(f"content type {commit.content_type!r}, but its content says {derived.content_type!r}")
    if commit.token_count != derived.token_count:
        wrong(f"token count {commit.token_count}, expected {derived.token_count} (a delete costs nothing)")
    if derived.cumulative_tokens is not None and commit.cumulative_tokens != derived.cumulative_tokens:
        wrong(
            f"cumulative tokens {commit.cumulative_tokens}, expected {derived.cumulative_tokens} "
            f"from its parent's and its own {commit.operation.value}"
        )
    return problems


def _short(value: str | None) -> str:
    return "none" if value is None else value[:12]


def unreachable(
    refs: Mapping[str, str], commits: Mapping[str, Commit], blobs: Iterable[str]
) -> tuple[set[str], set[str]]:
    """The commits and blobs no ref reaches, given everything stored; for simple ``Store.gc`` implementations."""
    reachable: set[str] = set()
    stack = [v for v in refs.values() if v in commits]
    while stack:
        digest = stack.pop()
        if digest in reachable:
            continue
        reachable.add(digest)
        commit = commits[digest]
        # Follow targets too: an edit that survives keeps the item it changes.
        for link in (commit.parent, commit.target, commit.merge_parent):
            if link and link in commits:
                stack.append(link)
    dead = set(commits) - reachable
    live_blobs = {commits[h].content_hash for h in reachable if commits[h].content_hash}
    return dead, set(blobs) - live_blobs


def check_store(store: Any) -> list[Problem]:
    """Every integrity problem in ``store``: its own ``check`` with the maintenance facet, else a full scan.

    The scan serves backends that keep only objects and refs: it reads every
    commit (``commits_by_time`` without bounds), their blobs and the refs, and
    checks them with ``check_objects`` plus dangling refs. O(history): this is
    ``cairn fsck``, not a hot path.
    """
    from cairn.storage._facet import require
    from cairn.storage.objects import ObjectStore
    from cairn.storage.refs import RefStore

    if isinstance(store, Maintenance):
        return store.check()
    objects = require(store, ObjectStore, doing="cairn fsck")
    refs = require(store, RefStore, doing="cairn fsck")
    commits = objects.commits_by_time()
    wanted = sorted({c.content_hash for c in commits if c.content_hash})
    blobs: dict[str, bytes] = {}
    for start in range(0, len(wanted), 1000):
        blobs.update(objects.get_blobs(wanted[start : start + 1000]))
    return check_objects(store, commits, blobs, refs.list_refs())
