"""Evaluators that call a model: embedding_similarity (an embedding provider), rubric and factuality (LLM judges).

They reach providers only through the ``ScoringContext`` the kernel hands
them, that is through ``cairn.providers``: retries, spend ceilings,
instrumentation and redaction apply as to any call. With the ``noop``
default they are skipped, with the provider's own explanation, before any
call is made.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from cairn.evaluate import Sample, Score, ScoringContext
from cairn_evals import text as T
from cairn_evals.config import EmbeddingConfig, FactualityConfig, RubricConfig
from cairn_evals.deterministic import TableEvaluator

__all__ = ["EmbeddingSimilarity", "Factuality", "Rubric", "parse_choice", "parse_grade"]


def _readiness(provider: Any) -> Score | None:
    """Skip every sample when the provider is disabled (noop); fail them when it cannot work as configured."""
    from cairn.providers import ProviderDisabledError

    problem = provider.readiness()
    if problem is None:
        return None
    text = problem.message + (f" ({problem.hint})" if problem.hint else "")
    if isinstance(problem, ProviderDisabledError):
        return Score.skip(f"skipped: {text}")
    raise problem  # a missing key or a wrong table fails every call alike: stop and say so


# -- embedding similarity --------------------------------------------------------------------


def cosine(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The cosine of two vectors; None when either has no length."""
    dot = math.fsum(float(x) * float(y) for x, y in zip(a, b, strict=True))
    norm = math.sqrt(math.fsum(float(x) * float(x) for x in a)) * math.sqrt(math.fsum(float(y) * float(y) for y in b))
    if norm == 0.0:
        return None
    return dot / norm


