"""The files of an index directory, and how they change without a crash ever breaking them.

An index is a directory::

    manifest.json       what the index is and how much of each file counts
    g<N>.ids            the ids of generation N, each followed by a newline
    g<N>.offsets        int64: where each id ends in g<N>.ids
    g<N>.removed        int64: rows whose id was removed or replaced
    g<N>.vectors        float32 rows (exact)
    s<M>.usearch        the graph as of persist number M (hnsw)
    lock                held while a persist runs

The data files only grow; ``manifest.json`` says how many rows, id bytes
and removed rows count, and is replaced atomically (written beside, fsynced,
renamed, directory fsynced) after the data it counts was fsynced. So a
process killed mid-append leaves bytes past the counts, which opening
ignores and the next persist cuts off; a process killed before the rename
leaves the previous manifest, which still counts only complete data.
Compaction writes a whole new generation and then switches the manifest to
it; files the manifest does not name are removed by the next persist.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from cairn.errors import IntegrityError, ValidationError
from cairn.vector_index import REINDEX_COMMAND, EmbedderIdentity, check_identity

__all__ = [
    "FORMAT",
    "MANIFEST",
    "append_at",
    "fsync_dir",
    "is_index_file",
    "read_manifest",
    "write_atomic",
    "write_new",
]

FORMAT = "cairn-vectors"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = "lock"

_OWN_FILE = re.compile(r"\A(manifest\.json|lock|[gs]\d+\.\w+)(\.tmp)?\Z")


def is_index_file(name: str) -> bool:
    """Whether ``name`` is a file an index directory may hold."""
    return bool(_OWN_FILE.match(name))


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a reader, or a crash, sees the old file or the new one, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_new(path: Path, chunks: Iterable[bytes | np.ndarray]) -> int:
    """Write a file of a generation no manifest names yet (truncating a crashed attempt); fsynced. Returns its size."""
    size = 0
    with open(path, "wb") as handle:
        for chunk in chunks:
            data = chunk.tobytes() if isinstance(chunk, np.ndarray) else chunk
            handle.write(data)
            size += len(data)
        handle.flush()
        os.fsync(handle.fileno())
    return size


def append_at(path: Path, counted: int, chunks: Iterable[bytes | np.ndarray]) -> int:
    """Write ``chunks`` after the first ``counted`` bytes of ``path``, dropping what a crash left past them.

    The caller holds the index lock. Returns the new counted size (fsynced).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size < counted:
            raise IntegrityError(
                f"{path} holds {size} bytes, fewer than the {counted} its manifest counts",
                hint=f"the index was damaged outside cairn; rebuild it with `{REINDEX_COMMAND}`",
            )
        if size > counted:
            os.ftruncate(fd, counted)
        os.lseek(fd, counted, os.SEEK_SET)
        total = counted
        for chunk in chunks:
            view = memoryview(chunk.tobytes() if isinstance(chunk, np.ndarray) else chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]
                total += written
        os.fsync(fd)
        return total
    finally:
        os.close(fd)


def new_manifest(kind: str, identity: EmbedderIdentity) -> dict[str, Any]:
    """The manifest of an empty index."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "identity": identity.to_dict(),
        "generation": 0,
        "serial": 0,
        "rows": 0,
        "id_bytes": 0,
        "removed": 0,
        "payload": {},
    }


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")


def read_manifest(directory: Path, kind: str, identity: EmbedderIdentity | None) -> dict[str, Any] | None:
    """The manifest of the index in ``directory``, checked against the kind and embedder asked for.

    None when there is none. ``identity`` None skips the embedder check (used
    by a persist re-reading its own index).
    """
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        manifest = json.loads(raw)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError("not a cairn-vectors manifest")
        for key in ("generation", "serial", "rows", "id_bytes", "removed"):
            if not isinstance(manifest.get(key), int) or manifest[key] < 0:
                raise ValueError(f"{key} is missing or negative")
        stored = EmbedderIdentity.from_dict(manifest["identity"])
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise IntegrityError(
            f"{path} is not a readable index manifest ({exc})",
            hint=f"the index was damaged outside cairn; rebuild it with `{REINDEX_COMMAND}`",
        ) from None
    if manifest.get("version") != FORMAT_VERSION:
        raise ValidationError(
            f"{directory} holds a cairn-vectors index of format version {manifest.get('version')!r}; "
            f"this cairn-vectors reads version {FORMAT_VERSION}",
            what="vector index",
            hint=f"upgrade cairn-vectors, or rebuild the index with `{REINDEX_COMMAND}`",
        )
    if manifest.get("kind") != kind:
        raise ValidationError(
            f"{directory} holds a {manifest.get('kind')!r} index, not {kind!r}",
            what="vector index",
            hint=f"set [memory] index = {manifest.get('kind')!r}, or rebuild it as {kind!r} with `{REINDEX_COMMAND}`",
        )
    if identity is not None:
        check_identity(stored, identity, directory)
    return manifest


def generation_file(directory: Path, generation: int, suffix: str) -> Path:
    return directory / f"g{generation}.{suffix}"


def check_size(path: Path, needed: int) -> None:
    """Refuse a data file shorter than its manifest counts: only damage from outside makes one."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0 if needed == 0 else -1
    if size < needed:
        found = "is missing" if size < 0 else f"holds {size} bytes"
        raise IntegrityError(
            f"{path} {found}, but its manifest counts {needed} bytes",
            hint=f"the index was damaged outside cairn; rebuild it with `{REINDEX_COMMAND}`",
        )


def map_array(path: Path, dtype: type, count: int, columns: int | None = None) -> np.ndarray:
    """The first ``count`` items of ``path``, memory-mapped read-only (nothing is read until used)."""
    shape: tuple[int, ...] = (count,) if columns is None else (count, columns)
    if count == 0:
        return np.empty(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def read_array(path: Path, dtype: type, count: int) -> np.ndarray:
    """The first ``count`` items of ``path``, read into memory."""
    if count == 0:
        return np.empty(0, dtype=dtype)
    with open(path, "rb") as handle:
        return np.fromfile(handle, dtype=dtype, count=count)


def remove_stale(directory: Path, keep: set[str]) -> None:
    """Delete the index's own files that ``keep`` does not name (left by compaction or a crash)."""
    for entry in os.scandir(directory):
        if is_index_file(entry.name) and entry.name not in keep and entry.name != LOCK:
            try:
                os.unlink(entry.path)
            except OSError:
                pass  # still mapped elsewhere (Windows): the next persist tries again
