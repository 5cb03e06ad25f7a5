"""The project's catalog of named artifacts and recorded snapshots, in its data directory.

An artifact store knows objects by hash only. The names and media types
given to ``cairn artifact put`` and the snapshots made by ``cairn snapshot
create`` are recorded here, as JSON lines appended to files in
``<data_dir>/catalog/`` (``artifacts.jsonl``, ``snapshots.jsonl``). This is
the interim home of that metadata: when the storage contract gains an
artifacts-metadata facet it moves there (and syncs with the rest of the
store); the records keep their shape.

Appends take a file lock and are fsynced before they are acknowledged. A
line torn by a crash is never acknowledged and is skipped when read; the
next append starts on a fresh line.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from cairn.errors import StorageError, ValidationError
from cairn.model import is_hash, now

__all__ = ["ArtifactRecord", "Catalog", "SnapshotRecord", "check_mime", "check_name", "guess_mime"]

_MIME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\Z")
MAX_NAME = 255


def check_name(name: object) -> str:
    """An artifact name: 1 to 255 characters of text, no control characters (it is shown, never a path)."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ValidationError(
            f"artifact name {name!r:.80} must be 1 to {MAX_NAME} characters", hint="e.g. --name report.pdf"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValidationError(f"artifact name {name!r:.80} holds a control character", hint="use printable text")
    return name


def check_mime(mime: object) -> str:
    """A media type such as ``text/plain`` or ``image/png`` (parameters are not kept)."""
    if not isinstance(mime, str) or not _MIME.match(mime):
        raise ValidationError(f"{mime!r:.80} is not a media type", hint="write it as type/subtype, e.g. image/png")
    return mime.lower()


def guess_mime(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


@attrs.frozen
class ArtifactRecord:
    """A name given to an object: ``cairn artifact put FILE --name --mime``."""

    hash: str
    name: str
    mime: str
    size: int
    created: str

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class SnapshotRecord:
    """One ``cairn snapshot create``: the tree, where it was taken, and what it held."""

    tree: str
    source: str
    created: str
    files: int
    bytes: int
    problems: int = 0

    def to_record(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Catalog:
    """Append-only JSON-lines records under ``<data_dir>/catalog``."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / "catalog"

    # -- artifacts ------------------------------------------------------------------------------

    def add_artifact(self, digest: str, name: str, mime: str, size: int) -> ArtifactRecord:
        if not is_hash(digest):
            raise ValidationError(f"{digest!r:.80} is not a SHA-256 hash")
        record = ArtifactRecord(digest, check_name(name), check_mime(mime), size, now())
        self._append("artifacts.jsonl", record.to_record())
        return record

    def artifacts(self) -> list[ArtifactRecord]:
        """Every named artifact, oldest first."""
        out = []
        for raw in self._read("artifacts.jsonl"):
            try:
                out.append(ArtifactRecord(**raw))
            except TypeError:
                continue
        return out

    def names_of(self, digest: str) -> list[ArtifactRecord]:
        return [r for r in self.artifacts() if r.hash == digest]

    # -- snapshots ------------------------------------------------------------------------------

    def add_snapshot(self, tree: str, source: str, files: int, size: int, problems: int = 0) -> SnapshotRecord:
        record = SnapshotRecord(tree, source, now(), files, size, problems)
        self._append("snapshots.jsonl", record.to_record())
        return record

    def snapshots(self) -> list[SnapshotRecord]:
        """Every recorded snapshot, oldest first."""
        out = []
        for raw in self._read("snapshots.jsonl"):
            try:
                out.append(SnapshotRecord(**raw))
            except TypeError:
                continue
        return out

    # -- the files ------------------------------------------------------------------------------

    def _append(self, name: str, record: dict[str, Any]) -> None:
        from filelock import FileLock

        line = json.dumps(record, ensure_ascii=False, sort_keys=True).encode() + b"\n"
        path = self.directory / name
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with FileLock(str(path) + ".lock"):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o644)
                try:
                    size = os.fstat(fd).st_size
                    if size and _last_byte(path, size) != b"\n":
                        line = b"\n" + line  # a torn line from a crash: never glue onto it
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot record in {path}: {exc.strerror}") from None

    def _read(self, name: str) -> Iterator[dict[str, Any]]:
        path = self.directory / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        for line in data.splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue  # torn by a crash before it was acknowledged
            if isinstance(value, dict):
                yield value


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as stream:
        stream.seek(size - 1)
        return stream.read(1)
