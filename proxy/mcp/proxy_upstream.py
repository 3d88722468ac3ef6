"""The `upstream` kind: Streamable HTTP proxied to an upstream MCP server.

The client's era passes through unchanged (the upstream answers in it). What
the gateway changes: the credential (its own, never the client's), the
session id (the client sees a signed id naming the upstream endpoint and the
upstream's session, so any replica routes it back to the same endpoint), tool
lists (filtered per key) and failures (JSON-RPC errors, never a hang).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from lockgate.api.ir import ConsumerKey, McpServer
from lockgate.proxy.edge import forwardable
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp import sampling_relay, sse
from lockgate.proxy.mcp.era import Era, check_modern_headers
from lockgate.proxy.mcp.gateway import McpGateway
from lockgate.proxy.mcp.reply import Reply, error_reply
from lockgate.proxy.mcp.sampling import client_declares_sampling, with_sampling
from lockgate.proxy.mcp.session_token import SessionRef

# Client headers an upstream needs; everything else (Authorization above all) stays here.
FORWARDED = ("Accept", "Content-Type", "MCP-Protocol-Version", "Mcp-Method", "Mcp-Name", "Last-Event-ID")
SESSION_NOT_FOUND = rpc.RpcError(rpc.INVALID_REQUEST, "session not found", status=404)


class _Target:
    def __init__(self, url: str, upstream_session: str | None, client_samples: bool = True) -> None:
        self.url = url
        self.upstream_session = upstream_session
        self.client_samples = client_samples  # the legacy session's client declared sampling


def _target(gw: McpGateway, server: McpServer, key: ConsumerKey, headers: Mapping[str, str]) -> _Target:
    assert server.upstream is not None
    token = headers.get("Mcp-Session-Id")
    if token is None:
        if not server.upstream.urls:
            raise rpc.RpcError(rpc.UPSTREAM_ERROR, f"{server.id}: no ready upstream endpoint", status=503)
        return _Target(random.choice(server.upstream.urls), None)
    ref = gw.signer.decode(token)
    if ref is None or ref.server != server.id or ref.key_id != key.id or not ref.upstream_url:
        raise SESSION_NOT_FOUND
    return _Target(ref.upstream_url, ref.upstream_session or None, ref.client_samples)


def _upstream_headers(gw: McpGateway, server: McpServer, headers: Mapping[str, str], target: _Target) -> dict[str, str]:
    assert server.upstream is not None
    out = forwardable(headers, FORWARDED, prefix="mcp-param-")
    out.update(gw.upstream_headers(server.upstream))
    if target.upstream_session:
        out["Mcp-Session-Id"] = target.upstream_session
    return out


def _client_session_header(gw: McpGateway, server: McpServer, key: ConsumerKey, target: _Target,
                           response: aiohttp.ClientResponse, message: rpc.Message) -> dict[str, str]:
    upstream_session = response.headers.get("Mcp-Session-Id")
    if not upstream_session:
        return {}
    samples = target.client_samples
    if message.get("method") == "initialize":
        samples = client_declares_sampling(rpc.params_of(message).get("capabilities"))
    return {"Mcp-Session-Id": gw.signer.encode(SessionRef(server.id, key.id, target.url, upstream_session, samples))}


def _declaring_sampling(server: McpServer, message: rpc.Message, body: bytes) -> bytes:
    """A legacy initialize with `sampling` declared, when the gateway may answer the server's sampling."""
    if server.sampling is None or server.sampling.answer == "never" or message.get("method") != "initialize":
        return body
    params = rpc.params_of(message)
    return rpc.dumps({**message, "params": {**params, "capabilities": with_sampling(params.get("capabilities"))}})


