"""The tokenizer contract.

A tokenizer plugin registers a factory under a name (``approx``,
``tiktoken``, ``hf``); a configured name may carry an argument after a colon
(``tiktoken:cl100k_base``, ``hf:path/to/tokenizer.json``), handed to the
factory as ``context.argument``. Counts are cached by the context engine per
(content hash, tokenizer ``name``), so switching tokenizers recounts lazily.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

import attrs

from cairn.model import Message

__all__ = ["DEFAULT_OVERHEAD", "MessageOverhead", "Tokenizer"]


@attrs.frozen
class MessageOverhead:
    """Tokens a chat format adds around messages (OpenAI chat: 3 per message, 1 per name, 3 to prime the reply)."""

    per_message: int = 3
    per_name: int = 1
    reply_priming: int = 3


#: OpenAI chat's overhead: the default of every tokenizer that does not say otherwise.
DEFAULT_OVERHEAD = MessageOverhead()


class Tokenizer(abc.ABC):
    """Counts tokens. ``name`` is the full configured name and the cache key; ``exact`` says
    whether counts match the model's own tokenizer or are an estimate."""

    name: str
    exact: bool = False
    overhead: MessageOverhead = DEFAULT_OVERHEAD

    @abc.abstractmethod
    def count(self, text: str) -> int:
        """Tokens in ``text``."""

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each of ``texts``; override when the backend batches faster."""
        return [self.count(t) for t in texts]

    def count_message(self, message: Message) -> int:
        """Tokens one message costs in a request: overhead, role, content, name and tool calls.

        The role counts like any text: chat formats write each message as
        ``<start>{role}\n{content}<end>``, and OpenAI bills a system message "x"
        as 8 prompt tokens (3 overhead + 1 role + 1 content + 3 reply priming).
        """
        o = self.overhead
        total = o.per_message + self.count(message.role)
        if message.content:
            total += self.count(message.content)
        if message.name:
            total += o.per_name + self.count(message.name)
        for call in message.tool_calls:
            total += self.count(call.name) + self.count(call.arguments)
        return total

    def count_messages(self, messages: Iterable[Message]) -> int:
        """Tokens a whole request costs: every message plus the reply priming."""
        total = sum(self.count_message(m) for m in messages)
        return total + self.overhead.reply_priming if total else 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'name', '?')}>"
