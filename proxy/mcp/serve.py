"""Serving a gateway-answered backend in the era the client speaks.

Modern (2026-07-28): no handshake, `server/discover`, results with
`resultType`, lists with `ttlMs`/`cacheScope`. Legacy: `initialize` mints a
signed session id naming only the server and key (the backend keeps no state,
so any replica can continue the session). Requests carrying a progress token
are answered as SSE so the progress notifications arrive before the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from lockgate.api.ir import ConsumerKey, McpServer
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp import sse
from lockgate.proxy.mcp.backend import Backend, CallContext
from lockgate.proxy.mcp.era import Era, check_modern_headers
from lockgate.proxy.mcp.gateway import McpGateway
from lockgate.proxy.mcp.reply import Reply, error_reply
from lockgate.proxy.mcp.session_token import SessionRef
from lockgate.proxy.quota import Reservation

SERVER_VERSION = "0.1.0"
LIST_METHODS = ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")


def server_info(gw: McpGateway, server: McpServer) -> dict[str, Any]:
    return {"name": f"{gw.host.gateway_name}/{server.name}", "version": SERVER_VERSION}


async def serve_post(gw: McpGateway, server: McpServer, key: ConsumerKey, backend: Backend,
                     headers: Mapping[str, str], message: rpc.Message, era: Era) -> Reply:
    if rpc.is_response(message):
        gw.inputs.answer(headers.get("Mcp-Session-Id", ""), message)  # an answer to an input request, if awaited
        return Reply(status=202)
    if not rpc.is_request(message):
        return Reply(status=202)  # notifications need no answer
    request_id = message["id"]
    method = str(message.get("method"))
    params = rpc.params_of(message)
    if era == "modern":
        check_modern_headers(headers, message)
        if method == "server/discover":
            return Reply(body=rpc.result_message(request_id, _discover(gw, server, backend)))
    else:
        if method == "initialize":
            return _initialize(gw, server, key, backend, request_id, params)
        token = headers.get("Mcp-Session-Id")
        if token is not None:
            ref = gw.signer.decode(token)
            if ref is None or ref.server != server.id or ref.key_id != key.id:
                return error_reply(request_id, rpc.RpcError(rpc.INVALID_REQUEST, "session not found", status=404))
    if era == "modern" and method == "subscriptions/listen":
        return _listen(backend, request_id, params)
    if era == "legacy" and method in ("ping", "logging/setLevel"):
        return Reply(body=rpc.result_message(request_id, _decorate({}, method, era, gw, server)))
    gw.check_access(key, server, message)
    reservation = await gw.admit(key, server, message)  # refused calls are 429 before any stream starts
    try:
        return await _answer(gw, server, key, backend, headers, message, era, reservation)
    except BaseException:
        await gw.settle(reservation)
        raise


async def _answer(gw: McpGateway, server: McpServer, key: ConsumerKey, backend: Backend, headers: Mapping[str, str],
                  message: rpc.Message, era: Era, reservation: Reservation | None) -> Reply:
    """The answer as JSON, or as SSE when notifications or input requests may precede it; settles the reservation."""
    request_id, method = message["id"], str(message.get("method"))
    progress_token = rpc.meta_of(message).get("progressToken")
    wants_stream = "text/event-stream" in headers.get("Accept", "")
    may_ask = era == "legacy" and method in rpc.NAMED_METHODS  # its answer may need input from the client
    if wants_stream and (progress_token is not None or may_ask):
        session = headers.get("Mcp-Session-Id", "")
        return Reply(events=_streamed(gw, server, key, backend, message, era, progress_token, session, reservation))
    ctx = CallContext(key, server, era, meta=rpc.meta_of(message))
    try:
        result = await _call(gw, server, key, backend, ctx, message)
    finally:
        await gw.settle(reservation)
    return Reply(body=rpc.result_message(request_id, _decorate(result, method, era, gw, server)))


async def _call(gw: McpGateway, server: McpServer, key: ConsumerKey, backend: Backend, ctx: CallContext,
                message: rpc.Message) -> dict[str, Any]:
    method = str(message.get("method"))
    result = await backend.request(ctx, method, rpc.params_of(message))
    return gw.filter_result(key, server, method, result)


async def _streamed(gw: McpGateway, server: McpServer, key: ConsumerKey, backend: Backend, message: rpc.Message,
                    era: Era, progress_token: Any, session: str, reservation: Reservation | None) -> AsyncIterator[sse.Event]:
    queue: asyncio.Queue[rpc.Message] = asyncio.Queue()

    async def emit(note: rpc.Message) -> None:
        await queue.put(note)

    async def run() -> rpc.Message:
        ctx = CallContext(key, server, era, progress_token, emit, rpc.meta_of(message))

        async def retry(answers: dict[str, Any], state: Any) -> dict[str, Any]:
            params = {**rpc.params_of(message), "inputResponses": answers}
            if state is not None:
                params["requestState"] = state
            return await _call(gw, server, key, backend, ctx, {**message, "params": params})

        try:
            result = await _call(gw, server, key, backend, ctx, message)
            if era == "legacy":
                result = await gw.inputs.resolve(session, result, retry, emit)
            return rpc.result_message(message["id"], _decorate(result, str(message["method"]), era, gw, server))
        except rpc.RpcError as exc:
            return exc.to_message(message["id"])
        finally:
            await gw.settle(reservation)

    task = asyncio.ensure_future(run())
    try:
        while not task.done() or not queue.empty():
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield sse.Event(rpc.dumps(getter.result()).decode())
            else:
                getter.cancel()
        yield sse.Event(rpc.dumps(task.result()).decode())
    finally:
        task.cancel()  # the client went away: stop the call


def _decorate(result: dict[str, Any], method: str, era: Era, gw: McpGateway, server: McpServer) -> dict[str, Any]:
    if era != "modern":
        return result
    result = {**result}
    result.setdefault("resultType", "complete")
    if method in LIST_METHODS:
        result.setdefault("ttlMs", 0)
        result.setdefault("cacheScope", "private")  # lists are filtered per key
    meta = dict(result.get("_meta") or {})
    meta.setdefault(rpc.META_SERVER_INFO, server_info(gw, server))
    result["_meta"] = meta
    return result


def _discover(gw: McpGateway, server: McpServer, backend: Backend) -> dict[str, Any]:
    result: dict[str, Any] = {
        "resultType": "complete",
        "supportedVersions": list(rpc.MODERN_VERSIONS + rpc.LEGACY_VERSIONS),
        "capabilities": backend.capabilities(),
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {rpc.META_SERVER_INFO: server_info(gw, server)},
    }
    if server.description:
        result["instructions"] = server.description
    return result


def _initialize(gw: McpGateway, server: McpServer, key: ConsumerKey, backend: Backend, request_id: Any,
                params: dict[str, Any]) -> Reply:
    asked = params.get("protocolVersion")
    version = asked if asked in rpc.LEGACY_VERSIONS else rpc.LATEST_LEGACY
    result: dict[str, Any] = {"protocolVersion": version, "capabilities": backend.capabilities(),
                              "serverInfo": server_info(gw, server)}
    if server.description:
        result["instructions"] = server.description
    session = gw.signer.encode(SessionRef(server.id, key.id))
    return Reply(body=rpc.result_message(request_id, result), headers={"Mcp-Session-Id": session})


# Filter field of subscriptions/listen -> the notification it lets through.
LISTEN_FILTERS = {"toolsListChanged": "notifications/tools/list_changed",
                  "promptsListChanged": "notifications/prompts/list_changed",
                  "resourcesListChanged": "notifications/resources/list_changed"}


def serve_get(gw: McpGateway, server: McpServer, key: ConsumerKey, backend: Backend,
              headers: Mapping[str, str]) -> Reply:
    """A legacy session's standalone stream: the backend's list changes, or 405 when it has none."""
    changes = getattr(backend, "changes", None)
    ref = gw.signer.decode(headers.get("Mcp-Session-Id", ""))
    if changes is None or ref is None or ref.server != server.id or ref.key_id != key.id:
        return Reply(status=405, headers={"Allow": "POST"})
    return Reply(events=sse.with_keepalives(_change_events(changes(), set(LISTEN_FILTERS.values()), None)))


def _listen(backend: Backend, request_id: Any, params: dict[str, Any]) -> Reply:
    changes = getattr(backend, "changes", None)
    if changes is None:
        return error_reply(request_id, rpc.RpcError(rpc.METHOD_NOT_FOUND, "this server's lists never change", status=404))
    filters = params.get("notifications")
    wanted: dict[str, Any] = filters if isinstance(filters, dict) else {}
    methods = {note for field, note in LISTEN_FILTERS.items() if wanted.get(field)}
    ack = rpc.notification("notifications/subscriptions/acknowledged",
                           {"_meta": {"io.modelcontextprotocol/subscriptionId": request_id}})

    async def events() -> AsyncIterator[sse.Event]:
        source = changes()
        await anext(source, None)  # READY: the members listen before the client is told it does
        yield sse.Event(rpc.dumps(ack).decode())
        async for event in _change_events(source, methods, request_id):
            yield event

    return Reply(events=sse.with_keepalives(events()))


async def _change_events(changes: AsyncIterator[str], methods: set[str], subscription: Any) -> AsyncIterator[sse.Event]:
    async for method in changes:
        if method not in methods:
            continue
        params: dict[str, Any] = {}
        if subscription is not None:
            params["_meta"] = {"io.modelcontextprotocol/subscriptionId": subscription}
        yield sse.Event(rpc.dumps(rpc.notification(method, params)).decode())
