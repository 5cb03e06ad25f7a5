"""Every distribution in the repository is packaged the same way, and the tox envs cover all of them.

One version source (a static ``version`` in pyproject.toml, never ``__version__``
in the code), one license (the root LICENSE, copied byte for byte into each
distribution because ``license-files`` cannot reach outside the project
directory), and a ``build`` env that builds each of them.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = [ROOT, *sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))]
DISTRIBUTIONS += sorted(p.parent for p in ROOT.glob("contrib/*/pyproject.toml"))
IDS = [str(d.relative_to(ROOT)) if d != ROOT else "cairn" for d in DISTRIBUTIONS]


def _pyproject(directory: Path) -> dict[str, Any]:
    return tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))


def _tox() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tox.ini", encoding="utf-8")
    return parser


def _sources(directory: Path) -> list[Path]:
    """The distribution's own Python sources: its packages, not its tests."""
    if directory == ROOT:
        return sorted((ROOT / "kernel").rglob("*.py"))
    return sorted(p for p in directory.rglob("*.py") if "tests" not in p.relative_to(directory).parts)


def test_every_plugin_and_contrib_distribution_is_found() -> None:
    names = {_pyproject(d)["project"]["name"] for d in DISTRIBUTIONS}
    assert {"cairn", "cairn-sqlite", "cairn-git", "cairn-hello"} <= names
    assert len(names) == len(DISTRIBUTIONS)


@pytest.mark.parametrize("directory", DISTRIBUTIONS, ids=IDS)
def test_version_has_one_static_source(directory: Path) -> None:
    project = _pyproject(directory)["project"]
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|(a|b|rc)\d+)?", project.get("version", "")), project.get("version")
    assert "version" not in project.get("dynamic", [])
    for path in _sources(directory):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # A bare annotation (``__version__: str``) declares the name; a value would be a second source.
            if isinstance(node, ast.Assign | ast.AnnAssign) and getattr(node, "value", None) is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                assert "__version__" not in names, f"{path}:{node.lineno} assigns __version__; read it from metadata"


@pytest.mark.parametrize("directory", DISTRIBUTIONS, ids=IDS)
def test_license_is_declared_and_shipped(directory: Path) -> None:
    pyproject = _pyproject(directory)
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert (directory / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))  # PEP 639: the expression only
    # setuptools learned the SPDX string and license-files in 77.
    assert pyproject["build-system"]["requires"] == ["setuptools>=77"]
    assert (directory / project["readme"]).is_file()


def test_tox_runs_lint_and_build_by_default() -> None:
    envlist = [e.strip() for e in _tox()["tox"]["envlist"].split(",")]
    assert "lint" in envlist and "build" in envlist


def test_build_env_builds_every_distribution() -> None:
    commands = _tox()["testenv:build"]["commands"]
    built = re.findall(r"python -m build --no-isolation --outdir \{envtmpdir\}/dist (\S+)", commands)
    expected = ["{toxinidir}" + ("" if d == ROOT else "/" + d.relative_to(ROOT).as_posix()) for d in DISTRIBUTIONS]
    assert sorted(built) == sorted(expected)
    assert "twine check --strict {envtmpdir}/dist/*" in commands


def test_pre_commit_pins_the_same_ruff_as_tox() -> None:
    tox_pin = _tox()["testenv:lint"]["deps"].strip()
    assert tox_pin.startswith("ruff")
    config = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    pins = re.findall(r"additional_dependencies: \[\"(ruff[^\"]*)\"\]", config)
    assert pins and set(pins) == {tox_pin}


def test_contributing_describes_every_tox_env() -> None:
    contributing = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    described = set(re.findall(r"^\| `([a-z0-9-]+)` \|", contributing, flags=re.M))
    envs = {e.strip() for e in _tox()["tox"]["envlist"].split(",")}
    assert described == envs, (
        f"CONTRIBUTING.md's table of tox envs lists {sorted(described)}; tox.ini has {sorted(envs)}"
    )


def test_readme_points_to_the_contributor_files() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("CONTRIBUTING.md", "CHANGELOG.md", "SECURITY.md", "LICENSE"):
        assert (ROOT / name).is_file()
        assert f"]({name})" in readme, f"README.md does not link {name}"


def _packages(directory: Path) -> list[Path]:
    """The distribution's top-level import packages."""
    base = ROOT / "kernel" if directory == ROOT else directory
    return sorted(p.parent for p in base.glob("*/__init__.py") if p.parent.name != "tests")


@pytest.mark.parametrize("directory", DISTRIBUTIONS, ids=IDS)
def test_every_package_ships_a_py_typed_marker(directory: Path) -> None:
    # PEP 561: without the marker, a user's type checker ignores the package's annotations.
    packages = _packages(directory)
    assert packages, f"{directory} has no package"
    for package in packages:
        assert (package / "py.typed").is_file(), f"{package.relative_to(ROOT)} has no py.typed"


def test_the_types_env_runs_by_default_with_every_distribution_installed() -> None:
    tox = _tox()
    envlist = [e.strip() for e in tox["tox"]["envlist"].split(",")]
    assert "types" in envlist
    deps = tox["testenv:types"]["deps"]
    assert re.search(r"^mypy[><=~]", deps, flags=re.M)
    # mypy resolves a package's imports only when it is installed, its dependencies with it.
    installed = set(re.findall(r"^-e (\{toxinidir\}\S*?)(?:\[[\w,-]+\])?$", deps, flags=re.M))
    expected = {"{toxinidir}" + ("" if d == ROOT else "/" + d.relative_to(ROOT).as_posix()) for d in DISTRIBUTIONS}
    assert installed == expected
    assert tox["testenv:types"]["commands"].strip().startswith("mypy")


def test_pre_commit_runs_the_types_env() -> None:
    config = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    assert re.search(r"^\s+entry: tox -e types$", config, flags=re.M)


_IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<after>.*)$")


def test_every_type_ignore_names_its_error_and_says_why() -> None:
    # mypy checks the code is there (ignore-without-code); the reason is for the reader: a comment
    # after the ignore, or on the line above it.
    unexplained = []
    for directory in DISTRIBUTIONS:
        for path in _sources(directory):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                found = _IGNORE.search(line)
                if found is None:
                    continue
                above = lines[number - 2].strip() if number > 1 else ""
                if found["codes"] is None or not (found["after"].strip().startswith("#") or above.startswith("#")):
                    unexplained.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not unexplained, "type: ignore without an error code or a reason:\n" + "\n".join(unexplained)
