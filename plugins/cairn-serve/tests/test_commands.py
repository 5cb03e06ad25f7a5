"""`cairn serve` itself: the token when one is required or given, a busy port, the plugin's light import."""

from __future__ import annotations

import socket
import subprocess
import sys

import click
import httpx
import pytest
from cairn_serve.commands import _token, is_loopback
from conftest import Server, clean_env

TOKEN = "a-long-enough-test-token-0123"


@pytest.fixture(scope="module")
def guarded(project):
    running = Server(project.path, "serve", "--port", "0", "--token", TOKEN)
    try:
        yield running
    finally:
        running.stop()


def test_the_printed_url_carries_the_token(guarded):
    assert guarded.url.endswith(f"?token={TOKEN}")


def test_without_the_token_nothing_is_served(guarded):
    for path in ("/", "/api/graph", "/static/app.js"):
        response = httpx.get(guarded.base.rstrip("/") + path)
        assert response.status_code == 401
        assert "token" in response.text and TOKEN not in response.text
    wrong = httpx.get(guarded.base + "api/graph", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401


def test_a_bearer_token_or_the_cookie_from_the_url_opens_it(guarded):
    assert httpx.get(guarded.base + "api/graph", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    with httpx.Client() as client:
        first = client.get(guarded.url)  # ?token=...: traded for a cookie, and dropped from the address
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get(guarded.base + "api/overview").status_code == 200  # the cookie alone
        assert TOKEN not in client.get(guarded.base).text


def test_with_a_token_any_host_name_may_reach_it(guarded):
    response = httpx.get(guarded.base + "api/overview", headers={"Authorization": f"Bearer {TOKEN}", "Host": "box.lan"})
    assert response.status_code == 200


def test_another_address_gets_a_generated_token_and_loopback_none():
    generated = _token("0.0.0.0", None)
    assert generated is not None and len(generated) >= 24
    assert _token("0.0.0.0", None) != generated
    assert _token("127.0.0.1", None) is None and _token("localhost", None) is None
    assert _token("::1", TOKEN) == TOKEN
    with pytest.raises(click.BadParameter, match="at least 16 characters"):
        _token("127.0.0.1", "short")
    assert is_loopback("127.0.0.2") and is_loopback("[::1]") and not is_loopback("192.168.1.4")


def test_a_busy_port_is_one_clear_error(project):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "cairn", "-C", str(project.path), "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
        )
    assert proc.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_loading_the_plugin_imports_no_web_framework():
    code = (
        "import sys; from cairn.plugins import load_plugins; load_plugins(strict=True); "
        "from cairn.cli import cli; import click; cli.get_command(click.Context(cli), 'serve'); "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'mcp', 'jinja2') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_store_without_the_ledger_serves_the_context_pages_and_says_why_not_the_rest(tmp_path):
    env = {"CAIRN__CAIRN__STORAGE": "files"}
    project = tmp_path / "files-project"
    project.mkdir()
    for args in (["init"], ["commit", "Only context here."]):
        done = subprocess.run(
            [sys.executable, "-m", "cairn", "-C", str(project), *args],
            capture_output=True,
            text=True,
            env=clean_env(**env),
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    running = Server(project, "serve", "--port", "0", env=env)
    try:
        overview = httpx.get(running.base + "api/overview").json()
        assert "ledger" not in overview["facets"] and overview["backend"] == "files"
        assert len(httpx.get(running.base + "api/graph").json()["nodes"]) == 1
        history = httpx.get(running.base).text
        assert 'href="/runs"' not in history and 'href="/materialize"' in history
        runs = httpx.get(running.base + "runs")
        assert runs.status_code == 200 and "keeps no ledger facet" in runs.text
        refused = httpx.get(running.base + "api/runs")
        assert refused.status_code == 501 and "ledger" in refused.json()["error"]
        assert 'href="/memory"' not in history
        memory = httpx.get(running.base + "memory")
        assert memory.status_code == 200 and "keeps no documents facet" in memory.text
        for path in ("api/memory", "api/memory/search?q=context"):
            refused = httpx.get(running.base + path)
            assert refused.status_code == 501 and "documents" in refused.json()["error"], path
    finally:
        running.stop()
    logs = subprocess.run(
        [sys.executable, "-m", "cairn", "-C", str(project), "logs"],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
    )
    assert logs.returncode == 1 and "ledger" in logs.stderr and "Traceback" not in logs.stderr


def test_mcp_serve_without_the_sdk_says_which_extra_to_install(project):
    code = (
        "import sys; sys.modules['mcp'] = None; from cairn.cli import main; "
        f"main(['-C', {str(project.path)!r}, 'mcp', 'serve'])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 1
    assert "pip install 'cairn-serve[mcp]'" in proc.stderr and "Traceback" not in proc.stderr
