"""Loopback servers for the MCP gateway tests: fixture upstreams, the gateway, a REST API, an LLM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
from aiohttp import web
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from lockgate.api.ir import (
    ApiKeyHash,
    ConsumerKey,
    Credentials,
    GatewayConfig,
    McpServer,
    McpUpstream,
    Provider,
    ProviderModel,
    RateLimits,
    Route,
    UpstreamAuth,
    hash_key,
)
from lockgate.proxy.server import ProxyServer, ProxySettings
from lockgate.proxy.source import Snapshot, StaticSource
from tests.cached_tools import stop_process
from tests.loopback import free_port, serve_app

FIXTURE_SERVER = Path(__file__).with_name("upstream_server.py")
REPO = Path(__file__).resolve().parents[3]
UPSTREAM_TOKEN = "upstream-secret-token"
SESSION_SECRET = "test-session-secret"


async def wait_for_port(port: int, deadline: float = 20.0, process: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@asynccontextmanager
async def running(argv: list[str], port: int, env: dict[str, str] | None = None) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A process that serves on `port`, stopped (SIGTERM, then SIGKILL) on the way out."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                               env={**os.environ, **(env or {})})
    try:
        await wait_for_port(port, process=process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@asynccontextmanager
async def fixture_upstream(*flags: str) -> AsyncIterator[str]:
    """The SDK fixture server in its own process; yields its /mcp (or, with --sse, /sse) URL.

    It binds port 0 and the port is read from its log, so no other test can take it in between.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(FIXTURE_SERVER), "--port", "0", *flags,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    drain: asyncio.Task[None] | None = None
    try:
        port = await asyncio.wait_for(_bound_port(process.stderr), 20)
        drain = asyncio.ensure_future(_discard(process.stderr))  # a full pipe would stall the server
        yield f"http://127.0.0.1:{port}/sse" if "--sse" in flags else f"http://127.0.0.1:{port}/mcp"
    finally:
        await stop_process(process)
        if drain is not None:
            drain.cancel()


