"""The context objects' catalog: where each object lives in git, and the in-process index over it.

One git commit chain, ``refs/<namespace>/objects``, holds every content
blob, commit record, annotation and token count, each in a file of its own
so that two machines' catalogs merge without conflicts::

    blobs/<h[:2]>/<h>                       the canonical content bytes (h: SHA-256)
    commits/<h[:2]>/<h>                     the commit's record (``Commit.to_record``) as canonical JSON
    annotations/<t[:2]>/<t>/<id>            one annotation of commit t (its record plus when it was added)
    tokens/<tokenizer>/<h[:2]>/<h>          a cached token count, as decimal text

Content bytes are stored exactly and commit records keep every field, so
hashes are the ones every cairn backend computes. ``Catalog`` is the index
the store keeps in memory (commits by hash, children, edits by target,
times, annotations, token counts); it is brought up to date from the diff
between the tree it last saw and the current one.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from cairn.model import Annotation, Commit, Operation, Priority
from cairn.model.lineage import Lineage

__all__ = [
    "Catalog",
    "quote_name",
    "annotation_bytes",
    "annotation_path",
    "blob_path",
    "commit_bytes",
    "commit_path",
    "token_path",
    "tokenizer_dir",
]

BLOBS, COMMITS, ANNOTATIONS, TOKENS = "blobs", "commits", "annotations", "tokens"
_OPERATIONS = {op.value: op for op in Operation}
_SAFE_NAME = "-_:+="  # kept as they are besides letters and digits; everything else is %-quoted


def blob_path(digest: str) -> str:
    return f"{BLOBS}/{digest[:2]}/{digest}"


def commit_path(digest: str) -> str:
    return f"{COMMITS}/{digest[:2]}/{digest}"


def annotation_path(target: str, annotation_id: str) -> str:
    return f"{ANNOTATIONS}/{target[:2]}/{target}/{annotation_id}"


def quote_name(name: str) -> str:
    """``name`` as one tree entry name: '/', '.', '~', '%' and the rest %-quoted (``hf:org/m.x`` -> ``hf:org%2Fm%2Ex``).

    Quoting '.' means no entry is ever '.', '..' or '.git', which git refuses.
    """
    return quote(name, safe=_SAFE_NAME).replace(".", "%2E").replace("~", "%7E")


def tokenizer_dir(tokenizer: str) -> str:
    """The directory of a tokenizer's counts (the name quoted by ``quote_name``)."""
    return f"{TOKENS}/{quote_name(tokenizer)}"


def token_path(tokenizer: str, digest: str) -> str:
    return f"{tokenizer_dir(tokenizer)}/{digest[:2]}/{digest}"


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def commit_bytes(commit: Commit) -> bytes:
    """The stored record: every field, canonical JSON (floats keep their exact repr, so hashes survive)."""
    return _json(commit.to_record())


def commit_from_bytes(data: bytes) -> Commit:
    # Records were validated when first written; the constructor is called
    # directly (no per-field checks), as Commit's docstring allows for stored
    # records. ``check()`` verifies every hash.
    record = json.loads(data)
    return Commit(
        hash=record["hash"],
        parent=record["parent"],
        operation=_OPERATIONS[record["operation"]],
        content_hash=record["content_hash"],
        target=record["target"],
        reply_to=record["reply_to"],
        message=record["message"],
        metadata=record["metadata"],
        created_at=record["created_at"],
        content_type=record.get("content_type"),
        token_count=record.get("token_count", 0),
        cumulative_tokens=record.get("cumulative_tokens", 0),
        depth=record.get("depth", 0),
        skip=record.get("skip"),
        tokenizer=record.get("tokenizer"),
        merge_parent=record.get("merge_parent"),
        last_merge=record.get("last_merge"),
    )


def annotation_bytes(annotation: Annotation, added: str) -> bytes:
    """An annotation's record plus ``added``, the stamp that orders annotations with the same time."""
    return _json({**annotation.to_record(), "added": added})


class _Note:
    """One stored annotation with its sort key (created_at, added)."""

    __slots__ = ("annotation", "added", "key", "id")

    def __init__(self, annotation: Annotation, added: str, annotation_id: str) -> None:
        self.annotation = annotation
        self.added = added
        self.key = (annotation.created_at, added)
        self.id = annotation_id


