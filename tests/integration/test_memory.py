"""Memory end to end on SQLite and on git (its vector cache): index, search, collections, tiers, recall, reader."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cairn.config import load_config
from cairn.errors import NotFoundError, ProviderError, ValidationError
from cairn.events import bus
from cairn.memory import Memory, MemoryReader
from cairn.memory.reader import QUERY_EVENT
from cairn.plugins import load_plugins
from cairn.providers import Embedder, EmbeddingProvider, EmbeddingRequest, EmbeddingResponse
from cairn.repo import open_repo

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Tester",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "Tester",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


@pytest.fixture(params=["sqlite", "git"])
def project(request: pytest.FixtureRequest, cairn: Any) -> Any:
    """A project on each backend with the offline hashing embedder."""
    storage = request.param
    if storage == "git":
        subprocess.run(
            ["git", "init", "-q", "-b", "work"], cwd=cairn.project, check=True, env={**os.environ, **GIT_ENV}
        )
    (cairn.project / "cairn.toml").write_text(
        f'[cairn]\nstorage = "{storage}"\nembeddings = "hashing"\n[embeddings.hashing]\ndimensions = 256\n',
        encoding="utf-8",
    )
    for key, value in GIT_ENV.items():
        os.environ.setdefault(key, value)
    return cairn


def seed(cairn: Any) -> None:
    cairn("commit", "the deploy failed because the database migration was missing")
    cairn("commit", "--role", "assistant", "I added the migration and the deploy passes now")
    cairn("switch", "-c", "design")
    cairn("commit", "the logo should be a blue mountain")
    cairn("memory", "remember", "production runs PostgreSQL 15", "--subject", "infra")


def open_memory(project: Path, **options: Any) -> Memory:
    config = load_config(project)
    plugins = load_plugins()
    return Memory.open(open_repo(config=config, plugins=plugins), config, plugins, **options)


def test_index_then_search_in_every_mode(project: Any) -> None:
    seed(project)
    report = project.json("memory", "index")
    assert report["embedded"] == report["texts"] == 4
    # main's two items, the same two and one more on design (branched from main), one fact: 4 distinct texts.
    assert report["documents"] == {"written": 6, "removed": 0}
    assert project.json("memory", "index")["embedded"] == 0  # idempotent: nothing left to embed
    # The embedding calls are findable in `cairn logs`: one entry for each index run that made any.
    [entry] = [c for c in project.json("logs") if c["operation"] == "memory"]
    assert entry["kind"] == "within" and entry["provider"] == "hashing" and entry["calls"] >= 1
    assert project.json("runs", "show", entry["id"])["subtype"] == "index"
    for mode in ("semantic", "lexical", "hybrid"):
        results = project.json("search", "database migration", "--mode", mode)
        assert results[0]["snippet"].startswith("the deploy failed"), mode
        assert {"score", "kind", "id", "snippet"} <= results[0].keys()
    # A semantic or hybrid search embeds the query: a `memory` run of subtype search each, without the query.
    searches = [c for c in project.json("logs") if c["operation"] == "memory" and c["id"] != entry["id"]]
    assert len(searches) == 2 and all(c["calls"] >= 1 for c in searches)  # the query (and the identity probe)
    shown = [project.json("runs", "show", c["id"]) for c in searches]
    assert {r["metadata"]["mode"] for r in shown} == {"semantic", "hybrid"} and "migration" not in json.dumps(shown)
    assert [r["kind"] for r in project.json("search", "PostgreSQL", "--kind", "memory")] == ["memory"]
    design = project.json("search", "logo mountain deploy", "--branch", "design", "--mode", "lexical")
    assert {r["id"].split(":")[0] for r in design} == {"design"}
    assert all(r["branch"] == "design" for r in design)


def test_edits_and_deletes_reach_the_index(project: Any) -> None:
    seed(project)
    project("memory", "index")
    item = project.json("log")[0]["hash"] if isinstance(project.json("log"), list) else None
    assert item
    project("delete", item)
    report = project.json("memory", "index")
    assert report["documents"]["removed"] == 1
    assert not project.json("search", "blue mountain logo", "--mode", "lexical", "--kind", "context")


def test_facts_supersede_forget_and_time_travel(project: Any) -> None:
    first = project.json("memory", "remember", "the staging host is db-1", "--subject", "infra")
    before = project.json("memory", "facts")[0]["created"]
    newer = project.json("memory", "remember", "the staging host is db-2", "--supersedes", first["id"][:10])
    assert newer["id"] == first["id"]
    facts = project.json("memory", "facts", "--subject", "infra")
    assert [f["text"] for f in facts] == ["the staging host is db-2"]
    assert [f["text"] for f in project.json("memory", "facts", "--as-of", before)] == ["the staging host is db-1"]
    project("memory", "forget", first["id"][:10])
    assert project.json("memory", "facts") == []
    project("memory", "index")
    assert project.json("search", "staging host", "--kind", "memory") == []
    # History keeps the forgotten fact: the memory branch's log still has all three commits.
    assert len(project.json("log", "memory")) == 3


def test_consolidate_makes_labelled_extractive_episodes_once(project: Any) -> None:
    seed(project)
    made = project.json("memory", "consolidate")
    assert sorted((m["branch"], m["commits"]) for m in made) == [("design", 3), ("main", 2)]
    assert all(m["summarizer"] == "extractive" for m in made)
    assert all(m["commits"] >= 1 and m["first"] and m["last"] for m in made)
    assert project.json("memory", "consolidate") == []  # nothing new
    episode = made[0]["id"]
    fact = project.json("memory", "remember", "the logo is blue", "--source", f"episode:{episode[:8]}")
    assert fact["source"] == f"episode:{episode}"
    head = project.json("log")[0]["hash"]
    assert project.json("memory", "remember", "x", "--source", "commit:HEAD")["source"] == f"commit:{head}"
    assert project.run("memory", "remember", "y", "--source", "elsewhere", check=False).returncode == 1
    project("commit", "one more thing on design")
    again = project.json("memory", "consolidate")
    assert [(m["branch"], m["commits"]) for m in again] == [("design", 1)]
    assert project.json("memory", "episodes", "--branch", "design")[0]["text"].startswith("one more thing")


def test_recall_adds_one_marked_block_inside_the_budget_and_keeps_pinned_items(project: Any) -> None:
    seed(project)
    project("memory", "index")
    pinned = project.json("commit", "-t", "instruction", "always answer in English")["hash"]
    project("pin", pinned)
    out = project.json("materialize", "--recall", "which database runs in production")
    assert out["recall"]["ids"] and out["items"][1]["item"] == "memory:recall"
    block = out["items"][1]["content"]["text"]
    assert block.startswith("[cairn memory recall]") and "PostgreSQL 15" in block
    tight = project.json("materialize", "--recall", "database production", "--budget", "40")
    assert tight["token_count"] <= 40
    assert pinned in [i["item"] for i in tight["items"]]  # recall never pushes out a pinned item
    none = project.json("materialize", "--recall", "database", "--budget", "12")
    assert none["recall"]["ids"] == [] and none["recall"]["reason"]
    assert pinned in [i["item"] for i in none["items"]]


def test_collections_add_bulk_search_similar(project: Any, tmp_path: Path) -> None:
    project("memory", "add", "fruit", "b", "bananas are long and yellow")
    bulk = tmp_path / "more.jsonl"
    bulk.write_text(
        '{"id": "l", "text": "lemons are yellow and sour", "metadata": {"colour": "yellow"}}\n'
        '{"id": "c", "text": "cherries are small and red"}\n'
    )
    project("memory", "add", "fruit", "--file", str(bulk))
    table = tmp_path / "veg.csv"
    table.write_text("id,text,season\nk,kale is green,winter\n")
    project("memory", "add", "veg", "--file", str(table))
    assert project.json("memory", "collections")["collections"] == {"fruit": 3, "veg": 1}
    found = project.json("memory", "search", "fruit", "yellow")
    assert {r["id"] for r in found[:2]} == {"b", "l"}
    assert found[0]["kind"] == "collection" and found[0]["collection"] == "fruit"
    similar = project.json("memory", "similar", "fruit", "l")
    assert similar[0]["id"] == "b" and "l" not in [r["id"] for r in similar]


def test_bad_input_is_refused_with_clear_errors(project: Any, tmp_path: Path) -> None:
    def refused(*args: str) -> str:
        proc = project.run(*args, check=False)
        assert proc.returncode in (1, 2), (args, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:"), proc.stderr
        return proc.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{"id": "b"\n')
    assert "line 2" in refused("memory", "add", "notes", "--file", str(bad))
    assert project.json("memory", "collections")["collections"] == {}  # nothing stored
    assert "empty" in refused("search", "   ")
    refused("search", "x", "-k", "0")
    refused("search", "x", "-k", "1000000")
    assert "collection" in refused("memory", "search", "nowhere", "query")
    assert "collection name" in refused("memory", "add", "@context", "x", "y")
    assert "memory item" in refused("memory", "forget", "abcdef")


def test_a_changed_embedder_is_explained_and_reindex_fixes_it(project: Any) -> None:
    seed(project)
    project("memory", "index")
    other = ["--set", "embeddings.hashing.dimensions=128"]
    proc = project.run(*other, "search", "database", "--mode", "semantic", check=False)
    assert proc.returncode == 1 and "cairn memory reindex" in proc.stderr and "Traceback" not in proc.stderr
    report = project.json(*other, "memory", "reindex")
    assert report["identity"]["dimensions"] == 128 and report["embedded"] == 4
    assert project.json(*other, "search", "database migration", "--mode", "semantic")


class FailingAfter(EmbeddingProvider):
    """The real hashing embedder, failing from its ``after``-th call on: a crash half-way through indexing."""

    default_model = "hashing-v2"

    def __init__(self, inner: Any, after: int) -> None:
        self.inner = inner
        self.after = after
        self.calls = 0
        self.prices = inner.prices

    def capabilities(self, model: str | None = None) -> Any:
        return self.inner.capabilities(model)

    def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.calls += 1
        if self.calls > self.after:
            raise ProviderError("the embedding server went away")
        return self.inner.embed(request)


def test_an_interrupted_index_keeps_what_it_stored_and_the_next_run_embeds_the_rest(project: Any) -> None:
    texts = [(str(i), f"note number {i} about topic {i % 7}", {}) for i in range(300)]
    from cairn.providers import RetryPolicy

    memory = open_memory(project.project)
    try:
        memory.add("notes", texts, embed=False)
        inner = memory.plugins.create("embeddings", "hashing", memory.config)
        tokenizer = memory.repo.tokenizer
        broken = Embedder(FailingAfter(inner, 3), "hashing", tokenizer=tokenizer, policy=RetryPolicy(max_attempts=1))
        crashed = Memory.open(memory.repo, memory.config, memory.plugins, embedder=broken)
        with pytest.raises(ProviderError):
            crashed.embed(batch=50)  # the identity probe and two batches, then the provider fails
        stored = sum(memory.vectors.vector_counts().values())
        assert stored == 100  # the two batches embedded before the failure were kept
        crashed.close()
        assert memory.pending() == 200
        report = memory.embed(batch=50)
        assert report.embedded == 200 and report.indexed == 300
        assert memory.embed().embedded == 0
    finally:
        memory.close()
        memory.repo.close()


class NaNFrom(FailingAfter):
    """The real hashing embedder, whose answers from its ``after``-th call on hold a NaN in one vector."""

    def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        self.calls += 1
        response = self.inner.embed(request)
        if self.calls > self.after:
            vectors = [v.copy() for v in response.vectors]
            vectors[-1][3] = float("nan")
            return EmbeddingResponse(vectors, response.usage, response.model)
        return response


def test_an_embedder_answering_nan_is_refused_and_its_batch_is_not_stored(project: Any) -> None:
    from cairn.providers import RetryPolicy

    memory = open_memory(project.project)
    try:
        memory.add("notes", [(str(i), f"note {i} on subject {i % 5}", {}) for i in range(120)], embed=False)
        inner = memory.plugins.create("embeddings", "hashing", memory.config)
        broken = Embedder(
            NaNFrom(inner, 2), "hashing", tokenizer=memory.repo.tokenizer, policy=RetryPolicy(max_attempts=1)
        )
        crashed = Memory.open(memory.repo, memory.config, memory.plugins, embedder=broken)
        with pytest.raises(ValidationError, match="NaN") as raised:
            crashed.embed(batch=50)  # the identity probe and one good batch, then a vector with NaN
        assert "nothing of this batch was stored" in str(raised.value.hint)
        crashed.close()
        assert sum(memory.vectors.vector_counts().values()) == 50  # the good batch only
        assert memory.pending() == 70
        assert memory.embed(batch=50).embedded == 70
    finally:
        memory.close()
        memory.repo.close()


def test_spend_is_one_record_per_model_for_a_whole_run(project: Any) -> None:
    memory = open_memory(project.project)
    try:
        memory.add("notes", [(str(i), f"text {i}", {}) for i in range(600)], embed=False)
        memory.identity  # the identity probe: one call, recorded on its own  # noqa: B018
        before = len(memory.repo.store.spend())  # type: ignore[attr-defined]
        assert memory.embed(batch=32).batches == 19
        records = memory.repo.store.spend()  # type: ignore[attr-defined]
        assert len(records) == before + 1
        assert max(records, key=lambda r: r.calls).calls == 19
    finally:
        memory.close()
        memory.repo.close()


def test_the_reader_is_bounded_read_only_and_records_metadata_only(project: Any) -> None:
    seed(project)
    project("memory", "consolidate")
    project("memory", "index")
    events: list[Any] = []
    unsubscribe = bus.subscribe(QUERY_EVENT, events.append)
    memory = open_memory(project.project)
    try:
        reader = MemoryReader(memory)
        assert reader.facts("infra")[0]["text"] == "production runs PostgreSQL 15"
        assert len(reader.recent_episodes(1)) == 1
        assert reader.semantic("secret database words", k=2)
        for bad in (0, 101, True, "3"):
            with pytest.raises(ValidationError):
                reader.semantic("database", k=bad)  # type: ignore[arg-type]
        with pytest.raises(NotFoundError):
            reader.similar_runs("no-such-run", 3)
        public = {n for n in dir(reader) if not n.startswith("_")}
        assert public == {"facts", "recent_episodes", "semantic", "similar_runs"}
        with pytest.raises(AttributeError):
            reader.memory = memory  # type: ignore[attr-defined]
    finally:
        unsubscribe()
        memory.close()
        memory.repo.close()
    payloads = [e.payload for e in events]
    assert [p["query"] for p in payloads[:3]] == ["facts", "recent_episodes", "semantic"]
    assert all(set(p) == {"query", "limit", "count", "latency_ms", "outcome"} for p in payloads)
    assert "secret" not in json.dumps(payloads) and "PostgreSQL" not in json.dumps(payloads)


def test_consolidate_with_an_llm_records_the_model_and_usage(cairn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cairn.testing.fake_openai import FakeOpenAI, Reply

    monkeypatch.setenv("CAIRN_IT_MEMORY_KEY", "sk-memory-test-1")
    with FakeOpenAI(api_key="sk-memory-test-1", model="gpt-4o-mini") as server:
        (cairn.project / "cairn.toml").write_text(
            f'[cairn]\nllm = "openai"\n[llm.openai]\nbase_url = "{server.url}"\n'
            'api_key_env = "CAIRN_IT_MEMORY_KEY"\nmodel = "gpt-4o-mini"\n',
            encoding="utf-8",
        )
        cairn("commit", "we chose PostgreSQL for the ledger")
        server.script(Reply("The team chose PostgreSQL."))
        (episode,) = cairn.json("memory", "consolidate")
        sent = server.calls("chat")[-1].json["messages"]
    assert episode["text"] == "The team chose PostgreSQL."
    assert episode["summarizer"].endswith("gpt-4o-mini") and episode["usage"]
    assert "we chose PostgreSQL" in sent[-1]["content"]


def test_a_killed_index_run_loses_nothing_it_stored(cairn: Any, tmp_path: Path) -> None:
    """SIGKILL ``cairn memory index`` once vectors are on disk: the store opens, and the next run embeds the rest."""
    import signal
    import sqlite3
    import sys
    import time

    (cairn.project / "cairn.toml").write_text('[cairn]\nembeddings = "hashing"\n', encoding="utf-8")
    bulk = tmp_path / "many.jsonl"
    bulk.write_text(
        "".join(json.dumps({"id": str(i), "text": f"note {i} on topic {i % 97}"}) + "\n" for i in range(12000))
    )
    cairn("memory", "add", "notes", "--file", str(bulk), "--no-embed")
    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn", "memory", "index", "--batch", "64"],
        cwd=cairn.project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    database = cairn.project / ".cairn" / "cairn.db"

    def stored() -> int:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
        try:
            return int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])
        finally:
            conn.close()

    deadline = time.monotonic() + 120
    before = 0
    while time.monotonic() < deadline and proc.poll() is None:
        before = stored()
        if before:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert before > 0, "no vector was stored before the deadline"
    kept = stored()
    assert kept >= before  # nothing acknowledged was lost
    report = cairn.json("memory", "index")
    assert report["embedded"] == 12000 - kept  # only the rest was embedded
    assert report["indexed"] == 12000
    assert stored() == 12000
    assert cairn.json("memory", "search", "notes", "topic 42", "-k", "3")
