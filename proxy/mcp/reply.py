"""What a handler answers with, independent of how it reaches the client.

Streamable HTTP writes a `Reply` as JSON or as an SSE stream; the older
HTTP+SSE transport forwards its messages onto the client's open stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus

from aiohttp import web

from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp import sse
from lockgate.proxy.streams import until_ended


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: rpc.Message | None = None  # one JSON-RPC message as application/json
    events: AsyncIterator[sse.Event] | None = None  # an SSE stream
    raw: bytes | None = None  # an upstream's non-JSON-RPC body, passed through
    content_type: str = "application/json"


def error_reply(request_id: object, error: rpc.RpcError) -> Reply:
    return Reply(status=error.status, headers=error.headers, body=error.to_message(request_id))


async def messages_of(reply: Reply) -> AsyncIterator[rpc.Message]:
    """The JSON-RPC messages a reply carries, in order."""
    if reply.body is not None:
        yield reply.body
    if reply.events is not None:
        async for event in reply.events:
            message = rpc.loads_message(event.data)
            if message is not None:
                yield message


async def write(request: web.Request, reply: Reply) -> web.StreamResponse:
    if reply.events is None:
        if reply.body is not None:
            return web.Response(status=reply.status, body=rpc.dumps(reply.body), headers=reply.headers,
                                content_type="application/json")
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers={
                **reply.headers, "Content-Type": reply.content_type})
        if reply.status >= 400:  # a refusal says why in JSON-RPC too, as every other MCP answer
            message = rpc.error_message(None, rpc.INVALID_REQUEST, _reason(reply.status))
            return web.Response(status=reply.status, body=rpc.dumps(message), headers=reply.headers,
                                content_type="application/json")
        return web.Response(status=reply.status, headers=reply.headers)
    events = reply.events
    response = web.StreamResponse(status=reply.status, headers={**sse.HEADERS, **reply.headers})
    await response.prepare(request)

    async def pump() -> None:
        async for event in events:
            await response.write(event.encode())

    # A GET stream only carries news (notifications, a resumption): a draining replica closes it
    # at once, and the client reconnects to one that stays. Any stream ends at the drain's deadline.
    if await until_ended(request, pump(), _always if request.method == "GET" else None):
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    await response.write_eof()
    return response


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return f"HTTP {status}"


def _always() -> bool:
    return True
