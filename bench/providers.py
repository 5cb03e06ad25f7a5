"""What the provider kernel costs per call, and how fast the hashing embedder is, each beside a baseline.

1. A chat call through the kernel (``Providers.llm()`` built through the
   plugin hooks; capability checks, the retry loop, usage, cost, the
   ``provider:call`` event and a spend record) against a direct httpx POST
   of the same body to the same fake OpenAI server on loopback, in
   interleaved pairs; the per-call overhead is the median of the paired
   differences. The HTTP round trip is noisy, so the same comparison is also
   made without HTTP: the kernel over a provider that answers at once,
   against calling that provider directly. Target: <= 1 ms per call.
2. The ``hashing`` embedder's throughput in texts per second (cold and warm
   feature cache, and through the kernel's ``Embedder``), beside a NumPy
   baseline measured in the same run: scoring a query against the
   already-hashed vectors with one ``np.dot``.

Needs cairn-openai and cairn-local installed. Usage::

    python bench/providers.py [--calls 400] [--texts 10000] [--store memory|sqlite] [--json] [--check]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _store(kind: str, directory: Path) -> Any:
    if kind == "sqlite":
        from cairn.config import load_config
        from cairn.plugins import load_plugins

        (directory / "cairn.toml").write_text('[cairn]\nstorage = "sqlite"\n')
        return load_plugins().create("storage", "sqlite", load_config(directory, environ={"CAIRN_USER_CONFIG": ""}))
    from cairn.testing.memory import MemoryStore

    return MemoryStore()


def paired(first: Callable[[], Any], second: Callable[[], Any], rounds: int) -> tuple[float, float, float]:
    """Median seconds of ``first``, of ``second``, and median of (first - second) over interleaved pairs."""
    a_times, b_times, diffs = [], [], []
    for i in range(rounds):
        order = (first, second) if i % 2 == 0 else (second, first)
        measured = {}
        for fn in order:
            start = time.perf_counter()
            fn()
            measured[fn] = time.perf_counter() - start
        a_times.append(measured[first])
        b_times.append(measured[second])
        diffs.append(measured[first] - measured[second])
    return statistics.median(a_times), statistics.median(b_times), statistics.median(diffs)


def bench_chat(calls: int, store_kind: str) -> dict[str, float]:
    import httpx

    from cairn.config import load_config
    from cairn.model import Message
    from cairn.plugins import load_plugins
    from cairn.providers import LLM, ChatRequest, ChatResponse, LLMCapabilities, LLMProvider, Meter, Providers, Usage
    from cairn.testing.fake_openai import FakeOpenAI
    from cairn.testing.fakes import WordTokenizer

    messages = [Message("system", "You are terse."), Message("user", "Say hello in one word, please.")]
    out: dict[str, float] = {}
    with FakeOpenAI(model="gpt-4o-mini") as server, tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "cairn.toml").write_text(
            f'[cairn]\nllm = "openai"\n[llm.openai]\nbase_url = "{server.url}"\napi_key_env = ""\n'
            'model = "gpt-4o-mini"\n'
        )
        config = load_config(project, environ={"CAIRN_USER_CONFIG": ""})
        store = _store(store_kind, project)
        providers = Providers(config, load_plugins(), store=store, tokenizer=WordTokenizer())
        llm = providers.llm()
        request = ChatRequest(messages)
        body = {"model": "gpt-4o-mini", "messages": [{"role": m.role, "content": m.content} for m in messages]}
        client = httpx.Client(base_url=server.url + "/")

        def direct() -> None:
            response = client.post("chat/completions", json=body)
            data = response.json()
            assert data["choices"][0]["message"]["content"]

        def kernel() -> None:
            assert llm.complete(request).content

        for _ in range(30):  # warm connections, caches and the server's threads
            direct()
            kernel()
        k, d, diff = paired(kernel, direct, calls)
        out.update(http_kernel_ms=k * 1e3, http_direct_ms=d * 1e3, http_overhead_ms=diff * 1e3)
        client.close()
        providers.close()
        spent = len(store.spend())
        store.close()
        out["spend_records"] = spent

    class Instant(LLMProvider):
        default_model = "gpt-4o-mini"
        prices = {}

        def __init__(self) -> None:
            self.reply = ChatResponse("Hello.", finish_reason="stop", usage=Usage(20, 2), model="gpt-4o-mini")

        def capabilities(self, model: str) -> LLMCapabilities:
            return LLMCapabilities(
                streaming=True, tools=True, json_schema=True, context_window=128_000, max_output_tokens=16_384
            )

        def complete(self, request: ChatRequest) -> ChatResponse:
            return self.reply

    from cairn.events import EventBus

    with tempfile.TemporaryDirectory() as tmp:
        store = _store(store_kind, Path(tmp))
        provider = Instant()
        from cairn.providers import Price

        provider.prices = {"gpt-4o-mini": Price(0.15, 0.60, cached_input=0.075)}
        instant = LLM(provider, "instant", tokenizer=WordTokenizer(), meter=Meter(store, bus=EventBus()))
        instant.complete(request)
        rounds = max(calls * 5, 2000)
        k, d, diff = paired(lambda: instant.complete(request), lambda: provider.complete(request), rounds)
        out.update(local_kernel_ms=k * 1e3, local_direct_ms=d * 1e3, local_overhead_ms=diff * 1e3)
        store.close()
    return out


def make_texts(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    # A Zipf-like vocabulary: a few words are everywhere, most are rare (as in real text).
    vocabulary = [
        f"w{i}" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8)))
        for i in range(20_000)
    ]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    return [" ".join(rng.choices(vocabulary, weights=weights, k=rng.randint(10, 60))) for _ in range(count)]


def bench_hashing(count: int) -> dict[str, float]:
    import numpy as np
    from cairn_local.hashing import HashingEmbedder

    from cairn.events import EventBus
    from cairn.providers import Embedder, Meter
    from cairn.testing.fakes import WordTokenizer
    from cairn.testing.memory import MemoryStore

    texts = make_texts(count)
    embedder = HashingEmbedder(dimensions=512)
    start = time.perf_counter()
    matrix = embedder.vectors(texts)
    cold = time.perf_counter() - start
    warm_times = []
    for _ in range(3):
        start = time.perf_counter()
        embedder.vectors(texts)
        warm_times.append(time.perf_counter() - start)
    warm = min(warm_times)
    kernel = Embedder(embedder, "hashing", tokenizer=WordTokenizer(), meter=Meter(MemoryStore(), bus=EventBus()))
    start = time.perf_counter()
    kernel.embed(texts)
    through = time.perf_counter() - start
    query = embedder.vectors(["w1 w2 w3 w10 w100"])[0]
    dots = []
    for _ in range(200):
        start = time.perf_counter()
        scores = np.dot(matrix, query)
        dots.append(time.perf_counter() - start)
    assert scores.shape == (count,)
    words = sum(len(t.split()) for t in texts)
    return {
        "texts": count,
        "words_per_text": words / count,
        "cold_texts_per_s": count / cold,
        "warm_texts_per_s": count / warm,
        "kernel_texts_per_s": count / through,
        "numpy_dot_texts_per_s": count / min(dots),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="interleaved pairs of chat calls")
    parser.add_argument("--texts", type=int, default=10_000, help="texts to embed")
    parser.add_argument(
        "--store",
        choices=("memory", "sqlite"),
        default="memory",
        help="where spend records go (sqlite commits one durable write per call)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a per-call overhead is over 1 ms")
    args = parser.parse_args(argv)

    chat = bench_chat(args.calls, args.store)
    hashing = bench_hashing(args.texts)
    within = chat["local_overhead_ms"] <= 1.0 and chat["http_overhead_ms"] <= 1.0
    if args.json:
        print(json.dumps({"chat": chat, "hashing": hashing}, indent=2))
        return 0 if within or not args.check else 1
    print(f"provider kernel, Python {platform.python_version()}, {args.store} store, {args.calls} paired calls")
    print("chat call over HTTP to the fake OpenAI server (median):")
    print(f"  through the kernel        {chat['http_kernel_ms']:7.3f} ms")
    print(f"  direct httpx POST         {chat['http_direct_ms']:7.3f} ms")
    print(
        f"  overhead per call         {chat['http_overhead_ms']:7.3f} ms  (median of paired differences; target <= 1 ms)"
    )
    print("chat call without HTTP (a provider that answers at once):")
    print(f"  through the kernel        {chat['local_kernel_ms']:7.3f} ms")
    print(f"  provider called directly  {chat['local_direct_ms']:7.3f} ms")
    print(f"  overhead per call         {chat['local_overhead_ms']:7.3f} ms")
    print(f"hashing embedder, 512 dimensions, {hashing['texts']} texts of {hashing['words_per_text']:.0f} words:")
    print(f"  cold feature cache        {hashing['cold_texts_per_s']:10,.0f} texts/s")
    print(f"  warm feature cache        {hashing['warm_texts_per_s']:10,.0f} texts/s")
    print(f"  through the kernel        {hashing['kernel_texts_per_s']:10,.0f} texts/s")
    print(f"  baseline: np.dot scoring  {hashing['numpy_dot_texts_per_s']:10,.0f} texts/s (already-hashed vectors)")
    return 0 if within or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
