"""Git trees in process: read through a cache, edit by path, walk and diff.

Tree objects never change once written, so a tree read (or written) once is
kept by its id; editing a path rewrites only the trees on that path, and a
diff descends only into subtrees whose ids differ. Reads of one tree level
go to ``git cat-file`` in one pipelined round trip.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

from cairn.errors import IntegrityError
from cairn_git._git import TREE_MODE, CatFile, parse_tree
from cairn_git._writer import ObjectWriter, tree_line

__all__ = ["Entry", "Trees"]

#: A tree entry: (mode, object id).
Entry = tuple[str, str]


class Trees:
    """Tree objects of one repository, cached by id."""

    def __init__(self, cat: CatFile, writer: ObjectWriter, *, capacity: int = 200_000) -> None:
        self._cat = cat
        self._writer = writer
        self._cache: OrderedDict[str, dict[str, Entry]] = OrderedDict()
        self._lines: dict[str, tuple[dict[str, bytes], list[str]]] = {}  # big trees: encoded entries, git order
        self._capacity = capacity

    def _remember(self, oid: str, entries: dict[str, Entry]) -> None:
        self._cache[oid] = entries
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    def prefetch(self, oids: list[str | None]) -> None:
        """Read every tree not cached yet, in one round trip."""
        wanted = list(dict.fromkeys(o for o in oids if o and o not in self._cache))
        if not wanted:
            return
        for oid, found in zip(wanted, self._cat.read(wanted), strict=True):
            if found is None or found[1] != "tree":
                raise IntegrityError(
                    f"git tree {oid} is missing or is not a tree",
                    hint="run `git fsck` in the repository; fetch the missing objects or restore from a clone",
                )
            self._remember(oid, parse_tree(found[2], self._writer.oid_size))

    def get(self, oid: str | None) -> dict[str, Entry]:
        """The entries of tree ``oid`` (empty for None). Do not modify the result."""
        if not oid:
            return {}
        entries = self._cache.get(oid)
        if entries is None:
            self.prefetch([oid])
            entries = self._cache[oid]
        return entries

    def put(self, entries: Mapping[str, Entry], base: str | None = None) -> str:
        """Write a tree. With ``base`` (the cached tree it was edited from) a big tree reuses its encoded
        entries, and when no name came or went, their order too: one edit costs one entry, not a sort."""
        known = self._lines.get(base) if base is not None else None
        if known is not None and known[0].keys() == entries.keys():
            old_lines, order = known
            old = self.get(base)
            lines = dict(old_lines)
            for name, entry in entries.items():
                if old.get(name) != entry:
                    lines[name] = tree_line(name, *entry)[1]
        else:
            keyed = sorted((*tree_line(name, *entry), name) for name, entry in entries.items())
            order = [name for _, _, name in keyed]
            lines = {name: line for _, line, name in keyed}
        oid = self._writer.write("tree", b"".join([lines[name] for name in order]))
        self._remember(oid, dict(entries))
        if len(entries) > 16:  # worth keeping for the next edit of a big tree
            self._lines[oid] = (lines, order)
            if len(self._lines) > 512:
                self._lines.pop(next(iter(self._lines)))
        return oid

    def lookup(self, root: str | None, path: str) -> Entry | None:
        """The entry at ``path`` (``a/b/c``) under tree ``root``, or None."""
        entries = self.get(root)
        parts = path.split("/")
        for part in parts[:-1]:
            entry = entries.get(part)
            if entry is None or entry[0] != TREE_MODE:
                return None
            entries = self.get(entry[1])
        return entries.get(parts[-1])

    def edit(self, root: str | None, edits: Mapping[str, Entry | None]) -> str | None:
        """A new tree: ``root`` with each path set to its entry (None removes the file or whole subtree).

        Directories left empty disappear; returns None for an empty result.
        Only the trees on edited paths are written.
        """
        if not edits:
            return root
        return self._edit(root, dict(edits))

    def _edit(self, oid: str | None, edits: dict[str, Entry | None]) -> str | None:
        original = self.get(oid)
        entries = dict(original)
        below: dict[str, dict[str, Entry | None]] = {}
        for path, value in edits.items():
            head, sep, rest = path.partition("/")
            if sep:
                below.setdefault(head, {})[rest] = value
            elif value is None:
                entries.pop(head, None)
            else:
                entries[head] = value
        subtrees = {head: entries.get(head) for head in below}
        self.prefetch([e[1] for e in subtrees.values() if e is not None and e[0] == TREE_MODE])
        for head, sub in below.items():
            current = subtrees[head]
            child = current[1] if current is not None and current[0] == TREE_MODE else None
            new = self._edit(child, sub)
            if new is None:
                entries.pop(head, None)
            else:
                entries[head] = (TREE_MODE, new)
        if not entries:
            return None
        if oid is not None and entries == original:
            return oid
        return self.put(entries, base=oid)

    def walk(self, root: str | None, path: str = "") -> Iterator[tuple[str, str]]:
        """(path, object id) of every file under ``path`` in ``root``, one tree level per round trip."""
        start: str | None = root
        if path:
            entry = self.lookup(root, path)
            if entry is None or entry[0] != TREE_MODE:
                return
            start = entry[1]
        level: list[tuple[str, str | None]] = [(path, start)]
        while level:
            self.prefetch([oid for _, oid in level])
            deeper: list[tuple[str, str | None]] = []
            for base, oid in level:
                for name, (mode, child) in self.get(oid).items():
                    full = f"{base}/{name}" if base else name
                    if mode == TREE_MODE:
                        deeper.append((full, child))
                    else:
                        yield full, child
            level = deeper

    def diff(self, old: str | None, new: str | None) -> list[tuple[str, str | None, str | None]]:
        """Every file that differs: (path, old id or None, new id or None); unchanged subtrees are skipped."""
        out: list[tuple[str, str | None, str | None]] = []
        level = [("", old, new)]
        while level:
            self.prefetch([o for _, a, b in level for o in (a, b)])
            deeper = []
            for base, a, b in level:
                left, right = self.get(a), self.get(b)
                for name in left.keys() | right.keys():
                    x, y = left.get(name), right.get(name)
                    if x == y:
                        continue
                    full = f"{base}/{name}" if base else name
                    x_tree = x[1] if x is not None and x[0] == TREE_MODE else None
                    y_tree = y[1] if y is not None and y[0] == TREE_MODE else None
                    if x_tree or y_tree:
                        deeper.append((full, x_tree, y_tree))
                    x_file = x[1] if x is not None and x[0] != TREE_MODE else None
                    y_file = y[1] if y is not None and y[0] != TREE_MODE else None
                    if x_file != y_file:
                        out.append((full, x_file, y_file))
            level = deeper
        return out
