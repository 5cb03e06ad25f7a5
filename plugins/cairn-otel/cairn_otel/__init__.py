"""cairn-otel: the kernel's events as OpenTelemetry spans and metrics.

``Telemetry(bus, tracer_provider, meter_provider)`` subscribes to a cairn
event bus; the plugin (``cairn_otel.plugin``) builds the providers from
``[telemetry]`` and does so for every command when an exporter is set.
"""

from __future__ import annotations

from cairn_otel.telemetry import Telemetry, directive_context

__all__ = ["Telemetry", "directive_context"]
