"""The artifact-store conformance suite: every ``cairn.artifacts.ArtifactStore`` runs it unchanged.

Subclass ``ArtifactStoreConformance`` in a store's tests and provide two
fixtures::

    from cairn.testing.artifact_suite import ArtifactStoreConformance

    class TestMyStore(ArtifactStoreConformance):
        @pytest.fixture
        def artifact_store_opener(self):
            return my_store.open_in_directory   # opener(directory: pathlib.Path) -> ArtifactStore

        @pytest.fixture
        def tamper(self):
            return overwrite_object              # tamper(store, hash, data: bytes) -> None

The opener must be picklable and importable by a freshly spawned process
(the concurrency tests open the same store from several processes): a
module-level function of your package, or an instance of a module-level
class. Each test passes it a fresh directory; a store that does not live on
disk derives an isolated namespace from it (cairn-s3 uses it as a prefix).
``tamper`` overwrites an object's bytes behind the store's back, as bit rot
or a careless tool would, to prove that reads and ``verify`` notice.

Class attributes a store may override: ``large_size`` (bytes in the
multi-megabyte round trip; above a multipart threshold for remote stores),
``stream_memory_limit`` (how much Python memory a streamed put and read of
``bounded_size`` bytes may use at peak; None skips that test, for a store
that keeps objects in memory), ``persistent`` (False for a store that lives
in one process and keeps nothing once closed: the multi-process and reopen
tests are skipped).
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn.artifacts import ArtifactInfo, ArtifactStore
from cairn.errors import IntegrityError, NotFoundError, ValidationError
from cairn.testing.storage import run_workers

__all__ = [
    "ArtifactStoreConformance",
    "ArtifactStoreOpener",
    "PatternStream",
    "SourceBroke",
    "Tamper",
    "pattern_digest",
]

ArtifactStoreOpener = Callable[[Path], ArtifactStore]
Tamper = Callable[[ArtifactStore, str, bytes], None]

MiB = 1 << 20
_BLOCK_PERIOD = MiB + 7  # odd, so the pattern does not line up with chunk sizes


class PatternStream(io.RawIOBase):
    """``size`` deterministic pseudo-random bytes from ``seed``, generated as read: memory is one block.

    ``fail_after`` raises ``SourceBroke`` once that many bytes were handed out;
    ``pause_after`` calls ``on_pause()`` once at that point (a spawned worker
    uses it to say "I am mid-put" and then wait to be killed).
    """

    def __init__(
        self,
        size: int,
        seed: int = 0,
        *,
        fail_after: int | None = None,
        pause_after: int | None = None,
        on_pause: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.size = size
        self.position = 0
        self._block = random.Random(seed).randbytes(_BLOCK_PERIOD)
        self._fail_after = fail_after
        self._pause_after = pause_after
        self._on_pause = on_pause

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._fail_after is not None and self.position >= self._fail_after:
            raise SourceBroke(f"the source broke after {self.position} bytes")
        if self._pause_after is not None and self.position >= self._pause_after and self._on_pause:
            pause, self._on_pause = self._on_pause, None
            pause()
        want = min(len(view), self.size - self.position)
        if self._fail_after is not None:
            want = min(want, self._fail_after - self.position)
        written = 0
        while written < want:
            offset = (self.position + written) % _BLOCK_PERIOD
            take = min(want - written, _BLOCK_PERIOD - offset)
            view[written : written + take] = self._block[offset : offset + take]
            written += take
        self.position += written
        return written


class SourceBroke(Exception):
    """Raised by a ``PatternStream`` told to fail: a put must pass it on and keep nothing."""


def pattern_digest(size: int, seed: int = 0) -> str:
    """The SHA-256 hex of ``PatternStream(size, seed)``."""
    digest = hashlib.sha256()
    stream = PatternStream(size, seed)
    buffer = bytearray(MiB)
    while count := stream.readinto(buffer):
        digest.update(memoryview(buffer)[:count])
    return digest.hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_all(store: ArtifactStore, digest: str) -> bytes:
    with store.open(digest) as stream:
        return stream.read()


def _stream_digest(store: ArtifactStore, digest: str) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with store.open(digest) as stream:
        while chunk := stream.read(MiB):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


#: Names that are not SHA-256 hex digests; some try to climb out of the store.
BAD_HASHES: list[Any] = [
    "",
    "../../victim",
    "../" + "a" * 61,
    "A" * 64,
    "g" * 64,
    "a" * 63,
    "a" * 65,
    "ab/" + "c" * 61,
    "a" * 64 + "\n",
    "/" + "a" * 63,
    None,
    12,
]


# -- workers for the multi-process tests (module level: spawned processes import them) ----------


def _put_worker(
    opener: ArtifactStoreOpener, directory: str, worker: int, shared: int, barrier: Any, results: Any
) -> None:
    hashes: list[str] = []
    try:
        store = opener(Path(directory))
        try:
            barrier.wait(timeout=60)
            for seed in range(shared):  # the same objects from every worker
                hashes.append(store.put(PatternStream(256 * 1024 + seed, seed)).hash)
            for extra in range(2):  # and some only this worker has
                seed = 1000 + worker * 10 + extra
                hashes.append(store.put(PatternStream(64 * 1024 + seed, seed)).hash)
        finally:
            store.close()
        results.put((worker, hashes, ""))
    except BaseException as exc:  # report, never hang the parent
        results.put((worker, hashes, f"{type(exc).__name__}: {exc}"))


def _interrupted_worker(opener: ArtifactStoreOpener, directory: str, size: int, paused: Any) -> None:
    store = opener(Path(directory))

    def pause() -> None:
        paused.set()
        time.sleep(3600)  # killed here, mid-put

    store.put(PatternStream(size, 7, pause_after=size // 2, on_pause=pause))


class ArtifactStoreConformance:
    """The contract of ``cairn.artifacts.ArtifactStore`` as tests. Subclass and provide the two fixtures."""

    #: Bytes in the multi-megabyte round trip.
    large_size: int = 12 * MiB + 123
    #: Bytes streamed through put and open in the bounded-memory test, and the peak Python memory allowed.
    bounded_size: int = 64 * MiB
    stream_memory_limit: int | None = 24 * MiB
    #: False for a store that lives in one process and keeps nothing once closed.
    persistent: bool = True

    def _needs_persistence(self) -> None:
        if not self.persistent:
            pytest.skip("the store keeps nothing once closed (persistent = False)")

    # -- fixtures ----------------------------------------------------------------------------

    @pytest.fixture
    def artifact_store_opener(self) -> ArtifactStoreOpener:
        raise NotImplementedError("provide an artifact_store_opener fixture")

    @pytest.fixture
    def tamper(self) -> Tamper:
        raise NotImplementedError("provide a tamper fixture")

    @pytest.fixture
    def store_dir(self, tmp_path: Path) -> Path:
        directory = tmp_path / "store"
        directory.mkdir()
        return directory

    @pytest.fixture
    def store(self, artifact_store_opener: ArtifactStoreOpener, store_dir: Path) -> Iterator[ArtifactStore]:
        opened = artifact_store_opener(store_dir)
        try:
            yield opened
        finally:
            opened.close()

    # -- round trips -------------------------------------------------------------------------

    def test_empty_stream_round_trips(self, store: ArtifactStore) -> None:
        info = store.put(io.BytesIO(b""))
        assert (info.hash, info.size) == (_sha(b""), 0)
        assert _read_all(store, info.hash) == b""
        assert store.stat(info.hash).size == 0

    def test_small_bytes_round_trip_from_stream_and_path(self, store: ArtifactStore, tmp_path: Path) -> None:
        data = b"a report\n" * 100
        from_stream = store.put(io.BytesIO(data))
        source = tmp_path / "report.txt"
        source.write_bytes(data)
        from_path = store.put(source)
        from_str = store.put(str(source))
        assert from_stream.hash == from_path.hash == from_str.hash == _sha(data)
        assert from_stream.size == len(data)
        assert _read_all(store, from_stream.hash) == data
        assert isinstance(from_stream, ArtifactInfo)

    def test_multi_megabyte_stream_round_trips(self, store: ArtifactStore) -> None:
        expected = pattern_digest(self.large_size, 3)
        info = store.put(PatternStream(self.large_size, 3))
        assert (info.hash, info.size) == (expected, self.large_size)
        assert _stream_digest(store, info.hash) == (expected, self.large_size)
        assert store.verify(info.hash).size == self.large_size

    def test_put_and_read_stream_in_bounded_memory(self, store: ArtifactStore) -> None:
        if self.stream_memory_limit is None:
            pytest.skip("the store keeps objects in memory (stream_memory_limit = None)")
        tracemalloc.start()
        try:
            info = store.put(PatternStream(self.bounded_size, 5))
            _, put_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            digest, size = _stream_digest(store, info.hash)
            _, read_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (digest, size) == (info.hash, self.bounded_size)
        assert put_peak < self.stream_memory_limit, f"put used {put_peak / MiB:.1f} MiB at peak"
        assert read_peak < self.stream_memory_limit, f"reading used {read_peak / MiB:.1f} MiB at peak"

    def test_property_any_bytes_round_trip(self, store: ArtifactStore) -> None:
        pytest.importorskip("hypothesis", reason="install cairn[test] to run the property tests")
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(st.binary(max_size=4096))
        def round_trip(data: bytes) -> None:
            info = store.put(io.BytesIO(data))
            assert (info.hash, info.size) == (_sha(data), len(data))
            assert store.has(info.hash)
            assert _read_all(store, info.hash) == data

        round_trip()

    def test_put_of_a_missing_file_or_a_directory_is_refused(self, store: ArtifactStore, tmp_path: Path) -> None:
        with pytest.raises(NotFoundError, match="nope.bin"):
            store.put(tmp_path / "nope.bin")
        with pytest.raises(ValidationError, match="is a directory"):
            store.put(tmp_path)
        assert list(store.list()) == []

    # -- dedup, stat, has, list ------------------------------------------------------------------

    def test_the_same_bytes_are_stored_once(self, store: ArtifactStore) -> None:
        infos = [store.put(io.BytesIO(b"same bytes")) for _ in range(3)]
        assert len({i.hash for i in infos}) == 1
        assert [i.hash for i in store.list()] == [infos[0].hash]

    def test_stat_and_has(self, store: ArtifactStore) -> None:
        info = store.put(io.BytesIO(b"x" * 1000))
        stat = store.stat(info.hash)
        assert (stat.hash, stat.size) == (info.hash, 1000)
        assert stat.created is None or stat.created.endswith("Z")
        assert store.has(info.hash)
        assert not store.has(_sha(b"never stored"))

    def test_list_is_lazy_sorted_filterable_and_pageable(self, store: ArtifactStore) -> None:
        hashes = sorted(store.put(io.BytesIO(f"object {i}".encode())).hash for i in range(24))
        listing = store.list()
        assert iter(listing) is listing, "list() must return an iterator, not build a list"
        assert [i.hash for i in listing] == hashes
        first = hashes[0][0]
        assert [i.hash for i in store.list(prefix=first)] == [h for h in hashes if h.startswith(first)]
        assert [i.hash for i in store.list(prefix=hashes[5])] == [hashes[5]]
        # Paging: resume after the last hash seen until nothing is left.
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = []
            for info in store.list(after=cursor):
                page.append(info.hash)
                if len(page) == 5:
                    break
            if not page:
                break
            seen.extend(page)
            cursor = page[-1]
        assert seen == hashes
        sizes = {i.hash: i.size for i in store.list()}
        assert all(sizes[h] == store.stat(h).size for h in hashes)

    # -- missing and corrupt objects ------------------------------------------------------------------

    def test_a_missing_object_is_not_found_naming_it(self, store: ArtifactStore) -> None:
        missing = _sha(b"never stored")
        for call in (store.open, store.stat, store.verify):
            with pytest.raises(NotFoundError, match=missing):
                call(missing)
        assert store.delete(missing) is False
        assert store.has(missing) is False

    def test_a_tampered_object_is_an_integrity_error_naming_it(self, store: ArtifactStore, tamper: Tamper) -> None:
        data = b"the original report\n" * 50
        info = store.put(io.BytesIO(data))
        tamper(store, info.hash, data.replace(b"original", b"modified"))  # same length, other bytes
        with pytest.raises(IntegrityError, match=info.hash):
            _read_all(store, info.hash)
        with pytest.raises(IntegrityError, match=info.hash):
            store.verify(info.hash)

    def test_a_truncated_or_grown_object_is_an_integrity_error(self, store: ArtifactStore, tamper: Tamper) -> None:
        short = store.put(io.BytesIO(b"0123456789" * 10))
        tamper(store, short.hash, b"0123456789")
        with pytest.raises(IntegrityError, match=short.hash):
            store.verify(short.hash)
        grown = store.put(io.BytesIO(b"abc" * 10))
        tamper(store, grown.hash, b"abc" * 11)
        with pytest.raises(IntegrityError, match=grown.hash):
            _read_all(store, grown.hash)

    def test_a_tampered_large_object_fails_by_the_end_of_the_stream(self, store: ArtifactStore, tamper: Tamper) -> None:
        size = 3 * MiB
        data = bytearray(PatternStream(size, 11).read())
        info = store.put(io.BytesIO(bytes(data)))
        data[size // 2] ^= 0xFF  # one bit rotten in the middle
        tamper(store, info.hash, bytes(data))
        with pytest.raises(IntegrityError, match=info.hash):
            _stream_digest(store, info.hash)
        with pytest.raises(IntegrityError, match=info.hash):
            store.verify(info.hash)

    # -- copy_to --------------------------------------------------------------------------------------

    @pytest.mark.parametrize("size", [1000, 6 * MiB + 17], ids=["small", "large"])
    def test_copy_to_writes_the_verified_bytes(self, store: ArtifactStore, tmp_path: Path, size: int) -> None:
        info = store.put(PatternStream(size, 21))
        path = tmp_path / "copy.bin"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            assert store.copy_to(info.hash, fd) == size
        finally:
            os.close(fd)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == info.hash

    @pytest.mark.parametrize("size", [1000, 6 * MiB + 17], ids=["small", "large"])
    def test_copy_to_refuses_a_tampered_object(
        self, store: ArtifactStore, tamper: Tamper, tmp_path: Path, size: int
    ) -> None:
        data = bytearray(PatternStream(size, 22).read())
        info = store.put(io.BytesIO(bytes(data)))
        data[-1] ^= 0x01
        tamper(store, info.hash, bytes(data))
        fd = os.open(tmp_path / "copy.bin", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with pytest.raises(IntegrityError, match=info.hash):
                store.copy_to(info.hash, fd)
        finally:
            os.close(fd)
        sink = os.open(os.devnull, os.O_WRONLY)
        try:
            with pytest.raises(NotFoundError):
                store.copy_to(_sha(b"never stored"), sink)
        finally:
            os.close(sink)

    # -- delete ---------------------------------------------------------------------------------------

    def test_delete_removes_one_object_only(self, store: ArtifactStore) -> None:
        keep = store.put(io.BytesIO(b"keep me"))
        drop = store.put(io.BytesIO(b"drop me"))
        assert store.delete(drop.hash) is True
        assert not store.has(drop.hash)
        assert store.delete(drop.hash) is False
        with pytest.raises(NotFoundError):
            store.open(drop.hash)
        assert [i.hash for i in store.list()] == [keep.hash]
        assert _read_all(store, keep.hash) == b"keep me"
        assert store.put(io.BytesIO(b"drop me")).hash == drop.hash  # and it can come back
        assert _read_all(store, drop.hash) == b"drop me"

    # -- bad input --------------------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", BAD_HASHES, ids=repr)
    def test_bad_hashes_are_refused_before_they_reach_a_path(
        self, store: ArtifactStore, store_dir: Path, bad: Any
    ) -> None:
        victim = store_dir.parent / "victim"
        victim.write_bytes(b"not the store's")
        for call in (store.open, store.stat, store.has, store.delete, store.verify):
            with pytest.raises(ValidationError, match="SHA-256"):
                call(bad)
        assert victim.read_bytes() == b"not the store's"

    @pytest.mark.parametrize("bad", ["../", "A", "xyz", "a" * 65])
    def test_bad_list_arguments_are_refused(self, store: ArtifactStore, bad: str) -> None:
        with pytest.raises(ValidationError):
            list(store.list(prefix=bad))
        with pytest.raises(ValidationError):
            list(store.list(after=bad))

    def test_a_put_whose_source_fails_midway_leaves_nothing(self, store: ArtifactStore) -> None:
        size = 4 * MiB
        with pytest.raises(SourceBroke):
            store.put(PatternStream(size, 9, fail_after=3 * MiB))
        assert list(store.list()) == []
        assert not store.has(pattern_digest(size, 9))
        assert not store.has(pattern_digest(3 * MiB, 9))
        assert store.put(PatternStream(size, 9)).hash == pattern_digest(size, 9)  # and a retry works

    @pytest.mark.slow
    def test_a_put_killed_midway_leaves_nothing_visible(
        self, artifact_store_opener: ArtifactStoreOpener, store_dir: Path, store: ArtifactStore
    ) -> None:
        self._needs_persistence()
        size = 8 * MiB
        ctx = multiprocessing.get_context("spawn")
        paused = ctx.Event()
        process = ctx.Process(target=_interrupted_worker, args=(artifact_store_opener, str(store_dir), size, paused))
        process.start()
        try:
            assert paused.wait(timeout=120), "the worker never got half-way through its put"
        finally:
            process.kill()
            process.join(timeout=30)
        assert list(store.list()) == []
        assert not store.has(pattern_digest(size, 7))
        assert store.put(PatternStream(size, 7)).hash == pattern_digest(size, 7)
        assert [i.hash for i in store.list()] == [pattern_digest(size, 7)]

    # -- batches and concurrency ---------------------------------------------------------------------

    def test_a_batch_keeps_every_object(self, store: ArtifactStore) -> None:
        payloads = [f"file {i}\n".encode() * (i + 1) for i in range(60)] + [b"file 0\n"]  # one twice
        with store.batch() as batch:
            infos = [batch.put(io.BytesIO(p)) for p in payloads]
        assert [i.hash for i in infos] == [_sha(p) for p in payloads]
        assert sorted(i.hash for i in store.list()) == sorted({_sha(p) for p in payloads})
        for payload in payloads:
            assert _read_all(store, _sha(payload)) == payload

    def test_a_failed_batch_leaves_objects_whole_or_absent(self, store: ArtifactStore) -> None:
        payloads = [f"part {i}\n".encode() * 100 for i in range(20)]
        with pytest.raises(SourceBroke), store.batch() as batch:
            for payload in payloads:
                batch.put(io.BytesIO(payload))
            batch.put(PatternStream(2 * MiB, 1, fail_after=MiB))
        for info in store.list():
            store.verify(info.hash)
        assert {i.hash for i in store.list()} <= {_sha(p) for p in payloads}

    @pytest.mark.slow
    def test_concurrent_puts_from_several_processes(
        self, artifact_store_opener: ArtifactStoreOpener, store_dir: Path, store: ArtifactStore
    ) -> None:
        self._needs_persistence()
        workers, shared = 4, 3
        outcomes = run_workers(
            _put_worker, lambda i, b, r: (artifact_store_opener, str(store_dir), i, shared, b, r), workers
        )
        acknowledged = {h for _, hashes, _ in outcomes for h in hashes}
        assert len(acknowledged) == shared + 2 * workers
        assert {i.hash for i in store.list()} == acknowledged
        for digest in acknowledged:
            store.verify(digest)

    # -- persistence ------------------------------------------------------------------------------------

    def test_objects_survive_reopening(
        self, artifact_store_opener: ArtifactStoreOpener, store_dir: Path, store: ArtifactStore
    ) -> None:
        self._needs_persistence()
        info = store.put(io.BytesIO(b"kept"))
        again = artifact_store_opener(store_dir)
        try:
            assert _read_all(again, info.hash) == b"kept"
            assert [i.hash for i in again.list()] == [info.hash]
        finally:
            again.close()
