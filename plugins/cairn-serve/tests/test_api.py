"""The JSON API over a live `cairn serve` on loopback: every endpoint, its errors, and its guards."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import CANARY, Server


@pytest.fixture(scope="module")
def api(server: Server):
    with httpx.Client(base_url=server.base, timeout=30) as client:
        yield client


def get(api: httpx.Client, path: str, **params):
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def test_overview_names_the_backend_facets_and_branch(api):
    data = get(api, "/api/overview")
    assert data["backend"] == "sqlite" and data["branch"] == "main"
    assert {"objects", "refs", "annotations", "ledger", "chat"} <= set(data["facets"])


def test_branches_and_the_graph_hold_every_commit_once(api, project):
    branches = {b["name"]: b for b in get(api, "/api/branches")}
    assert set(branches) == {"main", "experiment", "memory"} and branches["main"]["current"]
    graph = get(api, "/api/graph")
    main_log = {c["hash"] for c in project.json("log", "main")}
    side_log = {c["hash"] for c in project.json("log", "experiment")}
    memory_log = {c["hash"] for c in project.json("log", "memory")}
    assert not memory_log & (main_log | side_log)  # the memory branch is a history of its own
    assert {n["hash"] for n in graph["nodes"]} == main_log | side_log | memory_log
    assert len(graph["nodes"]) == len(main_log | side_log | memory_log)
    assert [n["row"] for n in graph["nodes"]] == list(range(len(graph["nodes"])))
    times = [n["created_at"] for n in graph["nodes"]]
    assert times == sorted(times, reverse=True)
    by_hash = {n["hash"]: n for n in graph["nodes"]}
    assert by_hash[branches["main"]["head"]]["branches"] == ["main"] and by_hash[branches["main"]["head"]]["head"]
    kinds = {e["kind"] for e in graph["edges"]}
    assert {"parent", "edit", "delete"} <= kinds
    for edge in graph["edges"]:
        if edge["kind"] == "parent":
            child = project.json("show", edge["from"])
            assert child["parent"] == edge["to"]
    # the two branches part at one commit: its children sit in two lanes (the memory branch, older, reuses one)
    assert graph["lanes"] == 2


def test_a_window_of_the_graph_is_the_newest_commits(api):
    whole = get(api, "/api/graph")
    window = get(api, "/api/graph", limit=3)
    assert [n["hash"] for n in window["nodes"]] == [n["hash"] for n in whole["nodes"][:3]]
    assert window["truncated"] and not whole["truncated"]
    shown = {n["hash"] for n in window["nodes"]}
    assert all(e["from"] in shown and e["to"] in shown for e in window["edges"])


def test_a_commit_shows_its_item_annotations_and_edit_history(api, project):
    log = project.json("log", "main")
    edited = next(c for c in log if c["operation"] == "append" and "will be edited" in c["content"]["text"])
    data = get(api, f"/api/commits/{edited['hash'][:12]}")
    assert data["hash"] == edited["hash"] and data["item"] == edited["hash"]
    assert [h["operation"] for h in data["history"]] == ["edit", "delete"]  # edited on main, deleted on the side
    assert data["history"][0]["content"]["text"] == "An answer, edited: about 70 °C."
    question = next(c for c in log if c["content"].get("text") == "What is the boiling point of water on Everest?")
    pinned = get(api, f"/api/commits/{question['hash']}")
    assert [(a["priority"], a["reason"]) for a in pinned["annotations"]] == [("pinned", "the question itself")]


def test_materialize_at_any_revision_and_budget_says_what_was_dropped_and_why(api, project):
    whole = get(api, "/api/materialize")
    cli = project.json("materialize")
    assert whole["messages"] == cli["messages"] and whole["token_count"] == cli["token_count"]
    assert whole["dropped_by_reason"] == {"skipped": 1}
    tight = get(api, "/api/materialize", budget=40)
    assert tight["token_count"] <= 40 and tight["dropped_by_reason"].get("budget", 0) >= 1
    side = get(api, "/api/materialize", rev="experiment", format="anthropic")
    assert side["format"] == "anthropic" and "system" in side["messages"]
    assert side["dropped_by_reason"].get("deleted") == 1
    assert whole["dropped_truncated"] is False
    one = get(api, "/api/materialize", budget=40, dropped_limit=1)
    assert one["dropped"] == tight["dropped"][:1] and one["dropped_truncated"] is True
    first = project.json("log", "main")[-2]["hash"]
    early = get(api, "/api/materialize", as_of=first)
    assert early["commit_count"] == 2


def test_diff_between_branches(api, project):
    data = get(api, "/api/diff", a="main", b="experiment")
    assert data == json.loads(json.dumps(data))  # plain JSON
    statuses = sorted(e["status"] for e in data["entries"])
    cli = sorted(e["status"] for e in project.json("diff", "main", "experiment"))
    assert statuses == cli and "added" in statuses


def test_runs_filter_and_one_run_with_its_events_and_chat(api):
    runs = get(api, "/api/runs")
    types = {r["type"] for r in runs}
    assert {"command", "llm", "eval"} <= types
    commands = get(api, "/api/runs", type="command")
    assert [r["type"] for r in commands] == ["command"]
    assert get(api, "/api/runs", status="failed") == []
    one = get(api, f"/api/runs/{commands[0]['run_id']}")
    assert one["run"]["run_id"] == commands[0]["run_id"]
    assert any("step two" in json.dumps(e["fields"]) for e in one["events"])
    assert [m["text"] for m in one["chat"]] == ["A note on the last run."]


def test_calls_are_the_asks_with_their_commits(api, project):
    calls = get(api, "/api/calls")
    # the two asks, and the embedding calls `cairn memory index` made (every provider call is a call)
    assert [c["model"] for c in calls if c["reply_commit"]] == ["gpt-4.1-mini", "gpt-4o-mini"]
    assert {c["model"] for c in calls if not c["reply_commit"]} == {"hashing-v2"}
    assert calls == project.json("logs")
    assert [c["model"] for c in get(api, "/api/calls", model="gpt-4o-mini")] == ["gpt-4o-mini"]


def test_chat_shows_a_sealed_message_as_locked_without_the_key(api):
    [thread] = [t for t in get(api, "/api/threads") if t["title"] == "Boiling points"]
    messages = get(api, "/api/messages", thread=thread["thread_id"])
    states = {m["state"]: m["text"] for m in messages}
    assert states["plain"] == "Plain words anyone may read."
    assert states["locked"].startswith("[encrypted: no key")
    assert "Sealed words" not in json.dumps(messages)


def test_evals_and_their_comparison_with_intervals_and_p_values(api):
    evals = get(api, "/api/evals")
    assert [e["name"] for e in evals] == ["candidate", "baseline"]
    data = get(api, "/api/evals/compare", base="baseline", run="candidate", resamples=500)
    labels = {e["label"]: e for e in data["evaluators"]}
    assert set(labels) == {"exact", "token_f1", "latency:max_ms=600"}
    exact = labels["exact"]
    assert exact["ci_low"] <= exact["mean_difference"] <= exact["ci_high"]
    assert 0 <= exact["p_value"] <= 1 and 0 <= exact["mcnemar_p_value"] <= 1
    assert data["base_name"] == "baseline" and data["run_name"] == "candidate"


def test_spend_by_day_provider_and_model(api, project):
    data = get(api, "/api/spend")
    models = {(g["provider"], g["model"]): g for g in data["groups"]}
    # two asks, and the embedding calls of `cairn memory index` and of semantic searches (hashing, offline)
    assert set(models) == {("openai", "gpt-4o-mini"), ("openai", "gpt-4.1-mini"), ("hashing", "hashing-v2")}
    assert sum(g["calls"] for g in data["groups"] if g["provider"] == "openai") == 2
    assert models[("hashing", "hashing-v2")]["calls"] >= 1
    cli = project.json("spend")
    assert sorted((g["model"], g["calls"]) for g in data["groups"]) == sorted(
        (g["model"], g["calls"]) for g in cli["groups"]
    )


def test_memory_shows_current_facts_with_their_revisions_and_the_episodes(api, project):
    data = get(api, "/api/memory")
    facts = {f["subject"]: f for f in data["facts"]}
    assert set(facts) == {"physics", "geography"}
    assert facts["physics"]["text"] == "Water boils at 100 °C at sea level and lower with altitude"
    assert facts["physics"]["revised"] is True and facts["geography"]["revised"] is False
    assert [(f["id"], f["text"]) for f in data["facts"]] == [
        (f["id"], f["text"]) for f in project.json("memory", "facts")
    ]
    episodes = project.json("memory", "episodes")
    assert episodes and [e["id"] for e in data["episodes"]] == [e["id"] for e in episodes][:20]
    assert {"main", "experiment"} <= {e["branch"] for e in data["episodes"]}
    assert data["documents"]["@memory"] >= 3 and data["has_vectors"] is True
    assert [f["subject"] for f in get(api, "/api/memory", subject="geography")["facts"]] == ["geography"]
    assert len(get(api, "/api/memory", episodes="1")["episodes"]) == 1


@pytest.mark.parametrize("mode", ["lexical", "hybrid", "semantic"])
def test_memory_search_answers_as_cairn_search_does(api, project, mode):
    found = get(api, "/api/memory/search", q="Everest summit height", mode=mode, k="5")
    cli = project.json("search", "Everest summit height", "--mode", mode, "-k", "5")
    assert [(r["kind"], r["id"]) for r in found] == [(r["kind"], r["id"]) for r in cli]
    assert found, "the fact about Everest is found"
    only = get(api, "/api/memory/search", q="Everest summit height", mode=mode, kind="memory")
    assert only and {r["kind"] for r in only} == {"memory"}
    assert "8849" in only[0]["snippet"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/memory",
        "/api/overview",
        "/api/graph",
        "/api/materialize",
        "/api/runs",
        "/api/calls",
        "/api/messages",
        "/api/evals",
        "/api/spend",
        "/",
        "/materialize",
    ],
)
def test_no_response_holds_the_secret_in_the_servers_environment(api, project, path):
    assert CANARY.encode() in (project.path / ".cairn" / "cairn.db").read_bytes()  # context keeps what it was given
    response = api.get(path)
    assert response.status_code == 200
    assert CANARY not in response.text


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("/api/commits/nosuchcommit", {}, 404, "no commit or branch"),
        ("/api/materialize", {"budget": "lots"}, 400, "budget must be a positive whole number"),
        ("/api/materialize", {"budget": "0"}, 400, "budget must be at least 1"),
        ("/api/materialize", {"format": "yaml"}, 400, "unknown format"),
        ("/api/runs/..%2Fetc", {}, 404, "no API endpoint"),
        ("/api/runs/-rm", {}, 400, "not a valid run id"),
        ("/api/runs", {"status": "sideways"}, 400, "unknown run status"),
        ("/api/diff", {}, 400, "diff needs a revision"),
        ("/api/evals/compare", {"base": "@last"}, 400, "needs two eval runs"),
        ("/api/nothing", {}, 404, "no API endpoint"),
        ("/api/memory/search", {}, 400, "the query is empty"),
        ("/api/memory/search", {"q": "water", "mode": "fuzzy"}, 400, "unknown mode 'fuzzy'"),
        ("/api/memory/search", {"q": "water", "kind": "files"}, 400, "unknown kind 'files'"),
        ("/api/memory/search", {"q": "water", "k": "0"}, 400, "k must be at least 1"),
        ("/api/memory", {"episodes": "many"}, 400, "episodes must be a positive whole number"),
    ],
)
def test_bad_requests_get_a_clear_json_error(api, path, params, status, says):
    response = api.get(path, params=params)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]


def test_the_server_only_reads_and_sets_protective_headers(api):
    assert api.post("/api/graph").status_code == 405
    assert api.delete("/api/runs").status_code == 405
    headers = api.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


def test_a_request_for_another_host_is_refused(api):
    response = api.get("/api/graph", headers={"Host": "attacker.example:8040"})
    assert response.status_code == 421
