"""``cairn.files.atomic_write``: a file appears whole or not at all, and no planted link redirects it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cairn.errors import FileError
from cairn.files import atomic_write


def test_writes_and_replaces_whole(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_write(target) as handle:
        handle.write("first\n")
    assert target.read_text() == "first\n"
    with atomic_write(target, binary=True) as handle:
        handle.write(b"second\n")
    assert target.read_bytes() == b"second\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_an_error_inside_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_a_process_killed_mid_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    script = textwrap.dedent(
        f"""
        import os
        from cairn.files import atomic_write
        with atomic_write({str(target)!r}) as handle:
            handle.write("half of the new" * 1000)
            handle.flush()
            os._exit(9)
        """
    )
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    assert target.read_text() == "old\n"


def test_a_link_planted_at_the_temporary_name_is_never_followed(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("precious\n")
    work = tmp_path / "work"
    work.mkdir()
    names = iter(["aaaa", "bbbb"])
    monkeypatch.setattr("cairn.files.secrets.token_hex", lambda n: next(names))
    (work / ".out.txt.aaaa.tmp").symlink_to(victim)  # an attacker guessed the first name
    with atomic_write(work / "out.txt") as handle:
        handle.write("export\n")
    assert victim.read_text() == "precious\n"
    assert (work / "out.txt").read_text() == "export\n"
    assert (work / ".out.txt.aaaa.tmp").is_symlink()  # left alone, not written through


def test_a_target_that_is_a_link_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)
    with atomic_write(link) as handle:
        handle.write("export\n")
    assert victim.read_text() == "precious\n"
    assert not link.is_symlink() and link.read_text() == "export\n"


def test_permission_bits_follow_the_replaced_file_or_the_umask(tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("x")
    kept.chmod(0o640)
    with atomic_write(kept) as handle:
        handle.write("y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    new = tmp_path / "new.txt"
    old_umask = os.umask(0o022)
    try:
        with atomic_write(new) as handle:
            handle.write("z")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (lambda p: p / "missing" / "out.txt", "No such file or directory"),
        (lambda p: p / "a-file" / "out.txt", "Not a directory"),
        (lambda p: p, "is a directory"),
        (lambda p: Path(""), "is not a file name"),
    ],
)
def test_impossible_targets_are_file_errors_naming_the_path(tmp_path, where, message):
    (tmp_path / "a-file").write_text("")
    target = where(tmp_path)
    with pytest.raises(FileError) as info, atomic_write(target) as handle:
        handle.write("never")
    assert message in info.value.message and info.value.hint
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_directory_is_a_file_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(FileError, match="Permission denied"), atomic_write(locked / "out.txt") as handle:
            handle.write("never")
    finally:
        locked.chmod(0o700)
