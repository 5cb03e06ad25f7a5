"""What the conformance suite cannot see: SQLite settings, migrations, errors, plans and plugin wiring."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from cairn_sqlite import schema as schema_module
from cairn_sqlite.config import SqliteConfig
from cairn_sqlite.store import MIGRATIONS, Migration, SqliteStore, open_in_directory, schema_version
from sqlite_utils import Database

from cairn.config import load_config
from cairn.errors import ConfigError, ConflictError, IntegrityError, StorageError, ValidationError
from cairn.model import Annotation, Commit, Priority, sha256_hex
from cairn.plugins import load_plugins
from cairn.storage import RefUpdate
from cairn.testing.storage import Chain, at

MAIN = "refs/heads/main"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cairn.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(db_path) as opened:
        yield opened  # type: ignore[misc]


@pytest.fixture
def chain() -> Chain:
    return Chain()


def _sqlite_plugins() -> object:
    return load_plugins(strict=True, environ={"CAIRN_LOAD_PLUGINS": "sqlite"})


# -- plugin wiring and configuration ------------------------------------------------------


def test_plugin_module_does_not_import_sqlite_utils() -> None:
    code = (
        "import sys, cairn_sqlite.plugin, cairn_sqlite;"
        "heavy = [m for m in ('sqlite_utils', 'cairn_sqlite.store') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_through_the_entry_point(cairn_env: Path) -> None:
    plugins = _sqlite_plugins()
    registration = plugins.storage.get("sqlite")  # type: ignore[attr-defined]
    assert registration.plugin == "sqlite" and registration.config_cls is SqliteConfig
    created = plugins.create("storage", "sqlite")  # type: ignore[attr-defined]
    try:
        assert isinstance(created, SqliteStore)
        assert Path(created.path) == cairn_env / ".cairn" / "cairn.db"
        assert Path(created.path).is_file()
    finally:
        created.close()


def test_config_table_sets_path_and_pragmas(cairn_env: Path) -> None:
    (cairn_env / "cairn.toml").write_text(
        '[storage.sqlite]\npath = "nested/dir/my.db"\nsynchronous = "normal"\nbusy_timeout_ms = 1234\n',
        encoding="utf-8",
    )
    config = load_config(cairn_env)
    created = _sqlite_plugins().create("storage", "sqlite", config)  # type: ignore[attr-defined]
    try:
        assert Path(created.path) == cairn_env / ".cairn" / "nested" / "dir" / "my.db"
        conn = created.db.conn
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    finally:
        created.close()


def test_absolute_and_memory_paths(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "abs.db"
    with SqliteStore.from_config(SqliteConfig(path=str(absolute)), data_dir=tmp_path / "data") as opened:
        assert Path(opened.path) == absolute and absolute.is_file()  # type: ignore[attr-defined]
    assert not (tmp_path / "data").exists()
    with SqliteStore.from_config(SqliteConfig(path=":memory:"), data_dir=tmp_path / "data") as memory:
        chain = Chain()
        (one,) = chain.line(1)
        memory.write(**chain.batch(one), refs=[RefUpdate(MAIN, one.hash, None)])
        assert memory.get_ref(MAIN) == one.hash
        assert memory.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "memory"  # type: ignore[attr-defined]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("table", "key", "needle"),
    [
        ('synchronous = "sometimes"', "synchronous", "'off', 'normal', 'full', 'extra'"),
        ("busy_timeout_ms = -5", "busy_timeout_ms", "milliseconds"),
        ('busy_timeout_ms = "10"', "busy_timeout_ms", "integer"),
        ('path = ""', "path", "file name"),
        ("journal = 1", "journal", "unknown"),
    ],
)
def test_config_errors_name_the_key(cairn_env: Path, table: str, key: str, needle: str) -> None:
    (cairn_env / "cairn.toml").write_text(f"[storage.sqlite]\n{table}\n", encoding="utf-8")
    config = load_config(cairn_env)
    with pytest.raises(ConfigError) as info:
        _sqlite_plugins().create("storage", "sqlite", config)  # type: ignore[attr-defined]
    assert info.value.table == "storage.sqlite"
    # The kernel sets ``key`` only for type errors and unknown keys, not for
    # validator messages; the message names the key either way.
    assert info.value.key in (key, None)
    assert key in str(info.value) and needle in str(info.value)
    assert str(cairn_env / "cairn.toml") in str(info.value)


def _path_problems(cairn_env: Path, path: str) -> list[ConfigError]:
    (cairn_env / "cairn.toml").write_text(f'[cairn]\nstorage = "sqlite"\n\n[storage.sqlite]\npath = "{path}"\n')
    problems = _sqlite_plugins().check_config(load_config(cairn_env))  # type: ignore[attr-defined]
    return [p for p in problems if p.table == "storage.sqlite"]


@pytest.mark.parametrize("path", ["/dev/null", "{dir}"])
def test_validate_reports_a_path_that_is_not_a_regular_file(cairn_env: Path, path: str) -> None:
    path = path.format(dir=cairn_env)
    problems = _path_problems(cairn_env, path)
    assert [(p.key, p.line) for p in problems] == [("path", 5)]
    assert "is not a regular file" in problems[0].problem
    assert str(cairn_env / "cairn.toml") == problems[0].file


def test_validate_reports_a_path_whose_directory_cannot_be_created(cairn_env: Path) -> None:
    (cairn_env / "a-file").write_text("x")
    problems = _path_problems(cairn_env, str(cairn_env / "a-file" / "sub" / "cairn.db"))
    assert [(p.key, p.line) for p in problems] == [("path", 5)] and "cannot be created" in problems[0].problem


def test_validate_reports_a_file_that_is_not_a_database(cairn_env: Path) -> None:
    (cairn_env / "notes.txt").write_text("not a database")
    problems = _path_problems(cairn_env, str(cairn_env / "notes.txt"))
    assert [p.key for p in problems] == ["path"] and "is not an SQLite database" in problems[0].problem


def test_opening_a_path_that_is_not_a_regular_file_touches_nothing(tmp_path: Path) -> None:
    # A directory here; /dev/null is the same case, where SQLite would leave a journal in /dev.
    with pytest.raises(StorageError, match="is not a regular file"):
        SqliteStore.from_config(SqliteConfig(path=str(tmp_path)), data_dir=tmp_path / "data")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["cairn.db", "new/dir/cairn.db", ":memory:", "{existing}"])
def test_validate_accepts_usable_paths_and_creates_nothing(cairn_env: Path, path: str) -> None:
    existing = cairn_env / "existing.db"
    existing.write_bytes(b"")
    assert _path_problems(cairn_env, path.format(existing=existing)) == []
    assert sorted(p.name for p in cairn_env.iterdir()) == ["cairn.toml", "existing.db"]


def test_constructor_validates_its_arguments(db_path: Path) -> None:
    with pytest.raises(ValidationError, match="synchronous"):
        SqliteStore(db_path, synchronous="FULL")
    with pytest.raises(ValidationError, match="busy_timeout_ms"):
        SqliteStore(db_path, busy_timeout_ms=-1)
    assert not db_path.exists()


# -- connection settings and schema -------------------------------------------------------


def test_pragmas_for_durable_concurrent_writes(store: SqliteStore) -> None:
    conn = store.db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    assert conn.isolation_level is None  # autocommit: the store issues BEGIN IMMEDIATE itself


def test_schema_and_indexes(store: SqliteStore) -> None:
    assert set(store.db.table_names()) >= {"migrations", "blobs", "commits", "refs", "annotations", "token_counts"}
    commit_indexes = {tuple(i.columns) for i in store.db.table("commits").indexes}
    assert {
        ("parent", "created_at"),
        ("content_type", "created_at"),
        ("created_at",),
        ("target",),
        ("content_hash",),
    } <= commit_indexes
    annotation_indexes = {tuple(i.columns) for i in store.db.table("annotations").indexes}
    assert {("id",), ("target", "created_at", "seq"), ("priority", "target")} <= annotation_indexes
    fks = {(fk.column, fk.other_table) for fk in store.db.table("commits").foreign_keys}
    assert fks == {("parent", "commits"), ("content_hash", "blobs"), ("target", "commits"), ("merge_parent", "commits")}


def test_migrations_are_recorded(store: SqliteStore) -> None:
    rows = store.db.execute("SELECT version, name, applied_at FROM migrations ORDER BY version").fetchall()
    assert [(v, n) for v, n, _ in rows] == [(m.version, m.name) for m in MIGRATIONS]
    assert all(applied.endswith("Z") for _, _, applied in rows)
    assert store.stats().details["schema_version"] == schema_version() == MIGRATIONS[-1].version


def test_newer_database_is_refused(db_path: Path) -> None:
    with SqliteStore(db_path) as opened:
        opened.db.execute(  # type: ignore[attr-defined]
            "INSERT INTO migrations (version, name, applied_at) VALUES (?, 'from the future', ?)",
            (schema_version() + 1, at(0)),
        )
    with pytest.raises(StorageError) as info:
        SqliteStore(db_path)
    assert str(db_path) in str(info.value)
    assert "upgrade cairn-sqlite" in str(info.value)


def test_older_database_is_migrated(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = Chain()
    (one,) = chain.line(1)
    # A database written by a release that knew only the first step ...
    monkeypatch.setattr(schema_module, "MIGRATIONS", MIGRATIONS[:1])
    with SqliteStore(db_path) as opened:
        # Only a ref: today's commit rows have columns a later step adds (test_releases covers old rows).
        opened.set_ref(MAIN, one.hash, expected=None)
        assert "runs" not in opened.db.table_names()  # type: ignore[attr-defined]
    monkeypatch.undo()

    def add_more(db: Database) -> None:
        db.table("later_table").create({"id": str, "started_at": str}, pk="id")

    # ... opened by this release, plus one step more: every missing step is applied.
    later = Migration(schema_version() + 1, "later", add_more)
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*MIGRATIONS, later))
    with SqliteStore(db_path) as migrated:
        assert {"runs", "run_events", "spend", "later_table"} <= set(migrated.db.table_names())  # type: ignore[attr-defined]
        assert migrated.stats().details["schema_version"] == later.version
        assert migrated.get_ref(MAIN) == one.hash
    with SqliteStore(db_path) as again:  # nothing left to apply
        versions = [v for (v,) in again.db.execute("SELECT version FROM migrations")]  # type: ignore[attr-defined]
        assert versions == list(range(1, later.version + 1))


def test_failed_migration_changes_nothing(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SqliteStore(db_path).close()

    def half_done(db: Database) -> None:
        db.table("half").create({"id": int}, pk="id")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(schema_module, "MIGRATIONS", (*MIGRATIONS, Migration(schema_version() + 1, "half", half_done)))
    with pytest.raises(RuntimeError, match="migration bug"):
        SqliteStore(db_path)
    monkeypatch.undo()
    with SqliteStore(db_path) as opened:
        assert "half" not in opened.db.table_names()  # type: ignore[attr-defined]
        assert opened.stats().details["schema_version"] == schema_version()


# -- errors -------------------------------------------------------------------------------------


def test_a_file_that_is_not_a_database(db_path: Path) -> None:
    garbage = b"these are not the pages you are looking for\n" * 200
    db_path.write_bytes(garbage)
    with pytest.raises(StorageError) as info:
        SqliteStore(db_path)
    assert str(db_path) in str(info.value) and "not an SQLite database" in str(info.value)
    assert info.value.hint and "move this file away" in info.value.hint
    assert db_path.read_bytes() == garbage
    assert sorted(p.name for p in db_path.parent.iterdir()) == [db_path.name]  # no -wal / -shm left behind


def test_an_sqlite_database_of_something_else(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(StorageError, match="not a cairn store"):
        SqliteStore(db_path)
    assert db_path.read_bytes() == before, "a refused database was modified (journal mode, tables)"
    assert sorted(p.name for p in db_path.parent.iterdir()) == [db_path.name]


def test_a_damaged_database_raises_storage_errors_only(db_path: Path, chain: Chain) -> None:
    with SqliteStore(db_path) as opened:
        line = chain.line(300)
        opened.write(**chain.batch(*line), refs=[RefUpdate(MAIN, line[-1].hash, None)])
    data = bytearray(db_path.read_bytes())
    assert len(data) > 4096 * 8
    data[4096 * 2 : 4096 * 6] = b"\xa5" * (4096 * 4)  # wreck pages 3-6; the header survives
    db_path.write_bytes(bytes(data))
    try:
        damaged = SqliteStore(db_path)
    except StorageError as exc:
        assert str(db_path) in str(exc)
        return
    with damaged:
        problems = damaged.check()  # reports, does not raise
        assert problems, "check() found nothing wrong with wrecked pages"
        assert any("corrupt" in p.message or "integrity" in p.message for p in problems)
        for call in (damaged.stats, lambda: damaged.ancestors(line[-1].hash), damaged.commits_by_time, damaged.gc):
            try:
                call()
            except StorageError as exc:  # typed, with the path: never a bare sqlite3 error
                assert str(db_path) in str(exc)


def test_locked_beyond_the_busy_timeout(db_path: Path, chain: Chain) -> None:
    (one,) = chain.line(1)
    with SqliteStore(db_path, busy_timeout_ms=50) as opened:
        opened.write(**chain.batch(one))
        holder = sqlite3.connect(db_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError) as info:
                opened.set_ref(MAIN, one.hash, expected=None)
            assert "locked" in str(info.value) and str(db_path) in str(info.value)
            assert info.value.hint and "busy_timeout_ms" in info.value.hint
            assert opened.get_commits([one.hash]) == {one.hash: one}  # readers are not blocked (WAL)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        opened.set_ref(MAIN, one.hash, expected=None)
        assert opened.get_ref(MAIN) == one.hash


def test_closed_store(db_path: Path) -> None:
    opened = SqliteStore(db_path)
    with opened:
        pass
    with pytest.raises(StorageError, match="closed"):
        opened.get_ref(MAIN)
    opened.close()  # idempotent
    assert "closed" in repr(opened)


def test_write_verifies_blob_hashes_and_check_catches_forged_commits(store: SqliteStore, chain: Chain) -> None:
    one, two = chain.line(2)
    store.write(**chain.batch(one))
    with pytest.raises(IntegrityError, match="do not match its hash"):
        store.write(blobs={sha256_hex(b"a"): b"b"})
    # Commit hashes are trusted on write (the kernel computes them, import verifies
    # them); a forged one written behind the kernel's back is caught by check().
    forged = attrs.evolve(two, message="rewritten after hashing")
    store.write(**chain.batch(forged), refs=[RefUpdate(MAIN, two.hash, None)])
    assert [p.kind for p in store.check()] == ["commit_hash"]


def test_write_refuses_two_updates_of_one_ref(store: SqliteStore, chain: Chain) -> None:
    (one,) = chain.line(1)
    store.write(**chain.batch(one))
    with pytest.raises(ValidationError, match="twice"):
        store.write(refs=[RefUpdate(MAIN, one.hash, None), RefUpdate(MAIN, None, one.hash)])
    assert store.list_refs() == {}


def test_update_refs_is_one_transaction(store: SqliteStore, chain: Chain) -> None:
    one, two = chain.line(2)
    store.write(**chain.batch(one, two), refs=[RefUpdate(MAIN, one.hash, None)])
    with pytest.raises(ConflictError) as info:  # the second update fails: the first is rolled back with it
        store.update_refs([RefUpdate("refs/heads/a", one.hash, None), RefUpdate(MAIN, two.hash, two.hash)])
    assert (info.value.ref, info.value.actual) == (MAIN, one.hash)
    assert store.list_refs() == {MAIN: one.hash}
    with pytest.raises(ValidationError, match="twice"):
        store.update_refs([RefUpdate(MAIN, two.hash, one.hash), RefUpdate(MAIN, None, two.hash)])
    store.update_refs([])
    store.update_refs([RefUpdate("refs/heads/a", one.hash, None), RefUpdate(MAIN, two.hash, one.hash)])
    assert store.list_refs() == {"refs/heads/a": one.hash, MAIN: two.hash}
    store.set_ref(MAIN, one.hash, expected=two.hash)
    store.delete_ref("refs/heads/a", expected=one.hash)
    assert store.list_refs() == {MAIN: one.hash}


def test_annotating_a_missing_commit_carries_the_hash(store: SqliteStore) -> None:
    missing = sha256_hex(b"missing")
    with pytest.raises(IntegrityError) as info:
        store.add_annotations([Annotation(missing, Priority.SKIP, "x", at(1))])
    assert info.value.missing == missing  # type: ignore[attr-defined]


# -- queries: one statement each, indexed -------------------------------------------------------


@pytest.fixture
def statements(store: SqliteStore) -> Iterator[list[str]]:
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    yield seen
    store.db.conn.set_trace_callback(None)


def _populated(store: SqliteStore, chain: Chain) -> list[Commit]:
    line = chain.line(30)
    edit = chain.edit(line[-1], line[3], "edit")
    store.write(**chain.batch(*line, edit), refs=[RefUpdate(MAIN, edit.hash, None)])
    store.add_annotations([Annotation(c.hash, Priority.PINNED, "p", at(i)) for i, c in enumerate(line[:10])])
    store.put_token_counts("approx", {c.content_hash: 1 for c in line})  # type: ignore[misc]
    return [*line, edit]


def test_batch_reads_are_one_statement_without_a_variable_limit(
    store: SqliteStore, chain: Chain, statements: list[str]
) -> None:
    commits = _populated(store, chain)
    many = [sha256_hex(str(i).encode()) for i in range(40_000)] + [c.hash for c in commits]
    blobs = [sha256_hex(str(i).encode()) for i in range(40_000)] + [c.content_hash for c in commits if c.content_hash]
    calls = {
        "get_commits": lambda: store.get_commits(many),
        "get_blobs": lambda: store.get_blobs(blobs),
        "latest_annotations": lambda: store.latest_annotations(many, as_of=at(5)),
        "get_token_counts": lambda: store.get_token_counts("approx", blobs),
        "commits_targeting": lambda: store.commits_targeting(many),
        "ancestors": lambda: store.ancestors(commits[-1].hash),
        "annotated": lambda: store.annotated(Priority.PINNED, as_of=at(5)),
    }
    for name, call in calls.items():
        statements.clear()
        result = call()
        assert result, name
        assert len(statements) == 1, f"{name} ran {len(statements)} statements"
    assert len(store.get_commits(many)) == len(commits)
    assert len(store.ancestors(commits[-1].hash)) == 31


def test_queries_use_indexes(store: SqliteStore, chain: Chain, statements: list[str]) -> None:
    commits = _populated(store, chain)
    statements.clear()
    head = commits[-1]
    store.get_commits([head.hash])
    store.get_blobs([head.content_hash])  # type: ignore[list-item]
    store.ancestors(head.hash, limit=5)
    store.children(commits[2].hash)
    store.commits_by_type("dialogue", since=at(3), until=at(20), limit=3)
    store.commits_by_type("dialogue")
    store.commits_by_time(since=at(3), limit=3)
    store.commits_by_time(until=at(10))
    store.commits_targeting([commits[3].hash])
    store.find_commits(head.hash[:5])
    store.get_ref(MAIN)
    store.list_refs("refs/heads/")
    store.latest_annotations([c.hash for c in commits], as_of=at(5))
    store.latest_annotations([c.hash for c in commits])
    store.annotation_history(commits[0].hash)
    store.annotated(Priority.PINNED, as_of=at(4))
    store.annotated(Priority.SKIP)
    store.get_token_counts("approx", [head.content_hash])  # type: ignore[list-item]
    child = chain.append(head, "one more")
    store.write(**chain.batch(child), refs=[RefUpdate(MAIN, child.hash, head.hash)])
    store.add_annotations([Annotation(child.hash, Priority.SKIP, "s", at(99))])
    store.put_token_counts("approx", {child.content_hash: 3})  # type: ignore[dict-item]
    queries = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH", "INSERT", "DELETE"))]
    assert len(queries) > 20
    conn = sqlite3.connect(store.path)
    try:
        for sql in queries:
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            # Scanning a json_each argument, a CTE or a materialized subquery is fine; a table is not.
            full_scans = [
                step
                for step in plan
                if step.startswith("SCAN ")
                and " INDEX " not in step
                and "VIRTUAL TABLE" not in step
                and step not in ("SCAN t", "SCAN chain", "SCAN CONSTANT ROW")
            ]
            assert not full_scans, f"{sql.strip()[:120]} scans: {full_scans}"
    finally:
        conn.close()


# -- check() beyond the suite ---------------------------------------------------------------------


def test_check_finds_tampering(store: SqliteStore, chain: Chain) -> None:
    line = chain.line(6)
    store.write(**chain.batch(*line), refs=[RefUpdate(MAIN, line[-1].hash, None)])
    assert store.check() == []
    db = store.db
    db.execute("UPDATE commits SET message = 'rewritten' WHERE hash = ?", (line[1].hash,))
    db.execute("UPDATE commits SET depth = 9 WHERE hash = ?", (line[2].hash,))
    db.execute("UPDATE commits SET skip = ? WHERE hash = ?", (line[0].hash, line[5].hash))
    db.execute("UPDATE commits SET content_type = 'artifact' WHERE hash = ?", (line[4].hash,))
    ghost = sha256_hex(b"ghost")
    store.set_ref("refs/heads/ghost", ghost, expected=None)
    db.conn.execute("PRAGMA foreign_keys = OFF")
    db.execute("DELETE FROM commits WHERE hash = ?", (line[3].hash,))
    db.conn.execute("PRAGMA foreign_keys = ON")
    found = {(p.kind, p.object) for p in store.check()}
    assert ("commit_hash", line[1].hash) in found
    assert ("derived", line[2].hash) in found  # depth
    assert ("derived", line[4].hash) in found  # content type
    assert ("missing_parent", line[4].hash) in found
    assert ("dangling_ref", "refs/heads/ghost") in found
    assert any(kind == "other" and obj.startswith("commits:") for kind, obj in found)  # foreign_key_check


def test_check_verifies_skip_pointers(store: SqliteStore, chain: Chain) -> None:
    line = chain.line(9)
    store.write(**chain.batch(*line))
    assert store.check() == []
    store.db.execute("UPDATE commits SET skip = ? WHERE hash = ?", (line[6].hash, line[7].hash))
    problems = store.check()
    assert [(p.kind, p.object) for p in problems] == [("derived", line[7].hash)]
    assert "skip pointer" in problems[0].message


# -- concurrency inside one process and scale ---------------------------------------------------


def test_threads_share_one_store(store: SqliteStore) -> None:
    errors: list[BaseException] = []
    chain_lock = threading.Lock()
    chain = Chain()

    def writer(worker: int) -> None:
        try:
            for i in range(25):
                while True:
                    head = store.get_ref(MAIN)
                    with chain_lock:
                        parent = chain.commits.get(head) if head else None
                        commit = chain.append(parent, f"thread {worker} item {i}")
                    try:
                        store.write(**chain.batch(commit), refs=[RefUpdate(MAIN, commit.hash, head)])
                        break
                    except ConflictError:
                        continue
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    head = store.get_ref(MAIN)
    assert head is not None and len(store.ancestors(head)) == 100


def test_long_history(store: SqliteStore, chain: Chain) -> None:
    line = chain.line(3000)
    store.write(**chain.batch(*line), refs=[RefUpdate(MAIN, line[-1].hash, None)])
    history = store.ancestors(line[-1].hash)
    assert len(history) == 3000 and history[-1] == line[0]
    assert [c.hash for c in store.ancestors(line[-1].hash, limit=2)] == [line[-1].hash, line[-2].hash]
    store.delete_ref(MAIN, expected=line[-1].hash)
    store.set_ref(MAIN, line[999].hash, expected=None)
    assert store.gc().commits_removed == 2000
    assert store.stats().commits == 1000 and store.check() == []


# -- smaller contracts ------------------------------------------------------------------------------


def test_unknown_start_and_odd_prefixes(store: SqliteStore, chain: Chain) -> None:
    (one,) = chain.line(1)
    store.write(**chain.batch(one))
    assert store.ancestors(sha256_hex(b"unknown")) == []
    assert store.find_commits(one.hash[:8].upper()) == [one.hash]
    assert store.find_commits("xyz") == [] and store.find_commits("%") == []
    assert store.find_commits(one.hash[:4], limit=0) == []


def test_token_counts_validated(store: SqliteStore) -> None:
    with pytest.raises(ValidationError):
        store.put_token_counts("approx", {sha256_hex(b"x"): -1})
    with pytest.raises(ValidationError):
        store.put_token_counts("approx", {sha256_hex(b"x"): True})  # type: ignore[dict-item]
    assert store.get_token_counts("approx", [sha256_hex(b"x")]) == {}


def test_stats_details(store: SqliteStore) -> None:
    details = store.stats().details
    assert details["path"] == store.path
    assert details["backend"] == "sqlite"
    assert details["page_size"] * details["pages"] == store.stats().bytes


def test_open_in_directory(tmp_path: Path) -> None:
    with open_in_directory(tmp_path) as opened:
        assert Path(opened.path) == tmp_path / "cairn.db"  # type: ignore[attr-defined]