class Catalog:
    """The in-process index of one catalog tree (see the module docstring)."""

    def __init__(self) -> None:
        self.commit_oid: str | None = None  # the catalog's git commit
        self.root: str | None = None  # its tree
        self.blobs: dict[str, str] = {}  # content hash -> git blob id
        self.commits: dict[str, Commit] = {}
        self.commit_oids: dict[str, str] = {}  # commit hash -> git blob id of its record
        self.children: dict[str, list[str]] = {}
        self.targeting: dict[str, list[str]] = {}
        self.notes: dict[str, list[_Note]] = {}  # target -> annotations sorted by (created_at, added)
        self.note_ids: dict[str, str] = {}  # annotation id -> target
        self.tokens: dict[str, dict[str, int]] = {}  # tokenizer -> content hash -> count
        self.token_oids: dict[str, dict[str, str]] = {}  # tokenizer -> content hash -> git blob id
        self.count_of_oid: dict[str, int] = {}  # git blob id of a count -> the count
        self._by_time: list[tuple[str, str]] | None = None
        self._sorted_hashes: list[str] | None = None

    # -- reading the tree into the index ------------------------------------------------

    @staticmethod
    def needs_content(path: str, oid: str, count_of_oid: Mapping[str, int]) -> bool:
        """Whether applying an added or changed file needs its bytes (blobs are located, not read)."""
        top = path.split("/", 1)[0]
        if top in (COMMITS, ANNOTATIONS):
            return True
        return top == TOKENS and oid not in count_of_oid

    def apply(self, changes: Iterable[tuple[str, str | None, str | None]], contents: Mapping[str, bytes]) -> None:
        """Apply a tree diff: (path, old id, new id) per file; ``contents`` has the bytes ``needs_content`` asked for."""
        for path, old, new in changes:
            parts = path.split("/")
            top = parts[0]
            if top == BLOBS and len(parts) == 3:
                if new is None:
                    self.blobs.pop(parts[2], None)
                else:
                    self.blobs[parts[2]] = new
            elif top == COMMITS and len(parts) == 3:
                if old is not None:
                    self._drop_commit(parts[2])
                if new is not None:
                    self.add_commit(commit_from_bytes(contents[new]), new)
            elif top == ANNOTATIONS and len(parts) == 4:
                if old is not None:
                    self._drop_note(parts[2], parts[3])
                if new is not None:
                    record = json.loads(contents[new])
                    added = record.pop("added", "")
                    self.add_note(Annotation.from_record(record), added, parts[3])
            elif top == TOKENS and len(parts) == 4:
                tokenizer = unquote(parts[1])
                if new is None:
                    self.tokens.get(tokenizer, {}).pop(parts[3], None)
                    self.token_oids.get(tokenizer, {}).pop(parts[3], None)
                else:
                    if new not in self.count_of_oid:
                        self.count_of_oid[new] = int(contents[new])
                    self.set_count(tokenizer, parts[3], self.count_of_oid[new], new)
            # Anything else is not ours to index (a file someone added by hand): ignored, kept.

    # -- commits --------------------------------------------------------------------------

    def add_commit(self, commit: Commit, oid: str) -> None:
        if commit.hash in self.commits:
            self._drop_commit(commit.hash)
        self.commits[commit.hash] = commit
        self.commit_oids[commit.hash] = oid
        if commit.parent is not None:
            self.children.setdefault(commit.parent, []).append(commit.hash)
        if commit.target is not None:
            self.targeting.setdefault(commit.target, []).append(commit.hash)
        self._by_time = None
        self._sorted_hashes = None

    def _drop_commit(self, digest: str) -> None:
        commit = self.commits.pop(digest, None)
        self.commit_oids.pop(digest, None)
        if commit is None:
            return
        for index, key in ((self.children, commit.parent), (self.targeting, commit.target)):
            if key is not None and key in index:
                index[key] = [h for h in index[key] if h != digest]
                if not index[key]:
                    del index[key]
        self._by_time = None
        self._sorted_hashes = None

    def by_time(self) -> list[tuple[str, str]]:
        """(created_at, hash) of every commit, oldest first."""
        if self._by_time is None:
            self._by_time = sorted((c.created_at, c.hash) for c in self.commits.values())
        return self._by_time

    def sorted_hashes(self) -> list[str]:
        if self._sorted_hashes is None:
            self._sorted_hashes = sorted(self.commits)
        return self._sorted_hashes

    def ancestors(self, start: str, limit: int | None) -> list[Commit]:
        out: list[Commit] = []
        digest: str | None = start
        while digest is not None and (limit is None or len(out) < limit):
            commit = self.commits.get(digest)
            if commit is None:
                break
            out.append(commit)
            digest = commit.parent
        return out

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when ``ancestor`` is ``descendant`` or reached from it through parents (both of a merge)."""
        top = self.commits.get(ancestor)
        walk = self.commits.get(descendant)
        if top is None or walk is None:
            return False
        return Lineage(self.commits.get, lambda target: ()).is_ancestor(top, walk)

    # -- annotations ----------------------------------------------------------------------

    def add_note(self, annotation: Annotation, added: str, annotation_id: str) -> None:
        if annotation_id in self.note_ids:
            self._drop_note(annotation.target, annotation_id)
        notes = self.notes.setdefault(annotation.target, [])
        note = _Note(annotation, added, annotation_id)
        keys = [n.key for n in notes]
        notes.insert(bisect.bisect_right(keys, note.key), note)
        self.note_ids[annotation_id] = annotation.target

    def _drop_note(self, target: str, annotation_id: str) -> None:
        notes = self.notes.get(target)
        if notes:
            self.notes[target] = [n for n in notes if n.id != annotation_id]
            if not self.notes[target]:
                del self.notes[target]
        self.note_ids.pop(annotation_id, None)

    def latest(self, target: str, as_of: str | None) -> Annotation | None:
        for note in reversed(self.notes.get(target, ())):
            if as_of is None or note.annotation.created_at <= as_of:
                return note.annotation
        return None

    def history(self, target: str) -> list[Annotation]:
        return [n.annotation for n in self.notes.get(target, ())]

    def annotation_count(self) -> int:
        return len(self.note_ids)

    def annotated(self, priority: Priority, as_of: str | None) -> dict[str, Annotation]:
        out = {}
        for target in self.notes:
            latest = self.latest(target, as_of)
            if latest is not None and latest.priority is priority:
                out[target] = latest
        return out

    # -- token counts --------------------------------------------------------------------------

    def set_count(self, tokenizer: str, digest: str, count: int, oid: str) -> None:
        self.tokens.setdefault(tokenizer, {})[digest] = count
        self.token_oids.setdefault(tokenizer, {})[digest] = oid
        self.count_of_oid[oid] = count
