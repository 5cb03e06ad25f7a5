"""An in-memory ``ArtifactStore``: the shortest complete implementation of the contract, for tests.

Kernel tests use it so they need no store plugin. It keeps every object in a
dict (so it does not bound memory, and the conformance suite's memory test is
skipped for it), lives in one process, and is thread-safe.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path

from cairn.artifacts import (
    ArtifactInfo,
    ArtifactStore,
    ReadStream,
    Source,
    VerifyingReader,
    artifact_not_found,
    check_digest,
    check_prefix,
    open_source,
)
from cairn.model import now

__all__ = ["MemoryArtifactStore", "open_in_directory"]


class MemoryArtifactStore(ArtifactStore):
    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.location = f"memory:{id(self):x}"

    def put(self, source: Source) -> ArtifactInfo:
        with open_source(source) as stream:
            digest = hashlib.sha256()
            buffer = io.BytesIO()
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                buffer.write(chunk)
        data = buffer.getvalue()
        name = digest.hexdigest()
        with self._lock:
            stored = self.objects.get(name)
            if stored is None or stored[0] != data:  # a damaged copy is repaired by putting the bytes again
                self.objects[name] = (data, now())
            return ArtifactInfo(name, len(data), self.objects[name][1])

    def _get(self, digest: str) -> tuple[bytes, str]:
        check_digest(digest)
        with self._lock:
            found = self.objects.get(digest)
        if found is None:
            raise artifact_not_found(digest, self.location)
        return found

    def open(self, digest: str) -> ReadStream:
        data, _ = self._get(digest)
        with VerifyingReader(io.BytesIO(data), digest, len(data), where=self.location) as reader:
            reader.read()  # everything is in memory already: verify before handing it out
        return io.BytesIO(data)

    def stat(self, digest: str) -> ArtifactInfo:
        data, created = self._get(digest)
        return ArtifactInfo(digest, len(data), created)

    def list(self, *, prefix: str = "", after: str | None = None) -> Iterator[ArtifactInfo]:
        prefix = check_prefix(prefix)
        after = check_prefix(after) if after is not None else None
        with self._lock:
            names = sorted(n for n in self.objects if n.startswith(prefix) and (after is None or n > after))
        return (self.stat(n) for n in names if n in self.objects)

    def delete(self, digest: str) -> bool:
        check_digest(digest)
        with self._lock:
            return self.objects.pop(digest, None) is not None


def open_in_directory(directory: Path) -> MemoryArtifactStore:
    """An ``artifact_store_opener`` for the conformance suite; the directory is unused."""
    return MemoryArtifactStore()
