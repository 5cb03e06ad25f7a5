"""`cairn eval run|show|compare` and `cairn evaluators` end to end, on SQLite, with cairn-evals installed.

The shipped capitals datasets give a known winner offline; judges and
generation run against the fake OpenAI server on loopback.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cairn.testing.fake_openai import FakeOpenAI, Reply

BASELINE = "cairn_evals:datasets/capitals-baseline.jsonl"
CANDIDATE = "cairn_evals:datasets/capitals-candidate.jsonl"
EXACT = "exact:ignore_case=true,strip_punctuation=true"


def configure_openai(cairn, server: FakeOpenAI, extra: str = "") -> None:
    path: Path = cairn.project / "cairn.toml"
    text = path.read_text().replace('llm = "noop"', 'llm = "openai"')
    path.write_text(
        text + f'\n[llm.openai]\nbase_url = "{server.url}"\napi_key_env = ""\nmodel = "gpt-4o-mini"\n' + extra
    )


def eval_runs(cairn) -> list[dict]:
    return cairn.json("runs", "list", "--type", "eval")


def test_two_systems_compared_name_the_winner(cairn):
    base = cairn.json(
        "eval", "run", BASELINE, "-e", EXACT, "-e", "token_f1", "-e", "latency:max_ms=600", "--name", "baseline"
    )
    assert base["status"] == "ok" and base["name"] == "baseline"
    assert base["aggregates"][EXACT]["passed"] == 11 and base["dataset"]["samples"] == 20
    cand = cairn(
        "eval", "run", CANDIDATE, "-e", EXACT, "-e", "token_f1", "-e", "latency:max_ms=600", "--name", "candidate"
    )
    lines = cand.stdout.splitlines()
    assert lines[0].split("\t") == [
        "evaluator",
        "kind",
        "mean",
        "95% CI",
        "pass rate",
        "passed",
        "failed",
        "errors",
        "skipped",
    ]
    assert lines[1].split("\t") == [EXACT, "deterministic", "0.950", "[0.845, 1.000]", "95.0%", "19", "1", "0", "0"]
    assert "recorded " in cand.stderr and "as 'candidate' (ok): 20 samples" in cand.stderr

    comparison = cairn.json("eval", "compare", "@prev", "@last")
    by_label = {e["label"]: e for e in comparison["evaluators"]}
    exact = by_label[EXACT]
    assert exact["verdict"] == "better" and exact["p_value"] < 0.05 and exact["mcnemar_p_value"] == 22 / 1024
    assert exact["regressions"] == ["myanmar"] and len(exact["improvements"]) == 9
    assert by_label["latency:max_ms=600"]["verdict"] == "no significant difference"
    assert (comparison["base_name"], comparison["run_name"]) == ("baseline", "candidate")
    assert cairn.json("eval", "compare", "baseline", "candidate") == comparison  # names resolve, numbers repeat

    table = cairn("eval", "compare", "baseline", "candidate").stdout
    assert f"{EXACT}\t20\t0.550\t0.950\t+0.400 [+0.120, +0.680]" in table
    assert "\t0.0215\t+9 -1 =10\tbetter" in table and f"{EXACT}: regressions: myanmar" in table


def test_the_ledger_holds_the_run_its_manifest_and_one_event_per_sample(cairn):
    cairn("eval", "run", BASELINE, "-e", "exact", "-e", "rubric")
    [run] = eval_runs(cairn)
    assert (run["type"], run["status"], run["subtype"]) == ("eval", "ok", "capitals-baseline")
    meta = run["metadata"]
    import hashlib
    import importlib.metadata
    import importlib.resources

    path = importlib.resources.files("cairn_evals") / "datasets" / "capitals-baseline.jsonl"
    assert meta["dataset"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["dataset"]["reference"] == BASELINE and meta["providers"] == {"llm": "noop", "embeddings": "noop"}
    assert [e["label"] for e in meta["evaluators"]] == ["exact", "rubric"]
    assert meta["evaluators"][1]["kind"] == "judge" and meta["evaluators"][1]["params"]["scale"] == 5
    assert meta["evaluators"][1]["models"] == [] and "models" not in meta["evaluators"][0]  # skipped: none asked
    assert meta["plugins"]["evals"] == importlib.metadata.version("cairn-evals")
    assert meta["plugins"]["sqlite"] == importlib.metadata.version("cairn-sqlite")
    assert meta["aggregates"]["rubric"]["skipped"] == 20 and meta["aggregates"]["exact"]["passed"] == 11
    events = cairn.json("runs", "events", run["run_id"])
    assert len(events) == 20 and {e["type"] for e in events} == {"sample"}
    assert events[2]["fields"]["id"] == "australia"
    assert events[2]["fields"]["scores"]["exact"] == {
        "outcome": "ok",
        "value": 0.0,
        "passed": False,
        "reason": "expected 'Canberra', got 'Sydney'",
    }
    assert events[2]["fields"]["scores"]["rubric"]["outcome"] == "skipped"
    shown = cairn.json("eval", "show", "@last")
    assert shown["run"]["run_id"] == run["run_id"] and len(shown["samples"]) == 20
    text = cairn("eval", "show", "@last", "--samples").stdout
    assert "dataset   cairn_evals:datasets/capitals-baseline.jsonl (20 samples, sha256" in text
    assert "australia\t0.000 fail\tskipped" in text
    assert "rubric: 20 skipped, e.g. skipped: no LLM provider is configured" in text


def test_dataset_problems_are_listed_with_lines_and_nothing_is_recorded(cairn):
    (cairn.project / "bad.jsonl").write_text(
        '{"id": "q1", "output": "a", "expected": "a"}\n{"id": "q2", "output": \n{"output": "x"}\n'
        '{"id": "q1", "output": "b"}\n{"id": 5}\n',
        encoding="utf-8",
    )
    proc = cairn.run("eval", "run", "bad.jsonl", "-e", "exact", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.startswith("error: 4 problems in dataset bad.jsonl; nothing was run or recorded:")
    for line in (
        "bad.jsonl:2:24: invalid JSON",
        "bad.jsonl:3: missing id",
        "bad.jsonl:4: duplicate id 'q1' (first on line 1)",
        "bad.jsonl:5: id must be a string",
    ):
        assert line in proc.stderr
    assert eval_runs(cairn) == []


@pytest.mark.parametrize(
    ("args", "first_line", "hint"),
    [
        (
            ["-e", "exact:ignore_cas=true"],
            "error: --evaluator exact:ignore_cas=true: [evaluators.exact] ignore_cas: unknown field(s): ignore_cas",
            "valid keys: threshold, ignore_case",
        ),
        (["-e", "exactly"], "error: no evaluator 'exactly'", "known: cost, edit_distance"),
        (
            ["-e", "regex:pattern=(x"],
            "error: --evaluator regex:pattern=(x: [evaluators.regex] pattern: pattern must be "
            "a valid regular expression",
            "",
        ),
        (["-e", "latency"], "error: [evaluators.latency] max_ms: max_ms is required", "--evaluator latency:max_ms="),
        ([], "error: no evaluators to run", "[evaluators.<name>] tables"),
        (["-e", "exact", "--model", "m"], "error: --model chooses the model that generates outputs", "--generate"),
    ],
)
def test_mistakes_are_one_clear_error_and_exit_1(cairn, args, first_line, hint):
    proc = cairn.run("eval", "run", BASELINE, *args, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].startswith(first_line), proc.stderr
    assert hint in proc.stderr
    assert eval_runs(cairn) == []


def test_unknown_runs_and_datasets_are_errors(cairn):
    for args in (
        ["eval", "show", "@last"],
        ["eval", "compare", "@prev", "@last"],
        ["eval", "run", "missing.jsonl", "-e", "exact"],
        ["eval", "show", "nobody"],
    ):
        proc = cairn.run(*args, check=False)
        assert proc.returncode == 1 and proc.stderr.startswith("error: no ") and "Traceback" not in proc.stderr


def test_evaluator_tables_are_the_default_and_their_errors_name_file_and_line(cairn):
    path = cairn.project / "cairn.toml"
    original = path.read_text()
    path.write_text(
        original + "\n[evaluators.exact]\nignore_case = true\nstrip_punctuation = true\n\n"
        "[evaluators.token_f1]\nthreshold = 0.9\n"
    )
    data = cairn.json("eval", "run", CANDIDATE)
    assert [e["label"] for e in data["evaluators"]] == ["exact", "token_f1"]
    assert data["aggregates"]["exact"]["passed"] == 19 and data["evaluators"][1]["threshold"] == 0.9
    listed = {e["name"]: e for e in cairn.json("evaluators")}
    assert listed["exact"]["configured"] and listed["exact"]["parameters"]["ignore_case"] is True
    assert not listed["rouge_l"]["configured"] and listed["rubric"]["kind"] == "judge"
    path.write_text(original + "\n[evaluators.exact]\nignore_case = 1\n")
    proc = cairn.run("eval", "run", CANDIDATE, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {path}:")
    assert "[evaluators.exact] ignore_case: expected true or false" in proc.stderr


def test_evaluators_lists_everything_installed(cairn):
    text = cairn("evaluators").stdout
    assert text.splitlines()[0].split("\t") == [
        "evaluator",
        "kind",
        "needs",
        "threshold",
        "parameters",
        "plugin",
        "description",
    ]
    assert "  rouge_l\tdeterministic\toutput, expected\t0.50\tbeta=1.0 ignore_case=true nfkc=true\tevals\t" in text
    assert "  latency\tdeterministic\t-\t1.00" in text and "not ready: [evaluators.latency] max_ms" in text
    assert len(cairn.json("evaluators")) >= 15


def test_generate_with_noop_refuses_and_records_nothing(cairn):
    proc = cairn.run("eval", "run", BASELINE, "-e", "exact", "--generate", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith('error: no LLM provider is configured: [cairn] llm is "noop"')
    assert "cairn-openai is installed" in proc.stderr and eval_runs(cairn) == []


def test_generate_and_judge_through_the_fake_server(cairn, fake_openai):
    configure_openai(cairn, fake_openai, '\n[evaluators.rubric]\nrubric = "Names the city only."\n')
    rows = [
        {"id": "fr", "input": "Capital of France? One word.", "expected": "Paris"},
        {"id": "jp", "input": [{"role": "user", "content": "Capital of Japan? One word."}], "expected": "Tokyo"},
    ]
    (cairn.project / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    fake_openai.script(Reply("Paris"), Reply("Kyoto"), Reply("Correct.\nGRADE: 5"), Reply("Wrong city.\nGRADE: 1"))
    data = cairn.json("eval", "run", "qa.jsonl", "-e", "exact", "-e", "rubric", "--generate", "--name", "gen")
    assert data["generated"] is True and data["generation"]["provider"] == "openai"
    assert data["generation"]["samples"] == 2 and data["generation"]["failed"] == 0
    assert data["aggregates"]["exact"]["passed"] == 1 and data["aggregates"]["rubric"]["mean"] == 0.5
    assert data["aggregates"]["rubric"]["input_tokens"] > 0 and data["aggregates"]["rubric"]["cost"] > 0
    assert data["evaluators"][1]["models"] == ["gpt-4o-mini"]
    calls = fake_openai.calls("chat")
    assert [c.json["messages"][-1]["content"][:18] for c in calls[:2]] == ["Capital of France?", "Capital of Japan? "]
    assert "<response>\nKyoto\n</response>" in calls[3].json["messages"][1]["content"]
    events = cairn.json("runs", "events", data["run_id"])
    assert [e["fields"]["output"] for e in events] == ["Paris", "Kyoto"]
    assert events[0]["fields"]["generation"]["usage"]["output_tokens"] == 1
    judged = events[1]["fields"]["scores"]["rubric"]
    assert judged["value"] == 0.0 and judged["reason"] == "Wrong city." and judged["metadata"]["reply"].endswith("1")
    # Every provider call, generation and grading alike, is charged to the eval run.
    db = sqlite3.connect(cairn.project / ".cairn" / "cairn.db")
    assert db.execute("SELECT COUNT(*) FROM spend WHERE run_id = ?", (data["run_id"],)).fetchone()[0] == 4
    # ... and `cairn logs` finds them: one entry for the run, with the four calls summed.
    [entry] = cairn.json("logs")
    assert (entry["id"], entry["kind"], entry["operation"], entry["calls"]) == (data["run_id"], "within", "eval", 4)
    assert entry["provider"] == "openai" and entry["model"] == "gpt-4o-mini" and entry["outcome"] == "ok"
    records = [json.loads(r) for (r,) in db.execute("SELECT record FROM spend WHERE run_id = ?", (data["run_id"],))]
    assert sum(r["input_tokens"] for r in records) == entry["usage"]["input_tokens"] > 0
    assert sum(r["output_tokens"] for r in records) == entry["usage"]["output_tokens"] > 0
    assert "eval (4 calls)" in cairn("logs").stdout
    shown = cairn.json("logs", "show", data["run_id"])
    assert shown["breakdown"] == [
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "outcome": "ok",
            "calls": 4,
            "input_tokens": entry["usage"]["input_tokens"],
            "output_tokens": entry["usage"]["output_tokens"],
            "cost": pytest.approx(entry["cost"]),
        }
    ]
    assert cairn.json("logs", "--model", "gpt-4o-mini") == [entry] and cairn.json("logs", "--model", "x") == []
    assert cairn.json("logs", "-q", "Paris") == []  # entries for calls inside runs have no bodies to search


def test_the_demo_scores_two_systems_and_compares_them(cairn_env):
    from click.testing import CliRunner

    from cairn.cli import cli

    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"$ cairn eval run {BASELINE} --name baseline -e {EXACT} -e token_f1 -e latency:max_ms=600" in out
    assert "$ cairn eval compare @prev @last" in out
    assert f"{EXACT}\t20\t0.550\t0.950\t+0.400 [+0.120, +0.680]\t0.0036" in out
    assert "better" in out and "no significant difference" in out
