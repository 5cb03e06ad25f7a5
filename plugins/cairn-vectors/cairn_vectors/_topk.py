"""Top-k selection shared by both indexes: partial selection per block, one exact ordering at the end."""

from __future__ import annotations

import numpy as np

__all__ = ["best_of", "ranked"]


def best_of(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest scores, unordered (``argpartition``: linear, not a full sort)."""
    n = len(scores)
    if k >= n:
        return np.arange(n)
    return np.argpartition(scores, n - k)[n - k :]


def ranked(rows: list[np.ndarray], scores: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of the candidates, best first; equal scores in row order; -inf (removed rows) dropped."""
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    all_rows = np.concatenate(rows).astype(np.int64, copy=False)
    all_scores = np.concatenate(scores)
    keep = all_scores > -np.inf
    all_rows, all_scores = all_rows[keep], all_scores[keep]
    order = np.lexsort((all_rows, -all_scores))[:k]
    return all_rows[order], all_scores[order]
