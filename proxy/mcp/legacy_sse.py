"""The deprecated HTTP+SSE transport (2024-11-05): GET <path>/sse, POST <path>/message.

The stream's first event, `endpoint`, names the message URL with a channel id.
Each POSTed message is answered 202 at once and handled like a Streamable
HTTP POST on the client's behalf (the channel keeps the session id that
yields); whatever that produces goes onto the open stream as `message`
events. A channel lives in the replica holding the stream, so its POSTs must
reach that replica (as with any HTTP+SSE server).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from lockgate.api.ir import ConsumerKey, McpServer
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp import sse
from lockgate.proxy.mcp.reply import Reply, messages_of
from lockgate.proxy.streams import until_ended

KEEPALIVE_SECONDS = 15.0
INIT_WAIT_SECONDS = 30.0
Handle = Callable[[dict[str, str], rpc.Message], Awaitable[Reply]]


@dataclass
class Channel:
    server: McpServer
    key: ConsumerKey
    outbox: asyncio.Queue[rpc.Message] = field(default_factory=asyncio.Queue)
    session: str | None = None
    version: str | None = None
    initialized: asyncio.Event = field(default_factory=asyncio.Event)
    init_pending: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        if self.version:
            headers["MCP-Protocol-Version"] = self.version
        return headers


class Channels:
    def __init__(self) -> None:
        self._open: dict[str, Channel] = {}

    def get(self, channel_id: str) -> Channel | None:
        return self._open.get(channel_id)

    async def stream(self, request: web.Request, server: McpServer, key: ConsumerKey, message_path: str) -> web.StreamResponse:
        channel_id = secrets.token_urlsafe(24)
        channel = self._open[channel_id] = Channel(server, key)
        response = web.StreamResponse(headers=sse.HEADERS)
        await response.prepare(request)

        async def pump() -> None:
            await response.write(sse.Event(f"{message_path}?sessionId={channel_id}", event="endpoint").encode())
            while True:
                try:
                    message = await asyncio.wait_for(channel.outbox.get(), KEEPALIVE_SECONDS)
                except asyncio.TimeoutError:
                    await response.write(sse.KEEPALIVE)
                    continue
                await response.write(sse.Event(rpc.dumps(message).decode(), event="message").encode())

        try:
            # Idle while nothing is pending: a draining replica closes the channel, the client opens another.
            await until_ended(request, pump(), lambda: not channel.tasks and channel.outbox.empty())
            await response.write_eof()
            return response
        finally:
            self._open.pop(channel_id, None)
            for task in channel.tasks:
                task.cancel()

    def accept(self, channel: Channel, message: rpc.Message, handle: Handle) -> None:
        """Handle a POSTed message in the background; its answers go to the stream."""
        if message.get("method") == "initialize":
            channel.init_pending = True
        elif not channel.init_pending:
            channel.initialized.set()  # no handshake coming: nothing to wait for
        task = asyncio.ensure_future(self._run(channel, message, handle))
        channel.tasks.add(task)
        task.add_done_callback(channel.tasks.discard)

    async def _run(self, channel: Channel, message: rpc.Message, handle: Handle) -> None:
        is_init = message.get("method") == "initialize"
        if not is_init and not channel.initialized.is_set():
            try:
                await asyncio.wait_for(channel.initialized.wait(), INIT_WAIT_SECONDS)
            except asyncio.TimeoutError:
                pass
        try:
            reply = await handle(channel.headers(), message)
            if is_init:
                channel.session = reply.headers.get("Mcp-Session-Id", channel.session)
            async for answer in messages_of(reply):
                if is_init and isinstance(answer.get("result"), dict):
                    channel.version = str(answer["result"].get("protocolVersion") or "") or None
                await channel.outbox.put(answer)
        except rpc.RpcError as exc:
            if rpc.is_request(message):
                await channel.outbox.put(exc.to_message(message["id"]))
        finally:
            if is_init:
                channel.initialized.set()
