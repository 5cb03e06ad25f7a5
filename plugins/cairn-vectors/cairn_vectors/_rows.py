"""What both indexes share: ids by row, removed rows, pending changes, and the persist protocol.

Every vector an index is given gets the next row number, for good: the id
table (``g<N>.ids`` and ``g<N>.offsets``) maps rows to ids, and a removed or
replaced id's row is listed in ``g<N>.removed``. An id's live row is its last
row unless that one is removed. Rows are renumbered only by compaction,
which rewrites the live rows into a new generation once removed rows make
up too much of it.

Subclasses keep the vectors (a memory-mapped matrix, a graph) and implement
``_search``; see ``_layout`` for the files and why a crash cannot break them.
"""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from filelock import FileLock

from cairn.errors import ConflictError, IntegrityError, StorageError, ValidationError
from cairn.vector_index import (
    EmbedderIdentity,
    Hit,
    IndexStats,
    VectorIndex,
    check_filter,
    check_ids,
    check_k,
    prepare_query,
    prepare_vectors,
)
from cairn_vectors._layout import (
    LOCK,
    MANIFEST,
    append_at,
    check_size,
    encode_manifest,
    generation_file,
    is_index_file,
    map_array,
    new_manifest,
    read_array,
    read_manifest,
    remove_stale,
    write_atomic,
    write_new,
)

__all__ = ["RowIndex"]

_CONFLICT_HINT = (
    "another process persisted changes since this one opened the index: reopen it and apply the changes again"
)


