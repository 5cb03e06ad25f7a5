"""What the three tokenizers share: chat-message accounting that bills the role, names, paths."""

from __future__ import annotations

from pathlib import Path

from cairn.model import Message
from cairn.plugins import FactoryContext
from cairn.tokenizers import MessageOverhead, Tokenizer

__all__ = ["ChatTokenizer", "overhead_qualifier", "project_path"]


def overhead_qualifier(overhead: MessageOverhead, default: MessageOverhead) -> str:
    """``"@overhead=5,1,3"`` when configured figures differ from the tokenizer's default, else ``""``.

    The context engine caches ``count_message`` results, overhead included,
    under the tokenizer's name; a name that left out changed figures would
    serve counts made with the old ones.
    """
    if overhead == default:
        return ""
    return f"@overhead={overhead.per_message},{overhead.per_name},{overhead.reply_priming}"


def project_path(value: str, context: FactoryContext) -> Path:
    """``value`` as a path, a relative one taken from the project directory (else the working directory)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    if context.project_dir is not None:
        return context.project_dir / path
    if context.config is not None:
        return context.config.cwd / path
    return Path.cwd() / path


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
