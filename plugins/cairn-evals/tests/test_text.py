"""The text measures: hand-checked cases, unicode and empty inputs, and properties with Hypothesis."""

from __future__ import annotations

import pytest
from cairn_evals import text as T
from hypothesis import given, settings
from hypothesis import strategies as st


def test_normalize_applies_each_option_in_order():
    assert (
        T.normalize(
            "  Ｐａｒｉｓ,  FRANCE! ", nfkc=True, ignore_case=True, strip_punctuation=True, collapse_whitespace=True
        )
        == "paris france"
    )
    assert T.normalize("Straße", ignore_case=True) == "strasse"
    assert T.normalize("ﬁne", nfkc=True) == "fine"
    assert T.normalize("«Rio» — de Janeiro…", strip_punctuation=True) == "Rio  de Janeiro"
    assert T.normalize("a\t\n b", collapse_whitespace=True) == "a b"
    assert T.normalize("Exact") == "Exact"


def test_words_are_unicode_runs():
    assert T.words("Reykjavík is Iceland's capital, 100%!") == ["reykjavík", "is", "iceland", "s", "capital", "100"]
    assert T.words("東京 and ＴＯＫＹＯ") == ["東京", "and", "tokyo"]
    assert T.words("The cat, a hat", remove_articles=True) == ["cat", "hat"]
    assert T.words("") == [] and T.words("?!") == []


@pytest.mark.parametrize(
    ("predicted", "reference", "expected"),
    [
        ("the cat sat", "the cat sat", (1.0, 1.0, 1.0)),
        ("the cat", "the cat sat on the mat", (1.0, 2 / 6, 2 * (1.0 * 2 / 6) / (1.0 + 2 / 6))),
        ("a a b", "a b b", (2 / 3, 2 / 3, 2 / 3)),  # multiset overlap: one a, one b
        ("x y", "z", (0.0, 0.0, 0.0)),
        ("", "", (1.0, 1.0, 1.0)),
        ("", "something", (0.0, 0.0, 0.0)),
    ],
)
def test_token_f1_by_hand(predicted, reference, expected):
    assert T.token_f1(predicted.split(), reference.split()) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("", "", 0),
        ("", "abc", 3),
        ("abc", "", 3),
        ("Brasília", "Brasilia", 1),  # one code point differs
        ("東京都", "京都", 1),
        ("same", "same", 0),
        ("prefix-a-suffix", "prefix-bb-suffix", 2),
    ],
)
def test_levenshtein_by_hand(a, b, distance):
    assert T.levenshtein(a, b) == distance
    assert T.levenshtein(b, a) == distance


@pytest.mark.parametrize(
    ("a", "b", "length"),
    [
        ("ABCBDAB", "BDCABA", 4),
        ("police killed the gunman".split(), "police kill the gunman".split(), 3),
        ("", "abc", 0),
        ("abc", "abc", 3),
        ("xaby", "xbay", 3),
    ],
)
def test_lcs_by_hand(a, b, length):
    assert T.lcs_length(a, b) == length


def test_rouge_l_by_hand():
    reference = "police killed the gunman".split()
    candidate = "police kill the gunman".split()
    p, r, f = T.rouge_l(candidate, reference)
    assert (p, r, f) == (pytest.approx(3 / 4), pytest.approx(3 / 4), pytest.approx(3 / 4))
    p, r, f = T.rouge_l("the gunman kill police".split(), reference)
    assert (p, r) == (pytest.approx(2 / 4), pytest.approx(2 / 4))  # LCS "the gunman"
    p, r, f = T.rouge_l(["a", "b"], ["b"], beta=2.0)
    assert (p, r) == (0.5, 1.0) and f == pytest.approx(5 * 0.5 * 1.0 / (1.0 + 4 * 0.5))
    assert T.rouge_l([], []) == (1.0, 1.0, 1.0) and T.rouge_l(["a"], []) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("The answer is 42.", [42.0]),
        ("about 3,200 people and -1.5e3 degrees", [3200.0, -1500.0]),
        ("−7 below zero", [-7.0]),
        ("ＴＯＫＹＯ has ４２ wards", [42.0]),
        ("paper A4, version v2.0, COVID-19", [19.0]),
        (".5 of it, +3", [0.5, 3.0]),
        ("1,5 is not a thousand", [1.0, 5.0]),
        ("no numbers here", []),
        ("", []),
    ],
)
def test_numbers_are_read_as_written(text, numbers):
    assert T.find_numbers(text) == numbers


def test_fences_are_stripped_only_around_the_whole_text():
    assert T.strip_fences('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert T.strip_fences("  ```\n[1]\n```  ") == "[1]"
    assert T.strip_fences("text ```json\n{}\n```") == "text ```json\n{}\n```"


def test_as_text_and_references():
    assert T.as_text({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert T.references(["x", "y"]) == ["x", "y"]
    assert T.references("x") == ["x"] and T.references([1, 2]) == ["[1,2]"] and T.references([]) == ["[]"]


texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(texts, texts)
@settings(max_examples=300)
def test_measures_stay_in_range_and_are_symmetric(a: str, b: str):
    wa, wb = T.words(a), T.words(b)
    f1 = T.token_f1(wa, wb)
    assert all(0.0 <= x <= 1.0 for x in f1) and f1[2] == pytest.approx(T.token_f1(wb, wa)[2])
    assert T.levenshtein(a, b) == T.levenshtein(b, a) <= max(len(a), len(b))
    assert T.lcs_length(a, b) == T.lcs_length(b, a) <= min(len(a), len(b))
    assert T.levenshtein(a, b) >= abs(len(a) - len(b))
    p, r, f = T.rouge_l(wa, wb)
    assert 0.0 <= f <= 1.0 and f == pytest.approx(T.rouge_l(wb, wa)[2])


@given(texts)
def test_a_text_agrees_fully_with_itself(a: str):
    assert T.levenshtein(a, a) == 0 and T.lcs_length(a, a) == len(a)
    assert T.token_f1(T.words(a), T.words(a))[2] == 1.0
    assert T.rouge_l(T.words(a), T.words(a))[2] == 1.0


@given(texts, texts, texts)
@settings(max_examples=200)
def test_edit_distance_obeys_the_triangle_inequality(a: str, b: str, c: str):
    assert T.levenshtein(a, c) <= T.levenshtein(a, b) + T.levenshtein(b, c)


def reference_levenshtein(a, b) -> int:
    """The textbook dynamic program, cell by cell: the bit-parallel version must agree with it."""
    table = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return table[-1][-1]


def reference_lcs(a, b) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[-1][-1]


small = st.text(alphabet="abcdé東", max_size=25)


@given(small, small)
@settings(max_examples=500)
def test_bit_parallel_distances_agree_with_the_dynamic_program(a: str, b: str):
    assert T.levenshtein(a, b) == reference_levenshtein(a, b)
    assert T.lcs_length(a, b) == reference_lcs(a, b)


@given(
    st.lists(st.sampled_from(["the", "cat", "sat", "on", "mat"]), max_size=90),
    st.lists(st.sampled_from(["the", "cat", "sat", "on", "mat"]), max_size=90),
)
@settings(max_examples=100, deadline=None)
def test_word_sequences_longer_than_a_machine_word_agree_too(a: list[str], b: list[str]):
    assert T.levenshtein(a, b) == reference_levenshtein(a, b)
    assert T.lcs_length(a, b) == reference_lcs(a, b)
