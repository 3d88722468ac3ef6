"""The upstream pool against real loopback servers: keep-alive, body framing, failures, the stale-connection retry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from lockgate.proxy.upstream import (
    ConnectFailed,
    InvalidRequest,
    MalformedResponse,
    ServerDisconnected,
    UpstreamError,
    UpstreamPool,
    UpstreamSettings,
)
from tests.loopback import free_port, serve_app
from tests.rawhttp import RawRequest, RawServer, answer, reset

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-test"}


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    upstreams = UpstreamPool()
    yield upstreams
    await upstreams.close()


async def post(pool: UpstreamPool, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await pool.post(url, body, HEADERS, connect_timeout=2)
    return response.status, await response.read()


async def test_one_connection_serves_many_requests_with_identity_encoding(pool: UpstreamPool) -> None:
    peers: list[object] = []
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        seen.append(dict(request.headers))
        return web.json_response({"got": (await request.read()).decode()}, headers={"Retry-After": "3"})

    app = web.Application()
    app.router.add_post("/v1/echo", echo)
    async with serve_app(app) as base:
        for i in range(20):
            response = await pool.post(f"{base}/v1/echo", b'{"n": %d}' % i, HEADERS, connect_timeout=2)
            assert response.status == 200 and response.headers["retry-after"] == "3"
            assert await response.read() == b'{"got": "{\\"n\\": %d}"}' % i
            assert response.complete
        assert len(peers) == 20 and len(set(peers)) == 1
        assert pool.idle_connections(f"{base}/v1/other") == 1
    first = seen[0]
    assert first["Accept-Encoding"] == "identity"
    assert first["Host"] == base.removeprefix("http://")
    assert first["Content-Length"] == "8" and first["Authorization"] == "Bearer sk-test"
    assert "User-Agent" not in first


async def test_concurrent_requests_open_connections_that_are_reused_after(pool: UpstreamPool) -> None:
    release = asyncio.Event()
    arrived = 0

    async def wait(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        nonlocal arrived
        arrived += 1
        if arrived == 4:
            release.set()
        await release.wait()
        writer.write(answer(b"ok"))
        return True

    async with RawServer(wait) as server:
        assert [r[0] for r in await asyncio.gather(*(post(pool, server.url) for _ in range(4)))] == [200] * 4
        assert server.connections == 4 and pool.idle_connections(server.url) == 4
        for _ in range(8):
            assert await post(pool, server.url) == (200, b"ok")
        assert server.connections == 4


async def test_chunked_body_streams_and_keeps_the_connection(pool: UpstreamPool) -> None:
    pieces = asyncio.Queue[bytes]()

    async def chunked(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n")
        while (piece := await pieces.get()) != b"":
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        return True

    async with RawServer(chunked) as server:
        response = await pool.post(server.url + "/v1/x", b"{}", HEADERS, connect_timeout=2)
        assert response.headers["content-type"] == "text/event-stream" and not response.complete
        for piece in (b"data: 1\n\n", b"data: 2\n\n"):
            pieces.put_nowait(piece)
            assert await response.readany() == piece
        pieces.put_nowait(b"")
        assert await response.readany() == b""
        assert response.complete and await response.readany() == b""
        pieces.put_nowait(b"")
        assert await post(pool, server.url) == (200, b"")
        assert server.connections == 1


async def test_a_body_without_length_ends_with_the_connection(pool: UpstreamPool) -> None:
    async def until_close(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\": ")
        await writer.drain()
        writer.write(b"1}")
        return False

    async with RawServer(until_close) as server:
        assert await post(pool, server.url) == (200, b'{"a": 1}')
        assert pool.idle_connections(server.url) == 0
        assert await post(pool, server.url) == (200, b'{"a": 1}')
        assert server.connections == 2


@pytest.mark.parametrize("head", [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                                  b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"])
async def test_connection_close_and_http_1_0_are_not_reused(pool: UpstreamPool, head: bytes) -> None:
    async def once(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(head)
        await reader.read()  # the client closes it
        return False

    async with RawServer(once) as server:
        for _ in range(3):
            assert await post(pool, server.url) == (200, b"ok")
        assert server.connections == 3 and pool.idle_connections(server.url) == 0


async def test_interim_1xx_answers_are_skipped(pool: UpstreamPool) -> None:
    async def interim(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n" + answer(b"final", "201 Created"))
        return True

    async with RawServer(interim) as server:
        response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
        assert response.status == 201 and "link" not in response.headers
        assert await response.read() == b"final"
        assert await post(pool, server.url) == (201, b"final")
        assert server.connections == 1


async def test_a_connection_the_upstream_closed_while_idle_is_not_used(pool: UpstreamPool) -> None:
    async def answer_and_close(request: RawRequest, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"ok"))
        return False  # a keep-alive answer, then the upstream closes the connection at once

    async with RawServer(answer_and_close) as server:
        for _ in range(3):
            assert await post(pool, server.url) == (200, b"ok")  # at once: the end may not be noticed yet
        assert server.connections == 3
        assert [(r.connection, r.number) for r in server.requests] == [(0, 0), (1, 0), (2, 0)]


async def test_a_failure_after_the_answer_began_is_not_retried(pool: UpstreamPool) -> None:
    async def half(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if request.number == 0:
            writer.write(answer(b"ok"))
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        return False

    async with RawServer(half) as server:
        assert await post(pool, server.url) == (200, b"ok")
        with pytest.raises(ServerDisconnected, match="response head"):
            await post(pool, server.url)
        assert len(server.requests) == 2


async def test_reset_mid_body_is_a_connection_error(pool: UpstreamPool) -> None:
    async def broken(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        reset(writer)
        return False

    async with RawServer(broken) as server:
        response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
        assert response.status == 200
        with pytest.raises(ConnectionError) as caught:
            await response.read()
        assert isinstance(caught.value, ServerDisconnected)
        assert "response body" in str(caught.value) and "sk-test" not in str(caught.value)


async def test_a_stream_that_breaks_delivers_what_came_then_raises(pool: UpstreamPool) -> None:
    async def broken(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        return False

    async with RawServer(broken) as server:
        response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
        assert await response.readany() == b"hello"
        with pytest.raises(ServerDisconnected):
            await response.readany()


async def test_a_malformed_answer_is_a_connection_error(pool: UpstreamPool) -> None:
    async def garbage(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SPDY/9 OK\r\n\r\n")
        await reader.read()
        return False

    async with RawServer(garbage) as server:
        with pytest.raises(MalformedResponse, match="malformed"):
            await post(pool, server.url)
        await asyncio.wait_for(server.closed[0].wait(), 5)  # the client dropped the connection


async def test_bytes_on_an_idle_connection_drop_it(pool: UpstreamPool) -> None:
    async def chatty(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"ok") + b"HTTP/1.1 200 OK\r\n")  # more than was asked
        await reader.read()
        return False

    async with RawServer(chatty) as server:
        assert await post(pool, server.url) == (200, b"ok")
        await asyncio.wait_for(server.closed[0].wait(), 5)
        assert pool.idle_connections(server.url) == 0


async def test_connections_idle_past_the_keepalive_time_are_not_reused() -> None:
    pool = UpstreamPool(UpstreamSettings(keepalive=-1))  # every connection is already too old to keep

    async def ok(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"ok"))
        return True

    try:
        async with RawServer(ok) as server:
            for _ in range(3):
                assert await post(pool, server.url) == (200, b"ok")
            assert server.connections == 3
            await asyncio.wait_for(server.closed[1].wait(), 5)  # the expired ones were closed
    finally:
        await pool.close()


async def test_refused_and_unresolvable_are_connect_errors(pool: UpstreamPool) -> None:
    with pytest.raises(ConnectFailed, match="cannot connect"):
        await post(pool, f"http://127.0.0.1:{free_port()}/v1/x")
    with pytest.raises(ConnectFailed, match="cannot resolve"):
        await post(pool, "http://no-such-host.invalid/v1/x")


async def test_a_header_with_a_newline_is_refused_before_connecting(pool: UpstreamPool) -> None:
    async def ok(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"ok"))
        return True

    async with RawServer(ok) as server:
        with pytest.raises(InvalidRequest) as caught:
            await pool.post(server.url, b"{}", {"Authorization": "Bearer sk-secret\r\nX-Evil: 1"}, connect_timeout=2)
        assert isinstance(caught.value, UpstreamError) and "sk-secret" not in str(caught.value)
        assert server.connections == 0


async def test_loopback_names_reach_loopback(pool: UpstreamPool) -> None:
    async def ok(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(request.headers["host"].encode()))
        return True

    async with RawServer(ok) as server:
        port = server.url.rsplit(":", 1)[1]
        assert await post(pool, f"http://node-a.localhost:{port}/v1") == (200, f"node-a.localhost:{port}".encode())
