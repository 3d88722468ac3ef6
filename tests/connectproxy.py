"""A small HTTP CONNECT proxy on loopback that counts its tunnels (for the upstream client's proxy support)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class ConnectProxy:
    require: str | None = None  # a Proxy-Authorization value the proxy insists on
    refuse: bool = False  # answer 403 to every CONNECT
    tunnels: list[str] = field(default_factory=list)  # the authority of each tunnel opened
    heads: list[bytes] = field(default_factory=list)  # each CONNECT request head as received
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            method, authority, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            host, _, port = authority.rpartition(":")
            fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line)
            credentials = {k.lower(): v for k, v in fields.items()}.get("proxy-authorization")
            granted = self.require is None or credentials == self.require
            if method != "CONNECT" or self.refuse or not granted or host not in ("127.0.0.1", "localhost"):
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n" if granted else
                             b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
            self.tunnels.append(authority)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
