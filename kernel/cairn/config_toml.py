"""Reading cairn's TOML safely, and finding where a key or table was written.

``tomllib`` parses arrays and inline tables recursively, so a file (or a
``--set`` value) nested a few thousand levels deep exhausts the stack, and a
number with more than 4,300 digits raises a bare ``ValueError``. Everything
cairn reads as TOML goes through ``parse`` here, which refuses both with a
``ConfigError`` that names the file and line, and then checks every value:
no deeper than ``MAX_DEPTH``, integers that fit in 64 bits, and strings that
are valid UTF-8 without NUL characters (they end up in paths, refs and
environment variable names, where neither can go).

``find_line`` answers "where was this written?" for error messages: the line
of a key (``path = ...`` under ``[storage.sqlite]``, or written dotted as
``sqlite.path`` / ``storage.sqlite.path``) or of a table's header.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cairn.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["MAX_DEPTH", "check_values", "find_line", "parse", "parse_value", "read_value"]

#: Tables and arrays nest at most this deep; cairn's own deepest key is 4 levels down.
MAX_DEPTH = 32

#: Integers must fit in 64 signed bits: they are stored by SQLite and passed to C libraries.
_INT_LIMIT = 2**63


def parse(text: str, *, file: str | None, command_line: bool = False) -> dict[str, Any]:
    """Parse a TOML document, refusing what tomllib cannot take safely; errors name ``file`` and the line."""
    _check_nesting(text, file=file, command_line=command_line)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line = int(match.group(1)) if match else None
        column = int(match.group(2)) if match else None
        problem = re.sub(r"\s*\(at line \d+, column \d+\)", "", message) or "invalid TOML"
        raise ConfigError(
            f"TOML syntax error: {problem}",
            file=file,
            line=line,
            column=column,
            hint="fix the file; TOML syntax is described at https://toml.io",
            command_line=command_line,
        ) from None
    except ValueError:  # tomllib's int(): more digits than Python converts
        raise ConfigError(
            f"a number is too long to read (more than {sys.get_int_max_str_digits()} digits)",
            file=file,
            line=_line_of_long_number(text),
            hint="numbers in cairn's configuration fit in 64 bits",
            command_line=command_line,
        ) from None


def parse_value(raw: str, *, source: str, command_line: bool = False) -> Any:
    """Read an environment or ``--set`` value as a TOML value when it is one (``3``, ``true``, ``["a"]``), else as text."""
    return read_value(raw, source=source, command_line=command_line)[1]


def read_value(raw: str, *, source: str, command_line: bool = False) -> tuple[bool, Any]:
    """(True, the TOML value ``raw`` spells), or (False, ``raw``) when it is plain text.

    A value TOML could read but cairn cannot take (nested too deep, a number
    too long) is a ``ConfigError`` naming ``source``.
    """
    try:
        return True, parse(f"v = {raw}", file=source, command_line=command_line)["v"]
    except ConfigError as exc:
        if exc.problem.startswith("TOML syntax error"):
            return False, raw  # plain text, e.g. a path or a name
        # No line: the "file" is one value.
        raise ConfigError(exc.problem, file=source, hint=exc.hint, command_line=command_line) from None


def check_values(
    data: Mapping[str, Any],
    *,
    file: str,
    prefix: tuple[str, ...] = (),
    command_line: bool = False,
    locate: bool = True,
) -> None:
    """Refuse values cairn cannot use anywhere; the error names the file (or variable, or flag), the key and its line.

    ``locate`` looks the line up in ``file``; leave it off when ``file`` is not a file.
    """
    for owner, value, depth in _walk(data, prefix):
        problem = None
        if not all(_encodable(part) for part in owner):
            problem = "the key is not valid UTF-8 text"
        elif depth > MAX_DEPTH:
            problem = f"nested more than {MAX_DEPTH} levels deep"
        elif isinstance(value, int) and not isinstance(value, bool) and not -_INT_LIMIT <= value < _INT_LIMIT:
            problem = "the number does not fit in 64 bits (-2**63 to 2**63 - 1)"
        elif isinstance(value, str) and "\x00" in value:
            problem = "the value holds a NUL character (\\u0000)"
        elif isinstance(value, str) and not _encodable(value):
            problem = "the value is not valid UTF-8 text"
        if problem is not None:
            shown = tuple(p if _encodable(p) else ascii(p) for p in owner)
            table, key = shown[:-1], shown[-1]
            raise ConfigError(
                problem,
                file=file,
                table=".".join(table) or None,
                key=key,
                line=find_line(file, table, key) if locate and shown == owner else None,
                command_line=command_line,
            )


def _walk(data: Mapping[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any, int]]:
    """Every value below ``data`` as (path of the key that holds it, value, depth); iterative, so any depth is safe.

    Items of a list are reported under the list's own key, the one a message can point at.
    """
    stack: list[tuple[tuple[str, ...], Any, int]] = [((*prefix, str(k)), v, 1) for k, v in data.items()]
    while stack:
        owner, value, depth = stack.pop()
        yield owner, value, depth
        if depth > MAX_DEPTH:
            continue  # reported already; never descend any further
        if isinstance(value, dict):
            stack.extend(((*owner, str(k)), v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((owner, v, depth + 1) for v in value)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_nesting(text: str, *, file: str | None, command_line: bool) -> None:
    """Refuse brackets nested deeper than MAX_DEPTH before tomllib recurses into them.

    A small scanner that skips strings and comments; it only counts, the
    parser proper reports every other mistake.
    """
    depth = 0
    line = 1
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "\n":
            line += 1
        elif char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif char in "\"'":
            triple = text.startswith(char * 3, i)
            end = _string_end(text, i, char, triple)
            line += text.count("\n", i, end)
            i = end
            continue
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(
                    f"arrays and tables are nested more than {MAX_DEPTH} levels deep",
                    file=file,
                    line=line,
                    hint="cairn's configuration never needs that much nesting; check the value",
                    command_line=command_line,
                )
        elif char in "]}":
            depth = max(0, depth - 1)
        i += 1


def _string_end(text: str, start: int, quote: str, triple: bool) -> int:
    """The index just past the string that opens at ``start`` (or the end of the text when unterminated)."""
    n = len(text)
    if triple:
        i = start + 3
        close = quote * 3
        while i < n:
            if quote == '"' and text[i] == "\\":
                i += 2
                continue
            if text.startswith(close, i):
                i += 3
                while i < n and text[i] == quote:  # up to two quotes may end the content
                    i += 1
                return i
            i += 1
        return n
    i = start + 1
    while i < n:
        char = text[i]
        if quote == '"' and char == "\\":
            i += 2
            continue
        if char == quote or char == "\n":
            return i + 1
        i += 1
    return n


def _line_of_long_number(text: str) -> int | None:
    match = re.search(r"[0-9_]{4000,}", text)
    return text.count("\n", 0, match.start()) + 1 if match else None


# -- where a key was written ---------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*(?P<name>[^\[\]#]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*(?P<key>(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*'))*)\s*="""
)
_PART = re.compile(r"""[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*'""")


def _dotted(text: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in _PART.findall(text))


def find_line(file: str | None, table: tuple[str, ...], key: str | None = None) -> int | None:
    """Best effort: the line of ``key`` in ``[table]`` (or of the table itself) in a TOML file.

    Keys written dotted from a parent table count, and so does ``[tool.cairn...]``
    in ``pyproject.toml``. None when the file cannot be read or the key is not
    written there (it came from a default, say).
    """
    if not file:
        return None
    path = Path(file)
    try:
        if not path.is_file():
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return None
    base: tuple[str, ...] = ("tool", "cairn") if path.name == "pyproject.toml" else ()
    wanted = (*base, *table, key) if key is not None else (*base, *table)
    header: tuple[str, ...] = ()
    for number, line in enumerate(lines, start=1):
        match = _HEADER.match(line)
        if match:
            header = _dotted(match.group("name"))
            if key is None and header[: len(wanted)] == wanted:
                return number
            continue
        match = _KEY.match(line)
        if match:
            full = (*header, *_dotted(match.group("key")))
            if full[: len(wanted)] == wanted:
                return number
    return None
