"""docs/storage.md says what each backend keeps; the backends' own declarations agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.storage import facets_of

ROOT = Path(__file__).resolve().parents[2]

#: The backend's row in the table (its first cell starts with this) -> where its store class lives.
BACKENDS = {
    "`sqlite`": ("cairn_sqlite.store", "SqliteStore"),
    "`git`": ("cairn_git.store", "GitStore"),
    "`postgres`": ("cairn_postgres.store", "PostgresStore"),
    "`files`": ("cairn_files.store", "FileStore"),
}


def _table() -> tuple[list[str], list[list[str]]]:
    text = (ROOT / "docs" / "storage.md").read_text(encoding="utf-8")
    lines = text[text.index("\n| backend | objects |") + 1 :].split("\n")
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return [cell.strip() for cell in lines[0].strip().strip("|").split("|")], rows


@pytest.mark.parametrize("label", sorted(BACKENDS))
def test_the_table_of_backends_matches_what_each_declares(label: str) -> None:
    module, name = BACKENDS[label]
    store = getattr(pytest.importorskip(module), name)
    header, rows = _table()
    row = next(r for r in rows if r[0].startswith(label))
    documented = {facet for facet, mark in zip(header[1:], row[1:], strict=True) if mark == "✓"}
    assert documented == facets_of(store)


def test_every_backend_in_the_table_is_checked() -> None:
    _, rows = _table()
    assert sorted(r[0].split(" ")[0] for r in rows if not r[0].startswith("`cairn.testing")) == sorted(BACKENDS)
