"""Git objects written in process: ``ObjectWriter`` (loose objects and packs) and the entries and identities it writes.

``ObjectWriter`` writes objects itself: loose (zlib, a temporary file and a
rename, as git does) or, for the objects of one write, one version-2 pack
and index; its own small packs are merged by concatenation. Faster than any
subprocess, and it runs no hooks and signs nothing, so ``commit.gpgSign``
and user hooks never get in the way.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import struct
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from cairn.errors import StorageError
from cairn_git._git import TREE_MODE

__all__ = ["ObjectWriter", "identity", "tree_line"]

_PACK_TYPES = {"commit": 1, "tree": 2, "blob": 3, "tag": 4}
_PACK_AT = 64  # objects in one write from which a pack is cheaper than loose files
_SMALL_PACK = 256  # packs with fewer objects are kept in memory for ``roll_up``


def tree_line(name: str, mode: str, oid: str) -> tuple[bytes, bytes]:
    """(sort key, bytes) of one tree entry; git sorts a subtree as if its name ended in '/'."""
    raw = name.encode("utf-8", errors="surrogateescape")
    return (raw + b"/" if mode == TREE_MODE else raw), b"%s %s\0%s" % (mode.encode(), raw, bytes.fromhex(oid))


class ObjectWriter:
    """Writes loose objects into ``objects_dir`` the way git does; hashes with the repository's object format."""

    def __init__(
        self, objects_dir: Path, object_format: str = "sha1", *, fsync: bool = False, compression: int = 1
    ) -> None:
        if object_format not in ("sha1", "sha256"):
            raise StorageError(f"unknown git object format {object_format!r}", hint="use a sha1 or sha256 repository")
        self.objects_dir = objects_dir
        self.object_format = object_format
        self._hash = hashlib.sha1 if object_format == "sha1" else hashlib.sha256
        self.oid_size = 20 if object_format == "sha1" else 32
        self.zero = "0" * (self.oid_size * 2)
        self.fsync = fsync
        self.compression = compression  # git's core.looseCompression (1, fastest, unless configured)
        self._pending: dict[str, tuple[str, bytes]] | None = None
        #: Objects in one write from which they go into a pack rather than loose files. A pack is two
        #: files however many objects it holds, but packs pile up: set it low only when something
        #: repacks them (GitStore runs ``git repack --geometric``).
        self.pack_at = _PACK_AT
        self.packs = 0  # packs written
        self._small: list[tuple[str, list[tuple[bytes, int, bytes]]]] = []  # (path without suffix, entries)
        self._pid = os.getpid()
        self._names = itertools.count()
        self.empty_tree = self.oid("tree", b"")

    def oid(self, kind: str, data: bytes) -> str:
        return self._hash(b"%s %d\0%s" % (kind.encode(), len(data), data)).hexdigest()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Within the block, objects are held back and written together by ``flush`` (or at the end).

        A write that makes many objects then costs two files (a pack and its
        index) instead of one file per object. Callers flush before any ref
        may point at the objects.
        """
        if self._pending is not None:
            yield  # already batching: the outer block flushes
            return
        self._pending = {}
        try:
            yield
            self.flush()
        finally:
            self._pending = None

    def flush(self) -> None:
        """Write the objects held back by ``batch``: loose if they are few, else as one pack."""
        pending = self._pending
        if not pending:
            return
        self._pending = None
        try:
            if len(pending) < self.pack_at:
                for kind, data in pending.values():
                    self.write(kind, data)
            else:
                self._write_pack(pending)
        finally:
            self._pending = {}

    def write(self, kind: str, data: bytes) -> str:
        """Store an object (if it is not stored loose already) and return its id."""
        raw = b"%s %d\0%s" % (kind.encode(), len(data), data)
        oid = self._hash(raw).hexdigest()
        if self._pending is not None:
            self._pending.setdefault(oid, (kind, data))
            return oid
        directory = os.path.join(self.objects_dir, oid[:2])
        path = os.path.join(directory, oid[2:])
        if os.path.exists(path):
            # Freshen it, as git does: a prune must not take an old unreachable copy we now refer to.
            try:
                os.utime(path)
                return oid
            except OSError:
                pass  # pruned this instant: write it again
        # A temporary name and a rename: no reader ever sees half an object.
        fd, tmp = self._temporary(directory)
        try:
            # Trees are mostly binary object ids, which do not compress: storing them is 10x faster
            # than deflating and nearly as small. (gc packs and recompresses everything anyway.)
            os.write(fd, zlib.compress(raw, 0 if kind == "tree" else self.compression))
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, path)
        except OSError:
            os.unlink(tmp)
            raise
        return oid

    def _write_pack(self, objects: Mapping[str, tuple[str, bytes]]) -> None:
        """Write ``objects`` as one pack; a small one is remembered so ``roll_up`` can merge it later."""
        entries = []  # (binary oid, crc32, entry bytes)
        for oid, (kind, data) in objects.items():
            size = len(data)
            byte = (_PACK_TYPES[kind] << 4) | (size & 0x0F)
            size >>= 4
            header = bytearray()
            while size:
                header.append(byte | 0x80)
                byte = size & 0x7F
                size >>= 7
            header.append(byte)
            entry = bytes(header) + zlib.compress(data, 0 if kind == "tree" else self.compression)
            entries.append((bytes.fromhex(oid), zlib.crc32(entry), entry))
        base = self._write_entries(entries)
        if len(entries) < _SMALL_PACK:
            self._small.append((base, entries))

    @property
    def small_packs(self) -> int:
        """Small packs written by this writer and not merged yet."""
        return len(self._small)

    def roll_up(self, at: int = 32) -> bool:
        """Merge this writer's small packs into one once there are ``at`` of them; True if it did.

        Their entries are still in memory, so the merge is a concatenation:
        no object is read back, recompressed or deltified (``git repack``
        does that later). Each pack goes index first, so git stops using it
        before its data goes; a reader that had it open keeps its copy.
        """
        if len(self._small) < at:
            return False
        merged: dict[bytes, tuple[bytes, int, bytes]] = {}
        for _, entries in self._small:
            for entry in entries:
                merged.setdefault(entry[0], entry)
        self._write_entries(list(merged.values()))
        for base, _ in self._small:
            for suffix in (".idx", ".pack"):
                try:
                    os.unlink(base + suffix)
                except FileNotFoundError:
                    pass  # a gc merged it already
        self._small = []
        return True

    def _write_entries(self, entries: list[tuple[bytes, int, bytes]]) -> str:
        """A version-2 pack of whole (undeltified) entries and its version-2 index, moved into place."""
        pack_dir = os.path.join(self.objects_dir, "pack")
        body = [b"PACK" + struct.pack(">II", 2, len(entries))]
        offset = len(body[0])
        index_rows = []
        for name, crc, entry in entries:
            index_rows.append((name, crc, offset))
            body.append(entry)
            offset += len(entry)
        if offset >= 2**31:
            raise StorageError("refusing to write a pack over 2 GiB in one write", hint="write in smaller batches")
        pack = b"".join(body)
        pack_sum = self._hash(pack).digest()
        index_rows.sort()
        fanout = [0] * 256
        for name, _, _ in index_rows:
            fanout[name[0]] += 1
        total = 0
        for i in range(256):
            total += fanout[i]
            fanout[i] = total
        index = b"".join(
            [
                b"\xfftOc",
                struct.pack(">I", 2),
                struct.pack(">256I", *fanout),
                b"".join(name for name, _, _ in index_rows),
                struct.pack(f">{len(index_rows)}I", *(crc for _, crc, _ in index_rows)),
                struct.pack(f">{len(index_rows)}I", *(off for _, _, off in index_rows)),
                pack_sum,
            ]
        )
        index += self._hash(index).digest()
        base = os.path.join(pack_dir, f"pack-{pack_sum.hex()}")
        # The pack first, its index last: git only looks at packs whose index exists.
        for suffix, data in ((".pack", pack + pack_sum), (".idx", index)):
            fd, tmp = self._temporary(pack_dir)
            try:
                os.write(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, base + suffix)
        self.packs += 1
        return base

    def _temporary(self, directory: str) -> tuple[int, str]:
        """A new read-only file beside the object (git's ``tmp_obj_`` prefix, which gc cleans up if we die)."""
        while True:
            tmp = os.path.join(directory, f"tmp_obj_{self._pid}_{next(self._names)}")
            try:
                return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444), tmp
            except FileExistsError:
                continue  # left by an earlier process with our pid
            except FileNotFoundError:
                # New, or emptied and removed by `git prune-packed` (gc): recreate it, as git does.
                os.makedirs(directory, exist_ok=True)

    def blob(self, data: bytes) -> str:
        return self.write("blob", data)

    def tree_bytes(self, entries: Mapping[str, tuple[str, str]]) -> bytes:
        return b"".join(line for _, line in sorted(tree_line(n, m, o) for n, (m, o) in entries.items()))

    def tree(self, entries: Mapping[str, tuple[str, str]]) -> str:
        return self.write("tree", self.tree_bytes(entries))

    def commit(self, tree: str, parents: Sequence[str], ident: str, message: str) -> str:
        lines = [f"tree {tree}"]
        lines += [f"parent {p}" for p in parents]
        lines += [f"author {ident}", f"committer {ident}", "", message]
        return self.write("commit", ("\n".join(lines) + "\n").encode("utf-8"))

    def tag(self, target: str, target_type: str, name: str, ident: str, message: bytes) -> str:
        head = f"object {target}\ntype {target_type}\ntag {name}\ntagger {ident}\n\n".encode()
        return self.write("tag", head + message)


def identity(name: str | None, email: str | None, moment: float | None = None) -> str:
    """``Name <email> <seconds> +0000``; characters git forbids in an identity are dropped."""

    def clean(text: str) -> str:
        return "".join(ch for ch in text if ch not in "<>\n\r\0").strip()

    who = clean(name or "") or "cairn"
    mail = clean(email or "") or "cairn@localhost"
    return f"{who} <{mail}> {int(time.time() if moment is None else moment)} +0000"
