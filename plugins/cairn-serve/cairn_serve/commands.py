"""``cairn serve`` and ``cairn mcp serve``: the commands import starlette, uvicorn and mcp when they run."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys

import click

from cairn.cli import State, pass_state

__all__ = ["mcp_group", "serve_command"]

TOKEN_ENV = "CAIRN_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), so the URL printed is the one served."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket, host: str, token: str | None) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def _token(host: str, token: str | None) -> str | None:
    if token is not None and len(token) < 16:
        raise click.BadParameter("a token must be at least 16 characters", param_hint="--token")
    if token is None and not is_loopback(host):
        return secrets.token_urlsafe(24)  # another address is never served without one
    return token


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (not loopback: token).")
@click.option("--port", type=click.IntRange(0, 65535), default=8040, show_default=True, help="0 picks a free port.")
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    help=f"Require this token (also {TOKEN_ENV}); generated and printed when binding another address without one.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info"]),
    default="warning",
    show_default=True,
    help="The server's log level; requests are never logged (an address may carry the token).",
)
@pass_state
def serve_command(state: State, host: str, port: int, token: str | None, log_level: str) -> None:
    """Serve a read-only web viewer of this project: history graph, materialize, diff, runs, calls, chat, evals, spend.

    Binds 127.0.0.1 by default. Any other address requires a token: give
    --token (or CAIRN_SERVE_TOKEN), or one is generated and the URL printed
    with it. The pages use the JSON API under /api/ (docs/serve.md).
    """
    import uvicorn

    from cairn_serve.app import build_app

    token = _token(host, token)
    state.repo  # noqa: B018  (opens the store now: a broken project fails before anything listens)
    app = build_app(state, token=token)
    sock = bind(host, port)
    click.echo(f"cairn serve: {_url(sock, host, token)}", err=False)
    click.echo("read-only; press Ctrl+C to stop", err=True)
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        state.close()


@click.group("mcp")
def mcp_group() -> None:
    """The Model Context Protocol server (install cairn-serve[mcp])."""


@mcp_group.command("serve")
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio or streamable HTTP.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="With --transport http: address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8041, show_default=True, help="With http: 0 picks one.")
@click.option("--token", envvar=TOKEN_ENV, help=f"With http: require this bearer token (also {TOKEN_ENV}).")
@click.option("--read-only", is_flag=True, help="Offer only the tools that read: no commit, run or event.")
@pass_state
def mcp_serve(state: State, transport: str, host: str, port: int, token: str | None, read_only: bool) -> None:
    """Serve cairn's tools and resources to an MCP client over stdio (default) or streamable HTTP.

    Tools materialize, log, diff and show commits, list runs and calls,
    commit items, record runs and append their events; writes go through the
    same validation and redaction as the CLI. See docs/mcp.md for a client's
    configuration block.
    """
    try:
        from cairn_serve.mcp_tools import build_server
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("mcp", "mcp_types"):
            raise click.ClickException("the MCP SDK is not installed: pip install 'cairn-serve[mcp]'") from None
        raise
    state.repo  # noqa: B018  (a broken project fails before the client is answered)
    server = build_server(state, read_only=read_only)
    if transport == "stdio":
        server.run_stdio()
        return
    import uvicorn

    token = _token(host, token)
    sock = bind(host, port)
    click.echo(f"cairn mcp serve: {_url(sock, host, None)}mcp" + (f" (bearer token {token})" if token else ""))
    sys.stdout.flush()
    app = server.http_app(token=token)
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        state.close()