async def _bound_port(stderr: asyncio.StreamReader) -> int:
    while line := await stderr.readline():
        found = re.search(rb"running on http://127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1))
    raise RuntimeError("the fixture server exited before listening")


async def _discard(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


@asynccontextmanager
async def gateway(snapshot: Snapshot) -> AsyncIterator[str]:
    """The proxy (data plane with the MCP routes mounted) in-process on a loopback port; yields its base URL."""
    server = ProxyServer(StaticSource(snapshot), ProxySettings(port=0, admin_port=0, drain_seconds=0.5))
    await server.start()
    try:
        await server.wait_ready()
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


@asynccontextmanager
async def lockgate_run(folder: Path) -> AsyncIterator[tuple[str, str]]:
    """`lockgate run -f folder` as its own process (replicas share the session key); yields (base, admin) URLs."""
    port, admin = free_port(), free_port()
    argv = [sys.executable, "-m", "lockgate.cli.main", "run", "-f", str(folder), "--port", str(port),
            "--admin-port", str(admin), "--state-dir", str(folder.parent / f"state-{port}")]
    async with running(argv, admin, {"LOCKGATE_SESSION_KEY": SESSION_SECRET}):
        async with httpx2.AsyncClient() as http:
            deadline = time.monotonic() + 20
            while (await http.get(f"http://127.0.0.1:{admin}/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "lockgate run never became ready"
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"


def mcp_client(url: str, token: str, **options: Any) -> Client:
    """The official SDK client, sending a Lockgate key."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(20.0))
    return Client(streamable_http_client(url, http_client=http), **options)


def text_of(result: Any) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


@dataclass
class RestApi:
    """A loopback REST API that records what reached it."""

    seen: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            body = await request.text()
            self.seen.append({"method": request.method, "raw_path": request.raw_path, "path": request.path,
                              "query": dict(request.query), "headers": dict(request.headers), "body": body,
                              "host": request.host})
            return web.json_response({"ok": True, "path": request.path, "query": dict(request.query)})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


def llm_app(words: list[str]) -> web.Application:
    """An OpenAI-compatible chat endpoint that streams the given words."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        prompt = body["messages"][-1]["content"]
        for word in [*words, f" ({prompt})"]:
            chunk = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"],
                     "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def key(name: str, servers: tuple[str, ...], tools: dict[str, tuple[str, ...]] | None = None,
        rpm: int | None = None) -> ConsumerKey:
    return ConsumerKey(id=f"team/{name}", consumer=name, hashes=(ApiKeyHash(sha256=hash_key(f"sk-{name}")),),
                       mcp_servers=servers, mcp_tools=tools or {}, limits=RateLimits(rpm=rpm))


def upstream_server(server_id: str, path: str, urls: tuple[str, ...], description: str = "",
                    transport: str = "streamable-http") -> McpServer:
    return McpServer(id=server_id, name=server_id.split("/")[-1], path=path, description=description, kind="upstream",
                     upstream=McpUpstream(urls=urls, auth=UpstreamAuth(credential="mcp-upstream"), timeout=10.0,
                                          transport=transport))  # type: ignore[arg-type]


def snapshot(servers: list[McpServer], keys: list[ConsumerKey], providers: tuple[Provider, ...] = (),
             routes: tuple[Route, ...] = ()) -> Snapshot:
    config = GatewayConfig(mcp_servers=tuple(servers), keys=tuple(keys), providers=providers, routes=routes).with_hash()
    return Snapshot(config, Credentials(values={"mcp-upstream": UPSTREAM_TOKEN, "llm": "sk-provider"}))


def llm_provider(base_url: str) -> Provider:
    return Provider(id="team/local-llm", type="openai-compatible", base_url=base_url, credential="llm",
                    models=(ProviderModel(name="tiny", upstream_model="tiny-1"),))




FORWARD_HTTP = web.AppKey("forward_http", aiohttp.ClientSession)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length",
              "proxy-authorization", "proxy-authenticate"}


async def _relay(request: web.Request, method: str, url: str, headers: dict[str, str], body: bytes) -> web.StreamResponse:
    """Send a request on and stream its answer back unchanged."""
    async with request.app[FORWARD_HTTP].request(method, url, headers=headers, data=body or None,
                                                 allow_redirects=False) as upstream:
        response = web.StreamResponse(status=upstream.status, headers={
            k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP | {"content-encoding"}})
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientError):
            pass  # either side hung up: nothing left to relay
        return response


def _forwarding_app(handler: Any, path: str) -> web.Application:
    async def start(app: web.Application) -> None:
        app[FORWARD_HTTP] = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))

    async def stop(app: web.Application) -> None:
        await app[FORWARD_HTTP].close()

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", path, handler)
    return app


def key_injector(target: str, token: str) -> web.Application:
    """A client-side forwarder that adds the caller's Lockgate key, as a configured client would.

    Tools that cannot send headers (the conformance suite) reach the gateway through it; every
    other header, Host and Origin included, passes unchanged.
    """
    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Authorization"] = f"Bearer {token}"
        return await _relay(request, request.method, f"{target}{request.path_qs}", headers, await request.read())

    return _forwarding_app(forward, "/{tail:.*}")


def one_era_only(target: str, era: str) -> web.Application:
    """In front of the dual-era fixture: answer as a server of one era only would.

    `legacy`: a pre-2026 server, which knows no server/discover and wants a session.
    `modern`: a 2026-07-28-only server, which has no initialize, GET stream or DELETE.
    """
    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        method = json.loads(body).get("method") if body else None
        modern = request.headers.get("MCP-Protocol-Version") == "2026-07-28" or method == "server/discover"
        if era == "legacy" and modern:
            return web.Response(status=400, text="Bad Request: No valid session ID provided")
        if era == "modern" and request.method in ("GET", "DELETE"):
            return web.Response(status=405)
        if era == "modern" and not modern:
            return web.json_response({"jsonrpc": "2.0", "id": json.loads(body).get("id") if body else None,
                                      "error": {"code": -32601, "message": f"method not found: {method}"}}, status=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
        return await _relay(request, request.method, target, headers, body)

    return _forwarding_app(forward, "/mcp")
