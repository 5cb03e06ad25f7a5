"""What cairn reads bytes from: ``Readable``, anything with a binary ``read``.

A module of its own so that the artifact contract (``cairn.artifacts``) and
the durable writes that feed it (``cairn.durable``) share the one definition
without importing each other.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Readable"]


class Readable(Protocol):
    """Anything with a binary ``read``: open files, ``io.BytesIO``, ``io.RawIOBase`` streams, HTTP bodies."""

    def read(self, size: int = ..., /) -> bytes | None: ...
