"""Text measures shared by the evaluators: normalization, words, F1, edit distance, LCS, numbers in text.

Pure functions on str and sequences, standard library only.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

__all__ = [
    "as_text",
    "find_numbers",
    "lcs_length",
    "levenshtein",
    "normalize",
    "references",
    "rouge_l",
    "strip_fences",
    "token_f1",
    "words",
]

_WORD = re.compile(r"\w+")
_ARTICLES = frozenset({"a", "an", "the"})
# A number as people write it: optional sign, digits with or without thousands
# separators, a decimal part, an exponent; or a bare decimal part (.5). Not
# preceded by a letter, digit or dot, so "A4" and "v2.0" do not yield 4 or .0.
_NUMBER = re.compile(
    r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\d)"
    r"|(?<![\w.])[-+]?\.\d+(?:[eE][-+]?\d+)?"
)
_FENCE = re.compile(r"\A\s*```[A-Za-z0-9_+-]*[ \t]*\n(.*?)\n?```\s*\Z", re.S)


def as_text(value: Any) -> str:
    """A string as it is; any other JSON value as compact JSON with sorted keys (the same text every time)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def references(expected: Any) -> list[str]:
    """The acceptable answers: a string, or each string of a non-empty list of strings, or the JSON text."""
    if isinstance(expected, list) and expected and all(isinstance(e, str) for e in expected):
        return list(expected)
    return [as_text(expected)]


def normalize(
    text: str,
    *,
    ignore_case: bool = False,
    collapse_whitespace: bool = False,
    strip_punctuation: bool = False,
    nfkc: bool = False,
) -> str:
    """Apply the chosen normalizations, in this order: NFKC, case folding, punctuation removal, whitespace.

    NFKC turns compatibility forms into their plain equivalents (full-width
    "Ｐａｒｉｓ" -> "Paris", "ﬁ" -> "fi"); case folding is Unicode's
    (``"Straße".casefold() == "strasse"``); punctuation is every character of
    a Unicode punctuation category (P*), removed; whitespace runs become one
    space and the ends are trimmed.
    """
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
    if ignore_case:
        text = text.casefold()
    if strip_punctuation:
        text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    if collapse_whitespace:
        text = " ".join(text.split())
    return text


def words(text: str, *, ignore_case: bool = True, nfkc: bool = True, remove_articles: bool = False) -> list[str]:
    """The words of ``text``: runs of Unicode letters, digits and underscores; punctuation separates them."""
    text = normalize(text, ignore_case=ignore_case, nfkc=nfkc)
    found = _WORD.findall(text)
    if remove_articles:
        found = [w for w in found if w not in _ARTICLES]
    return found


def token_f1(predicted: Sequence[str], reference: Sequence[str]) -> tuple[float, float, float]:
    """(precision, recall, F1) of the word bags: shared words counted with multiplicity.

    Two empty bags agree completely (1, 1, 1); one empty bag shares nothing (0, 0, 0).
    """
    if not predicted and not reference:
        return 1.0, 1.0, 1.0
    if not predicted or not reference:
        return 0.0, 0.0, 0.0
    common = sum((Counter(predicted) & Counter(reference)).values())
    if common == 0:
        return 0.0, 0.0, 0.0
    precision = common / len(predicted)
    recall = common / len(reference)
    return precision, recall, 2 * precision * recall / (precision + recall)


def _trim(a: Sequence[Hashable], b: Sequence[Hashable]) -> tuple[Sequence[Hashable], Sequence[Hashable]]:
    """Drop the common prefix and suffix: they change neither the edit distance nor what the LCS adds."""
    start = 0
    limit = min(len(a), len(b))
    while start < limit and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    return a[start:end_a], b[start:end_b]


def _positions(pattern: Sequence[Hashable]) -> dict[Hashable, int]:
    """For each element of ``pattern``, the bit mask of the positions where it occurs."""
    masks: dict[Hashable, int] = {}
    for index, item in enumerate(pattern):
        masks[item] = masks.get(item, 0) | (1 << index)
    return masks


