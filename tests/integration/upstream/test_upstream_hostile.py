"""The upstream pool against upstreams that send bad bytes: every cap, and no request sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lockgate.proxy.upstream import ServerDisconnected, UpstreamError, UpstreamPool
from tests.rawhttp import RawRequest, RawServer, answer

HEADERS = {"Content-Type": "application/json"}
MiB = 1024 * 1024


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    upstreams = UpstreamPool()
    yield upstreams
    await upstreams.close()


async def post(pool: UpstreamPool, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await pool.post(url, body, HEADERS, connect_timeout=2)
    return response.status, await response.read()


async def send_until_closed(writer: asyncio.StreamWriter, head: bytes, piece: bytes, total: int) -> int:
    """Writes `head`, then `piece` until `total` bytes or until the client drops the connection."""
    sent = 0
    try:
        writer.write(head)
        while sent < total:
            writer.write(piece)
            sent += len(piece)
            await writer.drain()
    except ConnectionError:
        pass
    return sent


@pytest.mark.parametrize("kind", ["huge-header", "many-headers", "endless-status-line"])
async def test_a_response_head_over_the_cap_is_refused_early(pool: UpstreamPool, kind: str) -> None:
    total = 32 * MiB
    sent: list[int] = []
    head, piece = {
        "huge-header": (b"HTTP/1.1 200 OK\r\nX-Big: ", b"a" * 65536),
        "many-headers": (b"HTTP/1.1 200 OK\r\n", b"X-N: 1\r\n" * 8192),
        "endless-status-line": (b"HTTP/1.1 200 ", b"O" * 65536),
    }[kind]

    async def huge(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        sent.append(await send_until_closed(writer, head, piece, total))
        return False

    async with RawServer(huge) as server:
        with pytest.raises(UpstreamError, match="over the limit"):
            await post(pool, server.url)
        await asyncio.wait_for(server.closed[0].wait(), 10)
    assert sent[0] < 8 * MiB  # the client stopped reading long before the end


async def test_trailers_do_not_leak_into_the_next_response(pool: UpstreamPool) -> None:
    async def trailers(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if request.number == 0:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Retry-After\r\n\r\n"
                         b"2\r\nok\r\n0\r\nRetry-After: 3600\r\nX-Trailer: 1\r\n\r\n")
        else:
            writer.write(answer(b"busy", "503 Service Unavailable"))
        return True

    async with RawServer(trailers) as server:
        first = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
        assert await first.read() == b"ok" and "retry-after" not in first.headers
        second = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
        assert second.status == 503 and await second.read() == b"busy"
        assert "retry-after" not in second.headers and "x-trailer" not in second.headers
        assert server.connections == 1


async def test_a_connection_with_part_of_its_request_unsent_is_not_reused(pool: UpstreamPool) -> None:
    body = b"b" * (64 * MiB)  # more than the kernel buffers of both sockets hold
    connections = 0

    async def early_then_normal(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        number, connections = connections, connections + 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if number == 0:  # answers having read 1 KiB of the body; the rest would pass for the next request
                await reader.readexactly(1024)
                writer.write(answer(b"too early"))
                await reader.read()  # until the client drops the connection
                return
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(answer(b"fresh"))
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(early_then_normal, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    try:
        assert await post(pool, url, body) == (200, b"too early")
        assert pool.idle_connections(url) == 0
        assert await asyncio.wait_for(post(pool, url), 5) == (200, b"fresh")
        assert connections == 2
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


async def test_a_post_is_never_sent_twice(pool: UpstreamPool) -> None:
    received = asyncio.Event()

    async def swallow(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if request.number == 0:
            writer.write(answer(b"ok"))
            return True
        received.set()  # the generation started; then the upstream dies without a byte of answer
        await asyncio.sleep(0.05)
        return False

    async with RawServer(swallow) as server:
        assert await post(pool, server.url) == (200, b"ok")
        with pytest.raises(ServerDisconnected, match="before answering"):
            await post(pool, server.url, b'{"generate": 1}')
        assert received.is_set()
        assert [r.body for r in server.requests].count(b'{"generate": 1}') == 1
        assert server.connections == 1


@pytest.mark.parametrize(("timeout", "pooled"), [("1", 0), ("5", 1), ("junk", 1)])
async def test_the_upstreams_keep_alive_timeout_is_honoured(pool: UpstreamPool, timeout: str, pooled: int) -> None:
    async def short(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"ok", headers=f"Keep-Alive: timeout={timeout}, max=100\r\n"))
        return True

    async with RawServer(short) as server:
        assert await post(pool, server.url) == (200, b"ok")
        assert pool.idle_connections(server.url) == pooled  # 1 s, less a second's margin: not reused
        assert await post(pool, server.url) == (200, b"ok")
        assert server.connections == 2 - pooled
