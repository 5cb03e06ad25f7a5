"""``Telemetry``: cairn's bus events turned into OpenTelemetry spans and metrics.

Spans (metadata only: never a message body, a key, or error text):

- a run (``ledger:run`` when it closes): ``cairn.run <type>``, from its start
  to its end, with the events of that run below it:
  - provider calls (``provider:call`` carrying the run's id), named by the
    GenAI conventions ``<operation> <model>`` (``chat gpt-4o-mini``), kind
    CLIENT, with ``gen_ai.*`` attributes: provider, request and response
    model, token usage, finish reason, response id; ``error.type`` when it
    failed; ``cairn.attempt`` for retries;
  - policy decisions (``policy:decision``): ``cairn.policy.decision``;
  - execution-module calls (``exec:start`` .. ``exec:end``): ``cairn.exec <module>``;
- provider calls outside any run: a span of their own;
- directive transitions (``directive:transition``): ``cairn.directive <to>``.

Everything under one directive shares one trace, whose id comes from the
directive's id (``directive_context``), so the runs and transitions of a
directive line up across processes and machines.

Metrics: ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``
(histograms, the GenAI conventions), ``cairn.runs``, ``cairn.policy.decisions``,
``cairn.exec.calls``, ``cairn.provider.retries`` (counters).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from cairn.model import parse_time

__all__ = ["Telemetry", "directive_context"]

_SYSTEMS = {"openai": "openai"}  # cairn provider name -> gen_ai.provider.name where the convention has one


def _ns(ts: str) -> int:
    return int(parse_time(ts).timestamp() * 1_000_000_000)


def directive_context(directive_id: str) -> Context:
    """The parent context of everything under ``directive_id``: a trace id made from the id, the same everywhere."""
    digest = hashlib.sha256(directive_id.encode()).digest()
    parent = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


class Telemetry:
    """Subscribes to a cairn bus and records spans and metrics with the given providers."""

    def __init__(self, bus: Any, tracer_provider: Any, meter_provider: Any = None) -> None:
        self.tracer = tracer_provider.get_tracer("cairn_otel", "0.1.0")
        self._pending: dict[str, list[Any]] = {}
        self._meters(meter_provider)
        self._unsubscribe = bus.subscribe("*", self.handle)

    def _meters(self, meter_provider: Any) -> None:
        if meter_provider is None:
            from opentelemetry.metrics import NoOpMeterProvider

            meter_provider = NoOpMeterProvider()
        meter = meter_provider.get_meter("cairn_otel", "0.1.0")
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per provider call"
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Duration of provider calls"
        )
        self.runs = meter.create_counter("cairn.runs", unit="{run}", description="Runs recorded")
        self.decisions = meter.create_counter("cairn.policy.decisions", unit="{decision}", description="Gate decisions")
        self.exec_calls = meter.create_counter("cairn.exec.calls", unit="{call}", description="Execution-module calls")
        self.retries = meter.create_counter("cairn.provider.retries", unit="{attempt}", description="Retried attempts")

    def close(self) -> None:
        """Stop listening; runs still open are not exported (they never closed)."""
        self._unsubscribe()

    # -- the bus -------------------------------------------------------------------------------------

    def handle(self, event: Any) -> None:
        name, payload = event.name, event.payload
        if name == "provider:call":
            self._metrics_of_call(payload)
            if payload.get("run_id"):
                self._pending.setdefault(payload["run_id"], []).append(event)
            else:
                self._call_span(event, None)
        elif name in ("policy:decision", "exec:start", "exec:end"):
            self._count(name, payload)
            run_id = payload.get("run_id")
            if run_id:
                self._pending.setdefault(run_id, []).append(event)
            elif name == "policy:decision":
                self._decision_span(event, None)
        elif name == "ledger:run" and payload.get("status") != "open":
            self._run_span(event)
        elif name == "directive:transition":
            self._directive_span(event)

    # -- spans ---------------------------------------------------------------------------------------

    def _run_span(self, event: Any) -> None:
        payload = event.payload
        children = self._pending.pop(payload["run_id"], [])
        end = _ns(event.ts)
        start = end - int((payload.get("duration_ms") or 0) * 1_000_000)
        directive = next(
            (
                e.payload.get("directive") or (e.payload.get("action") or {}).get("directive")
                for e in children
                if e.payload.get("directive") or (e.payload.get("action") or {}).get("directive")
            ),
            None,
        )
        parent = directive_context(directive) if directive else None
        span = self.tracer.start_span(
            f"cairn.run {payload.get('type')}",
            context=parent,
            start_time=min([start, *(self._start_of(e) for e in children)]),
            attributes=_clean(
                {
                    "cairn.run.id": payload["run_id"],
                    "cairn.run.type": payload.get("type"),
                    "cairn.run.status": payload.get("status"),
                    "cairn.directive.id": directive,
                }
            ),
        )
        if payload.get("status") == "failed":
            span.set_status(Status(StatusCode.ERROR))
        context = trace.set_span_in_context(span)
        starts = {e.payload.get("run_id"): e for e in children if e.name == "exec:start"}
        for child in children:
            if child.name == "provider:call":
                self._call_span(child, context)
            elif child.name == "policy:decision":
                self._decision_span(child, context)
            elif child.name == "exec:end":
                self._exec_span(starts.get(child.payload.get("run_id")), child, context)
        span.end(end_time=max([end, *(_ns(e.ts) for e in children)]))
        self.runs.add(1, {"cairn.run.type": payload.get("type"), "cairn.run.status": payload.get("status")})

    def _start_of(self, event: Any) -> int:
        if event.name == "provider:call":
            return _ns(event.ts) - int((event.payload.get("latency_ms") or 0) * 1_000_000)
        return _ns(event.ts)

    def _call_span(self, event: Any, context: Context | None) -> None:
        p = event.payload
        operation = "embeddings" if p.get("operation") == "embed" else "chat"
        usage = p.get("usage") or {}
        attributes = _clean(
            {
                "gen_ai.operation.name": operation,
                "gen_ai.provider.name": _SYSTEMS.get(p.get("provider"), p.get("provider")),
                "gen_ai.request.model": p.get("model"),
                "gen_ai.response.model": p.get("model"),
                "gen_ai.response.id": p.get("request_id"),
                "gen_ai.response.finish_reasons": [p["finish_reason"]] if p.get("finish_reason") else None,
                "gen_ai.usage.input_tokens": usage.get("input_tokens"),
                "gen_ai.usage.output_tokens": usage.get("output_tokens"),
                "cairn.attempt": p.get("attempt"),
                "cairn.outcome": p.get("outcome"),
                "cairn.sent": p.get("sent"),
                "cairn.cost": p.get("cost"),
                "cairn.run.id": p.get("run_id"),
                "error.type": p.get("outcome") if p.get("outcome") not in (None, "ok") else None,
            }
        )
        span = self.tracer.start_span(
            f"{operation} {p.get('model')}",
            context=context,
            kind=SpanKind.CLIENT,
            start_time=self._start_of(event),
            attributes=attributes,
        )
        if "error.type" in attributes:
            span.set_status(Status(StatusCode.ERROR, attributes["error.type"]))
        span.end(end_time=_ns(event.ts))

    def _decision_span(self, event: Any, context: Context | None) -> None:
        p = event.payload
        action = p.get("action") or {}
        span = self.tracer.start_span(
            "cairn.policy.decision",
            context=context,
            start_time=_ns(event.ts),
            attributes=_clean(
                {
                    "cairn.policy.outcome": p.get("outcome"),
                    "cairn.policy.rule": p.get("rule"),
                    "cairn.policy.version": p.get("policy_version"),
                    "cairn.policy.approval": p.get("approval"),
                    "cairn.action.kind": action.get("kind"),
                    "cairn.action.name": action.get("name"),
                    "cairn.action.hash": p.get("action_hash"),
                    "gen_ai.request.model": action.get("model"),
                }
            ),
        )
        if p.get("outcome") == "deny":
            span.set_status(Status(StatusCode.ERROR, "denied"))
        span.end(end_time=_ns(event.ts))

    def _exec_span(self, start: Any, end: Any, context: Context) -> None:
        p = end.payload
        span = self.tracer.start_span(
            f"cairn.exec {p.get('executor')}",
            context=context,
            start_time=_ns(start.ts) if start is not None else _ns(end.ts),
            attributes=_clean(
                {
                    "cairn.exec.module": p.get("executor"),
                    "cairn.exec.status": p.get("status"),
                    "cairn.exec.replayed": p.get("replayed"),
                    "cairn.directive.id": p.get("directive"),
                    "error.type": p.get("status") if p.get("status") != "ok" else None,
                }
            ),
        )
        if p.get("status") != "ok":
            span.set_status(Status(StatusCode.ERROR, p.get("status")))
        span.end(end_time=_ns(end.ts))

    def _directive_span(self, event: Any) -> None:
        p = event.payload
        span = self.tracer.start_span(
            f"cairn.directive {p.get('to_status') or p.get('type')}",
            context=directive_context(p["directive_id"]),
            start_time=_ns(event.ts),
            attributes=_clean(
                {
                    "cairn.directive.id": p.get("directive_id"),
                    "cairn.directive.from": p.get("from_status"),
                    "cairn.directive.to": p.get("to_status"),
                    "cairn.directive.seq": p.get("seq"),
                }
            ),
        )
        span.end(end_time=_ns(event.ts))

    # -- metrics -------------------------------------------------------------------------------------

    def _metrics_of_call(self, p: Mapping[str, Any]) -> None:
        base = _clean(
            {
                "gen_ai.operation.name": "embeddings" if p.get("operation") == "embed" else "chat",
                "gen_ai.provider.name": p.get("provider"),
                "gen_ai.request.model": p.get("model"),
            }
        )
        usage = p.get("usage") or {}
        for kind in ("input", "output"):
            if usage.get(f"{kind}_tokens") is not None and p.get("sent"):
                self.token_usage.record(usage[f"{kind}_tokens"], {**base, "gen_ai.token.type": kind})
        failed = {"error.type": p["outcome"]} if p.get("outcome") not in (None, "ok") else {}
        if p.get("latency_ms") is not None:
            self.duration.record(p["latency_ms"] / 1000, {**base, **failed})
        if (p.get("attempt") or 1) > 1:
            self.retries.add(1, base)

    def _count(self, name: str, p: Mapping[str, Any]) -> None:
        if name == "policy:decision":
            action = p.get("action") or {}
            self.decisions.add(
                1,
                _clean(
                    {
                        "cairn.policy.outcome": p.get("outcome"),
                        "cairn.policy.rule": p.get("rule"),
                        "cairn.action.kind": action.get("kind"),
                    }
                ),
            )
        elif name == "exec:end":
            self.exec_calls.add(
                1,
                _clean(
                    {
                        "cairn.exec.module": p.get("executor"),
                        "cairn.exec.status": p.get("status"),
                        "cairn.exec.replayed": p.get("replayed"),
                    }
                ),
            )