def levenshtein(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """The fewest insertions, deletions and substitutions that turn ``a`` into ``b``.

    Myers' bit-vector algorithm in Hyyrö's formulation for whole-sequence
    edit distance: one column of the dynamic-programming table is held as
    bit vectors of vertical +1/-1 steps in two Python integers, so each
    element of the longer sequence costs a few big-integer operations
    instead of one step per cell: O(len(a) * len(b) / word size).
    """
    a, b = _trim(a, b)
    if len(a) > len(b):
        a, b = b, a  # the shorter one is the pattern: fewer bits per vector
    m = len(a)
    if m == 0:
        return len(b)
    masks = _positions(a)
    full = (1 << m) - 1
    top = 1 << (m - 1)
    plus, minus = full, 0  # vertical deltas: all +1 down the first column
    distance = m
    for item in b:
        eq = masks.get(item, 0)
        xv = eq | minus
        xh = ((((eq & plus) + plus) & full) ^ plus) | eq
        hp = (minus | ~(xh | plus)) & full
        hm = plus & xh
        if hp & top:
            distance += 1
        elif hm & top:
            distance -= 1
        hp = ((hp << 1) | 1) & full  # | 1: the first row grows by one per element (whole-sequence distance)
        hm = (hm << 1) & full
        plus = (hm | ~(xv | hp)) & full
        minus = hp & xv
    return distance


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """The length of the longest common subsequence of ``a`` and ``b``.

    The bit-parallel recurrence of Allison and Dix (as Hyyrö writes it):
    V' = (V + (V & M)) | (V & ~M) over the match mask M of each element of
    ``b``; the LCS is the count of cleared bits of V.
    """
    before = len(a)
    a, b = _trim(a, b)
    shared = before - len(a)  # the trimmed prefix and suffix are common to both, in order
    if len(a) > len(b):
        a, b = b, a
    m = len(a)
    if m == 0:
        return shared
    masks = _positions(a)
    full = (1 << m) - 1
    v = full
    for item in b:
        u = v & masks.get(item, 0)
        v = ((v + u) | (v - u)) & full
    return shared + m - bin(v).count("1")


def rouge_l(
    candidate: Sequence[Hashable], reference: Sequence[Hashable], *, beta: float = 1.0
) -> tuple[float, float, float]:
    """ROUGE-L (Lin, 2004): (precision, recall, F) from the LCS of the candidate and the reference.

    P = LCS / len(candidate), R = LCS / len(reference),
    F = (1 + beta^2) P R / (R + beta^2 P); beta > 1 weighs recall more.
    Two empty sequences agree (1, 1, 1); one empty shares nothing (0, 0, 0).
    """
    if not candidate and not reference:
        return 1.0, 1.0, 1.0
    if not candidate or not reference:
        return 0.0, 0.0, 0.0
    lcs = lcs_length(candidate, reference)
    if lcs == 0:
        return 0.0, 0.0, 0.0
    precision = lcs / len(candidate)
    recall = lcs / len(reference)
    b2 = beta * beta
    return precision, recall, (1 + b2) * precision * recall / (recall + b2 * precision)


def find_numbers(text: str) -> list[float]:
    """Every number written in ``text``, in order: ``"3,200 people, -1.5e3 and ４２"`` -> [3200, -1500, 42].

    NFKC first, so full-width and other compatibility digits count; the
    Unicode minus sign (U+2212) counts as a minus. Thousands separators are
    commas between groups of three digits.
    """
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-")
    return [float(m.group(0).replace(",", "")) for m in _NUMBER.finditer(text)]


def strip_fences(text: str) -> str:
    """The body of a Markdown code fence (```json ... ```) when ``text`` is exactly one; else ``text``."""
    match = _FENCE.match(text)
    return match.group(1) if match else text
