"""The ``approx`` estimate: hand-checked pieces, chat accounting, scaling, and accuracy against real cl100k_base."""

from __future__ import annotations

import json
import random
import statistics
import sysconfig
from pathlib import Path

import pytest
from cairn_tokenizers.approx import ApproxTokenizer

from cairn.model import Message, ToolCall
from cairn.tokenizers import MessageOverhead

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello world", 2),  # "hello", " world"
        ("The cat sat.", 4),  # "The", " cat", " sat", "."
        ("don't", 2),  # "don", "'t"
        ("12345678", 3),  # "123", "456", "78"
        ("antidisestablishmentarianism", 6),  # ten letters, then pieces of four
        ("getElementById", 4),  # "get", "Element", "By", "Id"
        ("HTTPServer", 3),  # "HTT", "P", "Server" (cl100k: "HTTP", "Server")
        ("    return x\n", 4),  # "   ", " return", " x", "\n"
        ("\n\n\n", 1),
        ("f(x) == 1", 6),  # "f", "(x", ")", " ==", " ", "1"
        ("你好世界", 5),  # four ideographs, and one more for every fourth in a row
        ("😀", 2),  # outside the Basic Multilingual Plane: two
        ("привет", 2),  # Cyrillic: three letters a token
    ],
)
def test_pieces(text: str, expected: int) -> None:
    assert ApproxTokenizer().count(text) == expected


def test_name_and_flags() -> None:
    tok = ApproxTokenizer()
    assert tok.name == "approx"
    assert tok.exact is False
    assert tok.overhead == MessageOverhead(3, 1, 3)


def test_scale_multiplies_and_rounds_up_under_its_own_name(make_tokenizer) -> None:
    tok = make_tokenizer("approx", "[tokenizer.approx]\nscale = 1.5\n")
    assert tok.name == "approx@scale=1.5"
    assert tok.count("hello world") == 3  # 2 * 1.5
    assert tok.count("The cat sat.") == 6
    assert tok.count("a") == 2  # 1.5 rounds up
    assert tok.count("") == 0
    assert make_tokenizer("approx").name == "approx"


def test_count_many_matches_count() -> None:
    tok = ApproxTokenizer()
    texts = ["", "hello", "a longer sentence, with punctuation!", "日本語のテキスト", "x" * 100]
    assert tok.count_many(texts) == [tok.count(t) for t in texts]
    assert tok.count_many([]) == []


def test_messages_bill_overhead_role_content_name_and_tool_calls() -> None:
    tok = ApproxTokenizer()
    # 3 per message + "user" 1 + "hello world" 2
    assert tok.count_message(Message(role="user", content="hello world")) == 6
    # + 1 per name + "alice" 1
    assert tok.count_message(Message(role="user", content="hello world", name="alice")) == 8
    call = ToolCall(id="c1", name="search", arguments='{"q": "cats"}')
    # A tool call bills its name and its arguments on top of overhead and role.
    message = Message(role="assistant", content=None, tool_calls=(call,))
    assert tok.count_message(message) == 3 + 1 + tok.count("search") + tok.count(call.arguments)
    messages = [Message(role="system", content="x"), Message(role="user", content="x")]
    # (3 + 1 + 1) * 2 + 3 reply priming
    assert tok.count_messages(messages) == 13
    assert tok.count_messages([]) == 0


def _code_samples() -> list[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [stdlib / "textwrap.py", stdlib / "json" / "decoder.py", stdlib / "argparse.py", stdlib / "csv.py"]
    files += sorted((Path(__file__).parents[1] / "cairn_tokenizers").glob("*.py"))
    samples = []
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        samples += ["".join(lines[i : i + 40]) for i in range(0, len(lines), 40)]
    return [s for s in samples if s.strip()]


def _json_samples() -> list[str]:
    rnd = random.Random(7)
    words = "alpha beta gamma delta status ok error pending user admin item order price total".split()
    samples = []
    for _ in range(60):
        record = {
            "id": rnd.randrange(10**9),
            "name": " ".join(rnd.choices(words, k=rnd.randint(1, 4))),
            "tags": rnd.sample(words, 3),
            "price": round(rnd.uniform(0, 1000), 2),
            "active": rnd.random() < 0.5,
            "children": [{"key": rnd.choice(words), "value": rnd.randint(0, 99999)} for _ in range(rnd.randint(0, 5))],
        }
        samples.append(json.dumps(record, indent=2 if rnd.random() < 0.5 else None))
    return samples


@pytest.mark.parametrize("kind", ["prose", "code", "json"])
def test_within_fifteen_percent_of_cl100k(kind: str, real_cl100k: Path) -> None:
    from cairn_tokenizers.tiktoken_tokenizer import load_encoding

    encoding, _ = load_encoding("cl100k_base", encoding_file=real_cl100k)
    if kind == "prose":
        texts = [p for p in (DATA / "prose.txt").read_text(encoding="utf-8").split("\n\n") if p.strip()]
    elif kind == "code":
        texts = _code_samples()
    else:
        texts = _json_samples()
    tok = ApproxTokenizer()
    estimated = [tok.count(t) for t in texts]
    exact = [len(encoding.encode_ordinary(t)) for t in texts]
    total_error = abs(sum(estimated) - sum(exact)) / sum(exact)
    errors = [abs(e - x) / x for e, x in zip(estimated, exact, strict=True)]
    assert total_error < 0.05, (kind, total_error)
    assert statistics.median(errors) < 0.06, (kind, statistics.median(errors))
    assert sorted(errors)[int(0.9 * len(errors))] < 0.15, (kind, sorted(errors)[-5:])
    # The point of the regex: it beats the old rule of thumb per text.
    quarter = [abs(-(-len(t) // 4) - x) / x for t, x in zip(texts, exact, strict=True)]
    assert statistics.median(errors) < statistics.median(quarter)
