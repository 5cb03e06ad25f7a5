"""Small deterministic stand-ins for tests: a tokenizer whose counts are easy to compute by hand."""

from __future__ import annotations

from cairn.tokenizers import MessageOverhead, Tokenizer

__all__ = ["WordTokenizer"]


class WordTokenizer(Tokenizer):
    """One token per whitespace-separated word, OpenAI-style message overhead by default."""

    exact = True

    def __init__(self, name: str = "test-words", overhead: MessageOverhead | None = None) -> None:
        self.name = name
        self.overhead = overhead or MessageOverhead()
        self.calls = 0

    def count(self, text: str) -> int:
        self.calls += 1
        return len(text.split())
