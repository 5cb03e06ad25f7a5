"""Restart readback: a session of 200 asks whose process is killed (SIGKILL) at random moments.

A driver process asks the loopback fake server in a loop and prints one
``ack`` line per reply it got back from ``Session.ask``; the test kills it
at random moments (mid-stream, mid-commit, between asks), starts it again,
and goes on until 200 asks were acknowledged. Reopening must show every
acknowledged reply on the session's branch, user and assistant turns
alternating, totals equal to the sum over the replies, a clean fsck, and a
session that still answers.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ask_fake_llm

import cairn as cairn_api
from cairn.model import Dialogue
from cairn.storage import check_store
from cairn.testing.fake_openai import FakeOpenAI, Reply

ASKS = 200

DRIVER = textwrap.dedent(
    """
    import sys
    import cairn

    repo = cairn.open(sys.argv[1])
    session = repo.session(sys.argv[2])
    for n in range(int(sys.argv[3]), 10**6):
        result = session.ask(f"question {n}?", stream=True)
        print("ack", n, result.reply.hash, flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_no_acknowledged_turn(cairn, fake_llm: FakeOpenAI, tmp_path: Path):
    ask_fake_llm(cairn.project, fake_llm)
    # Long replies in small chunks, so that kills land in the middle of streams too.
    fake_llm.script(*[Reply("word " * 16, chunk_chars=6) for _ in range(ASKS * 2)])
    repo = cairn_api.open(cairn.project)
    session_id = repo.session(title="crash test").id
    repo.store.close()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    rng = random.Random(1414)
    acked: dict[int, str] = {}
    kills = 0
    env = {**os.environ, "CAIRN_USER_CONFIG": ""}
    while len(acked) < ASKS:
        proc = subprocess.Popen(
            [sys.executable, str(driver), str(cairn.project), session_id, str(len(acked))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert proc.stdout is not None
        # Kill after a random number of acks, then a random part of the next ask.
        quota = rng.randint(15, 50)
        got = 0
        for line in proc.stdout:
            _, n, reply = line.split()
            acked[int(n)] = reply
            got += 1
            if got >= quota or len(acked) >= ASKS:
                break
        if proc.poll() is not None:
            pytest.fail(f"the driver stopped by itself:\n{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(rng.uniform(0, 0.03))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Acks printed before the kill still count: they were acknowledged.
        for line in proc.stdout.read().splitlines():
            _, n, reply = line.split()
            acked[int(n)] = reply
        kills += 1
    assert kills >= 4

    repo = cairn_api.open(cairn.project)
    try:
        session = repo.session(session_id)
        head = session.view.head()
        assert head is not None
        line = list(reversed(repo.objects.ancestors(head.hash)))
        on_branch = {c.hash for c in line}
        assert set(acked.values()) <= on_branch  # every acknowledged reply is there
        dialogue = [(c, session.view.content_of(c)) for c in line]
        turns = [(c, d) for c, d in dialogue if isinstance(d, Dialogue)]
        for (_, a), (_, b) in zip(turns, turns[1:], strict=False):
            assert a.role != b.role, "two turns of one role in a row"
        replies = [c for c, d in turns if d.role == "assistant"]
        expected_in = sum((c.metadata.get("usage") or {}).get("input_tokens", 0) for c in replies)
        expected_out = sum((c.metadata.get("usage") or {}).get("output_tokens", 0) for c in replies)
        totals = session.totals()
        assert totals.turns == len(replies) >= ASKS
        assert (totals.input_tokens, totals.output_tokens) == (expected_in, expected_out)
        assert totals.runs == sum(1 for c in replies if c.metadata.get("run_id"))
        assert totals.partial == sum(1 for c in replies if c.metadata.get("partial"))
        assert check_store(repo.store) == []
        # Resumable: it answers again, and `cairn session resume` switches to it.
        again = session.ask("are you there?")
        assert again.content.startswith("word")
        assert head.hash in {c.hash for c in repo.objects.ancestors(again.reply.hash)}  # on the same line
        # A question left unanswered by the last kill gets the interruption marker first.
        dangling = 1 if turns[-1][1].role == "user" else 0
        assert session.totals().turns == totals.turns + 1 + dangling
    finally:
        repo.store.close()
    cairn("session", "resume", session_id)
    assert cairn.json("session", "show")["totals"]["turns"] == totals.turns + 1 + dangling
