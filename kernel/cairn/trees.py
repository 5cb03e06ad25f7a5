"""Trees: the deterministic record of a directory's files, and how two of them differ.

A tree lists entries ``(path, mode, hash, size)``, one per file or symbolic
link, sorted by path (Unicode code point order, which is also UTF-8 byte
order). Its encoding is canonical JSON like every other cairn object::

    {"entries":[{"hash":"…","mode":"100644","path":"src/app.py","size":812}, …],
     "type":"cairn.tree","version":1}

and its hash is the SHA-256 of those bytes, so the same files give the same
tree hash on every backend and filesystem: times, owners, inode numbers and
the order a directory lists its entries in play no part. Trees are kept in
the artifact store like any other object (the tree hash is the object's
hash), beside the file contents they name.

Modes are git's: ``100644`` a file, ``100755`` an executable file (the
owner's execute bit), ``120000`` a symbolic link, whose ``target`` (the
link's text, never followed) is in the entry and whose hash and size are
those of the target's UTF-8 bytes. Directories are implied by paths; an
empty directory is not recorded.

A path is relative, ``/``-separated, with no empty, ``.`` or ``..`` part
and no NUL; no entry may sit inside another entry (``a`` and ``a/b``).
Decoding checks all of it and that the bytes are canonical, so a tree read
back is exactly the tree that was hashed, and no path in it can leave the
directory it is restored into.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from cairn.errors import IntegrityError, ValidationError
from cairn.model import canonical_json, is_hash, sha256_hex

__all__ = [
    "EXECUTABLE",
    "FILE",
    "MODES",
    "SYMLINK",
    "TREE_TYPE",
    "TREE_VERSION",
    "Tree",
    "TreeChange",
    "TreeDiff",
    "TreeEntry",
    "check_tree_path",
    "diff_trees",
]

TREE_TYPE = "cairn.tree"
TREE_VERSION = 1
FILE = "100644"
EXECUTABLE = "100755"
SYMLINK = "120000"
#: Mode -> what it is, for people.
MODES = {FILE: "file", EXECUTABLE: "executable", SYMLINK: "symlink"}
MAX_PATH = 4096


def check_tree_path(path: object) -> str:
    """``path`` if it is a safe relative tree path; else ``ValidationError`` saying what is wrong."""
    if not isinstance(path, str) or not path:
        raise ValidationError(f"tree path {path!r:.80} is empty or not text")
    problem = None
    if len(path) > MAX_PATH:
        problem = f"is longer than {MAX_PATH} characters"
    elif "\0" in path:
        problem = "holds a NUL character"
    elif path.startswith("/"):
        problem = "is absolute"
    elif any(part in ("", ".", "..") for part in path.split("/")):
        problem = "has an empty, '.' or '..' part"
    if problem:
        raise ValidationError(
            f"tree path {path!r:.200} {problem}",
            hint="tree paths are relative, '/'-separated, and never leave their directory",
        )
    return path


@attrs.frozen
class TreeEntry:
    """One file or symbolic link of a tree. ``target`` is set for symbolic links only."""

    path: str
    mode: str
    hash: str
    size: int
    target: str | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"path": self.path, "mode": self.mode, "hash": self.hash, "size": self.size}
        if self.target is not None:
            record["target"] = self.target
        return record

    @property
    def kind(self) -> str:
        return MODES.get(self.mode, self.mode)

    @classmethod
    def link(cls, path: str, target: str) -> TreeEntry:
        data = target.encode("utf-8")
        return cls(path, SYMLINK, sha256_hex(data), len(data), target)

    def check(self) -> None:
        """Raise ``ValidationError`` if any field is malformed."""
        check_tree_path(self.path)
        if self.mode not in MODES:
            raise ValidationError(f"entry {self.path!r}: mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not is_hash(self.hash):
            raise ValidationError(f"entry {self.path!r}: {self.hash!r:.80} is not a SHA-256 hash")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ValidationError(f"entry {self.path!r}: size {self.size!r} is not a byte count")
        if (self.mode == SYMLINK) != (self.target is not None):
            raise ValidationError(f"entry {self.path!r}: a target belongs to symbolic links, and only to them")
        if self.target is not None:
            if not isinstance(self.target, str) or not self.target or "\0" in self.target:
                raise ValidationError(f"entry {self.path!r}: the link target is empty or holds a NUL")
            data = self.target.encode("utf-8")
            if sha256_hex(data) != self.hash or len(data) != self.size:
                raise ValidationError(f"entry {self.path!r}: hash and size must be those of the link target")


@attrs.frozen
class Tree:
    """A sorted, checked list of entries and its hash. Build with ``Tree.build``, read with ``Tree.decode``."""

    entries: tuple[TreeEntry, ...]
    hash: str
    encoded: bytes = attrs.field(repr=False, eq=False)

    @classmethod
    def build(cls, entries: Iterable[TreeEntry]) -> Tree:
        """Sort and check ``entries``; refuse duplicates and entries inside other entries."""
        ordered = tuple(sorted(entries, key=lambda e: e.path))
        _check_structure(ordered)
        encoded = canonical_json(
            {"type": TREE_TYPE, "version": TREE_VERSION, "entries": [e.to_record() for e in ordered]},
            check_keys=False,
        )
        return cls(ordered, sha256_hex(encoded), encoded)

    @classmethod
    def decode(cls, data: bytes, digest: str | None = None) -> Tree:
        """Parse and check a tree's bytes; ``digest`` (its name) must match them."""
        what = f"tree {digest}" if digest else "tree"
        if digest is not None and sha256_hex(data) != digest:
            raise IntegrityError(f"{what}: its bytes hash to {sha256_hex(data)}")
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise ValidationError(f"{what} is not a tree: not JSON", hint="is it the hash of a file?") from None
        if not isinstance(value, dict) or value.get("type") != TREE_TYPE or not isinstance(value.get("entries"), list):
            raise ValidationError(f"{what} is not a tree", hint="give the hash `cairn snapshot create` printed")
        if value.get("version") != TREE_VERSION:
            raise ValidationError(f"{what} has version {value.get('version')!r}; this cairn reads {TREE_VERSION}")
        entries = []
        for raw in value["entries"]:
            if not isinstance(raw, dict) or not {"path", "mode", "hash", "size"} <= set(raw) <= _ENTRY_KEYS:
                raise ValidationError(f"{what}: malformed entry {raw!r:.200}")
            entries.append(TreeEntry(raw["path"], raw["mode"], raw["hash"], raw["size"], raw.get("target")))
        tree = cls.build(entries)
        if tree.encoded != data:
            raise ValidationError(f"{what} is not in canonical form (sorted entries, canonical JSON)")
        return tree

    def __iter__(self) -> Iterator[TreeEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def size(self) -> int:
        """Bytes of all its files (and link targets)."""
        return sum(e.size for e in self.entries)

    def by_path(self) -> dict[str, TreeEntry]:
        return {e.path: e for e in self.entries}


_ENTRY_KEYS = {"path", "mode", "hash", "size", "target"}


def _check_structure(ordered: tuple[TreeEntry, ...]) -> None:
    paths = set()
    previous = None
    for entry in ordered:
        entry.check()
        if entry.path == previous:
            raise ValidationError(f"tree lists {entry.path!r} twice")
        previous = entry.path
        paths.add(entry.path)
    for entry in ordered:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in paths:
                raise ValidationError(
                    f"tree entry {entry.path!r} lies inside {parent!r}, which is a file or a link",
                    hint="a path cannot be both a file and a directory",
                )


@attrs.frozen
class TreeChange:
    """One path that differs between two trees; ``old`` or ``new`` is None for an added or removed path."""

    path: str
    old: TreeEntry | None
    new: TreeEntry | None

    def to_record(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "old": self.old.to_record() if self.old else None,
            "new": self.new.to_record() if self.new else None,
        }


@attrs.frozen
class TreeDiff:
    """What changed from tree ``a`` to tree ``b``; each list sorted by path.

    ``changed`` holds paths whose content (or link target, or kind) differs;
    ``mode_changed`` those whose content is the same but whose mode differs
    (a file made executable).
    """

    added: tuple[TreeChange, ...]
    removed: tuple[TreeChange, ...]
    changed: tuple[TreeChange, ...]
    mode_changed: tuple[TreeChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.mode_changed)

    def to_record(self) -> dict[str, Any]:
        return {
            "added": [c.to_record() for c in self.added],
            "removed": [c.to_record() for c in self.removed],
            "changed": [c.to_record() for c in self.changed],
            "mode_changed": [c.to_record() for c in self.mode_changed],
        }


def diff_trees(a: Tree, b: Tree) -> TreeDiff:
    """The paths added, removed, changed and changed only in mode from ``a`` to ``b``."""
    old, new = a.by_path(), b.by_path()
    added, removed, changed, modes = [], [], [], []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before is None:
            added.append(TreeChange(path, None, after))
        elif after is None:
            removed.append(TreeChange(path, before, None))
        elif before.hash != after.hash or (SYMLINK in (before.mode, after.mode) and before.mode != after.mode):
            changed.append(TreeChange(path, before, after))
        elif before.mode != after.mode:
            modes.append(TreeChange(path, before, after))
    return TreeDiff(tuple(added), tuple(removed), tuple(changed), tuple(modes))
