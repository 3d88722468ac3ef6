"""A raw HTTP/1.1 server on loopback whose answers a test writes byte by byte.

For the edge cases a framework server never produces: close-delimited
bodies, interim 1xx answers, resets mid-body, connections closed just as a
request arrives, malformed heads. Each request is parsed (head and
Content-Length body) and handed to the test's handler with the connection's
streams; the handler writes what it likes and says whether to keep reading.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    line: str  # "POST /path HTTP/1.1"
    headers: dict[str, str]  # lower-case names
    body: bytes
    connection: int  # the connection's number, from 0 in accept order
    number: int  # the request's number on its connection, from 0


# (request, reader, writer) -> keep reading requests on this connection
Handler = Callable[[RawRequest, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class RawServer:
    handler: Handler
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0
    closed: list[asyncio.Event] = field(default_factory=list)  # per connection: set when it ended
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        closed = asyncio.Event()
        self.closed.append(closed)
        try:
            number = 0
            while True:
                request = await _read_request(reader, index, number)
                if request is None:
                    break
                self.requests.append(request)
                number += 1
                if not await self.handler(request, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            closed.set()
            writer.close()


async def _read_request(reader: asyncio.StreamReader, connection: int, number: int) -> RawRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *lines = head[:-4].decode("latin-1").split("\r\n")
    headers = {}
    for text in lines:
        name, _, value = text.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return RawRequest(line, headers, body, connection, number)


def reset(writer: asyncio.StreamWriter) -> None:
    """Closes the connection with a TCP reset (SO_LINGER 0), not a clean FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def answer(body: bytes, status: str = "200 OK", headers: str = "") -> bytes:
    """A whole response with Content-Length; `headers` are extra lines, each ending in CRLF."""
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body
