"""Versions: one source per distribution (pyproject), read from metadata; ``cairn --version`` lists them."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cairn
from cairn.cli import cli
from cairn.plugins import plugin_distributions


def test_kernel_version_is_the_installed_distribution_version() -> None:
    assert cairn.__version__ == importlib.metadata.version("cairn")
    from cairn import __version__

    assert __version__ == cairn.__version__


def test_import_cairn_does_not_read_metadata_until_the_version_is_asked_for() -> None:
    code = (
        "import sys, cairn\n"
        "print('importlib.metadata' in sys.modules)\n"
        "print(cairn.__version__)\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["False", importlib.metadata.version("cairn"), "True"]


def test_unknown_attribute_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = cairn.nonexistent


def _install_fake(site: Path, dist: str, version: str, entry_points: dict[str, list[str]]) -> None:
    """A dist-info directory with these entry point groups; the modules behind them need not exist."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    lines = []
    for group, names in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {dist.replace('-', '_')}.{name}" for name in names)
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site


def test_version_lists_each_plugin_distribution_with_its_plugins(fake_site: Path, cairn_env: Path) -> None:
    _install_fake(fake_site, "cairn-fake-pair", "4.5.6", {"cairn": ["beta", "alpha"]})
    _install_fake(fake_site, "not-a-cairn-plugin", "9.9.9", {"console_scripts": ["tool"]})
    importlib.invalidate_caches()

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"cairn {cairn.__version__}"
    assert "cairn-fake-pair 4.5.6 (alpha, beta)" in lines[1:]
    assert not any(line.startswith("not-a-cairn-plugin") for line in lines)
    # One line per distribution, sorted by name, each as plugin_distributions() reports it.
    expected = [f"{name} {version} ({', '.join(names)})" for name, version, names in plugin_distributions()]
    assert lines[1:] == expected == sorted(expected)


def test_version_reads_no_configuration(cairn_env: Path) -> None:
    # A broken cairn.toml or a blocked plugin must not hide what is installed: --version is for bug reports.
    (cairn_env / "cairn.toml").write_text("[cairn\nstorage = ", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--version"], env={"CAIRN_LOAD_PLUGINS": ""})
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"cairn {cairn.__version__}"
    assert result.output.splitlines()[1:] == [
        f"{name} {version} ({', '.join(names)})" for name, version, names in plugin_distributions()
    ]
