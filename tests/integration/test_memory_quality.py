"""The retrieval set shipped in tests/data holds, and search finds passages in it (a guard, not a benchmark)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_retrieval_set_is_well_formed() -> None:
    pairs = json.loads((ROOT / "tests" / "data" / "retrieval.json").read_text(encoding="utf-8"))["pairs"]
    assert len(pairs) >= 100
    assert len({p["id"] for p in pairs}) == len(pairs)
    assert len({p["passage"] for p in pairs}) == len(pairs)
    assert all(p["query"].strip() and p["passage"].strip() for p in pairs)


def test_recall_at_5_with_the_hashing_embedder(cairn_env: Path) -> None:
    spec = importlib.util.spec_from_file_location("memory_quality", ROOT / "bench" / "memory_quality.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.recall_at("hashing")
    # Deterministic (fixed data, a deterministic embedder): the floors catch a broken mode, not noise.
    assert figures["lexical"] >= 0.5
    assert figures["semantic"] >= 0.2
    assert figures["hybrid"] >= 0.5
