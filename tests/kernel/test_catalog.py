"""The first release's sidecar catalog is imported into the store once, losing and duplicating nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from cairn.catalog import IMPORTED, import_sidecar_catalog
from cairn.errors import ValidationError
from cairn.model.artifacts import check_mime, check_name, guess_mime
from cairn.testing.memory import MemoryStore

H = hashlib.sha256(b"x").hexdigest()
T = hashlib.sha256(b"tree").hexdigest()
WHEN = "2026-03-01T10:00:00.000000Z"


def write_sidecar(data_dir: Path) -> Path:
    """What cairn's first artifact release left: two names, one snapshot, a torn line and a bad one."""
    directory = data_dir / "catalog"
    directory.mkdir(parents=True)
    artifacts = [
        {"hash": H, "name": "a.txt", "mime": "text/plain", "size": 1, "created": WHEN},
        {"hash": H, "name": "b ✓.png", "mime": "image/png", "size": 1, "created": "2026-03-01T10:00:01.000000Z"},
        {"hash": "not a hash", "name": "bad", "mime": "text/plain", "size": 1, "created": WHEN},
    ]
    lines = [json.dumps(a) for a in artifacts] + ['{"hash": "torn by a cra']
    (directory / "artifacts.jsonl").write_text("\n".join(lines))
    snapshot = {"tree": T, "source": "/work/src", "created": WHEN, "files": 3, "bytes": 10, "problems": 1}
    (directory / "snapshots.jsonl").write_text(json.dumps(snapshot) + "\n")
    return directory


def test_the_sidecar_is_imported_once_and_renamed(tmp_path: Path) -> None:
    directory = write_sidecar(tmp_path)
    store = MemoryStore()
    found = import_sidecar_catalog(tmp_path, store)
    assert found is not None and found.skipped == 2
    assert [(r.name, r.mime, r.inline, r.created) for r in store.artifact_records()] == [
        ("b ✓.png", "image/png", False, "2026-03-01T10:00:01.000000Z"),
        ("a.txt", "text/plain", False, WHEN),
    ]
    (snap,) = store.snapshot_records()
    assert (snap.tree, snap.root, snap.files, snap.bytes, snap.problems) == (T, "/work/src", 3, 10, 1)
    assert not directory.exists() and (tmp_path / IMPORTED / "artifacts.jsonl").exists()
    assert import_sidecar_catalog(tmp_path, store) is None  # nothing left to import


def test_importing_again_adds_nothing(tmp_path: Path) -> None:
    write_sidecar(tmp_path)
    store = MemoryStore()
    import_sidecar_catalog(tmp_path, store)
    shutil.copytree(tmp_path / IMPORTED, tmp_path / "catalog")  # a crash before the rename, say
    import_sidecar_catalog(tmp_path, store)
    assert len(store.artifact_records()) == 2 and len(store.snapshot_records()) == 1
    assert (tmp_path / f"{IMPORTED}.2").is_dir() and (tmp_path / IMPORTED).is_dir()


@pytest.mark.parametrize("name", ["", " ", "a\nb", "tab\there", "x" * 256])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        check_name(name)


@pytest.mark.parametrize("mime", ["", "text", "text/", "/plain", "text/plain; charset=utf-8", "a b/c"])
def test_bad_media_types_are_refused(mime: str) -> None:
    with pytest.raises(ValidationError, match="media type"):
        check_mime(mime)


def test_media_types_are_guessed_from_names() -> None:
    assert check_mime("Image/PNG") == "image/png"
    assert guess_mime("chart.png") == "image/png"
    assert guess_mime("no-extension") == "application/octet-stream"
