"""The plugin's hook: cairn_observe exports a command's spans over OTLP/HTTP (to a collector on loopback)."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from cairn.cli import cli


class Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes, dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Collector.received.append((self.path, body, dict(self.headers)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector():
    Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_cairn_observe_exports_a_commands_spans_over_otlp(cairn_env: Path, collector: str, monkeypatch) -> None:
    monkeypatch.setenv("OTEL_TEST_HEADERS", "x-team=infra")
    (cairn_env / "cairn.toml").write_text(
        '[cairn]\nstorage = "sqlite"\n\n'
        f'[telemetry]\nexporter = "otlp"\nendpoint = "{collector}"\nheaders_env = "OTEL_TEST_HEADERS"\n'
        'service_name = "cairn-test"\n'
    )
    runner = CliRunner()
    made = runner.invoke(cli, ["directive", "new", "tidy the logs", "--json"], catch_exceptions=False)
    assert made.exit_code == 0, made.output
    traces = [(body, headers) for path, body, headers in Collector.received if path == "/v1/traces"]
    assert traces, "no spans reached the collector"
    body, headers = traces[0]
    assert b"cairn.directive draft" in body and b"cairn-test" in body
    assert headers.get("x-team") == "infra"
    assert b"tidy the logs" not in body  # metadata only


def test_telemetry_off_loads_nothing(cairn_env: Path) -> None:
    import sys

    (cairn_env / "cairn.toml").write_text('[cairn]\nstorage = "sqlite"\n')
    sys.modules.pop("opentelemetry.sdk.trace", None)
    result = CliRunner().invoke(cli, ["directive", "list"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "opentelemetry.sdk.trace" not in sys.modules


def test_a_bad_telemetry_table_is_a_located_error(cairn_env: Path) -> None:
    (cairn_env / "cairn.toml").write_text('[cairn]\nstorage = "sqlite"\n\n[telemetry]\nexporter = "jaeger"\n')
    from cairn.config import load_config
    from cairn.config_tables import TelemetrySettings
    from cairn.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        load_config(cairn_env, environ={}).settings("telemetry", TelemetrySettings)
    assert raised.value.line == 5 and "exporter" in str(raised.value)
