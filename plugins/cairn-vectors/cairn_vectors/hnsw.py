"""``hnsw``: approximate top-k through a usearch HNSW graph (the ``[hnsw]`` extra).

Rows are the graph's keys. The graph keeps the unit float32 vectors and
uses the inner product, which on unit vectors is the cosine: a hit's score
is the exact cosine of its stored vector, only the choice of hits is
approximate. What it promises, beyond the contract's rules:

- ``min(k, candidates)`` distinct live ids, best first; if the graph walk
  finds fewer (tiny or heavily pruned graphs), the rest of the answer comes
  from an exact scan, so a result is never short;
- a filter allowing at most ``exact_filter_below`` ids is answered exactly
  (those vectors are scored one by one); a larger one searches the graph
  for more candidates than ``k`` (in proportion to how much the filter
  excludes) and keeps the allowed ones, falling back to the exact answer
  when that finds too few;
- recall@10 against ``exact`` is measured by bench/memory.py (at least 0.95
  on 1M clustered 384-dimension vectors with the defaults); the conformance
  suite requires 0.9 on its own data.

Persisting writes the whole graph to a new file (``s<serial>.usearch``),
then switches the manifest to it: cost grows with the index, so persist at
checkpoints, not after every small batch. Opening maps the graph file
read-only (usearch's ``view``); the first change loads it into memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cairn.vector_index import EmbedderIdentity, VectorIndexOpener
from cairn_vectors._layout import check_size
from cairn_vectors._rows import RowIndex
from cairn_vectors._topk import best_of, ranked
from cairn_vectors.config import HNSWConfig

__all__ = ["HNSWIndex", "HNSWOpener"]

#: Rows read back from the graph at once for an exact answer.
GATHER_ROWS = 4096


class HNSWIndex(RowIndex):
    """Approximate top-k over a usearch graph."""

    kind = "hnsw"

    def __init__(self, path: Path, identity: EmbedderIdentity, manifest: dict[str, Any], settings: Any) -> None:
        self.compact_ratio = settings.compact_ratio
        super().__init__(path, identity, manifest, settings)

    @classmethod
    def _initial_payload(cls, settings: Any) -> dict[str, Any]:
        return {"graph": None, "connectivity": settings.connectivity}

    def _new_graph(self, connectivity: int) -> Any:
        from usearch.index import Index

        return Index(
            ndim=self.dimensions,
            metric="ip",  # the vectors are unit length: inner product is the cosine, without the norms
            dtype="f32",
            connectivity=connectivity,
            expansion_add=self.settings.expansion_add,
            expansion_search=self.settings.expansion_search,
        )

    def _tune(self, graph: Any) -> Any:
        # usearch keeps connectivity in the file, not the expansions.
        graph.expansion_add = self.settings.expansion_add
        graph.expansion_search = self.settings.expansion_search
        return graph

    def _load_payload(self, manifest: dict[str, Any]) -> None:
        from usearch.index import Index

        payload = manifest["payload"]
        self._connectivity = int(payload.get("connectivity") or self.settings.connectivity)
        name = payload.get("graph")
        if name is None:
            self._graph = self._new_graph(self._connectivity)
            self._viewed = False
            return
        check_size(self.path / name, 1)
        self._graph = self._tune(Index.restore(str(self.path / name), view=True))
        # A view is read-only: usearch must never be asked to change one.
        self._viewed = True
        expected = manifest["rows"] - manifest["removed"]
        if len(self._graph) != expected:
            from cairn.errors import IntegrityError

            raise IntegrityError(
                f"{self.path / name} holds {len(self._graph)} vectors, the manifest counts {expected}",
                hint="the index was damaged outside cairn; rebuild it with `cairn memory reindex`",
            )

    def _mutable(self) -> Any:
        if self._viewed:
            from usearch.index import Index

            name = self._manifest["payload"]["graph"]
            self._graph = self._tune(Index.restore(str(self.path / name), view=False))
            self._viewed = False
        return self._graph

    def _payload_files(self, manifest: dict[str, Any]) -> set[str]:
        name = manifest["payload"].get("graph")
        return {name} if name else set()

    def _add_vectors(self, first_row: int, matrix: np.ndarray) -> None:
        keys = np.arange(first_row, first_row + len(matrix), dtype=np.uint64)
        self._mutable().add(keys, matrix, threads=self.settings.threads)

    def _remove_rows(self, rows: list[int]) -> None:
        self._mutable().remove(np.asarray(rows, dtype=np.uint64))

    def _save(self, graph: Any, serial: int) -> str:
        name = f"s{serial}.usearch"
        graph.save(str(self.path / name))
        with open(self.path / name, "rb+") as handle:  # usearch does not fsync
            os.fsync(handle.fileno())
        return name

    def _append_payload(self, before: dict[str, Any]) -> dict[str, Any]:
        return {"graph": self._save(self._mutable(), before["serial"] + 1), "connectivity": self._connectivity}

    def _compact_payload(self, generation: int, serial: int, live: np.ndarray) -> dict[str, Any]:
        graph = self._new_graph(self._connectivity)
        for start in range(0, len(live), 65_536):
            rows = live[start : start + 65_536]
            keys = np.arange(start, start + len(rows), dtype=np.uint64)
            graph.add(keys, self._vectors_of(rows), threads=self.settings.threads)
        self._compacted_graph = graph
        return {"graph": self._save(graph, serial), "connectivity": self._connectivity}

    def _reload_payload(self, manifest: dict[str, Any], *, compacted: bool) -> None:
        if compacted:
            self._graph = self._compacted_graph
            del self._compacted_graph

    def _release(self) -> None:
        super()._release()
        self._graph = None

    def _details(self) -> dict[str, Any]:
        return {
            "connectivity": self._connectivity,
            "expansion_add": self.settings.expansion_add,
            "expansion_search": self.settings.expansion_search,
            "memory_mapped": self._viewed,
        }

    # -- search ---------------------------------------------------------------------------

    def _vectors_of(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.empty((0, self.dimensions), dtype=np.float32)
        return np.vstack(self._graph.get(rows.astype(np.uint64), dtype=np.float32))

    def _exact(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for start in range(0, len(rows), GATHER_ROWS):
            chosen = rows[start : start + GATHER_ROWS]
            out = self._vectors_of(chosen) @ query
            best = best_of(out, k)
            found.append(chosen[best])
            scores.append(out[best])
        return ranked(found, scores, k)

    def _walk(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        matches = self._graph.search(query, count)
        rows = np.asarray(matches.keys, dtype=np.int64)
        return rows, (1.0 - np.asarray(matches.distances, dtype=np.float32))

    def _search(self, query: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        live = len(self)
        if rows is None:
            found, scores = self._walk(query, k)
            if len(found) < k:  # the walk came back short: answer exactly
                return self._exact(query, k, self._live_rows())
            return ranked([found], [scores], k)
        if len(rows) <= self.settings.exact_filter_below:
            return self._exact(query, k, rows)
        # Ask the graph for enough candidates that k of them are likely allowed, widening until they are.
        count = min(live, max(4 * k, int(2 * k * live / len(rows))))
        while True:
            found, scores = self._walk(query, count)
            allowed = np.isin(found, rows)
            if allowed.sum() >= k:
                return ranked([found[allowed]], [scores[allowed]], k)
            if count >= live:
                return self._exact(query, k, rows)
            count = min(live, count * 4)


class HNSWOpener(VectorIndexOpener):
    """Opens ``hnsw`` indexes with one ``[vector_index.hnsw]`` table. Picklable, for other processes."""

    kind = "hnsw"

    def __init__(self, config: HNSWConfig | None = None) -> None:
        import usearch.index  # noqa: F401  (fail here, with the extra's name, rather than mid-search)

        self.config = config or HNSWConfig()

    def open(self, path: Path, identity: EmbedderIdentity) -> HNSWIndex:
        index = HNSWIndex.open(Path(path), identity, self.config)
        assert isinstance(index, HNSWIndex)
        return index

    def __repr__(self) -> str:
        return f"HNSWOpener({self.config!r})"
