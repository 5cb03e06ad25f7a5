"""Layered TOML configuration.

Layers, lowest first: built-in defaults, the user file
(``<platform config dir>/cairn/cairn.toml``), the project file (``cairn.toml``,
or ``[tool.cairn]`` in ``pyproject.toml``, found by walking up from the
working directory), environment variables ``CAIRN__SECTION__KEY`` and
command-line flags. Tables merge key by key; every value remembers where it
came from, so errors and ``cairn config show`` can name the file.

The kernel's tables (``[cairn]``, ``[context]`` ...) are structured into the
frozen attrs classes of ``cairn.config_tables``, re-exported here; each
backend's table (``[storage.sqlite]``, ``[llm.openai]``) is structured into
that backend's own config class when the backend is created. Unknown keys
are refused everywhere. Secrets never live in config: a key ending in
``_env`` names the environment variable that holds one.

This module holds the layers (finding and reading each, merging them) and
``Config``, the merged result that reads tables and locates its errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from cairn.config_tables import (
    AGENT_SECTIONS,
    BACKEND_SECTIONS,
    KERNEL_SECTIONS,
    MAX_INLINE_BYTES,
    ArtifactsSettings,
    CairnSettings,
    ChatSettings,
    ContextSettings,
    MemorySettings,
    ProvidersSettings,
    check_env_name,
)
from cairn.config_toml import MAX_DEPTH, check_values, find_line, parse, parse_value
from cairn.errors import ConfigError, ValidationError
from cairn.model.convert import structure

__all__ = [
    "ArtifactsSettings",
    "BACKEND_SECTIONS",
    "CairnSettings",
    "ChatSettings",
    "Config",
    "ContextSettings",
    "KERNEL_SECTIONS",
    "MAX_INLINE_BYTES",
    "MemorySettings",
    "PROJECT_FILE",
    "ProvidersSettings",
    "check_env_name",
    "find_project",
    "load_config",
    "redact",
    "usable_directory",
    "user_config_file",
]

T = TypeVar("T")

PROJECT_FILE = "cairn.toml"
ENV_PREFIX = "CAIRN__"


def user_config_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("cairn")) / PROJECT_FILE


def find_project(start: Path | None = None) -> tuple[Path, Path] | None:
    """Walk up from ``start`` to the first ``cairn.toml`` or ``pyproject.toml`` with ``[tool.cairn]``.

    Returns (project directory, config file) or None.
    """
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return directory, candidate
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and _has_tool_cairn(pyproject):
            return directory, pyproject
    return None


def _has_tool_cairn(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    # A cheap textual check first; parse only when it might be there.
    return "[tool.cairn" in text and bool(_tool_cairn(_read_toml(path)))


def _tool_cairn(document: Mapping[str, Any]) -> dict[str, Any]:
    tool = document.get("tool")
    cairn = tool.get("cairn") if isinstance(tool, dict) else None
    return cairn if isinstance(cairn, dict) else {}


def _is_file(path: Path, *, command_line: bool) -> bool:
    """``path.is_file()``, with the errors a strange name can raise (too long, a NUL) explained."""
    try:
        return path.is_file()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read: {reason}", file=str(path)[:200], command_line=command_line) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason})", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    data = parse(text, file=str(path))
    check_values(data, file=str(path))
    return data


#: Where a value given on the command line came from (``cairn config show`` prints it).
FLAG_SOURCE = "--set"


def _from_command_line(source: str) -> bool:
    return source.startswith(FLAG_SOURCE + " ")


def _env_layer(environ: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    data: dict[str, Any] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) < 2 or not all(parts) or len(parts) > MAX_DEPTH:
            raise ConfigError(
                f"environment variable {name} does not name a section and a key",
                hint="write CAIRN__SECTION__KEY, e.g. CAIRN__CAIRN__STORAGE=sqlite",
            )
        value = parse_value(environ[name], source=name)
        check_values({parts[-1]: value}, file=name, prefix=tuple(parts[:-1]), locate=False)
        _set_path(data, parts, value, source=name)
    return data, "environment"


def _parse_flag(item: str) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    parts = [p.strip() for p in key.strip().split(".")]
    if not sep or len(parts) < 2 or not all(parts) or len(parts) > MAX_DEPTH:
        raise ConfigError(
            f"--set {item!r:.80} is not SECTION.KEY=VALUE",
            hint="for example: --set cairn.storage=sqlite",
            command_line=True,
        )
    source = f"{FLAG_SOURCE} {'.'.join(parts)}"
    value = parse_value(raw.strip(), source=source, command_line=True)
    check_values({parts[-1]: value}, file=source, prefix=tuple(parts[:-1]), command_line=True, locate=False)
    return parts, value


def _set_path(data: dict[str, Any], parts: list[str], value: Any, *, source: str) -> None:
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(parts)} sets a key inside {part!r}, which is a value", key=source)
        node = child
    node[parts[-1]] = value


def _merge(
    base: dict[str, Any],
    sources: dict[tuple[str, ...], str],
    layer: Mapping[str, Any],
    label: str,
    prefix: tuple[str, ...] = (),
) -> None:
    for key, value in layer.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], sources, value, label, path)
        elif isinstance(value, dict):
            base[key] = {}
            _merge(base[key], sources, value, label, path)
        else:
            base[key] = value
            sources[path] = label


def redact(key: str, value: Any) -> Any:
    """A configuration value as ``cairn config show`` prints it, through ``cairn.redact``.

    Masked whole under a secret-looking key (``api_key``, ``token``,
    ``password``; never ``*_env``, which holds a variable's name) or when it
    starts like a key (``sk-``, ``ghp_``...); otherwise the password of any
    URL in it (``http://user:***@host``) and any key shape in it are masked.
    """
    # cairn.redact compiles its patterns on import: only `config show` needs them, not every command.
    from cairn.redact import Redactor

    return Redactor().field(key, value)


@attrs.frozen
class Config:
    """The effective configuration: merged data, where each value came from, and the project."""

    data: dict[str, Any]
    sources: dict[tuple[str, ...], str]
    project_dir: Path | None = None
    project_file: Path | None = None
    user_file: Path | None = None
    cwd: Path = attrs.field(factory=Path.cwd)

    # -- reading -------------------------------------------------------------

    def table(self, *path: str) -> dict[str, Any]:
        node: Any = self.data
        for part in path:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if not isinstance(node, dict):
            raise self.error(f"expected a table, got a value ({node!r:.40})", path[:-1], path[-1] if path else None)
        return node

    def source_of(self, path: Iterable[str]) -> str:
        path = tuple(path)
        while path:
            if path in self.sources:
                return self.sources[path]
            # A table's source is where any of its keys came from.
            for key, src in self.sources.items():
                if key[: len(path)] == path:
                    return src
            path = path[:-1]
        return "default"

    def error(
        self, message: str, table: tuple[str, ...], key: str | None = None, *, hint: str | None = None
    ) -> ConfigError:
        """A ``ConfigError`` about ``key`` in ``[table]`` (or the table itself), located: file (or
        variable, or flag) and line. A value given with ``--set`` makes it a usage error."""
        path = (*table, key) if key else table
        file = self.source_of(path)
        return ConfigError(
            message,
            file=None if file == "default" else file,
            table=".".join(table) or None,
            key=key,
            line=find_line(file, table, key) if _is_file_source(file) else None,
            hint=hint,
            command_line=_from_command_line(file),
        )

    def settings(self, section: str, cls: type[T]) -> T:
        """Structure a kernel table into its settings class; errors name file, table and key."""
        return self.structure_table((section,), cls)

    def structure_table(self, path: tuple[str, ...], cls: type[T]) -> T:
        table = self.table(*path)
        for key, value in table.items():
            # Every *_env key holds the NAME of a variable, whoever declares it ("" means none).
            problem = check_env_name(value, empty_ok=True) if key.endswith("_env") else None
            if problem:
                raise self.error(f"{key} {problem}", path, key, hint="put the secret in that variable, never here")
        if len(path) == 1 and path[0] in KERNEL_SECTIONS and path[0] in BACKEND_SECTIONS.values():
            # A kernel table that also holds backends' tables: those are checked by their plugins.
            table = {key: value for key, value in table.items() if not isinstance(value, dict)}
        try:
            return structure(dict(table), cls, what=".".join(path))
        except ValidationError as exc:
            raise self._located_error(path, cls, exc) from None

    def _located_error(self, path: tuple[str, ...], cls: type, exc: ValidationError) -> ConfigError:
        problems: list[str] = getattr(exc, "problems", None) or [exc.message]
        dotted = ".".join(path)
        key = None
        for problem in problems:
            if problem.startswith(dotted + ": "):
                problem = problem[len(dotted) + 2 :]  # a validator's message about the whole table
            head, _, _ = problem.partition(":")
            if head.startswith(dotted + "."):
                key = head[len(dotted) + 1 :].split(".")[0]
                break
            match = re.search(r"unknown field\(s\): ([\w, -]+)", problem)
            if match:
                key = match.group(1).split(",")[0].strip()
                break
            match = re.match(r"'?(\w+)'? must", problem)
            if match:
                key = match.group(1)
                break
        message = "; ".join(p.partition(": ")[2] if p.startswith(dotted) else p for p in problems)
        if "unknown field" in message:
            valid = [a.name for a in attrs.fields(cls)] if attrs.has(cls) else []
            hint = f"valid keys: {', '.join(valid)}" if valid else "this table takes no keys; remove it"
        else:
            hint = "fix the value or remove the key to use the default"
        error = self.error(message, path, key, hint=hint)
        if error.file is None:  # a default that does not fit: name the table's source at least
            error = self.error(message, path, None, hint=hint)
        return error

    @property
    def cairn(self) -> CairnSettings:
        return self.settings("cairn", CairnSettings)

    @property
    def context(self) -> ContextSettings:
        return self.settings("context", ContextSettings)

    @property
    def memory(self) -> MemorySettings:
        return self.settings("memory", MemorySettings)

    @property
    def data_dir(self) -> Path:
        """The project's data directory (``.cairn/`` beside the config file by default)."""
        base = self.project_dir or self.cwd
        try:
            return (base / self.cairn.data_dir).resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop, before Python 3.13
            raise self.error(f"data_dir cannot be resolved: {exc}", ("cairn",), "data_dir") from None

    def flat(self) -> list[tuple[str, Any, str]]:
        """Every set key as (dotted key, value, source), sorted, secrets redacted."""
        out: list[tuple[str, Any, str]] = []

        def walk(node: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
            for key in sorted(node):
                value = node[key]
                path = (*prefix, key)
                if isinstance(value, dict):
                    walk(value, path)
                else:
                    out.append((".".join(path), redact(key, value), self.sources.get(path, "default")))

        walk(self.data, ())
        return out

    def validate(self) -> list[ConfigError]:
        """Every problem in the kernel tables, the data directory and the section names.

        Backend tables are checked by ``Plugins.check_config``, which calls this first.
        """
        problems: list[ConfigError] = []
        for section, cls in KERNEL_SECTIONS.items():
            try:
                self.settings(section, cls)
            except ConfigError as exc:
                problems.append(exc)
        # [tools], [skills] and [mcp] are checked by cairn.config_agents (through cairn.config_check).
        allowed = set(KERNEL_SECTIONS) | set(BACKEND_SECTIONS.values()) | set(AGENT_SECTIONS)
        for section in self.data:
            if section not in allowed:
                problems.append(
                    self.error(
                        f"unknown section [{section}]", (section,), hint=f"known sections: {', '.join(sorted(allowed))}"
                    )
                )
        if not any(p.table == "cairn" for p in problems):  # data_dir itself read fine
            try:
                problem = usable_directory(self.data_dir)
            except ConfigError as exc:
                problems.append(exc)
            else:
                if problem:
                    problems.append(
                        self.error(
                            f"data_dir {problem}",
                            ("cairn",),
                            "data_dir",
                            hint="point data_dir at a directory you can write (relative paths are under the project)",
                        )
                    )
        return problems


def usable_directory(path: Path) -> str | None:
    """Why cairn cannot keep data in ``path`` (or create it), or None when it can.

    Tried for real, with a temporary directory made and removed, because
    permission bits say nothing for root or for file systems such as /proc.
    """
    import tempfile

    probe = path
    try:
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            return f"{path} cannot be used: {probe} is not a directory"
        os.rmdir(tempfile.mkdtemp(prefix=".cairn-probe-", dir=probe))
    except OSError as exc:
        verb = "is not writable" if probe == path else "cannot be created"
        return f"{path} {verb}: {exc.strerror or exc}"
    return None


def _is_file_source(source: str) -> bool:
    return source != "default" and not source.startswith((ENV_PREFIX, FLAG_SOURCE + " "))


def _defaults() -> dict[str, Any]:
    return {name: attrs.asdict(cls()) for name, cls in KERNEL_SECTIONS.items()}


def load_config(
    cwd: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    flags: Iterable[str] = (),
    config_file: Path | str | None = None,
    user_file: Path | str | None = None,
) -> Config:
    """Read every layer and merge them: flags > environment > project > user > defaults.

    ``config_file`` replaces project discovery; ``user_file`` replaces the
    platform location (``CAIRN_USER_CONFIG`` does the same from the
    environment; set it empty to skip the user file).
    """
    environ = os.environ if environ is None else environ
    here = Path(cwd).resolve() if cwd else Path.cwd()
    data: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    _merge(data, sources, _defaults(), "default")

    if user_file is None:
        override = environ.get("CAIRN_USER_CONFIG")
        user_path = Path(override) if override else (None if override == "" else user_config_file())
    else:
        user_path = Path(user_file)
    if user_path is not None and _is_file(user_path, command_line=False):
        _merge(data, sources, _read_toml(user_path), str(user_path))
    else:
        user_path = None

    project_dir: Path | None = None
    project_file: Path | None = None
    if config_file is not None:
        project_file = here / config_file
        if not _is_file(project_file, command_line=True):
            raise ConfigError("no such config file", file=str(project_file), command_line=True)
        project_file = project_file.resolve()
        project_dir = project_file.parent
    else:
        found = find_project(here)
        if found:
            project_dir, project_file = found
    if project_file is not None:
        layer = _read_toml(project_file)
        if project_file.name == "pyproject.toml":
            layer = _tool_cairn(layer)
        _merge(data, sources, layer, str(project_file))

    env_data, _ = _env_layer(environ)
    for path_key, value in _walk_leaves(env_data):
        env_name = ENV_PREFIX + "__".join(p.upper() for p in path_key)
        _merge(data, sources, _nest(path_key, value), env_name)

    for item in flags:
        parts, value = _parse_flag(item)
        _merge(data, sources, _nest(parts, value), f"{FLAG_SOURCE} {'.'.join(parts)}")

    return Config(
        data=data,
        sources=sources,
        project_dir=project_dir,
        project_file=project_file,
        user_file=user_path,
        cwd=here,
    )


def _walk_leaves(node: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _walk_leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _nest(parts: Iterable[str], value: Any) -> dict[str, Any]:
    *outer, last = parts  # a key path always has at least one part
    node: dict[str, Any] = {last: value}
    for part in reversed(outer):
        node = {part: node}
    return node
