"""The plugin's hook: with ``[telemetry] exporter`` set, export every command's spans and metrics.

Light on purpose: the OpenTelemetry SDK is imported inside the hook, only
when telemetry is on.
"""

from __future__ import annotations

import os
from typing import Any

from cairn.config_tables import TelemetrySettings
from cairn.hookspecs import hookimpl


def _headers(settings: TelemetrySettings) -> dict[str, str]:
    raw = os.environ.get(settings.headers_env, "") if settings.headers_env else ""
    pairs = [p.partition("=") for p in raw.split(",") if "=" in p]
    return {k.strip(): v.strip() for k, _, v in pairs}


@hookimpl
def cairn_observe(bus: Any, config: Any) -> Any:
    settings = config.settings("telemetry", TelemetrySettings)
    if settings.exporter == "none":
        return None
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from cairn_otel.telemetry import Telemetry

    resource = Resource.create({"service.name": settings.service_name})
    if settings.exporter == "console":
        import sys

        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        spans: Any = ConsoleSpanExporter(out=sys.stderr)
        metrics: Any = ConsoleMetricExporter(out=sys.stderr)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = settings.endpoint.rstrip("/")
        headers = _headers(settings)
        spans = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers)
        metrics = OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=headers)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    meter_provider = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(metrics)])
    telemetry = Telemetry(bus, tracer_provider, meter_provider)

    def stop() -> None:
        telemetry.close()
        tracer_provider.shutdown()  # flushes what is batched
        meter_provider.shutdown()

    return stop
