"""What the three tokenizers share: cache-name qualifiers and project-relative paths."""

from __future__ import annotations

import os
from pathlib import Path

from cairn.plugins import FactoryContext
from cairn.tokenizers import MessageOverhead

__all__ = ["overhead_qualifier", "project_path"]


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
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        return path
    if context.project_dir is not None:
        return context.project_dir / path
    if context.config is not None:
        return context.config.cwd / path
    return Path.cwd() / path