async def proxy_post(gw: McpGateway, server: McpServer, key: ConsumerKey, headers: Mapping[str, str],
                     body: bytes, message: rpc.Message, era: Era) -> Reply:
    assert server.upstream is not None
    request_id = message.get("id") if rpc.is_request(message) else None
    if era == "modern":
        check_modern_headers(headers, message, require_meta=False)
    target = _target(gw, server, key, headers)
    gw.check_access(key, server, message)
    reservation = await gw.admit(key, server, message)
    if era == "modern" and sampling_relay.intercepts(server, message):
        try:
            return await _sampled_call(gw, server, key, headers, message, target)
        finally:
            await gw.settle(reservation)
    try:
        response = await gw.host.http.post(
            target.url, data=_declaring_sampling(server, message, body),
            headers=_upstream_headers(gw, server, headers, target), timeout=_timeout(server), allow_redirects=False,
            trace_request_ctx=rpc.trace_facts(message))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        await gw.settle(reservation)
        return _unreachable(request_id, exc)
    session_header = _client_session_header(gw, server, key, target, response, message)
    method = str(message.get("method", ""))
    content_type = response.headers.get("Content-Type", "")
    if response.status == 404 and target.upstream_session:
        response.release()
        await gw.settle(reservation)
        return error_reply(request_id, SESSION_NOT_FOUND)
    if content_type.startswith("text/event-stream"):
        events = sse.with_keepalives(_relay_events(gw, server, key, response, method, request_id, reservation,
                                                   _answerer(gw, server, key, headers, target)))
        return Reply(status=response.status, headers=session_header, events=events)
    try:
        raw = await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return _unreachable(request_id, exc)
    finally:
        response.release()
        await gw.settle(reservation)
    if not raw:
        return Reply(status=response.status, headers=session_header)
    answer = rpc.loads_message(raw.decode(errors="replace"))
    if answer is not None:
        return Reply(status=response.status, headers=session_header, body=_filtered(gw, server, key, method, answer))
    if request_id is not None and response.status >= 500:
        return error_reply(request_id, rpc.RpcError(rpc.UPSTREAM_ERROR, f"upstream answered HTTP {response.status}"))
    return Reply(status=response.status, headers=session_header, raw=raw, content_type=content_type or "text/plain")


async def proxy_stream(gw: McpGateway, server: McpServer, key: ConsumerKey, headers: Mapping[str, str],
                       method: str) -> Reply:
    """GET (the standalone server stream, or a resumption) and DELETE, within a session."""
    if "Mcp-Session-Id" not in headers:
        return Reply(status=405, headers={"Allow": "POST"})
    ref = gw.signer.decode(headers["Mcp-Session-Id"])
    if ref is not None and ref.server == server.id and ref.key_id == key.id and not ref.upstream_url:
        # A session the gateway serves itself (bridging eras): nothing upstream to stream or end.
        return Reply(status=200) if method == "DELETE" else Reply(status=405, headers={"Allow": "POST"})
    target = _target(gw, server, key, headers)
    try:
        response = await gw.host.http.request(
            method, target.url, headers=_upstream_headers(gw, server, headers, target), allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=_connect_timeout(server), sock_read=None))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return Reply(status=502, body=rpc.error_message(None, rpc.UPSTREAM_ERROR, f"upstream unavailable: {type(exc).__name__}"))
    if response.status == 404:
        response.release()
        return error_reply(None, SESSION_NOT_FOUND)
    if response.headers.get("Content-Type", "").startswith("text/event-stream"):
        events = sse.with_keepalives(_relay_events(gw, server, key, response, "", None, None,
                                                   _answerer(gw, server, key, headers, target)))
        return Reply(status=response.status, events=events)
    raw = await response.read()
    response.release()
    return Reply(status=response.status, raw=raw, content_type=response.headers.get("Content-Type", "text/plain"))


Answer = Callable[[rpc.Message], Awaitable[bool]]


def _answerer(gw: McpGateway, server: McpServer, key: ConsumerKey, headers: Mapping[str, str],
              target: _Target) -> Answer | None:
    """What answers the upstream's sampling requests in this legacy session instead of its client, if anything."""
    if server.sampling is None or not target.upstream_session:
        return None

    async def answer(message: rpc.Message) -> bool:
        if not sampling_relay.legacy_intercepts(server, message, target.client_samples):
            return False
        reply = await sampling_relay.legacy_answer(gw.sampler, key, server, message)
        try:
            async with gw.host.http.post(target.url, data=rpc.dumps(reply), allow_redirects=False,
                                         headers=_upstream_headers(gw, server, headers, target),
                                         timeout=_timeout(server)) as posted:
                await posted.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass  # the upstream's call fails or times out on its side, and its stream says so
        return True

    return answer


