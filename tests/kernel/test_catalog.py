"""The catalog of named artifacts and snapshots: appends are durable, torn lines are skipped, names are checked."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from cairn.catalog import Catalog, check_mime, check_name, guess_mime
from cairn.errors import ValidationError

H = hashlib.sha256(b"x").hexdigest()


def test_records_come_back_in_order(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_artifact(H, "a.txt", "text/plain", 1)
    catalog.add_artifact(H, "b.png", "image/png", 1)
    catalog.add_snapshot("b" * 64, "/src", 3, 10, 1)
    assert [r.name for r in catalog.artifacts()] == ["a.txt", "b.png"]
    assert [r.name for r in catalog.names_of(H)] == ["a.txt", "b.png"]
    assert [(r.tree, r.files, r.problems) for r in catalog.snapshots()] == [("b" * 64, 3, 1)]


def test_a_torn_last_line_is_skipped_and_never_glued_to(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_artifact(H, "first", "text/plain", 1)
    path = tmp_path / "catalog" / "artifacts.jsonl"
    with open(path, "ab") as handle:
        handle.write(b'{"hash": "torn by a cra')
    assert [r.name for r in catalog.artifacts()] == ["first"]
    catalog.add_artifact(H, "second", "text/plain", 1)
    assert [r.name for r in catalog.artifacts()] == ["first", "second"]


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)

    def add(worker: int) -> None:
        for i in range(25):
            catalog.add_artifact(H, f"w{worker}-{i}", "text/plain", 1)

    threads = [threading.Thread(target=add, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.name for r in catalog.artifacts()}) == 100


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
