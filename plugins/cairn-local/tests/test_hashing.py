"""The hashing embedder: the conformance suite, real lexical retrieval, determinism across processes."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from cairn_local.hashing import SCHEME, HashingEmbedder, features
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from cairn.providers import EmbeddingRequest, InvalidRequestError
from cairn.testing.provider_suite import EmbeddingProviderConformance

DOCUMENTS = [
    "How to bake a lemon cake: whisk butter and sugar, add eggs, lemon zest and flour, bake for forty minutes.",
    "The stock market fell sharply on Monday as investors sold technology shares.",
    "Python tutorial: write a function, loop over a list and handle exceptions.",
    "Growing lemon trees in pots needs sun, drainage and regular feeding.",
    "New York City marathon results and the fastest finishing times.",
    "York is a city in the north of England with a famous minster.",
]


class TestHashingConformance(EmbeddingProviderConformance):
    @pytest.fixture
    def embedding_provider(self) -> HashingEmbedder:
        return HashingEmbedder(dimensions=256)


def rank(embedder: HashingEmbedder, query: str, documents: list[str]) -> list[int]:
    matrix = embedder.vectors(documents)
    scores = matrix @ embedder.vectors([query])[0]
    return list(np.argsort(-scores, kind="stable"))


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("lemon cake recipe with eggs and flour", 0),
        ("why did technology shares fall on the stock market", 1),
        ("python function exceptions", 2),
        ("lemon trees sun", 3),
        ("new york marathon", 4),
        ("the minster in york england", 5),
    ],
)
def test_a_query_retrieves_the_lexically_closest_document(query: str, best: int) -> None:
    assert rank(HashingEmbedder(dimensions=512), query, DOCUMENTS)[0] == best


def test_bigrams_tell_word_order_apart() -> None:
    with_pairs = HashingEmbedder(dimensions=1024)
    a, b = with_pairs.vectors(["new york", "york new"])
    assert float(a @ b) < 0.99
    without = HashingEmbedder(dimensions=1024, bigrams=False)
    a, b = without.vectors(["new york", "york new"])
    assert float(a @ b) == pytest.approx(1.0)
    assert features("New  York, new-york!") == [
        "new",
        "york",
        "new",
        "york",
        "new\x1fyork",
        "york\x1fnew",
        "new\x1fyork",
    ]


def test_vectors_are_unit_length_and_a_text_without_words_is_zero() -> None:
    matrix = HashingEmbedder(dimensions=64).vectors(["some words here", "", "!!! ...", "Ünïcödé wörds 東京"])
    norms = np.linalg.norm(matrix, axis=1)
    assert norms == pytest.approx([1.0, 0.0, 0.0, 1.0], abs=1e-6)
    assert matrix.dtype == np.float32 and matrix.shape == (4, 64)


def test_the_same_text_gives_the_same_bytes_in_another_process() -> None:
    text = "determinism across processes: hash() is salted, BLAKE2b is not"
    here = hashlib.sha256(HashingEmbedder(dimensions=128).vectors([text]).tobytes()).hexdigest()
    code = (
        "import hashlib, sys\n"
        "from cairn_local.hashing import HashingEmbedder\n"
        f"print(hashlib.sha256(HashingEmbedder(dimensions=128).vectors([{text!r}]).tobytes()).hexdigest())\n"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        assert out.stdout.strip() == here


def test_the_plugin_module_imports_no_numpy() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, cairn_local.plugin; print('numpy' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_usage_counts_words_and_cost_is_zero() -> None:
    from cairn.events import EventBus
    from cairn.providers import Embedder, Meter
    from cairn.testing.fakes import WordTokenizer
    from cairn.testing.memory import MemoryStore

    embedder = Embedder(
        HashingEmbedder(), "hashing", tokenizer=WordTokenizer(), meter=Meter(MemoryStore(), bus=EventBus())
    )
    response = embedder.embed(["three words here", "two words"])
    assert response.usage.input_tokens == 5 and response.cost == 0.0 and response.dimensions == 512


#: sha256 of the float32 bytes of the pinned text's vector under SCHEME.
PINNED = "00208eb31a24733c1d8e325d2027e5f17424dcbaab3a0238ff1befbe019cfede"


# -- properties ---------------------------------------------------------------------------------

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzåéß", min_size=3, max_size=9)
TEXT = st.lists(WORD, min_size=1, max_size=20).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(TEXT, min_size=1, max_size=8))
def test_vectors_do_not_depend_on_the_batch(texts: list[str]) -> None:
    embedder = HashingEmbedder(dimensions=128)
    together = embedder.vectors(texts)
    fresh = HashingEmbedder(dimensions=128)
    for i, text in enumerate(texts):
        assert np.array_equal(together[i], fresh.vectors([text])[0])
    reordered = embedder.vectors(texts[::-1])[::-1]
    assert np.array_equal(together, reordered)


def shared_slots(embedder: HashingEmbedder, words: list[str]) -> int:
    """How many pairs of different words' slots land on one dimension (the collisions among ``words``)."""
    taken: dict[int, int] = {}
    for word in set(words):
        for dimension, _ in embedder.slots(word):
            taken[dimension] = taken.get(dimension, 0) + 1
    return sum(n * (n - 1) // 2 for n in taken.values())


# The first scheme (one slot per word) failed here: the two words of the query took one slot with
# opposite signs, so the query embedded to all zeros and the first document won by default.
@example(
    vocabulary=["abc", "abd", "abe", "nfnpqåxqo", "hni", *(f"w{c}w" for c in "fghijklmnop")],
    sizes=[3, 2],
    target=1,
    keep=[True, True],
)
@settings(max_examples=100, deadline=None)
@given(
    vocabulary=st.lists(WORD, min_size=12, max_size=60, unique=True),
    sizes=st.lists(st.integers(min_value=2, max_value=6), min_size=2, max_size=6),
    target=st.integers(min_value=0, max_value=5),
    keep=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_a_query_from_one_documents_words_retrieves_that_document(
    vocabulary: list[str], sizes: list[int], target: int, keep: list[bool]
) -> None:
    # Documents with disjoint vocabularies; a query made of at least half of one document's words
    # must rank that document first: lexical overlap is what the vectors measure. Hashing can
    # promise this while the words share at most one slot between them (see the module docstring);
    # at 4096 dimensions that is most draws, and the rest are not evidence either way.
    documents, start = [], 0
    for size in sizes:
        if start + size > len(vocabulary):
            break
        documents.append(vocabulary[start : start + size])
        start += size
    assume(len(documents) >= 2)
    target %= len(documents)
    words = documents[target]
    chosen = [w for w, k in zip(words, keep, strict=False) if k]
    chosen += [w for w in words if w not in chosen][: max(0, (len(words) + 1) // 2 - len(chosen))]
    embedder = HashingEmbedder(dimensions=4096, bigrams=False)
    assume(shared_slots(embedder, [w for d in documents for w in d]) <= 1)
    order = rank(embedder, " ".join(chosen), [" ".join(d) for d in documents])
    assert order[0] == target


@settings(max_examples=100, deadline=None)
@given(word=st.text(alphabet="abcdefghijklmnopqrstuvwxyzåéß0123456789_", min_size=1, max_size=20))
def test_a_feature_takes_two_different_slots_and_never_cancels_itself(word: str) -> None:
    embedder = HashingEmbedder(dimensions=2, bigrams=False)  # the fewest dimensions: the two slots still differ
    (dim_a, _), (dim_b, _) = embedder.slots(word)
    assert dim_a != dim_b
    vector = embedder.vectors([f"{word} {word} {word}"])[0]
    assert np.count_nonzero(vector) == 2 and float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-6)


def test_the_scheme_is_pinned() -> None:
    # If this fails, the mapping from features to slots changed: vectors stored by earlier versions
    # no longer compare with new ones. Bump SCHEME in cairn_local/hashing.py and say so in the
    # README, then update the digest.
    vector = HashingEmbedder(dimensions=64).vectors(["Pinned words: the hashing scheme, version two."])[0]
    assert SCHEME == "hashing-v2"
    assert hashlib.sha256(vector.tobytes()).hexdigest() == PINNED


@settings(max_examples=40, deadline=None)
@given(text=TEXT)
def test_every_text_retrieves_itself_first(text: str) -> None:
    embedder = HashingEmbedder(dimensions=512)
    others = [d for d in DOCUMENTS if d != text]
    vectors = embedder.vectors([text, *others])
    scores = vectors[1:] @ vectors[0]
    assert float(vectors[0] @ vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert (scores < 1.0 - 1e-6).all()


def test_embed_returns_one_row_per_text_and_names_the_scheme_as_the_model() -> None:
    embedder = HashingEmbedder(dimensions=32)
    for asked in (None, "hashing", "hashing-v2"):
        response = embedder.embed(EmbeddingRequest(["a b", "c"], asked))
        assert len(response.vectors) == 2 and len(response.vectors[0]) == 32 and response.model == "hashing-v2"


def test_an_unknown_model_is_refused_not_answered_with_other_vectors() -> None:
    with pytest.raises(InvalidRequestError, match="hashing-v1") as info:
        HashingEmbedder(dimensions=32).embed(EmbeddingRequest(["a"], "hashing-v1"))
    assert "hashing-v2" in (info.value.hint or "")
