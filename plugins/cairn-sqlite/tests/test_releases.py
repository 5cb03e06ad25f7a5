"""Databases written by earlier releases open, read back unchanged, and take new writes.

``data/cairn-sqlite-0.1.0.db`` was written by cairn-sqlite 0.1.0 (the
single-module store, before the facet split) from ``release_content``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from cairn_sqlite.store import SqliteStore, schema_version
from release_content import MAIN, OTHER_TOKENIZER, SIDE, Content, content

from cairn.model import Priority
from cairn.storage import RefUpdate
from cairn.testing.storage import WORDS

RELEASES = sorted((Path(__file__).parent / "data").glob("cairn-sqlite-*.db"))


def _dump(path: Path) -> list[str]:
    """The schema and every row, as SQL text: what the file holds, independent of the code reading it."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        conn.close()


def _assert_reads_back(store: SqliteStore, data: Content) -> None:
    chain = data.chain
    commits = data.main + data.side
    assert store.get_blobs(chain.blobs) == chain.blobs
    assert store.get_commits(c.hash for c in commits) == {c.hash: c for c in commits}
    assert store.ancestors(data.main[-1].hash) == data.main[::-1]
    assert store.ancestors(data.side[-1].hash) == [*data.side[::-1], *data.main[2::-1]]
    assert store.children(data.main[2].hash) == [data.main[3], data.side[0]]
    assert store.commits_by_time() == sorted(commits, key=lambda c: c.created_at, reverse=True)
    assert store.commits_by_type("tool_io") == [data.main[3]]
    assert store.commits_targeting([data.main[1].hash, data.main[2].hash]) == [data.main[4], data.main[5]]
    assert store.find_commits(data.main[0].hash[:6]) == [data.main[0].hash]
    assert store.list_refs() == dict(sorted(data.refs.items()))
    assert store.get_ref(SIDE) == data.side[-1].hash
    targets = {a.target for a in data.annotations}
    latest = {a.target: a for a in data.annotations}  # written in time order: the last one per target wins
    assert store.latest_annotations(targets) == latest
    assert store.annotation_history(data.main[2].hash) == [a for a in data.annotations if a.target == data.main[2].hash]
    assert store.annotated(Priority.SKIP) == {t: a for t, a in latest.items() if a.priority is Priority.SKIP}
    words = {c.content_hash: c.token_count for c in data.main if c.content_hash}
    assert store.get_token_counts(WORDS, words) == words
    assert store.get_token_counts(OTHER_TOKENIZER, data.other_counts) == data.other_counts
    for run, events in data.runs:
        assert store.get_run(run.run_id) == run
        assert store.run_events(run.run_id) == events
    assert store.list_runs() == sorted((r for r, _ in data.runs), key=lambda r: r.started_at, reverse=True)
    assert store.spend() == data.spend
    assert store.list_threads() == data.threads[::-1]
    assert store.chat_messages() == data.messages[::-1]
    assert store.chat_messages(thread_id="design") == [data.messages[1]]
    assert store.chat_messages(published=True) == [data.messages[1]]
    assert store.check() == []


def test_a_release_fixture_is_present() -> None:
    assert [p.name for p in RELEASES] == ["cairn-sqlite-0.1.0.db"]


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.stem)
def test_opens_and_reads_back_unchanged(release: Path, tmp_path: Path) -> None:
    path = tmp_path / "cairn.db"
    shutil.copyfile(release, path)
    written = _dump(path)
    with SqliteStore(path) as store:
        assert store.stats().details["schema_version"] == schema_version()
        _assert_reads_back(store, content())
    after = _dump(path)
    # Opening changed nothing the release wrote; it only added what later migrations create:
    # tables, indexes, triggers, the FTS5 table (iterdump writes a virtual table through sqlite_master)
    # and the rows FTS5 keeps in its own shadow tables from birth, and (version 5) two columns of
    # commits that stay NULL on every old row.
    merge_columns = ", merge_parent TEXT REFERENCES commits(hash), last_merge TEXT)"
    old_rows = [_without_merge_columns(line, merge_columns) for line in after]
    assert set(written) <= set(old_rows)
    added = [line for line in old_rows if line not in set(written)]
    schema_lines = (
        "CREATE TABLE",
        "CREATE INDEX",
        "CREATE UNIQUE INDEX",
        "CREATE TRIGGER",
        "PRAGMA writable_schema",
        "INSERT INTO sqlite_master(type,name,tbl_name,rootpage,sql)VALUES('table','documents_fts'",
        'INSERT INTO "documents_fts_',
        'INSERT INTO "migrations"',
    )
    assert all(line.startswith(schema_lines) for line in added), added


def _without_merge_columns(line: str, columns: str) -> str:
    """A dump line as the release wrote it: a commit row without its two trailing NULLs, the table without the columns."""
    if line.startswith('INSERT INTO "commits" VALUES(') and line.endswith(",NULL,NULL);"):
        return line[: -len(",NULL,NULL);")] + ");"
    if line.startswith("CREATE TABLE") and line.endswith(columns + ";"):
        return line[: -len(columns + ";")] + ");"
    return line


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.stem)
def test_takes_new_writes(release: Path, tmp_path: Path) -> None:
    path = tmp_path / "cairn.db"
    shutil.copyfile(release, path)
    data = content()
    more = data.chain.append(data.main[-1], "written by today's release")
    with SqliteStore(path) as store:
        store.write(**data.chain.batch(more), refs=[RefUpdate(MAIN, more.hash, data.main[-1].hash)])
    with SqliteStore(path) as store:
        assert store.ancestors(more.hash, limit=2) == [more, data.main[-1]]
        assert store.check() == []


def test_a_new_database_has_the_schema_a_migrated_release_has(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "new.db").close()
    shutil.copyfile(RELEASES[-1], tmp_path / "old.db")
    SqliteStore(tmp_path / "old.db").close()
    assert _schema(tmp_path / "new.db") == _schema(tmp_path / "old.db")
