"""The ``cairn`` script's entry point: ``cairn --help`` from a cache, everything else through ``cairn.cli``.

Listing the commands means importing every command module and every
plugin (hundreds of milliseconds), yet the text only changes when code,
installed distributions, configuration or the environment do. So the first
``cairn --help`` renders it through click as usual and keeps it in
``<cache dir>/cairn/help.json`` (``$XDG_CACHE_HOME`` or ``~/.cache``) with
what it depends on: the file of every non-standard-library module it
imported, every ``sys.path`` directory (installing or removing a
distribution changes it), the config files the project lookup and the user
config would read, the ``CAIRN*`` and config-location environment
variables, the interpreter and the output width. A later ``cairn --help``
prints the kept text when all of those are unchanged, importing only
``os``, ``sys`` and ``json``; otherwise it renders and keeps the text again.

Help is never kept when a plugin is broken or rendering warned, so those
messages show every time. ``CAIRN_NO_HELP_CACHE=1`` turns the cache off.
A cache that cannot be read or written is ignored: it only ever saves time.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = ["main", "cache_file"]

#: The arguments whose output is kept: the top-level help, nothing that depends on other flags.
HELP_ARGS = (["--help"], ["-h"])

#: Bumped when the cache's layout changes, so an old file is never misread.
_FORMAT = 1

#: Environment variables, besides ``CAIRN*``, that change which config files are read.
_ENV_KEYS = ("HOME", "XDG_CONFIG_HOME", "COLUMNS", "PYTHONPATH")


def cache_file() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cairn", "help.json")


def _width() -> int:
    """The terminal width click formats help for (it caps it at the group's ``max_content_width``)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        stream = sys.__stdout__
        try:
            columns = os.get_terminal_size(stream.fileno()).columns if stream is not None else 80
        except (ValueError, OSError):
            columns = 80
    return columns


def _key(args: list[str], cwd: str) -> str:
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("CAIRN") or k in _ENV_KEYS)
    return json.dumps([_FORMAT, sys.executable, sys.version, args, cwd, _width(), env])


def _signature(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_mtime_ns, st.st_size]


def _config_candidates(cwd: str) -> list[str]:
    """The files the project lookup may read, walking up from ``cwd`` (see ``cairn.config.find_project``)."""
    found = []
    directory = cwd
    while True:
        found.append(os.path.join(directory, "cairn.toml"))
        found.append(os.path.join(directory, "pyproject.toml"))
        parent = os.path.dirname(directory)
        if parent == directory:
            return found
        directory = parent


def _cached(key: str, cwd: str) -> str | None:
    try:
        with open(cache_file(), encoding="utf-8") as handle:
            entry = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    watched = entry.get("watched")
    text = entry.get("text")
    if not isinstance(watched, dict) or not isinstance(text, str):
        return None
    # The project lookup walks the same directories for the same cwd (part of the key): a config
    # file created, edited or removed anywhere on the way changes a signature here.
    for path, signature in watched.items():
        if _signature(path) != signature:
            return None
    return text


def _dependencies(cwd: str) -> dict[str, list[int] | None]:
    """Every file and directory the rendered help depends on, with its current signature."""
    import sysconfig

    stdlib = {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib")}
    paths = set(_config_candidates(cwd))
    try:
        from cairn.config import user_config_file

        override = os.environ.get("CAIRN_USER_CONFIG")
        if override is None:
            paths.add(str(user_config_file()))
        elif override:
            paths.add(override)
    except Exception:  # without a user config path the cache is simply less precise
        pass
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            paths.add(entry)
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and not any(file.startswith(root) for root in stdlib):
            paths.add(file)
    return {path: _signature(path) for path in sorted(paths)}


def _render(cwd: str) -> str | None:
    """The top-level help as ``cairn --help`` prints it, or None when it must not be kept."""
    import warnings

    from cairn.cli import State, cli

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # resilient_parsing: parse only, so the group neither runs nor prints help on its own.
        with cli.make_context("cairn", [], resilient_parsing=True) as ctx:
            text = ctx.get_help()
            state = ctx.find_root().obj
    if caught:
        return None
    if isinstance(state, State) and state._plugins is not None:
        plugins = state._plugins
        if plugins.hook_failures or any(info.status not in ("ok", "blocked") for info in plugins.info.values()):
            return None
    return text


def _store(key: str, cwd: str, text: str) -> None:
    path = cache_file()
    entry: dict[str, Any] = {"key": key, "text": text, "watched": _dependencies(cwd)}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
        os.replace(temporary, path)  # readers see the old file or the new one, never half of one
    except OSError:
        pass


def main() -> Any:
    """Entry point of the ``cairn`` script."""
    args = sys.argv[1:]
    if args in HELP_ARGS and os.environ.get("CAIRN_NO_HELP_CACHE", "").strip() in ("", "0"):
        try:
            cwd = os.getcwd()
        except OSError:
            cwd = None
        if cwd is not None:
            key = _key(args, cwd)
            text = _cached(key, cwd)
            if text is None:
                try:
                    text = _render(cwd)
                except Exception:  # the ordinary path below reports whatever went wrong
                    text = None
                if text is not None:
                    _store(key, cwd, text)
            if text is not None:
                sys.stdout.write(text + "\n")
                sys.stdout.flush()
                sys.exit(0)
    from cairn.cli import main as cli_main

    return cli_main()
