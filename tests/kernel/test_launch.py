"""``cairn.launch``, the ``cairn`` script's entry point: ``cairn --help`` kept in a cache, printed without
importing click or any plugin while nothing it depends on changed, and rendered again when something did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs the entry point as the console script does and says whether click was imported.
_PROBE = """\
import atexit, sys
atexit.register(lambda: sys.stderr.write("click imported: %s\\n" % ("click" in sys.modules)))
sys.argv = ["cairn", *sys.argv[1:]]
from cairn.launch import main
sys.exit(main())
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN")}
    environ.update(CAIRN_USER_CONFIG="", XDG_CACHE_HOME=str(tmp_path / "cache"), COLUMNS="100")
    return environ


def cairn(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[str, bool]:
    """(stdout, whether click was imported) of ``cairn ARGS``."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout, "click imported: True" in result.stderr


def mark_cache(env: dict[str, str]) -> None:
    """Replace the kept text with a marker, so a test sees whether the cache was used."""
    path = Path(env["XDG_CACHE_HOME"]) / "cairn" / "help.json"
    entry = json.loads(path.read_text(encoding="utf-8"))
    entry["text"] = "KEPT"
    path.write_text(json.dumps(entry), encoding="utf-8")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_help_is_the_same_kept_or_rendered_and_kept_help_imports_no_click(folder: Path, env: dict[str, str]) -> None:
    fresh, _ = cairn(["--help"], folder, {**env, "CAIRN_NO_HELP_CACHE": "1"})
    first, first_click = cairn(["--help"], folder, env)
    second, second_click = cairn(["--help"], folder, env)
    short, _ = cairn(["-h"], folder, env)
    assert fresh == first == second == short
    assert "Commands:" in fresh and "commit" in fresh
    assert first_click  # rendered through click, then kept
    assert not second_click  # printed from the cache


def test_a_config_file_appearing_on_the_way_up_renders_help_again(folder: Path, env: dict[str, str]) -> None:
    cairn(["--help"], folder, env)
    mark_cache(env)
    assert cairn(["--help"], folder, env)[0] == "KEPT\n"
    # A project config may disable plugins, and so change the command list.
    (folder / "cairn.toml").write_text('[cairn]\nstorage = "sqlite"\n', encoding="utf-8")
    text, imported = cairn(["--help"], folder, env)
    assert imported and "Commands:" in text
    mark_cache(env)
    (folder / "cairn.toml").write_text('[cairn]\nstorage = "sqlite"\ntokenizer = "approx"\n', encoding="utf-8")
    os.utime(folder / "cairn.toml", ns=(1, 1))  # a different signature even on a coarse clock
    assert "Commands:" in cairn(["--help"], folder, env)[0]


def test_the_environment_and_the_directory_are_part_of_the_key(
    folder: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    cairn(["--help"], folder, env)
    mark_cache(env)
    assert "Commands:" in cairn(["--help"], folder, {**env, "CAIRN_DISABLE_PLUGINS": "hello"})[0]
    mark_cache(env)
    assert "Commands:" in cairn(["--help"], tmp_path, env)[0]
    mark_cache(env)
    assert "Commands:" in cairn(["--help"], folder, {**env, "COLUMNS": "60"})[0]


def test_a_watched_file_that_changed_renders_help_again(folder: Path, env: dict[str, str]) -> None:
    cairn(["--help"], folder, env)
    path = Path(env["XDG_CACHE_HOME"]) / "cairn" / "help.json"
    entry = json.loads(path.read_text(encoding="utf-8"))
    assert any(name.endswith(os.path.join("cairn", "cli", "__init__.py")) for name in entry["watched"])
    some_file = next(name for name, signature in entry["watched"].items() if signature is not None)
    entry["watched"][some_file] = [0, 0]  # as if that module had been edited since
    entry["text"] = "KEPT"
    path.write_text(json.dumps(entry), encoding="utf-8")
    assert "Commands:" in cairn(["--help"], folder, env)[0]


def test_other_commands_and_an_unwritable_cache_take_the_ordinary_path(folder: Path, env: dict[str, str]) -> None:
    blocked = Path(env["XDG_CACHE_HOME"])
    blocked.write_text("not a directory", encoding="utf-8")  # the cache cannot be made
    text, _ = cairn(["--help"], folder, env)
    assert "Commands:" in text
    version, imported = cairn(["--version"], folder, env)
    assert version.startswith("cairn ") and imported
