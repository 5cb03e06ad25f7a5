"""The ledger commands end to end on the embedded defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cairn.redact import redact_argv


def test_run_records_a_command_with_exit_status_and_output_tail(cairn):
    proc = cairn.run(
        "run",
        "--tail",
        "2",
        "--",
        sys.executable,
        "-c",
        "import sys\nfor i in range(5): print('line', i)\nsys.exit(3)",
        check=False,
    )
    assert proc.returncode == 3  # the command's own status
    assert "line 4" in proc.stdout
    assert "recorded " in proc.stderr and "(failed, exit 3)" in proc.stderr
    (run,) = cairn.json("runs", "list")
    assert run["type"] == "command" and run["status"] == "failed" and run["metadata"]["exit_code"] == 3
    assert run["duration_ms"] is not None and run["user"]
    events = cairn.json("runs", "events", run["run_id"])
    assert [e["fields"].get("line") for e in events[:-1]] == ["line 3", "line 4"]
    assert events[-1]["type"] == "exit" and events[-1]["fields"]["code"] == 3


def test_run_with_project_option_runs_in_that_directory(cairn, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = "import os; print(os.getcwd())"
    proc = subprocess.run(
        [sys.executable, "-m", "cairn", "-C", str(cairn.project), "run", "--", sys.executable, "-c", code],
        cwd=elsewhere,
        env={**os.environ, "CAIRN_USER_CONFIG": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == str(cairn.project.resolve())
    (run,) = cairn.json("runs", "list")
    assert run["metadata"]["cwd"] == str(cairn.project.resolve())


def test_run_of_a_missing_program_is_a_clear_error_and_still_recorded(cairn):
    proc = cairn.run("run", "--", "no-such-program-xyz", check=False)
    assert proc.returncode == 1 and "could not start 'no-such-program-xyz'" in proc.stderr
    assert "Traceback" not in proc.stderr
    (run,) = cairn.json("runs", "list")
    assert run["status"] == "failed"


def test_list_show_delete_prune(cairn):
    for code in (0, 0, 1):
        cairn.run("run", "--type", "check", "--", sys.executable, "-c", f"raise SystemExit({code})", check=False)
    runs = cairn.json("runs", "list")
    assert [r["status"] for r in runs] == ["failed", "ok", "ok"]
    assert len(cairn.json("runs", "list", "--status", "ok")) == 2
    assert len(cairn.json("runs", "list", "-n", "1")) == 1
    assert cairn.json("runs", "list", "--type", "other") == []
    shown = cairn.json("runs", "show", runs[0]["run_id"])
    assert shown == runs[0]
    assert "status" in cairn("runs", "show", runs[0]["run_id"]).stdout
    cairn("runs", "delete", "--yes", runs[0]["run_id"])
    assert len(cairn.json("runs", "list")) == 2
    assert cairn.json("runs", "prune", "--older-than", "1d") == {"dry_run": False, "runs": []}
    assert len(cairn.json("runs", "prune", "--older-than", "0s", "--dry-run")["runs"]) == 2


def test_bad_ids_and_ages_are_refused_before_anything_happens(cairn):
    for args, fragment in (
        (["runs", "show", "../../etc/passwd"], "not a valid run id"),
        (["runs", "events", "--", "-rf"], "not a valid run id"),
        (["runs", "prune", "--older-than", "soon"], "not an age"),
        (["runs", "show", "20260101T000000.000000Z_x_00000000"], "no run"),
    ):
        proc = cairn.run(*args, check=False)
        assert proc.returncode in (1, 2) and fragment in proc.stderr and "Traceback" not in proc.stderr


def test_sync_commands_say_when_the_store_cannot_sync(cairn):
    proc = cairn.run("ledger", "status", check=False)
    assert proc.returncode == 1 and "cannot sync" in proc.stderr


def test_argv_redaction():
    assert redact_argv(["curl", "--token=abc", "--api-key", "k", "-H", "sk-123", "--name=x"]) == [
        "curl",
        "--token=***",
        "--api-key",
        "***",
        "-H",
        "***",
        "--name=x",
    ]
    assert json.dumps(redact_argv(["prog", "--password=hunter2"])).count("hunter2") == 0


def test_run_output_for_people_is_aligned_and_json_not_python(cairn):
    cairn.run("run", "--", sys.executable, "-c", "print('hi')")
    shown = cairn("runs", "show", "@last").stdout.splitlines()
    values = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in shown}
    starts = {len(line) - len(line.split(None, 1)[1]) for line in shown}
    assert len(starts) == 1  # one column of values
    assert json.loads(values["metadata"])["exit_code"] == 0  # JSON, not a Python dict
    assert json.loads(values["environment"])["python"]
    events = cairn("runs", "events", "@last").stdout
    assert "line=hi" in events and "'" not in events


def test_run_references_work_in_every_command(cairn):
    cairn.run("run", "--", sys.executable, "-c", "print(1)")
    cairn.run("run", "--", sys.executable, "-c", "print(2)")
    runs = cairn.json("runs", "list")
    assert cairn.json("runs", "show", "@prev")["run_id"] == runs[1]["run_id"]
    assert cairn.json("runs", "show", "@last~1")["run_id"] == runs[1]["run_id"]
    assert [e["fields"].get("line") for e in cairn.json("runs", "events", "@prev")][0] == "1"
    # `trace show @last` means the newest trace, never the newest run of another type.
    missing = cairn.run("trace", "show", "@last", check=False)
    assert missing.returncode == 1 and "no trace run '@last'" in missing.stderr
    assert "0 trace runs recorded" in missing.stderr
