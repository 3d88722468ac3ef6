"""The aiohttp side: <path>/mcp (Streamable HTTP, both eras), <path>/sse and
<path>/message (HTTP+SSE), and the catalog at /v1/mcp/servers.

Every request goes through the same steps: find the server by path, check
Host/Origin, authenticate the key, check the key may use the server, bound
the body, then answer in the client's era (proxying `upstream` servers,
answering the other kinds here), with metrics and an access log line.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from lockgate.api.ir import ConsumerKey, McpServer
from lockgate.proxy import labels
from lockgate.proxy.mcp import access
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp import reply as replies
from lockgate.proxy.mcp.catalog import catalog_entries
from lockgate.proxy.mcp.dataplane import DataPlaneHost
from lockgate.proxy.mcp.era import Era, era_of
from lockgate.proxy.mcp.gateway import McpGateway
from lockgate.proxy.mcp.host import McpHost
from lockgate.proxy.mcp.legacy_sse import Channels
from lockgate.proxy.mcp.metrics import McpMetrics
from lockgate.proxy.mcp.proxy_upstream import proxy_post, proxy_stream
from lockgate.proxy.mcp.reply import Reply, error_reply
from lockgate.proxy.mcp.serve import serve_get, serve_post
from lockgate.proxy.settings import McpSettings

GATEWAY = web.AppKey("lockgate_mcp_gateway", McpGateway)
CHANNELS = web.AppKey("lockgate_mcp_channels", Channels)
CATALOG_PATH = "/v1/mcp/servers"


def install(app: web.Application, host: McpHost | None = None, *, settings: McpSettings = McpSettings()) -> McpGateway:
    """Mount the MCP routes on the proxy's application.

    With no `host`, the data plane's gateway at app[GATEWAY] serves as one: the
    same keys, quotas, metrics registry and chat pipeline as the OpenAI API.
    """
    metrics = None
    max_body_bytes = settings.max_body_bytes
    owned: DataPlaneHost | None = None
    if host is None:
        from lockgate.proxy.gateway import GATEWAY as DATA_PLANE

        data_plane = app[DATA_PLANE]
        host = owned = DataPlaneHost(data_plane)
        max_body_bytes = max_body_bytes or data_plane.max_body_bytes
        metrics = McpMetrics(data_plane.metrics.registry)
    gw = McpGateway(host, settings.session_secret, settings.allowed_hosts, metrics=metrics,
                    **({"max_body_bytes": max_body_bytes} if max_body_bytes else {}))
    if owned is not None and owned.tracing is not None:
        gw.tracing = owned.tracing
    app[GATEWAY] = gw
    app[CHANNELS] = Channels()
    app.router.add_get(CATALOG_PATH, _catalog)
    app.router.add_route("*", "/{path:.+}/mcp", _streamable)
    app.router.add_get("/{path:.+}/sse", _sse_open)
    app.router.add_post("/{path:.+}/message", _sse_message)

    async def close(_: web.Application) -> None:
        await gw.close()  # ends upstream sessions: before the host's HTTP pool goes
        if owned is not None:
            await owned.close()

    app.on_cleanup.append(close)
    return gw


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reply = Reply(status=status, headers=headers or {},
                           body=rpc.error_message(None, rpc.FORBIDDEN if status == 403 else rpc.INVALID_REQUEST, message))


def _admit(gw: McpGateway, request: web.Request) -> tuple[McpServer, ConsumerKey]:
    """The server the path names and the key the caller holds, or _Refused."""
    server = gw.server_at("/" + request.match_info["path"])
    if server is None:
        raise _Refused(404, "no MCP server at this path")
    config, _ = gw.config()
    allowed = access.allowed_hosts(server, config, gw.extra_hosts)
    if not access.origin_allowed(request.headers.get("Host"), request.headers.get("Origin"), allowed):
        raise _Refused(403, "Host or Origin not allowed")
    key = gw.host.authenticate(request)
    if key is None:
        raise _Refused(401, "a valid Lockgate key is required (Authorization: Bearer)",
                       {"WWW-Authenticate": 'Bearer realm="lockgate"'})
    if not access.may_use_server(key, server):
        raise _Refused(403, "this key may not use this MCP server")
    return server, key


async def _read_body(gw: McpGateway, request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > gw.max_body_bytes:
        raise _Refused(413, f"request body over {gw.max_body_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):  # chunked bodies have no length to check first
        size += len(chunk)
        if size > gw.max_body_bytes:
            raise _Refused(413, f"request body over {gw.max_body_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def handle_message(gw: McpGateway, server: McpServer, key: ConsumerKey, headers: Mapping[str, str],
                         body: bytes, message: rpc.Message) -> Reply:
    """One client message in the client's era, through the server's kind."""
    era = era_of(headers, message)
    if server.kind == "upstream" and not await _bridged(gw, server, era):
        return await proxy_post(gw, server, key, headers, body, message, era)
    return await serve_post(gw, server, key, gw.backend(server), headers, message, era)


async def _bridged(gw: McpGateway, server: McpServer, era: Era) -> bool:
    """Whether the gateway must translate: the upstream does not speak the client's era."""
    assert server.upstream is not None
    if server.upstream.transport == "sse":
        return True  # an HTTP+SSE upstream is always spoken to by the gateway itself
    if not server.upstream.urls:
        return False
    client = gw.upstream_client(server.upstream.urls[0], server.upstream)
    try:
        eras = await client.detect()
    except rpc.RpcError:
        return False  # unreachable: proxying reports it as the client's own request
    return era not in eras


