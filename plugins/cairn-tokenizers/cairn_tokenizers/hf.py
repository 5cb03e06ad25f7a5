"""``hf:<path to tokenizer.json>``: exact counts through the Hugging Face ``tokenizers`` library.

The file is read once, hashed and parsed from those same bytes, so the
tokenizer's name (``hf:<path>@<12 hex digits of its SHA-256>``) always
describes the vocabulary that counts: two different files never share a cache
key, even at the same path.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tokenizers

from cairn.errors import ConfigError
from cairn.plugins import FactoryContext
from cairn.tokenizers import DEFAULT_OVERHEAD, MessageOverhead, Tokenizer
from cairn_tokenizers._base import overhead_qualifier, project_path
from cairn_tokenizers.config import HfConfig

__all__ = ["HfTokenizer", "create", "load_tokenizer"]

_lock = threading.Lock()
# SHA-256 of a tokenizer.json -> its parsed tokenizer, so creating the same tokenizer twice parses once.
_parsed: dict[str, tokenizers.Tokenizer] = {}


def load_tokenizer(path: Path) -> tuple[tokenizers.Tokenizer, str]:
    """Parse the ``tokenizer.json`` at ``path``; returns the tokenizer and the file's SHA-256 (hex).

    Truncation and padding saved in the file are switched off: they would cap
    or pad every count. Raises ``ConfigError`` naming the path when the file
    is missing, unreadable or not a tokenizer.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            "no such tokenizer file",
            file=str(path),
            hint="the path after 'hf:' is relative to the project directory; "
            "save one with tokenizers.Tokenizer.save() or copy a model's tokenizer.json there",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the tokenizer file: {exc.strerror}",
            file=str(path),
            hint="check that the path names a readable file",
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    with _lock:
        cached = _parsed.get(digest)
        if cached is not None:
            return cached, digest
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not a tokenizer.json: not UTF-8 text ({exc.reason} at byte {exc.start})",
            file=str(path),
            hint="point 'hf:' at a model's tokenizer.json (tokenizer.model and vocab.txt files are other formats)",
        ) from None
    try:
        tokenizer = tokenizers.Tokenizer.from_str(text)
    except Exception as exc:  # the Rust side raises a bare Exception for bad JSON or a bad schema
        raise ConfigError(
            f"not a valid tokenizer.json: {exc}",
            file=str(path),
            hint="point 'hf:' at a model's tokenizer.json, as saved by tokenizers.Tokenizer.save()",
        ) from None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    with _lock:
        _parsed.setdefault(digest, tokenizer)
    return tokenizer, digest


class HfTokenizer(Tokenizer):
    """Exact token counts through a ``tokenizers.Tokenizer``; ``exact`` is True.

    ``add_special_tokens`` says whether the post-processor's special tokens
    (BOS, [CLS] ... [SEP]) are counted in every text; ``tokenizer`` is the
    ``tokenizers.Tokenizer`` and ``sha256`` the hash of the file it came from.
    """

    exact = True

    def __init__(
        self,
        tokenizer: tokenizers.Tokenizer,
        *,
        name: str,
        sha256: str = "",
        add_special_tokens: bool = False,
        overhead: MessageOverhead = DEFAULT_OVERHEAD,
    ) -> None:
        self.tokenizer = tokenizer
        self.name = name
        self.sha256 = sha256
        self.add_special_tokens = add_special_tokens
        self.overhead = overhead
        self._encode = tokenizer.encode
        # encode_batch_fast (tokenizers >= 0.20) skips the offsets a count never needs.
        self._encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)

    def count(self, text: str) -> int:
        """Tokens in ``text`` under this tokenizer."""
        return len(self._encode(text, add_special_tokens=self.add_special_tokens).ids)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each of ``texts``, encoded as one batch (in parallel, in Rust)."""
        if not texts:
            return []
        encodings: list[Any] = self._encode_batch(list(texts), add_special_tokens=self.add_special_tokens)
        return [len(e.ids) for e in encodings]


def create(config: HfConfig, context: FactoryContext) -> HfTokenizer:
    """The ``hf`` factory: ``context.argument`` is the path of a tokenizer.json, relative to the project.

    The name is ``hf:<path>@<12 hex digits of the file's SHA-256>``, qualified
    with ``@add_special_tokens`` and ``@overhead=...`` when those are set.
    """
    if not context.argument:
        # Point at [cairn] tokenizer when that is where the bare name was written.
        file = None
        if context.config is not None:
            source = context.config.source_of(("cairn", "tokenizer"))
            file = None if source == "default" else source
        raise ConfigError(
            f"the hf tokenizer needs the path of a tokenizer.json after the colon, got {context.name!r}",
            file=file,
            table="cairn" if file else None,
            key="tokenizer" if file else None,
            hint='write tokenizer = "hf:path/to/tokenizer.json" (relative to the project directory)',
        )
    path = project_path(context.argument, context)
    tokenizer, digest = load_tokenizer(path)
    overhead = config.overhead(MessageOverhead())
    name = (
        f"hf:{context.argument}@{digest[:12]}"
        + ("@add_special_tokens" if config.add_special_tokens else "")
        + overhead_qualifier(overhead, MessageOverhead())
    )
    return HfTokenizer(
        tokenizer,
        name=name,
        sha256=digest,
        add_special_tokens=config.add_special_tokens,
        overhead=overhead,
    )
