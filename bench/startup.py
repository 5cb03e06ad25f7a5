"""Start-up time of the ``cairn`` command against a bare interpreter, measured in the same run.

Runs ``python -c pass``, ``cairn --help``, ``cairn plugins`` and, in a small
project (``cairn init`` and a few commits), ``cairn status``, ``cairn log``
and ``cairn commit`` as subprocesses, interleaved: each round runs every
command once, in turn, after two unmeasured warm-up rounds (stevedore's
entry-point cache and the OS file cache are warm). It prints each command's
median wall time and the median of its per-round ratio to ``python -c pass``
run in the same round, so a machine whose speed drifts moves both.

``cairn --help`` is printed from the help the first run kept (see
``cairn.launch``: it is rendered again whenever code, installed
distributions, config files or the environment change); ``--help, not
kept`` renders it every time (``CAIRN_NO_HELP_CACHE=1``), which is what the
first run after an install pays.

Targets, with every first-party plugin installed: ``cairn --help`` at most
2.5x ``python -c pass``; ``status``, ``log`` and ``commit`` on a small store
at most 3x. Plugins are imported to list their commands, so one plugin with
a heavy import at module level shows up here.

Bytecode is measured as an installed package has it: the cairn sources are
compiled first and ``PYTHONDONTWRITEBYTECODE`` is dropped from the
environment, so the figures do not include compiling every module each run.

It also prints which heavy modules ``cairn --help`` ends up importing (none
should be) and the largest top-level imports, from ``python -X importtime``.

Usage::

    python bench/startup.py [--runs 15] [--check]

``--check`` exits 1 when a ratio is over its target or ``--help`` imports a
heavy module, for CI.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Modules that must never be imported just to print help: each costs tens to hundreds of milliseconds.
HEAVY_MODULES = ("sqlite_utils", "tiktoken", "tokenizers", "httpx", "numpy", "rich")

#: Each command may take at most this many times as long as ``python -c pass`` (the issue's targets).
TARGETS = {"cairn --help": 2.5, "cairn status": 3.0, "cairn log": 3.0, "cairn commit": 3.0}

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
sys.argv = ["cairn", *{args!r}]
from cairn.launch import main
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
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode: so should the bench
    return env


def compile_cairn() -> None:
    """Write the bytecode of the kernel and every installed cairn plugin, as ``pip install`` does."""
    roots = set()
    for name in ["cairn", *(ep.value.split(".")[0] for ep in importlib.metadata.entry_points(group="cairn"))]:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.update(spec.submodule_search_locations)
    for root in sorted(roots):
        compileall.compile_dir(root, quiet=1)


def run_once(command: list[str], *, env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one run, CPU being the child's user + system time; a failing run aborts."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace")
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{detail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def time_rounds(
    commands: dict[str, tuple[list[str], str]], runs: int, *, env: dict[str, str], envs: dict[str, dict[str, str]]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each command's wall and CPU times over ``runs`` rounds (after the warm-up), every round running each in turn;
    ``envs`` adds variables for some commands."""
    walls: dict[str, list[float]] = {label: [] for label in commands}
    cpus: dict[str, list[float]] = {label: [] for label in commands}
    for index in range(WARM_UP_RUNS + runs):
        for label, (command, cwd) in commands.items():
            wall, cpu = run_once(command, env={**env, **envs.get(label, {})}, cwd=cwd)
            if index >= WARM_UP_RUNS:
                walls[label].append(wall)
                cpus[label].append(cpu)
    return walls, cpus


def heavy_imports(args: list[str], *, env: dict[str, str], cwd: str) -> list[str]:
    """The heavy modules present in ``sys.modules`` when ``cairn ARGS`` exits."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "modules.json")
        probe = _PROBE.format(heavy=HEAVY_MODULES, out=out, args=args)
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


def largest_imports(args: list[str], *, env: dict[str, str], cwd: str, count: int = 8) -> list[tuple[str, float]]:
    """The top-level imports of ``cairn ARGS`` (rendered, never from the kept help) with the largest cumulative
    time, in milliseconds."""
    probe = f"import sys; sys.argv = ['cairn', *{args!r}]; from cairn.cli import main; main()"
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
    parser.add_argument("--runs", type=int, default=MIN_RUNS, help=f"measured rounds (at least {MIN_RUNS})")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when over a target or --help imports a heavy module"
    )
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}: fewer makes the median noise")

    env = isolated_env()
    cairn = cairn_command()
    compile_cairn()
    # An empty directory: no cairn.toml is found, as for a user outside any project.
    with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as project:
        run_once([*cairn, "init"], env=env, cwd=project)
        for number in range(5):
            run_once([*cairn, "commit", f"message {number}"], env=env, cwd=project)
        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], empty),
            "cairn --help": ([*cairn, "--help"], empty),
            "--help, not kept": ([*cairn, "--help"], empty),
            "cairn plugins": ([*cairn, "plugins"], empty),
            "cairn status": ([*cairn, "status"], project),
            "cairn log": ([*cairn, "log"], project),
            "cairn commit": ([*cairn, "commit", "one more message"], project),
        }
        # The second --help renders every time: what the first run after an install or upgrade pays.
        times, cpus = time_rounds(commands, args.runs, env=env, envs={"--help, not kept": {"CAIRN_NO_HELP_CACHE": "1"}})
        heavy = heavy_imports(["--help"], env=env, cwd=empty)
        heavy_status = heavy_imports(["status"], env=env, cwd=project)
        largest = largest_imports(["--help"], env=env, cwd=empty)
        largest_status = largest_imports(["status"], env=env, cwd=project)

    baseline, cpu_baseline = times["python -c pass"], cpus["python -c pass"]
    print(f"cairn start-up, {args.runs} interleaved rounds (Python {platform.python_version()}, {' '.join(cairn)})")
    print(f"installed plugins: {', '.join(installed_plugins()) or 'none'}; load average {os.getloadavg()[0]:.1f}")
    print(f"  {'command':<16} {'wall':>9} {'CPU':>9}   ratios to python -c pass, median of rounds: wall (target), CPU")
    over = []
    for label, samples in times.items():
        line = (
            f"  {label:<16} {statistics.median(samples) * 1000:7.1f} ms {statistics.median(cpus[label]) * 1000:6.1f} ms"
        )
        if label != "python -c pass":
            ratio = statistics.median(a / b for a, b in zip(samples, baseline, strict=True))
            cpu_ratio = statistics.median(a / b for a, b in zip(cpus[label], cpu_baseline, strict=True) if b > 0)
            target = TARGETS.get(label)
            verdict = ""
            if target is not None:
                verdict = f" (<= {target:g}x: {'ok' if ratio <= target else 'OVER TARGET'})"
                if ratio > target:
                    over.append(label)
            line += f"   {ratio:5.1f}x{verdict:<22} CPU {cpu_ratio:5.1f}x"
        print(line)
    print(
        f"heavy modules imported by cairn --help: {', '.join(heavy) or 'none'}  (checked: {', '.join(HEAVY_MODULES)})"
    )
    print(f"heavy modules imported by cairn status: {', '.join(heavy_status) or 'none'}")
    for title, top in (("cairn --help, rendered", largest), ("cairn status", largest_status)):
        print(f"largest top-level imports of {title} (cumulative, python -X importtime):")
        for name, ms in top:
            print(f"  {name:<28} {ms:7.1f} ms")

    if args.check and (over or heavy):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
