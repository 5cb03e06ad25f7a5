"""What the vector-index suite checks against: a brute-force reference, clustered data, the crash writer.

Every answer the suite expects is computed here, in float64, from the
vectors the test gave the index; nothing of the index under test is trusted.
``crash_writer`` runs in a freshly spawned process (the crash test kills it
mid-write), so it lives at module level where ``multiprocessing`` can find it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cairn.vector_index import EmbedderIdentity, Hit, VectorIndexOpener

__all__ = [
    "DIMS",
    "IDENTITY",
    "Reference",
    "assert_exact_top",
    "assert_well_formed",
    "clustered",
    "crash_state",
    "crash_step",
    "crash_writer",
    "recall",
    "snapshot",
]

#: The identity the suite builds its indexes with.
IDENTITY = EmbedderIdentity("suite", "clustered", 16)
DIMS = IDENTITY.dimensions


def clustered(n: int, dimensions: int, *, seed: int, clusters: int = 20, spread: float = 0.35) -> np.ndarray:
    """``n`` vectors around ``clusters`` random centres (not normalised: the index must do it)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dimensions))
    points = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dimensions))
    return points * rng.uniform(0.5, 3.0, (n, 1))


class Reference:
    """What an index should hold, kept by the test: id -> vector, and brute-force answers in float64."""

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        for value, vector in zip(ids, np.asarray(vectors, dtype=np.float64), strict=True):
            self.vectors[value] = vector / np.linalg.norm(vector)

    def remove(self, ids: list[str]) -> None:
        for value in ids:
            self.vectors.pop(value, None)

    def scores(self, query: np.ndarray, allowed: set[str] | None = None) -> dict[str, float]:
        unit = np.asarray(query, dtype=np.float64) / np.linalg.norm(query)
        return {i: float(v @ unit) for i, v in self.vectors.items() if allowed is None or i in allowed}

    def top(self, query: np.ndarray, k: int, allowed: set[str] | None = None) -> list[tuple[str, float]]:
        scored = self.scores(query, allowed)
        return sorted(scored.items(), key=lambda item: (-item[1], item[0]))[:k]


def assert_well_formed(
    hits: list[Hit], reference: Reference, query: np.ndarray, k: int, allowed: set[str] | None = None
) -> None:
    """The rules every index keeps: min(k, candidates) distinct allowed ids, exact cosines, best first."""
    scores = reference.scores(query, allowed)
    assert len(hits) == min(k, len(scores)), f"expected {min(k, len(scores))} hits, got {len(hits)}"
    assert all(isinstance(h, Hit) and isinstance(h.id, str) and isinstance(h.score, float) for h in hits)
    assert len({h.id for h in hits}) == len(hits), "an id was returned twice"
    for hit in hits:
        assert hit.id in scores, f"{hit.id!r} is not held (or not allowed by the filter)"
        assert hit.score == pytest.approx(scores[hit.id], abs=1e-4), f"wrong score for {hit.id!r}"
    assert all(a.score >= b.score - 1e-6 for a, b in zip(hits, hits[1:], strict=False)), "hits are not best first"


def assert_exact_top(
    hits: list[Hit], reference: Reference, query: np.ndarray, k: int, allowed: set[str] | None = None
) -> None:
    """The hits are a true top k: nothing left out scores higher than what was returned (ties may differ)."""
    assert_well_formed(hits, reference, query, k, allowed)
    expected = reference.top(query, k, allowed)
    if expected:
        kth = expected[-1][1]
        assert hits[-1].score >= kth - 1e-5, f"the {k}th hit scores {hits[-1].score}, the true {k}th {kth}"


def recall(hits: list[Hit], expected: list[tuple[str, float]]) -> float:
    """The share of ``expected`` ids found among ``hits``."""
    wanted = {i for i, _ in expected}
    return len(wanted & {h.id for h in hits}) / max(1, len(wanted))


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` and its bytes (lock files excluded: taking a lock may touch one)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "lock" not in p.name
    }


# -- the crash test's writer, in its own process ----------------------------------------------


def crash_step(step: int) -> tuple[list[str], np.ndarray, list[str]]:
    """Step ``step`` of the crash test: ids and vectors to add (some replacing earlier ones), ids to remove."""
    rng = random.Random(step)
    new = [f"s{step}-{j}" for j in range(150)]
    earlier = [f"s{s}-{j}" for s in range(max(0, step - 3), step) for j in range(0, 150, 7)]
    replaced = rng.sample(earlier, min(len(earlier), 20))
    removed = [i for i in rng.sample(earlier, min(len(earlier), 60)) if i not in replaced]
    ids = new + replaced
    return ids, clustered(len(ids), DIMS, seed=step), removed


def crash_state(steps: int) -> Reference:
    """What the index holds after ``steps`` completed steps."""
    reference = Reference()
    for step in range(steps):
        ids, vectors, removed = crash_step(step)
        reference.add(ids, vectors)
        reference.remove(removed)
    return reference


def crash_writer(opener: VectorIndexOpener, path: str, done: Any) -> None:
    """Apply steps and persist after each, reporting every completed persist, until killed."""
    index = opener.open(Path(path), IDENTITY)
    step = 0
    while True:
        ids, vectors, removed = crash_step(step)
        index.add(ids, vectors)
        index.remove(removed)
        index.persist()
        step += 1
        done.put(step)
