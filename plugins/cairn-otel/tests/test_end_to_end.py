"""The whole control loop in one test: a directive approved, a gated provider call that waits for approval,
an execution module run twice under one idempotency key, and the spans and metrics of all of it.

Real components throughout: the SQLite store, cairn-openai over HTTP against the fake OpenAI server on
loopback, the shell module running a real process, and the OpenTelemetry SDK with its in-memory
exporter and reader. Nothing reaches the network.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cairn_otel import Telemetry, directive_context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

KEY = "sk-otel-canary-5511aa"
PROMPT = "summarize the deploy log, secret word: zebra-canary"


@pytest.fixture
def project(cairn_env: Path, monkeypatch: pytest.MonkeyPatch):
    from cairn.testing.fake_openai import FakeOpenAI

    monkeypatch.setenv("OTEL_TEST_OPENAI_KEY", KEY)
    with FakeOpenAI(api_key=KEY, model="gpt-4o-mini") as server:
        (cairn_env / "cairn.toml").write_text(
            f"""
[cairn]
storage = "sqlite"
llm = "openai"

[llm.openai]
base_url = "{server.url}"
api_key_env = "OTEL_TEST_OPENAI_KEY"
model = "gpt-4o-mini"

[llm.openai.prices."gpt-4o-mini"]
input = 1000.0
output = 1000.0

[policy]
version = 5

[policy.rules.costly-calls]
action = "provider"
cost_over = 0.001
decision = "needs-approval"
reason = "calls over a tenth of a cent need a person"
"""
        )
        yield cairn_env, server


def test_directive_to_gated_call_to_idempotent_exec_with_spans(project) -> None:
    from cairn.approvals import Approvals
    from cairn.config import load_config
    from cairn.directives import Directives
    from cairn.errors import ApprovalRequiredError
    from cairn.events import EventBus
    from cairn.execution import execute
    from cairn.gate import Gate
    from cairn.ledger import Ledger
    from cairn.plugins import load_plugins
    from cairn.providers import Providers
    from cairn.testing.fakes import WordTokenizer

    directory, server = project
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    bus = EventBus()
    telemetry = Telemetry(bus, tracer_provider, MeterProvider(metric_readers=[reader]))

    config = load_config(directory, environ={"OTEL_TEST_OPENAI_KEY": KEY})
    plugins = load_plugins()
    store = plugins.create("storage", "sqlite", config)
    try:
        # 1. intent, frozen and approved
        directives = Directives(store, bus=bus)
        directive = directives.new(
            "summarize the deploy log",
            scope={"providers": ["openai"], "executors": ["shell"]},
            budget={"cost": 1.0, "tokens": 100_000},
        )
        directives.approve(directive.id, reason="go")
        directives.running(directive.id)

        # 2. a provider call under it, through the gate: it waits for a person, then goes through once
        ledger = Ledger(store, bus=bus, project_dir=directory)
        handle = ledger.open("agent", metadata={"directive": directive.id})
        directives.link_run(directive.id, handle.run_id)
        gate = Gate.from_config(config, store, directive_id=directive.id, run=handle, bus=bus)
        messages = [{"role": "user", "content": PROMPT}]
        with Providers(
            config, plugins, store=store, tokenizer=WordTokenizer(), bus=bus, run_id=handle.run_id, gate=gate
        ) as providers:
            llm = providers.llm()
            with pytest.raises(ApprovalRequiredError) as waiting:
                llm.complete(messages)
            assert server.calls() == []  # nothing was sent while it waited
            Approvals(store, user="lead", bus=bus).decide(waiting.value.approval_id, approve=True, reason="ok")
            reply = llm.complete(messages)
            assert reply.content and len(server.calls()) == 1
        handle.close("ok")

        # 3. an execution module under it, twice with one idempotency key: it acts once
        marker = directory / "deployed.txt"
        job = {"argv": [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('deployed\\n')"]}
        first = execute(
            "shell",
            job,
            config=config,
            plugins=plugins,
            store=store,
            directive_id=directive.id,
            idempotency_key="deploy-1",
            ledger=ledger,
            bus=bus,
        )
        again = execute(
            "shell",
            job,
            config=config,
            plugins=plugins,
            store=store,
            directive_id=directive.id,
            idempotency_key="deploy-1",
            ledger=ledger,
            bus=bus,
        )
        assert marker.read_text() == "deployed\n"
        assert (first.result.status, first.replayed, again.replayed, again.original_run_id) == (
            "ok",
            False,
            True,
            first.run_id,
        )
        directives.finish(directive.id, "succeeded")
        state = directives.get(directive.id)
        assert state.status == "succeeded" and state.runs == [handle.run_id, first.run_id, again.run_id]
    finally:
        store.close()
        telemetry.close()

    spans = exporter.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    trace_id = (
        directive_context(directive.id).get(next(iter(directive_context(directive.id)))).get_span_context().trace_id
    )  # type: ignore[union-attr]
    assert {s.context.trace_id for s in spans} == {trace_id}  # one trace: the directive's

    # the directive's transitions
    assert [
        s.attributes["cairn.directive.to"]
        for s in sorted(by_name_prefix(spans, "cairn.directive"), key=lambda s: s.attributes["cairn.directive.seq"])
    ] == ["draft", "approved", "running", "succeeded"]
    # the agent run holds the gated call: a decision that waited, the approved one, and the chat span
    (agent,) = by_name["cairn.run agent"]
    children = [s for s in spans if s.parent is not None and s.parent.span_id == agent.context.span_id]
    decisions = [s for s in children if s.name == "cairn.policy.decision"]
    assert [d.attributes["cairn.policy.outcome"] for d in decisions] == ["needs-approval", "allow"]
    assert all(
        d.attributes["cairn.policy.rule"] == "costly-calls" and d.attributes["cairn.policy.version"] == 5
        for d in decisions
    )
    (chat,) = [s for s in children if s.name == "chat gpt-4o-mini"]
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.provider.name"] == "openai"
    assert chat.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat.attributes["gen_ai.usage.input_tokens"] > 0 and chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert chat.kind.name == "CLIENT"
    # the exec runs: one acted, one replayed
    execs = by_name["cairn.exec shell"]
    assert sorted(s.attributes["cairn.exec.replayed"] for s in execs) == [False, True]
    for run_span in by_name["cairn.run exec"]:
        assert any(s.parent and s.parent.span_id == run_span.context.span_id for s in execs)
        assert run_span.parent.span_id == agent.parent.span_id  # both under the directive
    # never a body, a key or the prompt in any attribute
    everything = json.dumps([dict(s.attributes) for s in spans], default=str)
    assert "zebra-canary" not in everything and KEY not in everything

    metrics = {
        m.name: m for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    usage = metrics["gen_ai.client.token.usage"].data.data_points
    assert {p.attributes["gen_ai.token.type"] for p in usage} == {"input", "output"}
    assert sum(p.count for p in metrics["gen_ai.client.operation.duration"].data.data_points) == 1
    outcomes: dict[str, int] = {}
    for point in metrics["cairn.policy.decisions"].data.data_points:
        outcome = point.attributes["cairn.policy.outcome"]
        outcomes[outcome] = outcomes.get(outcome, 0) + point.value
    assert outcomes == {"needs-approval": 1, "allow": 2}
    calls = {p.attributes["cairn.exec.replayed"]: p.value for p in metrics["cairn.exec.calls"].data.data_points}
    assert calls == {False: 1, True: 1}


def by_name_prefix(spans, prefix: str) -> list:
    return [s for s in spans if s.name.startswith(prefix)]
