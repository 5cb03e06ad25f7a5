"""The files of an index directory: crash leftovers are harmless, damage is named, foreign files are refused.

The conformance suite kills real writers; these tests lay out exactly what
such a kill (or outside damage) leaves behind, file by file, for both indexes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cairn_vectors._rows import RowIndex
from cairn_vectors.config import ExactConfig, HNSWConfig
from cairn_vectors.exact import ExactOpener

from cairn.errors import IntegrityError, ValidationError
from cairn.testing.index_suite import IDENTITY, Reference, clustered
from cairn.vector_index import REINDEX_COMMAND, VectorIndexOpener

DIMS = IDENTITY.dimensions


def hnsw_opener() -> VectorIndexOpener:
    pytest.importorskip("usearch", reason="the hnsw index needs the [hnsw] extra")
    from cairn_vectors.hnsw import HNSWOpener

    return HNSWOpener(HNSWConfig())


@pytest.fixture(params=["exact", "hnsw"])
def opener(request: pytest.FixtureRequest) -> VectorIndexOpener:
    return ExactOpener(ExactConfig()) if request.param == "exact" else hnsw_opener()


@pytest.fixture
def built(opener: VectorIndexOpener, tmp_path: Path) -> Iterator[tuple[Path, Reference]]:
    """An index of 300 vectors with a few removed, persisted and closed."""
    path = tmp_path / "index"
    reference = Reference()
    ids = [f"v{i}" for i in range(300)]
    vectors = clustered(300, DIMS, seed=1)
    with opener.open(path, IDENTITY) as index:
        index.add(ids, vectors)
        index.persist()
        index.remove(ids[:10])
    reference.add(ids, vectors)
    reference.remove(ids[:10])
    yield path, reference


def contents(opener: VectorIndexOpener, path: Path) -> tuple[int, list[str]]:
    with opener.open(path, IDENTITY) as index:
        return len(index), [h.id for h in index.search(np.ones(DIMS), 20)]


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def test_bytes_a_killed_append_left_behind_are_ignored_then_cut_off(
    opener: VectorIndexOpener, built: tuple[Path, Reference]
) -> None:
    path, reference = built
    before = contents(opener, path)
    counted = {p.name: p.stat().st_size for p in path.glob("g*.*")}
    for data_file in path.glob("g*.*"):
        with open(data_file, "ab") as handle:
            handle.write(b"\x7f half-written row \x00" * 7)
    (path / "manifest.json.tmp").write_text('{"format": "cairn-vectors", "rows": 99')  # the rename never happened
    (path / "g9.vectors").write_bytes(b"\x00" * 64)  # a compaction killed before its manifest
    (path / "s99.usearch").write_bytes(b"\x00" * 64)
    assert contents(opener, path) == before
    with opener.open(path, IDENTITY) as index:
        index.add(["late"], np.ones((1, DIMS)))
        index.persist()
    names = {p.name for p in path.iterdir()}
    assert not {"manifest.json.tmp", "g9.vectors", "s99.usearch"} & names
    # Appends start where the manifest's counts ended: the garbage was cut off, not kept.
    grown = {p.name: p.stat().st_size for p in path.glob("g*.*")}
    appended = {"ids": len(b"late\n"), "offsets": 8, "removed": 0, "vectors": DIMS * 4}
    assert grown == {name: size + appended[name.split(".")[1]] for name, size in counted.items()}
    with opener.open(path, IDENTITY) as index:
        assert len(index) == len(reference.vectors) + 1 and "late" in index and "v5" not in index
        assert index.search(np.ones(DIMS), 1)[0].id == "late"


def test_a_data_file_shorter_than_its_count_is_damage_named_with_the_reindex_command(
    opener: VectorIndexOpener, built: tuple[Path, Reference]
) -> None:
    path, _ = built
    victim = path / f"g{manifest(path)['generation']}.offsets"
    victim.write_bytes(victim.read_bytes()[:-9])
    with pytest.raises(IntegrityError) as info:
        opener.open(path, IDENTITY)
    assert str(victim) in str(info.value) and REINDEX_COMMAND in (info.value.hint or "")


def test_an_unreadable_manifest_is_damage(opener: VectorIndexOpener, built: tuple[Path, Reference]) -> None:
    path, _ = built
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not a readable index manifest"):
        opener.open(path, IDENTITY)


def test_a_directory_with_other_files_is_not_taken_over(opener: VectorIndexOpener, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValidationError, match=r"notes\.txt"):
        opener.open(tmp_path, IDENTITY)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_an_index_of_the_other_kind_is_refused_by_name(
    built: tuple[Path, Reference], opener: VectorIndexOpener
) -> None:
    path, _ = built
    other = hnsw_opener() if opener.kind == "exact" else ExactOpener()
    with pytest.raises(ValidationError) as info:
        other.open(path, IDENTITY)
    assert f"holds a {opener.kind!r} index, not {other.kind!r}" in str(info.value)
    assert f"index = {opener.kind!r}" in (info.value.hint or "")


def test_another_format_version_is_refused_with_what_to_do(
    opener: VectorIndexOpener, built: tuple[Path, Reference]
) -> None:
    path, _ = built
    data = manifest(path)
    data["version"] = 99
    (path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ValidationError, match="format version 99") as info:
        opener.open(path, IDENTITY)
    assert "upgrade cairn-vectors" in (info.value.hint or "")


def test_compaction_writes_a_new_generation_and_drops_the_old(
    opener: VectorIndexOpener, built: tuple[Path, Reference]
) -> None:
    path, reference = built
    assert manifest(path)["generation"] == 0 and manifest(path)["removed"] == 10
    query = clustered(1, DIMS, seed=5)[0]
    with opener.open(path, IDENTITY) as index:
        gone = [f"v{i}" for i in range(10, 200)]
        index.remove(gone)
        reference.remove(gone)
        index.persist()
        after = manifest(path)
        assert (after["generation"], after["rows"], after["removed"]) == (1, 100, 0)
        assert not list(path.glob("g0.*"))
        assert [h.id for h in index.search(query, 5)] == [i for i, _ in reference.top(query, 5)]
    with opener.open(path, IDENTITY) as index:
        assert len(index) == 100 and "v199" not in index and "v200" in index
        assert {h.id for h in index.search(query, 500)} == set(reference.vectors)


def test_a_reader_keeps_its_view_while_a_writer_compacts(
    opener: VectorIndexOpener, built: tuple[Path, Reference]
) -> None:
    path, reference = built
    query = clustered(1, DIMS, seed=6)[0]
    reader = opener.open(path, IDENTITY)
    expected = [h.id for h in reader.search(query, 5)]
    with opener.open(path, IDENTITY) as writer:
        writer.remove([f"v{i}" for i in range(10, 250)])
        writer.persist()  # compacts: the generation the reader mapped is deleted
    assert [h.id for h in reader.search(query, 5)] == expected
    reader.close()
    assert contents(opener, path)[0] == 50


def test_the_exact_matrix_is_mapped_not_read(tmp_path: Path) -> None:
    path = tmp_path / "index"
    with ExactOpener().open(path, IDENTITY) as index:
        index.add([f"v{i}" for i in range(50)], clustered(50, DIMS, seed=2))
    index = ExactOpener().open(path, IDENTITY)
    assert isinstance(index, RowIndex)
    assert isinstance(index._matrix, np.memmap) and index._matrix.dtype == np.float32  # type: ignore[attr-defined]
    assert index._row_of is None  # the id map is built on first need, never on open
    index.close()
