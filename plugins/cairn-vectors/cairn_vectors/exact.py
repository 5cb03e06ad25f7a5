"""``exact``: brute-force cosine search over a memory-mapped float32 matrix.

The vectors are unit rows of one C-contiguous float32 file, mapped with
``numpy.memmap``: opening reads the manifest and maps files, nothing more,
so a large index opens in milliseconds and the page cache keeps the matrix
warm between processes. A search is one BLAS matrix-vector product (sgemv)
per block of ``chunk_rows`` rows straight from the map (no copy) into a
reused score buffer, then ``argpartition`` for the block's best k; the
blocks' winners are ordered once at the end. Memory per search is bounded by
the block, whatever the index size. A filter scores only its rows, gathered
a block at a time.

Rows added since the last persist are kept in memory and searched as one
more block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cairn.vector_index import EmbedderIdentity, VectorIndexOpener
from cairn_vectors._layout import append_at, check_size, generation_file, map_array, write_new
from cairn_vectors._rows import RowIndex
from cairn_vectors._topk import best_of, ranked
from cairn_vectors.config import ExactConfig

__all__ = ["ExactIndex", "ExactOpener"]

#: Rows gathered at once for a filtered search (a copy: 6 MiB at 384 dimensions).
GATHER_ROWS = 4096


class ExactIndex(RowIndex):
    """Exact top-k: every live vector is scored."""

    kind = "exact"

    def __init__(self, path: Path, identity: EmbedderIdentity, manifest: dict[str, Any], settings: Any) -> None:
        self.compact_ratio = settings.compact_ratio
        self._buffer = np.empty(0, dtype=np.float32)
        super().__init__(path, identity, manifest, settings)

    def _load_payload(self, manifest: dict[str, Any]) -> None:
        vectors = generation_file(self.path, manifest["generation"], "vectors")
        check_size(vectors, manifest["rows"] * self.dimensions * 4)
        self._matrix = map_array(vectors, np.float32, manifest["rows"], self.dimensions)
        self._pending: list[np.ndarray] = []
        self._pending_matrix: np.ndarray | None = None

    def _payload_files(self, manifest: dict[str, Any]) -> set[str]:
        return {f"g{manifest['generation']}.vectors"}

    def _add_vectors(self, first_row: int, matrix: np.ndarray) -> None:
        self._pending.append(matrix)
        self._pending_matrix = None

    def _append_payload(self, before: dict[str, Any]) -> dict[str, Any]:
        vectors = generation_file(self.path, before["generation"], "vectors")
        append_at(vectors, before["rows"] * self.dimensions * 4, self._pending)
        return {}

    def _compact_payload(self, generation: int, serial: int, live: np.ndarray) -> dict[str, Any]:
        blocks = (self._rows_of(live[i : i + GATHER_ROWS]) for i in range(0, len(live), GATHER_ROWS))
        write_new(generation_file(self.path, generation, "vectors"), blocks)
        return {}

    def _reload_payload(self, manifest: dict[str, Any], *, compacted: bool) -> None:
        self._load_payload(manifest)

    def _release(self) -> None:
        super()._release()
        self._matrix = np.empty((0, self.dimensions), dtype=np.float32)
        self._pending = []
        self._pending_matrix = None
        self._buffer = np.empty(0, dtype=np.float32)

    def _details(self) -> dict[str, Any]:
        return {"chunk_rows": self.settings.chunk_rows}

    # -- search ---------------------------------------------------------------------------

    def _pending_block(self) -> np.ndarray:
        if self._pending_matrix is None:
            if self._pending:
                self._pending_matrix = np.concatenate(self._pending)
            else:
                self._pending_matrix = np.empty((0, self.dimensions), dtype=np.float32)
        return self._pending_matrix

    def _rows_of(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` (sorted), persisted or pending, as one new array."""
        split = int(np.searchsorted(rows, self._rows))
        stored = self._matrix[rows[:split]] if split else np.empty((0, self.dimensions), np.float32)
        if split == len(rows):
            return np.asarray(stored)
        return np.concatenate([stored, self._pending_block()[rows[split:] - self._rows]])

    def _scores(self, size: int) -> np.ndarray:
        # One buffer reused by every search: no allocation, no page faults on the hot path.
        if len(self._buffer) < size:
            self._buffer = np.empty(max(size, min(self.settings.chunk_rows, self._total_rows)), dtype=np.float32)
        return self._buffer[:size]

    def _search(self, query: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        found: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        if rows is None:
            dead = self._dead_rows()
            for matrix, offset in ((self._matrix, 0), (self._pending_block(), self._rows)):
                step = self.settings.chunk_rows
                for start in range(0, len(matrix), step):
                    block = matrix[start : start + step]
                    out = self._scores(len(block))
                    np.dot(block, query, out=out)
                    # Removed rows score -inf: they can only be picked when fewer than k rows live, then dropped.
                    first = offset + start
                    low, high = np.searchsorted(dead, (first, first + len(block)))
                    out[dead[low:high] - first] = -np.inf
                    best = best_of(out, k)
                    found.append(best + first)
                    scores.append(out[best])  # fancy indexing copies: the buffer is reused
        else:
            for start in range(0, len(rows), GATHER_ROWS):
                chosen = rows[start : start + GATHER_ROWS]
                out = self._rows_of(chosen) @ query
                best = best_of(out, k)
                found.append(chosen[best])
                scores.append(out[best])
        return ranked(found, scores, k)


class ExactOpener(VectorIndexOpener):
    """Opens ``exact`` indexes with one ``[vector_index.exact]`` table. Picklable, for other processes."""

    kind = "exact"

    def __init__(self, config: ExactConfig | None = None) -> None:
        self.config = config or ExactConfig()

    def open(self, path: Path, identity: EmbedderIdentity) -> ExactIndex:
        index = ExactIndex.open(Path(path), identity, self.config)
        assert isinstance(index, ExactIndex)
        return index

    def __repr__(self) -> str:
        return f"ExactOpener({self.config!r})"
