"""What the three tokenizers share: chat-message accounting that bills the role."""

from __future__ import annotations

from cairn.model import Message
from cairn.tokenizers import Tokenizer

__all__ = ["ChatTokenizer"]


class ChatTokenizer(Tokenizer):
    """A ``Tokenizer`` whose per-message count includes the tokens of the role.

    OpenAI's chat format writes every message as ``<|start|>{role}\\n{content}<|end|>``:
    the role string is encoded like any text. OpenAI's own counting recipe adds
    ``len(encode(role))`` on top of the fixed per-message overhead, and the API
    agrees: one system message with the content ``"x"`` is billed 8 prompt
    tokens on gpt-3.5-turbo-0613 (3 overhead + 1 role + 1 content + 3 reply
    priming). The kernel's default ``count_message`` leaves the role out and
    would say 7.
    """

    def count_message(self, message: Message) -> int:
        """Tokens one message costs in a request: overhead, role, content, name and tool calls."""
        return super().count_message(message) + self.count(message.role)