class RowIndex(VectorIndex):
    """A vector index whose vectors are addressed by row number; subclasses store and search the vectors."""

    kind: ClassVar[str]
    #: Compact when removed rows exceed this share of all rows.
    compact_ratio: float = 0.25

    def __init__(self, path: Path, identity: EmbedderIdentity, manifest: dict[str, Any], settings: Any) -> None:
        self.path = path
        self.identity = identity
        self.settings = settings
        self._lock = threading.RLock()
        self._closed = False
        self._load_rows(manifest, keep_map=False)
        self._load_payload(manifest)

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, identity: EmbedderIdentity, settings: Any) -> RowIndex:
        """Open the index at ``path``, creating an empty one when the directory has none."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValidationError(f"{path} is a file, not an index directory", what="vector index")
        path.mkdir(parents=True, exist_ok=True)
        manifest = read_manifest(path, cls.kind, identity)
        if manifest is None:
            foreign = sorted(e.name for e in os.scandir(path) if not is_index_file(e.name))
            if foreign:
                raise ValidationError(
                    f"{path} holds files that are not part of a vector index ({', '.join(foreign[:3])})",
                    what="vector index",
                    hint="give the index a directory of its own",
                )
            with FileLock(str(path / LOCK)):
                manifest = read_manifest(path, cls.kind, identity)
                if manifest is None:  # nobody created it meanwhile
                    manifest = new_manifest(cls.kind, identity)
                    manifest["payload"] = cls._initial_payload(settings)
                    write_atomic(path / MANIFEST, encode_manifest(manifest))
        # A compaction in another process may remove the generation this
        # manifest names between reading it and mapping the files: read again.
        for _ in range(5):
            try:
                return cls(path, identity, manifest, settings)
            except IntegrityError:
                newer = read_manifest(path, cls.kind, identity)
                if newer is None or newer["serial"] == manifest["serial"]:
                    raise
                manifest = newer
        return cls(path, identity, manifest, settings)

    def _load_rows(self, manifest: dict[str, Any], *, keep_map: bool) -> None:
        generation, rows = manifest["generation"], manifest["rows"]
        ids_file = generation_file(self.path, generation, "ids")
        offsets_file = generation_file(self.path, generation, "offsets")
        removed_file = generation_file(self.path, generation, "removed")
        check_size(ids_file, manifest["id_bytes"])
        check_size(offsets_file, rows * 8)
        check_size(removed_file, manifest["removed"] * 8)
        self._manifest = manifest
        self._rows: int = rows
        # Plain ndarray views of the maps: indexing a memmap object costs more than the few bytes it returns.
        self._id_blob = map_array(ids_file, np.uint8, manifest["id_bytes"]).view(np.ndarray)
        self._offsets = map_array(offsets_file, np.int64, rows).view(np.ndarray)
        self._dead_persisted = read_array(removed_file, np.int64, manifest["removed"])
        self._pending_ids: list[str] = []
        self._dead_pending: list[int] = []
        self._dead_cache: np.ndarray | None = None
        if not keep_map:
            self._row_of: dict[str, int] | None = None
        self._dirty = False

    # -- what subclasses implement -----------------------------------------------------------

    @classmethod
    def _initial_payload(cls, settings: Any) -> dict[str, Any]:
        """The ``payload`` table of a new index's manifest."""
        return {}

    @abc.abstractmethod
    def _load_payload(self, manifest: dict[str, Any]) -> None:
        """Open the vectors the manifest names."""

    @abc.abstractmethod
    def _payload_files(self, manifest: dict[str, Any]) -> set[str]:
        """File names (in the index directory) the manifest's vectors live in."""

    @abc.abstractmethod
    def _add_vectors(self, first_row: int, matrix: np.ndarray) -> None:
        """Hold ``matrix`` (unit float32 rows) as rows ``first_row`` on; raise before changing anything."""

    def _remove_rows(self, rows: list[int]) -> None:
        """Forget the vectors of ``rows`` (the base class already lists them as removed)."""
        return None

    @abc.abstractmethod
    def _append_payload(self, before: dict[str, Any]) -> dict[str, Any]:
        """Make the vectors of rows added since ``before`` durable; return the new manifest's payload."""

    @abc.abstractmethod
    def _compact_payload(self, generation: int, serial: int, live: np.ndarray) -> dict[str, Any]:
        """Write the vectors of ``live`` rows as rows 0.. of ``generation``; return the payload."""

    @abc.abstractmethod
    def _reload_payload(self, manifest: dict[str, Any], *, compacted: bool) -> None:
        """Pick up what the last persist wrote."""

    @abc.abstractmethod
    def _search(self, query: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` live rows (among ``rows``, sorted, when given) and their scores, best first."""

    def _details(self) -> dict[str, Any]:
        """Implementation details for ``stats()``."""
        return {}

    # -- ids and rows --------------------------------------------------------------------------

    @property
    def dimensions(self) -> int:
        return self.identity.dimensions

    @property
    def _total_rows(self) -> int:
        return int(self._rows) + len(self._pending_ids)

    def _id_at(self, row: int) -> str:
        if row >= self._rows:
            return self._pending_ids[row - self._rows]
        start = int(self._offsets[row - 1]) if row else 0
        end = int(self._offsets[row]) - 1  # drop the newline
        return str(self._id_blob[start:end].tobytes().decode("utf-8"))

    def _all_ids(self) -> list[str]:
        text = self._id_blob.tobytes().decode("utf-8")
        persisted = text.split("\n")[:-1] if text else []
        if len(persisted) != self._rows:
            raise IntegrityError(
                f"{self.path} lists {len(persisted)} ids for {self._rows} rows",
                hint="the index was damaged outside cairn; rebuild it with `cairn memory reindex`",
            )
        return persisted + self._pending_ids

    def _ids_map(self) -> dict[str, int]:
        """id -> live row, built on first use (opening and plain searches never need it)."""
        if self._row_of is None:
            ids = self._all_ids()
            row_of = {value: row for row, value in enumerate(ids)}  # the last row of an id wins
            for row in self._dead_rows().tolist():
                if row_of.get(ids[row]) == row:
                    del row_of[ids[row]]
            self._row_of = row_of
        return self._row_of

    def _dead_rows(self) -> np.ndarray:
        """Every removed row, sorted."""
        if self._dead_cache is None:
            pending = np.asarray(self._dead_pending, dtype=np.int64)
            self._dead_cache = np.sort(np.concatenate([self._dead_persisted, pending]))
        return self._dead_cache

    def _live_rows(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self._total_rows, dtype=np.int64), self._dead_rows(), assume_unique=True)

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the vector index at {self.path} is closed", hint="open it again")

    # -- the contract ----------------------------------------------------------------------------

    def add(self, ids: Sequence[str], vectors: Any) -> None:
        checked, matrix = prepare_vectors(ids, vectors, self.dimensions)
        if not checked:
            return
        with self._lock:
            self._check_open()
            row_of = self._ids_map()
            first = self._total_rows
            self._add_vectors(first, matrix)
            replaced = [row_of[value] for value in checked if value in row_of]
            for offset, value in enumerate(checked):
                row_of[value] = first + offset
            self._pending_ids.extend(checked)
            self._forget(replaced)

    def remove(self, ids: Sequence[str]) -> int:
        checked = check_ids(ids, what="remove")
        with self._lock:
            self._check_open()
            row_of = self._ids_map()
            rows = [row_of.pop(value) for value in checked if value in row_of]
            self._forget(rows)
            return len(rows)

    def _forget(self, rows: list[int]) -> None:
        if rows:
            self._remove_rows(rows)
            self._dead_pending.extend(rows)
            self._dead_cache = None
        self._dirty = True

    def search(self, query: Any, k: int, *, filter: Collection[str] | None = None) -> list[Hit]:
        vector = prepare_query(query, self.dimensions)
        k = check_k(k)
        allowed = check_filter(filter)
        with self._lock:
            self._check_open()
            rows: np.ndarray | None = None
            if allowed is not None:
                row_of = self._ids_map()
                rows = np.fromiter((row_of[a] for a in allowed if a in row_of), dtype=np.int64)
                rows.sort()
                candidates = len(rows)
            else:
                candidates = len(self)
            if candidates == 0:
                return []
            found, scores = self._search(vector, min(k, candidates), rows)
            return [Hit(self._id_at(int(row)), float(score)) for row, score in zip(found, scores, strict=True)]

    def __len__(self) -> int:
        return self._total_rows - len(self._dead_persisted) - len(self._dead_pending)

    def __contains__(self, id: object) -> bool:
        with self._lock:
            self._check_open()
            return isinstance(id, str) and id in self._ids_map()

    def persist(self) -> None:
        with self._lock:
            self._check_open()
            if not self._dirty:
                return
            with FileLock(str(self.path / LOCK)):
                on_disk = read_manifest(self.path, self.kind, None)
                serial = self._manifest["serial"]
                if on_disk is None or on_disk["serial"] != serial:
                    actual = None if on_disk is None else str(on_disk["serial"])
                    raise ConflictError(f"vector index {self.path}", str(serial), actual, hint=_CONFLICT_HINT)
                dead = len(self._dead_persisted) + len(self._dead_pending)
                compacted = dead > 0 and dead > self.compact_ratio * self._total_rows
                manifest = self._write_compacted() if compacted else self._write_appended()
                write_atomic(self.path / MANIFEST, encode_manifest(manifest))
                remove_stale(self.path, self._files_of(manifest))
            self._load_rows(manifest, keep_map=not compacted)
            self._reload_payload(manifest, compacted=compacted)

    def _write_appended(self) -> dict[str, Any]:
        before = self._manifest
        generation = before["generation"]
        encoded = [f"{value}\n".encode() for value in self._pending_ids]
        ends = before["id_bytes"] + np.cumsum([len(e) for e in encoded], dtype=np.int64)
        id_bytes = append_at(generation_file(self.path, generation, "ids"), before["id_bytes"], [b"".join(encoded)])
        append_at(generation_file(self.path, generation, "offsets"), before["rows"] * 8, [ends])
        removed = np.asarray(self._dead_pending, dtype=np.int64)
        append_at(generation_file(self.path, generation, "removed"), before["removed"] * 8, [removed])
        payload = self._append_payload(before)
        return {
            **before,
            "serial": before["serial"] + 1,
            "rows": self._total_rows,
            "id_bytes": id_bytes,
            "removed": before["removed"] + len(removed),
            "payload": payload,
        }

    def _write_compacted(self) -> dict[str, Any]:
        before = self._manifest
        generation, serial = before["generation"] + 1, before["serial"] + 1
        live = self._live_rows()
        ids = self._all_ids()
        encoded = [f"{ids[row]}\n".encode() for row in live.tolist()]
        ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        id_bytes = write_new(generation_file(self.path, generation, "ids"), [b"".join(encoded)])
        write_new(generation_file(self.path, generation, "offsets"), [ends])
        write_new(generation_file(self.path, generation, "removed"), [])
        payload = self._compact_payload(generation, serial, live)
        return {
            **before,
            "generation": generation,
            "serial": serial,
            "rows": len(live),
            "id_bytes": id_bytes,
            "removed": 0,
            "payload": payload,
        }

    def _files_of(self, manifest: dict[str, Any]) -> set[str]:
        generation = manifest["generation"]
        own = {f"g{generation}.{suffix}" for suffix in ("ids", "offsets", "removed")}
        return {MANIFEST, *own, *self._payload_files(manifest)}

    def stats(self) -> IndexStats:
        with self._lock:
            self._check_open()
            size = 0
            for name in self._files_of(self._manifest):
                try:
                    size += (self.path / name).stat().st_size
                except FileNotFoundError:
                    pass
            details = {
                "removed_rows": len(self._dead_persisted) + len(self._dead_pending),
                "unpersisted_changes": self._dirty,
                **self._details(),
            }
            return IndexStats(self.kind, len(self), self.dimensions, size, self.identity, str(self.path), details)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._dirty:
                self.persist()
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Drop maps and memory; the files stay."""
        self._id_blob = self._offsets = np.empty(0)
        self._row_of = None
