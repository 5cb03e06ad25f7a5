"""The web viewer's JSON API on a long history, each figure beside a baseline from the same run.

1. ``GET /api/graph`` (the newest 200 commits of two branches, laid out)
   from a live ``cairn serve`` over a 20,000-commit SQLite history, against
   raw sqlite3 reading the same 200 newest commit rows with their blobs and
   dumping them as JSON (no layout, no HTTP): the ratio is what the viewer
   adds on top of reading the rows.
2. ``GET /api/materialize?budget=8000`` against the same engine work in
   process (``Repo.materialize``, the newest 500 dropped items through
   ``iter_dropped``, JSON): the ratio is the server's overhead (HTTP,
   redaction). Also printed: the same with every dropped item
   (``Materialized.to_dict()``, what the viewer did before ``iter_dropped``),
   which walks the whole history behind the budget.

    python bench/serve.py [--commits 20000] [--rounds 15]

Requests and baselines are interleaved, medians reported. Needs cairn-serve
and cairn-sqlite installed.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from cairn.config import load_config
from cairn.plugins import load_plugins
from cairn.repo import Repo, open_repo
from cairn.testing.memory import MemoryStore

PLUGINS = load_plugins()


def text(i: int) -> str:
    return f"turn {i}: " + "the agent considered the tool output and wrote a short reply " * 2


def build(root: Path, n: int) -> Path:
    """A project whose main branch has ``n`` commits and a side branch 50 more from its middle."""
    memory = Repo(MemoryStore(), PLUGINS.create("tokenizers", "approx"), PLUGINS.content_types)
    for i in range(n):
        memory.append({"content_type": "dialogue", "role": "assistant" if i % 2 else "user", "text": text(i)})
    out = io.StringIO()
    memory.export(out)
    path = root / "project"
    path.mkdir()
    (path / "cairn.toml").write_text('[cairn]\nstorage = "sqlite"\ntokenizer = "approx"\n')
    repo = open_repo(config=load_config(path, environ={"CAIRN_USER_CONFIG": ""}), plugins=PLUGINS)
    repo.import_(out.getvalue().splitlines(), batch_size=10**9)
    repo.create_branch("side", start=f"HEAD~{n // 2}")
    repo.switch("side")
    for i in range(50):
        repo.append({"content_type": "dialogue", "role": "user", "text": f"side {i}"})
    repo.switch("main")
    repo.close()
    return path


def raw_newest(db: Path, limit: int) -> float:
    start = time.perf_counter()
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT c.*, b.data FROM commits c LEFT JOIN blobs b ON b.hash = c.content_hash "
        "ORDER BY c.created_at DESC LIMIT ?",
        (limit,),
    ).fetchall()
    json.dumps([[v.decode() if isinstance(v, bytes) else v for v in row] for row in rows])
    conn.close()
    return time.perf_counter() - start


def timed_get(client: httpx.Client, path: str) -> float:
    start = time.perf_counter()
    response = client.get(path)
    response.raise_for_status()
    response.json()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = build(Path(tmp), args.commits)
        print(f"built {args.commits} + 50 commits in {time.perf_counter() - t0:.1f}s")
        db = path / ".cairn" / "cairn.db"
        server = subprocess.Popen(
            [sys.executable, "-m", "cairn", "-C", str(path), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            url = re.search(r"http://\S+", server.stdout.readline()).group(0)  # type: ignore[union-attr]
            repo = open_repo(config=load_config(path, environ={"CAIRN_USER_CONFIG": ""}), plugins=PLUGINS)
            graph: dict[str, list[float]] = {"api": [], "raw": []}
            mat: dict[str, list[float]] = {"api": [], "engine": []}
            with httpx.Client(base_url=url, timeout=60) as client:
                timed_get(client, "api/graph?limit=200")  # first use: token counts cached, pages warm
                timed_get(client, "api/materialize?budget=8000")
                repo.materialize(budget=8000)
                for _ in range(args.rounds):
                    graph["api"].append(timed_get(client, "api/graph?limit=200"))
                    graph["raw"].append(raw_newest(db, 200))
                    mat["api"].append(timed_get(client, "api/materialize?budget=8000"))
                    start = time.perf_counter()
                    result = repo.materialize(budget=8000)
                    data = result.to_dict(include_dropped=False)
                    data["dropped"] = [d.to_dict() for d in itertools.islice(result.iter_dropped(), 500)]
                    json.dumps(data)
                    mat["engine"].append(time.perf_counter() - start)
                start = time.perf_counter()
                json.dumps(repo.materialize(budget=8000).to_dict())
                every = time.perf_counter() - start
            repo.close()
        finally:
            server.terminate()
            server.wait()
    med = {k: {n: statistics.median(v) * 1000 for n, v in d.items()} for k, d in (("graph", graph), ("mat", mat))}
    print(
        f"GET /api/graph?limit=200       {med['graph']['api']:7.1f} ms   raw sqlite3 200 rows + JSON "
        f"{med['graph']['raw']:6.1f} ms   ratio {med['graph']['api'] / med['graph']['raw']:.1f}x"
    )
    print(
        f"GET /api/materialize?budget=8000 {med['mat']['api']:5.1f} ms   Repo.materialize + JSON in process "
        f"{med['mat']['engine']:6.1f} ms   ratio {med['mat']['api'] / med['mat']['engine']:.1f}x"
    )
    print(f"  (every dropped item, Materialized.to_dict(): {every * 1000:.0f} ms once)")


if __name__ == "__main__":
    main()