async def _sampled_call(gw: McpGateway, server: McpServer, key: ConsumerKey, headers: Mapping[str, str],
                        message: rpc.Message, target: _Target) -> Reply:
    """A 2026-07-28 call whose sampling input requests the gateway answers itself."""

    async def send(request: rpc.Message) -> rpc.Message:
        try:
            async with gw.host.http.post(target.url, data=rpc.dumps(request), allow_redirects=False,
                                         headers=_upstream_headers(gw, server, headers, target),
                                         timeout=_timeout(server)) as response:
                if response.headers.get("Content-Type", "").startswith("text/event-stream"):
                    async for event in sse.parse(response.content.iter_any()):
                        found = rpc.loads_message(event.data)
                        if found is not None and rpc.is_response(found) and found.get("id") == request["id"]:
                            return found
                    raise rpc.RpcError(rpc.UPSTREAM_ERROR, "the upstream closed the stream without answering")
                found = rpc.loads_message((await response.read()).decode(errors="replace"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise rpc.RpcError(rpc.UPSTREAM_ERROR, f"upstream unavailable: {type(exc).__name__}") from None
        if found is None or not rpc.is_response(found):
            raise rpc.RpcError(rpc.UPSTREAM_ERROR, f"upstream answered HTTP {response.status}")
        return found

    answer = await sampling_relay.modern_rounds(gw.sampler, gw.signer, key, server, message, send)
    return Reply(body=_filtered(gw, server, key, str(message.get("method", "")), answer))


async def _relay_events(gw: McpGateway, server: McpServer, key: ConsumerKey, response: aiohttp.ClientResponse,
                        method: str, request_id: Any, reservation: Any,
                        answer: Answer | None = None) -> AsyncIterator[sse.Event]:
    answered = request_id is None
    resumable = False  # events with ids: a closed stream is resumed by the client (GET + Last-Event-ID)
    try:
        async for event in sse.parse(response.content.iter_any()):
            resumable = resumable or event.id is not None
            message = rpc.loads_message(event.data)
            if answer is not None and message is not None and await answer(message):
                continue  # the gateway answered it upstream: the client never sees it
            if message is not None and rpc.is_response(message) and message.get("id") == request_id:
                answered = True
                filtered = _filtered(gw, server, key, method, message)
                if filtered is not message:
                    event.data = rpc.dumps(filtered).decode()
            yield event
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        if not answered and not resumable:
            yield sse.Event(rpc.dumps(_unreachable(request_id, exc).body or {}).decode())
            answered = True
    finally:
        response.release()
        await gw.settle(reservation)
    if not answered and not resumable:
        error = rpc.error_message(request_id, rpc.UPSTREAM_ERROR, "the upstream closed the stream without answering")
        yield sse.Event(rpc.dumps(error).decode())


def _filtered(gw: McpGateway, server: McpServer, key: ConsumerKey, method: str, message: rpc.Message) -> rpc.Message:
    if method != "tools/list" or "result" not in message:
        return message
    return {**message, "result": gw.filter_result(key, server, method, message["result"])}


def _unreachable(request_id: Any, exc: BaseException) -> Reply:
    text = "upstream timed out" if isinstance(exc, asyncio.TimeoutError) else f"upstream unavailable: {type(exc).__name__}"
    if request_id is None:
        return Reply(status=502, body=rpc.error_message(None, rpc.UPSTREAM_ERROR, text))
    return Reply(status=200, body=rpc.error_message(request_id, rpc.UPSTREAM_ERROR, text))


def _timeout(server: McpServer) -> aiohttp.ClientTimeout:
    seconds = server.upstream.timeout if server.upstream else 60.0
    return aiohttp.ClientTimeout(total=None, sock_connect=min(seconds, 10.0), sock_read=seconds)


def _connect_timeout(server: McpServer) -> float:
    return min(server.upstream.timeout if server.upstream else 60.0, 10.0)