def _share(total: int, parts: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``parts``, in whole units that add up exactly (largest remainders)."""
    weight = sum(parts)
    if weight == 0:
        return [0 for _ in parts]
    raw = [total * p / weight for p in parts]
    out = [int(r) for r in raw]
    order = sorted(range(len(parts)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


class EmbeddingSimilarity(TableEvaluator):
    """Cosine similarity of the embeddings of output and expected (best of several), negative cosines as 0.

    A batch of samples is embedded in one call; its usage and cost are
    shared among the samples in proportion to the texts each sent.
    """

    kind = "embedding"
    inputs = ("output", "expected")
    threshold = 0.8

    def __init__(self, config: EmbeddingConfig, context: Any = None) -> None:
        super().__init__(config, context)

    def prepare(self, context: ScoringContext) -> Score | None:
        return _readiness(context.embeddings(self.config.provider).provider)

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        return self.score_many([sample], context)[0]

    def score_many(self, samples: Sequence[Sample], context: ScoringContext) -> list[Score]:
        embedder = context.embeddings(self.config.provider)
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        for sample in samples:
            start = len(texts)
            texts.append(T.as_text(sample.output))
            texts.extend(T.references(sample.expected))
            spans.append((start, len(texts)))
        response = embedder.embed(texts, model=self.config.model, metadata={"evaluator": self.name or "embedding"})
        usage = response.usage.to_dict() if response.usage is not None else None
        counts = [end - start for start, end in spans]
        tokens = _share(usage["input_tokens"], counts) if usage else [0] * len(samples)
        out = []
        for index, (_sample, (start, end)) in enumerate(zip(samples, spans, strict=True)):
            share = counts[index] / len(texts)
            sample_usage = None
            if usage is not None:
                sample_usage = {
                    **usage,
                    "input_tokens": tokens[index],
                    "output_tokens": 0,
                    "total_tokens": tokens[index],
                    "cache_read_tokens": 0,
                    "cache_write_tokens": 0,
                    "reasoning_tokens": 0,
                }
            cost = None if response.cost is None else response.cost * share
            output_vector = response.vectors[start]
            best: float | None = None
            for ref_index in range(start + 1, end):
                similarity = cosine(output_vector, response.vectors[ref_index])
                if similarity is None:
                    # A text with no features (empty) has no direction: equal texts agree, others do not.
                    similarity = 1.0 if texts[start] == texts[ref_index] else 0.0
                if best is None or similarity > best:
                    best = similarity
            assert best is not None
            value = min(1.0, max(0.0, best))
            out.append(
                self.result(value, metadata={"cosine": best, "model": response.model}, usage=sample_usage, cost=cost)
            )
        return out


# -- judges ----------------------------------------------------------------------------------

_SYSTEM = "You are a careful, impartial grader. Follow the grading instructions exactly."


def _block(tag: str, value: Any) -> str:
    body = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)
    return f"<{tag}>\n{body}\n</{tag}>"


def _context_text(context: Any) -> str:
    return "\n\n".join(context) if isinstance(context, list) else str(context)


class _Judge(TableEvaluator):
    """An LLM judge: builds a grading prompt, asks ``[cairn] llm`` (or the table's provider), reads the verdict."""

    kind = "judge"

    def prepare(self, context: ScoringContext) -> Score | None:
        return _readiness(context.llm(self.config.provider).provider)

    def prompt(self, sample: Sample) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def verdict(self, reply: str) -> tuple[float, dict[str, Any]] | str:  # pragma: no cover - abstract
        """(value, facts) read from the reply, or why nothing could be read."""
        raise NotImplementedError

    def score(self, sample: Sample, context: ScoringContext) -> Score:
        llm = context.llm(self.config.provider)
        messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": self.prompt(sample)}]
        # A fixed seed: providers that honour one give the same grade for the same prompt.
        options: dict[str, Any] = {
            "max_output_tokens": self.config.max_output_tokens,
            "seed": 0,
            "metadata": {"evaluator": self.name, "sample": sample.id},
        }
        if self.config.model is not None:
            options["model"] = self.config.model
        if self.config.temperature is not None:
            options["temperature"] = self.config.temperature
        response = llm.complete(messages, **options)
        reply = response.content or ""
        usage = response.usage.to_dict() if response.usage is not None else None
        meta: dict[str, Any] = {"prompt": messages, "reply": reply, "model": response.model}
        found = self.verdict(reply)
        if isinstance(found, str):
            return Score.error(found, metadata=meta, usage=usage, cost=response.cost)
        value, facts = found
        meta.update(facts)
        return self.result(value, reason=_explanation(reply), metadata=meta, usage=usage, cost=response.cost)


def _explanation(reply: str, width: int = 300) -> str:
    """The judge's reasoning: the reply without its final verdict line, on one line, cut to ``width``."""
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    if len(lines) > 1:
        lines = lines[:-1]
    text = " ".join(" ".join(lines).split())
    return text if len(text) <= width else text[: width - 1] + "…"


_NUMBER = r"(\d+(?:\.\d+)?)"
_OUT_OF = r"(?:\s*(?:/|out\s+of)\s*(\d+))?"
# "GRADE: 4", "**Grade:** 4/5", "grade = [4]", "Grade - 4 out of 5"; then "Score: 4", "Rating: 4".
_GRADE_PATTERNS = [
    re.compile(rf"(?i)\bgrade\b[^\w\n]{{0,8}}{_NUMBER}{_OUT_OF}"),
    re.compile(rf"(?i)\b(?:score|rating)\b[^\w\n]{{0,8}}{_NUMBER}{_OUT_OF}"),
]
_LAST_LINE_GRADE = re.compile(rf"\A[^\w]*{_NUMBER}{_OUT_OF}[^\w]*\Z")


def parse_grade(reply: str, scale: int) -> float | str:
    """The grade (1..scale) a judge gave, or why none could be read.

    The last "GRADE: n" wins (a judge may quote the instructions first); then
    "score"/"rating"; then a JSON object with "grade" or "score"; then a
    last line that is only a number. "n/m" or "n out of m" must use the scale asked for.
    """
    found: tuple[str, str | None] | None = None
    for pattern in _GRADE_PATTERNS:
        matches = list(pattern.finditer(reply))
        if matches:
            found = (matches[-1].group(1), matches[-1].group(2))
            break
    if found is None:
        for candidate in reversed(re.findall(r"\{[^{}]*\}", reply)):
            try:
                data = json.loads(candidate)
            except ValueError:
                continue
            value = data.get("grade", data.get("score")) if isinstance(data, dict) else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found = (str(value), None)
                break
    if found is None:
        lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
        match = _LAST_LINE_GRADE.match(lines[-1]) if lines else None
        if match:
            found = (match.group(1), match.group(2))
    if found is None:
        return f"no grade found in the judge's reply (expected a last line 'GRADE: <1-{scale}>')"
    grade = float(found[0])
    if found[1] is not None and int(found[1]) != scale:
        return f"the judge graded out of {found[1]}, but was asked for 1 to {scale}"
    if not 1 <= grade <= scale:
        return f"the judge gave {found[0]}, outside 1 to {scale}"
    return grade


class Rubric(_Judge):
    """An LLM grades the output against the rubric from 1 to ``scale``; the score is (grade - 1) / (scale - 1)."""

    inputs = ("output",)
    threshold = 0.75

    def __init__(self, config: RubricConfig, context: Any = None) -> None:
        super().__init__(config, context)

    def prompt(self, sample: Sample) -> str:
        parts = ["Grade the response below against the rubric."]
        if sample.input is not None:
            parts.append(_block("input", sample.input))
        parts.append(_block("response", T.as_text(sample.output)))
        if sample.expected is not None:
            parts.append(_block("reference", sample.expected))
        if sample.context is not None:
            parts.append(_block("context", _context_text(sample.context)))
        parts.append(_block("rubric", self.config.rubric))
        scale = self.config.scale
        parts.append(
            "Judge only how well the response meets the rubric. Explain your judgement in at most three "
            f"sentences, then end with a line of the form\nGRADE: <n>\nwhere <n> is a whole number from 1 "
            f"(does not meet the rubric at all) to {scale} (fully meets it)."
        )
        return "\n\n".join(parts)

    def verdict(self, reply: str) -> tuple[float, dict[str, Any]] | str:
        grade = parse_grade(reply, self.config.scale)
        if isinstance(grade, str):
            return grade
        return (grade - 1) / (self.config.scale - 1), {"grade": grade, "scale": self.config.scale}


#: Factuality choices and the score each earns.
CHOICES = {
    "A": ("a subset of the expert answer, fully consistent with it", 0.4),
    "B": ("a superset of the expert answer, fully consistent with it", 0.6),
    "C": ("the same details as the expert answer", 1.0),
    "D": ("in disagreement with the expert answer", 0.0),
    "E": ("different from the expert answer only in ways that do not matter for factuality", 1.0),
}
_ANSWER = re.compile(r"(?i)\b(?:answer|choice|verdict)\b[^\w\n]{0,8}\(?([A-E])\b\)?")
_LAST_LINE_CHOICE = re.compile(r"\A[^\w]*\(?([A-E])\)?[^\w]*\Z")


def parse_choice(reply: str) -> str | None:
    """The letter A-E a factuality judge chose: the last "ANSWER: X", else a last line that is only the letter."""
    matches = _ANSWER.findall(reply)
    if matches:
        return matches[-1].upper()
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    match = _LAST_LINE_CHOICE.match(lines[-1]) if lines else None
    return match.group(1) if match else None


class Factuality(_Judge):
    """An LLM compares the facts of the output with the expected answer and picks one of five relations."""

    inputs = ("output", "expected")
    threshold = 0.5

    def __init__(self, config: FactualityConfig, context: Any = None) -> None:
        super().__init__(config, context)

    def prompt(self, sample: Sample) -> str:
        parts = ["Compare the factual content of a submitted answer with an expert answer."]
        if sample.input is not None:
            parts.append(_block("question", sample.input))
        parts.append(_block("expert_answer", sample.expected))
        parts.append(_block("submitted_answer", T.as_text(sample.output)))
        if sample.context is not None:
            parts.append(_block("context", _context_text(sample.context)))
        options = "\n".join(f"({letter}) The submitted answer is {text}." for letter, (text, _) in CHOICES.items())
        parts.append(
            "Ignore differences of style, grammar and punctuation. Pick the one option that fits best:\n"
            f"{options}\nExplain briefly, then end with a line of the form\nANSWER: <letter>"
        )
        return "\n\n".join(parts)

    def verdict(self, reply: str) -> tuple[float, dict[str, Any]] | str:
        letter = parse_choice(reply)
        if letter is None:
            return "no choice found in the judge's reply (expected a last line 'ANSWER: <A-E>')"
        return CHOICES[letter][1], {"choice": letter}