async def _streamable(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    return await _measured(gw, request, lambda info: _streamable_reply(gw, request, info))


async def _streamable_reply(gw: McpGateway, request: web.Request, info: dict[str, Any]) -> Reply:
    """The reply; `info` is filled as the request is read (server, consumer, method, tool, era)."""
    server, key = _admit(gw, request)
    info.update(server=server, consumer=key.consumer)
    if request.method == "POST":
        body = await _read_body(gw, request)
        message = rpc.parse_body(body)
        info.update(method=message.get("method", "response"), era=era_of(request.headers, message),
                    tool=rpc.params_of(message).get("name") if message.get("method") == "tools/call" else "")
        try:
            return await handle_message(gw, server, key, request.headers, body, message)
        except rpc.RpcError as exc:
            return error_reply(message.get("id"), exc)
    info["method"] = request.method
    if request.method in ("GET", "DELETE"):
        if server.kind == "upstream":
            return await proxy_stream(gw, server, key, request.headers, request.method)
        if request.method == "DELETE" and "Mcp-Session-Id" in request.headers:
            return Reply(status=200)  # gateway-served sessions hold no state to end
        if request.method == "GET":
            return serve_get(gw, server, key, gw.backend(server), request.headers)
        return Reply(status=405, headers={"Allow": "POST"})
    return Reply(status=405, headers={"Allow": "GET, POST, DELETE"})


async def _measured(gw: McpGateway, request: web.Request,
                    produce: Callable[[dict[str, Any]], Awaitable[Reply]]) -> web.StreamResponse:
    started = time.monotonic()
    info: dict[str, Any] = {}
    # The request's span (tracing on): current while the answer is made and written, so upstream calls nest in it.
    trace = gw.tracing.begin(request.path, request.headers, info) if gw.tracing is not None else None
    reply = Reply(status=499)
    error_type: str | None = "client_closed"
    try:
        try:
            reply = await produce(info)
        except _Refused as refused:
            reply = refused.reply
        except rpc.RpcError as exc:
            reply = error_reply(None, exc)
        error_type = _error_type(reply)
        server: McpServer | None = info.get("server")
        try:
            return await replies.write(request, reply)
        finally:
            # Labels from the configuration only (see labels.py): nothing a client sends adds a series.
            gw.metrics.record(gw.host.gateway_name, server.id if server is not None else "-",
                              labels.mcp_method_label(info.get("method", request.method)),
                              gw.metrics.tools.label(server, info.get("tool"), error_type is None), str(reply.status),
                              time.monotonic() - started, error_type, str(info.get("consumer", "-")),
                              str(info.get("era", "-")))
    finally:
        if trace is not None:
            trace.end(reply.status, error_type)


def _error_type(reply: Reply) -> str | None:
    body = reply.body
    error = body.get("error") if body is not None else None
    if reply.status < 400 and body is not None and error is None:
        result = body.get("result")
        return "tool_error" if isinstance(result, dict) and result.get("isError") else None
    return labels.mcp_error_label(reply.status, error.get("code") if isinstance(error, dict) else error)


async def _sse_open(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    try:
        server, key = _admit(gw, request)
    except _Refused as refused:
        return await replies.write(request, refused.reply)
    message_path = request.path[: -len("/sse")] + "/message"
    return await request.app[CHANNELS].stream(request, server, key, message_path)


async def _sse_message(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    try:
        server, key = _admit(gw, request)
        channel = request.app[CHANNELS].get(request.query.get("sessionId", ""))
        if channel is None or channel.key.id != key.id or channel.server.id != server.id:
            raise _Refused(404, "no open SSE stream for this sessionId")
        body = await _read_body(gw, request)
        message = rpc.parse_body(body)
    except _Refused as refused:
        return await replies.write(request, refused.reply)
    except rpc.RpcError as exc:
        return await replies.write(request, error_reply(None, exc))

    async def handle(headers: dict[str, str], msg: rpc.Message) -> Reply:
        return await handle_message(gw, server, key, headers, rpc.dumps(msg), msg)

    request.app[CHANNELS].accept(channel, message, handle)
    return web.Response(status=202, text="Accepted")


async def _catalog(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    config, _ = gw.config()
    key = gw.host.authenticate(request)
    if key is None:
        return web.json_response({"error": {"message": "a valid Lockgate key is required", "type": "invalid_request_error",
                                            "code": "invalid_api_key"}}, status=401)
    base = f"{request.scheme}://{request.host}"
    return web.json_response({"object": "list", "data": await catalog_entries(gw, config, key, base)})
