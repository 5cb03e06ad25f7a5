"""Artifacts and snapshots against plain tools, measured in the same run, interleaved and repeated.

Three figures, each beside its baseline as a ratio:

1. put and get of one large file (``--size-mb``, 200 by default) with the
   local store (cairn-artifacts): ``store.put(path)`` (read, hash, write, fsync,
   rename) and ``artifact get`` (read, verify, write to a temporary file,
   fsync, rename) against ``shutil.copyfile`` plus a SHA-256 of the file.
   Target: throughput at least 0.8 x the baseline's. The baseline with an
   fsync of the copy is printed too, for the like-for-like durability.
2. a first snapshot of a tree of ``--files`` files (10,000 by default, 100
   B to 8 KiB each, in 700 directories) into an empty local store, against
   ``git add -A`` and ``git write-tree`` on a copy of the same tree in a
   fresh repository. Target: at most 2 x git's time.
3. a second snapshot after one file changed (the stat cache at work),
   against the first. Target: at most 0.2 x the first.

The contenders take turns in each of ``--rounds`` rounds, so disk and CPU
noise hits them alike; figures are medians over the rounds. Everything is
written under ``--dir`` (a temporary directory by default; choose one on
the disk you care about). git runs with no global or system config.

    python bench/artifacts.py [--rounds 5] [--size-mb 200] [--files 10000] [--dir PATH] [--only large|snapshots]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cairn_artifacts.store import LocalArtifactStore

from cairn.files import atomic_write
from cairn.snapshots import snapshot

os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
_EMPTY_CONFIG = tempfile.NamedTemporaryFile(prefix="gitconfig-", delete=False)
os.environ["GIT_CONFIG_GLOBAL"] = _EMPTY_CONFIG.name

MiB = 1 << 20
T = TypeVar("T")


def timed(action: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = action(*args, **kwargs)
    return time.perf_counter() - started, result


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        buffer = bytearray(MiB)
        while count := stream.readinto(buffer):
            digest.update(memoryview(buffer)[:count])
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_large_file(path: Path, size_mb: int) -> None:
    with open(path, "wb") as stream:
        for _ in range(size_mb):
            stream.write(os.urandom(MiB))
    fsync_file(path)


def make_tree(root: Path, files: int) -> None:
    rnd = random.Random(16)
    for i in range(files):
        directory = root / f"d{i % 100:03d}" / f"s{i % 7}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i}.txt").write_bytes(rnd.randbytes(rnd.randint(100, 8000)))


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout.decode()


def median(values: list[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def copy_and_hash(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    sha256_file(source)


def copy_fsync_and_hash(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    fsync_file(target)
    sha256_file(source)


def get_to_file(store: LocalArtifactStore, digest: str, target: Path) -> None:
    """What `cairn artifact get HASH -o FILE` does."""
    with atomic_write(target, binary=True, overwrite=False) as handle:
        store.copy_to(digest, handle.fileno())


def bench_large_file(work: Path, rounds: int, size_mb: int) -> None:
    source = work / "large.bin"
    make_large_file(source, size_mb)
    store = LocalArtifactStore(work / "store-large")
    # get reads an object of the same size stored once beforehand; put stores (and then deletes) the source.
    other = work / "other.bin"
    make_large_file(other, size_mb)
    stored = store.put(other).hash
    other.unlink()
    copies = work / "copies"
    copies.mkdir()
    target = copies / "copy.bin"
    times: dict[str, list[float]] = {"baseline": [], "durable": [], "put": [], "get": []}

    def run_baseline() -> None:
        times["baseline"].append(timed(copy_and_hash, source, target)[0])
        target.unlink()

    def run_durable() -> None:
        times["durable"].append(timed(copy_fsync_and_hash, source, target)[0])
        target.unlink()

    def run_put() -> None:
        seconds, info = timed(store.put, source)
        times["put"].append(seconds)
        assert info.size == size_mb * MiB
        store.delete(info.hash)  # the next round's put must write again, not find it stored

    def run_get() -> None:
        times["get"].append(timed(get_to_file, store, stored, target)[0])
        target.unlink()

    contenders = [run_baseline, run_durable, run_put, run_get]
    sha256_file(source)  # warm the page cache for everyone alike
    for number in range(rounds):
        # Each round starts with the next contender, so none always follows the same one.
        for run in contenders[number % 4 :] + contenders[: number % 4]:
            run()
    baseline, durable_baseline, puts, gets = times["baseline"], times["durable"], times["put"], times["get"]
    base, durable = median(baseline), median(durable_baseline)
    put_s, get_s = median(puts), median(gets)
    mb = size_mb * MiB / 1e6
    print(f"\n1. put and get of a {size_mb} MiB file, local store (medians of {rounds} rounds)")
    print(f"   copy + SHA-256 (baseline)      {base:7.3f} s  {mb / base:7.0f} MB/s")
    print(f"   copy + fsync + SHA-256         {durable:7.3f} s  {mb / durable:7.0f} MB/s")
    print(f"   cairn put                      {put_s:7.3f} s  {mb / put_s:7.0f} MB/s")
    print(f"   cairn get (artifact get -o)    {get_s:7.3f} s  {mb / get_s:7.0f} MB/s")
    print(
        f"   put: {base / put_s:.2f}x the baseline's throughput "
        f"({durable / put_s:.2f}x with fsync), target >= 0.8x: {verdict(base / put_s >= 0.8)}"
    )
    print(
        f"   get: {base / get_s:.2f}x the baseline's throughput "
        f"({durable / get_s:.2f}x with fsync), target >= 0.8x: {verdict(base / get_s >= 0.8)}"
    )


def git_add_and_write_tree(copy: Path) -> None:
    git(copy, "add", "-A")
    git(copy, "write-tree")


def bench_snapshots(work: Path, rounds: int, files: int) -> None:
    tree = work / "tree"
    make_tree(tree, files)
    copy = work / "tree-git"
    shutil.copytree(tree, copy)
    time.sleep(2.2)  # older than the stat cache's racy window, like a tree nobody touched this instant
    gits, firsts, seconds_list = [], [], []
    for number in range(rounds):
        shutil.rmtree(copy / ".git", ignore_errors=True)
        git(copy, "init", "-q")

        gits.append(timed(git_add_and_write_tree, copy)[0])

        store_dir = work / f"store-{number}"
        cache_dir = work / f"cache-{number}"
        store = LocalArtifactStore(store_dir)
        seconds, result = timed(snapshot, tree, store, cache_dir=cache_dir)
        firsts.append(seconds)
        assert len(result.tree) == files and result.files_read == files

        changed = tree / f"d{number % 100:03d}" / f"s{number % 7}" / f"f{number}.txt"
        changed.write_bytes(changed.read_bytes() + b"changed\n")
        seconds, result = timed(snapshot, tree, store, cache_dir=cache_dir)
        seconds_list.append(seconds)
        assert result.files_read <= 2, result.files_read  # the changed file (and last round's)
        shutil.rmtree(store_dir)
        shutil.rmtree(cache_dir)
    git_s, first_s, second_s = median(gits), median(firsts), median(seconds_list)
    print(f"\n2. snapshot of a {files}-file tree (medians of {rounds} rounds)")
    print(f"   git add -A && git write-tree   {git_s:7.3f} s")
    print(f"   cairn snapshot (first)         {first_s:7.3f} s")
    print(f"   first snapshot: {first_s / git_s:.2f}x git's time, target <= 2x: {verdict(first_s / git_s <= 2)}")
    print("\n3. a second snapshot after one file changed")
    print(f"   cairn snapshot (second)        {second_s:7.3f} s")
    print(
        f"   second snapshot: {second_s / first_s:.3f}x the first, target <= 0.2x: {verdict(second_s / first_s <= 0.2)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--only", choices=("large", "snapshots"), help="run one of the two parts")
    args = parser.parse_args()
    parent = args.dir
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cairn-bench-", dir=parent) as scratch:
        work = Path(scratch)
        print(f"writing under {work}")
        if args.only in (None, "large"):
            bench_large_file(work, args.rounds, args.size_mb)
        if args.only in (None, "snapshots"):
            bench_snapshots(work, args.rounds, args.files)


if __name__ == "__main__":
    main()
