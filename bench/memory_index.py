"""How fast ``cairn memory index`` embeds, beside the embedder's own batch throughput in the same run.

Target (issue 13): indexing through cairn with the hashing embedder at
least 0.9x the embedder's own batch throughput.

- Baseline: ``HashingEmbedder.embed`` called directly (the provider, no
  kernel) on the same texts in batches of the same size, results dropped.
- cairn: a fresh cairn-sqlite project holding the same texts as documents
  (``cairn memory add --no-embed``, not timed); timed is ``Memory.embed``:
  finding what has no vector, reading the texts back from the store, the
  kernel's ``Embedder`` (checks, retries, usage, meter), writing each batch
  of vectors in one transaction (synchronous=FULL, WAL) and adding it to
  the ``exact`` index, persisting the index and the aggregated spend at the
  end. Everything ``cairn memory index`` does after gathering documents.

Texts: sentences of 12 to 40 words drawn from a fixed vocabulary with a
fixed seed. Each round runs A then B on fresh stores; the ratio is of the
medians of throughput (texts per second).

Usage::

    python bench/memory_index.py [--texts 20000] [--rounds 3] [--batch 256] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS = (
    "deploy database migration service cache queue worker request latency error retry timeout token budget "
    "branch commit merge review test failure build release config secret key index vector search memory fact "
    "episode summary user assistant tool call result file path network socket thread process lock write read "
    "the a of to and in on for with by from at is was are be this that it as not or but"
).split()


def texts(n: int, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 40))) + f" #{i}" for i in range(n)]


def baseline(corpus: list[str], batch: int, dimensions: int) -> float:
    from cairn_local.hashing import HashingEmbedder

    from cairn.providers import EmbeddingRequest

    provider = HashingEmbedder(dimensions=dimensions)
    start = time.perf_counter()
    for offset in range(0, len(corpus), batch):
        provider.embed(EmbeddingRequest(tuple(corpus[offset : offset + batch])))
    return time.perf_counter() - start


def through_cairn(corpus: list[str], batch: int, dimensions: int, workdir: Path) -> tuple[float, dict[str, Any]]:
    from cairn.config import load_config
    from cairn.memory import Memory
    from cairn.plugins import load_plugins
    from cairn.repo import open_repo

    workdir.mkdir(parents=True)
    (workdir / "cairn.toml").write_text(
        f'[cairn]\nembeddings = "hashing"\n[embeddings.hashing]\ndimensions = {dimensions}\n', encoding="utf-8"
    )
    config = load_config(workdir)
    plugins = load_plugins()
    repo = open_repo(config=config, plugins=plugins)
    memory = Memory.open(repo, config, plugins)
    try:
        memory.add("bench", [(str(i), t, {}) for i, t in enumerate(corpus)], embed=False)
        memory.identity  # the probe call, and the index opened, before the clock starts  # noqa: B018
        memory.index  # noqa: B018
        start = time.perf_counter()
        report = memory.embed(batch=batch)
        seconds = time.perf_counter() - start
        assert report.embedded == len(corpus), report
        spend = repo.store.spend()  # type: ignore[attr-defined]
        return seconds, {"spend_records": len(spend), "indexed": report.indexed, "batches": report.batches}
    finally:
        memory.close()
        repo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dimensions", type=int, default=512)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    corpus = texts(args.texts)
    base: list[float] = []
    ours: list[float] = []
    facts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            base.append(args.texts / baseline(corpus, args.batch, args.dimensions))
            seconds, facts = through_cairn(corpus, args.batch, args.dimensions, Path(tmp) / f"round{round_}")
            ours.append(args.texts / seconds)
            print(
                f"round {round_ + 1}: embedder {base[-1]:,.0f} texts/s, cairn {ours[-1]:,.0f} texts/s", file=sys.stderr
            )
    result = {
        "texts": args.texts,
        "batch": args.batch,
        "dimensions": args.dimensions,
        "embedder_texts_per_s": statistics.median(base),
        "cairn_texts_per_s": statistics.median(ours),
        "ratio": statistics.median(ours) / statistics.median(base),
        "target_ratio": 0.9,
        **facts,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"indexing {args.texts} texts, batch {args.batch}, {args.dimensions} dims: embedder alone "
            f"{result['embedder_texts_per_s']:,.0f} texts/s, cairn memory index {result['cairn_texts_per_s']:,.0f} "
            f"texts/s: ratio {result['ratio']:.2f}x (target >= 0.9x); spend records written: {facts['spend_records']}"
        )


if __name__ == "__main__":
    main()
