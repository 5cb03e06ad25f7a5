"""The first release's sidecar catalog, read once and imported into the store's ``artifact_meta`` facet.

cairn's first artifact release kept the names given to ``cairn artifact
put`` and the list of snapshots as JSON lines under the project's data
directory (``<data_dir>/catalog/artifacts.jsonl`` and ``snapshots.jsonl``).
They now live in the project store, beside everything else it keeps (and,
on the git backend, sync with it). ``import_sidecar_catalog`` moves them:
the first command that opens the project's artifacts after an upgrade reads
every line, adds the records to the store, and renames the directory to
``catalog.imported`` so it is read only once.

Importing twice adds nothing (a record is identified by its content), so a
crash between the import and the rename, or two commands importing at once,
lose and duplicate nothing. A line torn by a crash was never acknowledged
and is skipped, as the catalog itself skipped it; so is a line that is not a
valid record. Names, media types, sizes and times are kept as they were; the
bytes stay where they were put (the artifact store), so the records say
``inline: false``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from cairn.errors import CairnError, StorageError
from cairn.model.artifacts import ArtifactRecord, SnapshotRecord
from cairn.storage import ArtifactMetaStore

__all__ = ["IMPORTED", "SIDECAR", "ImportedCatalog", "import_sidecar_catalog", "read_sidecar_catalog"]

#: The sidecar's directory under the data directory, and what it is renamed to once imported.
SIDECAR = "catalog"
IMPORTED = "catalog.imported"


@attrs.frozen
class ImportedCatalog:
    """What the sidecar held: the records read (valid lines only) and how many lines were skipped."""

    artifacts: tuple[ArtifactRecord, ...]
    snapshots: tuple[SnapshotRecord, ...]
    skipped: int


def _lines(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each line as a JSON object, or None for a line that is not one (torn by a crash)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}", hint="check its permissions") from None
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield None
            continue
        yield value if isinstance(value, dict) else None


def _record(raw: dict[str, Any] | None, kind: type, fields: tuple[str, ...]) -> Any:
    """The record a sidecar line holds (its fields in the first release's order), or None if it holds none."""
    if raw is None or set(raw) != set(fields):
        return None
    try:
        return kind(*(raw[f] for f in fields))
    except (CairnError, TypeError, ValueError):
        return None


def read_sidecar_catalog(directory: Path) -> ImportedCatalog:
    """Every valid record in the sidecar ``directory`` (``artifacts.jsonl``, ``snapshots.jsonl``)."""
    artifacts: list[ArtifactRecord] = []
    snapshots: list[SnapshotRecord] = []
    skipped = 0
    for raw in _lines(directory / "artifacts.jsonl"):
        record = _record(raw, ArtifactRecord, ("hash", "name", "mime", "size", "created"))
        if record is None:
            skipped += 1
        else:
            artifacts.append(record)
    for raw in _lines(directory / "snapshots.jsonl"):
        # The first release called the snapshot's directory "source"; records call it "root".
        fields = ("tree", "source", "created", "files", "bytes", "problems")
        record = _record(raw, SnapshotRecord, fields)
        if record is None:
            skipped += 1
        else:
            snapshots.append(record)
    return ImportedCatalog(tuple(artifacts), tuple(snapshots), skipped)


def import_sidecar_catalog(data_dir: Path, meta: ArtifactMetaStore) -> ImportedCatalog | None:
    """Import ``<data_dir>/catalog`` into ``meta`` and rename it ``catalog.imported``; None when there is none.

    Cheap when there is nothing to import (one ``stat``), so callers run it
    every time they open the project's artifacts.
    """
    directory = Path(data_dir) / SIDECAR
    if not directory.is_dir():
        return None
    found = read_sidecar_catalog(directory)
    meta.add_artifact_records(found.artifacts)
    meta.add_snapshot_records(found.snapshots)
    target = Path(data_dir) / IMPORTED
    n = 1
    while target.exists():  # an earlier import's directory is kept, never overwritten
        n += 1
        target = Path(data_dir) / f"{IMPORTED}.{n}"
    try:
        os.rename(directory, target)
    except FileNotFoundError:
        pass  # another command imported it at the same moment: the records are the same
    except OSError as exc:
        raise StorageError(
            f"imported {directory} but cannot rename it: {exc.strerror}",
            hint=f"rename or remove {directory} yourself; its records are in the store now",
        ) from None
    return found
