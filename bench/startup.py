"""Start-up time of the ``cairn`` command against a bare interpreter, measured in the same run.

Runs ``python -c pass``, ``cairn --help`` and ``cairn plugins`` as
subprocesses (after two unmeasured warm-up runs each, so stevedore's
entry-point cache and the OS file cache are warm) and prints the median wall
time of each and the ratios to ``python -c pass``. The target is
``cairn --help`` at most 8x ``python -c pass`` with every first-party plugin
installed: plugins are imported to list their commands, so one plugin with a
heavy import at module level shows up here.

It also prints which heavy modules ``cairn --help`` ends up importing (none
should be) and the largest top-level imports, from ``python -X importtime``.

Usage::

    python bench/startup.py [--runs 15] [--check]

``--check`` exits 1 when the ``cairn --help`` ratio is over the target or a
heavy module is imported, for CI.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Modules that must never be imported just to print help: each costs tens to hundreds of milliseconds.
HEAVY_MODULES = ("sqlite_utils", "tiktoken", "tokenizers", "httpx", "numpy", "rich")

#: ``cairn --help`` may take at most this many times as long as ``python -c pass``.
TARGET_RATIO = 8.0

MIN_RUNS = 15
WARM_UP_RUNS = 2

# Runs the real entry point the way the console script does, then reports what got imported.
_PROBE = """\
import atexit, json, sys
heavy, out = {heavy!r}, {out!r}

def report():
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(sorted(m for m in heavy if m in sys.modules), handle)

atexit.register(report)
sys.argv = ["cairn", "--help"]
from cairn.cli import main
main()
"""


def cairn_command() -> list[str]:
    """The installed ``cairn`` script (beside this interpreter, else on PATH), else ``python -m cairn``."""
    beside = Path(sys.executable).with_name("cairn")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("cairn")
    if found:
        return [found]
    return [sys.executable, "-m", "cairn"]


def isolated_env() -> dict[str, str]:
    """The caller's environment without cairn settings, so the figures do not depend on them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN")}
    env["CAIRN_USER_CONFIG"] = ""
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def time_runs(command: list[str], runs: int, *, env: dict[str, str], cwd: str) -> list[float]:
    """Wall time in seconds of each of ``runs`` runs (after the warm-up); a failing run aborts."""
    times = []
    for index in range(WARM_UP_RUNS + runs):
        start = time.perf_counter()
        result = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace")
            raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{detail}")
        if index >= WARM_UP_RUNS:
            times.append(elapsed)
    return times


def heavy_imports(*, env: dict[str, str], cwd: str) -> list[str]:
    """The heavy modules present in ``sys.modules`` when ``cairn --help`` exits."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "modules.json")
        probe = _PROBE.format(heavy=HEAVY_MODULES, out=out)
        subprocess.run(
            [sys.executable, "-c", probe],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        with open(out, encoding="utf-8") as handle:
            return json.load(handle)


def largest_imports(*, env: dict[str, str], cwd: str, count: int = 8) -> list[tuple[str, float]]:
    """The top-level imports of ``cairn --help`` with the largest cumulative time, in milliseconds."""
    probe = "import sys; sys.argv = ['cairn', '--help']; from cairn.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    top: list[tuple[str, float]] = []
    for line in result.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"; nested imports are indented.
        if not line.startswith("import time:") or "imported package" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|", 2)
        if name.startswith("  "):
            continue
        top.append((name.strip(), int(cumulative) / 1000))
    return sorted(top, key=lambda item: item[1], reverse=True)[:count]


def installed_plugins() -> list[str]:
    return sorted(ep.name for ep in importlib.metadata.entry_points(group="cairn"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=MIN_RUNS, help=f"measured runs per command (at least {MIN_RUNS})")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when over the target or a heavy module is imported"
    )
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}: fewer makes the median noise")

    env = isolated_env()
    cairn = cairn_command()
    # An empty directory: no cairn.toml is found, as for a user outside any project.
    with tempfile.TemporaryDirectory() as cwd:
        medians = {
            "python -c pass": statistics.median(time_runs([sys.executable, "-c", "pass"], args.runs, env=env, cwd=cwd)),
            "cairn --help": statistics.median(time_runs([*cairn, "--help"], args.runs, env=env, cwd=cwd)),
            "cairn plugins": statistics.median(time_runs([*cairn, "plugins"], args.runs, env=env, cwd=cwd)),
        }
        heavy = heavy_imports(env=env, cwd=cwd)
        largest = largest_imports(env=env, cwd=cwd)

    baseline = medians["python -c pass"]
    help_ratio = medians["cairn --help"] / baseline
    plugins_ratio = medians["cairn plugins"] / baseline
    verdict = "ok" if help_ratio <= TARGET_RATIO else "OVER TARGET"

    print(f"cairn start-up, median of {args.runs} runs each (Python {platform.python_version()}, {' '.join(cairn)})")
    print(f"installed plugins: {', '.join(installed_plugins()) or 'none'}")
    print(f"  python -c pass   {baseline * 1000:8.1f} ms")
    print(f"  cairn --help     {medians['cairn --help'] * 1000:8.1f} ms")
    print(f"  cairn plugins    {medians['cairn plugins'] * 1000:8.1f} ms")
    print(f"cairn --help  / python -c pass: {help_ratio:5.1f}x  (target <= {TARGET_RATIO:g}x: {verdict})")
    print(f"cairn plugins / python -c pass: {plugins_ratio:5.1f}x")
    print(
        f"heavy modules imported by cairn --help: {', '.join(heavy) or 'none'}  (checked: {', '.join(HEAVY_MODULES)})"
    )
    print("largest top-level imports of cairn --help (cumulative):")
    for name, ms in largest:
        print(f"  {name:<28} {ms:7.1f} ms")

    if args.check and (help_ratio > TARGET_RATIO or heavy):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
