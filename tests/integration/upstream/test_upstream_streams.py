"""The upstream pool's streams and connections: flow control, cancels, connect timeout, TLS."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from lockgate.proxy.upstream import HIGH_WATER, ConnectTimeout, TLSFailed, UpstreamError, UpstreamPool
from tests.kube.certs import new_ca, serving_cert
from tests.rawhttp import RawRequest, RawServer, answer

HEADERS = {"Content-Type": "application/json"}
READ_SIZE = 256 * 1024  # the most one socket read brings in (asyncio's transports)


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    upstreams = UpstreamPool()
    yield upstreams
    await upstreams.close()


async def test_a_slow_reader_keeps_the_buffer_bounded_and_the_upstream_waiting(pool: UpstreamPool) -> None:
    piece = bytes(range(256)) * 64  # 16 KiB
    total = 4096 * len(piece)  # 64 MiB: more than the kernel buffers of both sockets hold
    blocked = asyncio.Event()
    sent = 0

    async def big(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        nonlocal sent
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
        while sent < total:
            writer.write(piece)
            sent += len(piece)
            if writer.transport.get_write_buffer_size() > 0:  # the socket is full: the reader is not reading
                blocked.set()
            await writer.drain()
        return True

    async with RawServer(big) as server:
        response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
        await asyncio.wait_for(blocked.wait(), 20)
        for _ in range(100):  # loop turns in which an unbounded reader would take megabytes off the socket
            await asyncio.sleep(0)
        assert response.buffered <= HIGH_WATER + READ_SIZE
        assert sent < total
        digest, received, largest = hashlib.sha256(), 0, 0
        while data := await response.readany():
            digest.update(data)
            received += len(data)
            largest = max(largest, len(data))
        assert received == total and largest <= HIGH_WATER + READ_SIZE
        assert digest.digest() == hashlib.sha256(piece * 4096).digest()
        assert response.complete and pool.idle_connections(server.url) == 1


async def test_read_takes_a_large_body_whole(pool: UpstreamPool) -> None:
    body = b"x" * (8 * 1024 * 1024)

    async def big(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(body))
        return True

    async with RawServer(big) as server:
        response = await pool.post(server.url, b"y" * (1024 * 1024), HEADERS, connect_timeout=2)
        assert await response.read() == body
        assert len(server.requests[0].body) == 1024 * 1024


async def test_closing_an_unfinished_stream_cancels_the_upstream_at_once(pool: UpstreamPool) -> None:
    async def endless(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
        await reader.read()  # returns when the client closes the connection
        return False

    async with RawServer(endless) as server:
        response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
        assert await response.readany() == b"data: 1\n\n"
        response.close()
        await asyncio.wait_for(server.closed[0].wait(), 5)
        assert pool.idle_connections(server.url) == 0
        response.close()  # twice is harmless


async def test_a_timeout_while_waiting_for_headers_drops_the_connection(pool: UpstreamPool) -> None:
    async def silent(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await reader.read()
        return False

    async with RawServer(silent) as server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
        await asyncio.wait_for(server.closed[0].wait(), 5)


async def test_a_closed_complete_response_leaves_its_connection_pooled(pool: UpstreamPool) -> None:
    async def ok(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"ok", "503 Service Unavailable", "Retry-After: 2\r\n"))
        return True

    async with RawServer(ok) as server:
        for _ in range(3):
            response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
            assert (response.status, await response.read()) == (503, b"ok")
            response.close()
        assert server.connections == 1 and pool.idle_connections(server.url) == 1


async def test_closing_the_pool_closes_its_connections() -> None:
    pool = UpstreamPool()

    async def ok(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"ok"))
        return True

    async with RawServer(ok) as server:
        response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
        assert await response.read() == b"ok"
        await pool.close()
        await asyncio.wait_for(server.closed[0].wait(), 5)


async def test_no_connection_within_the_connect_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    waiting = socket.create_connection(("127.0.0.1", port))  # fills the backlog: later SYNs go unanswered
    pool = UpstreamPool()
    try:
        with pytest.raises(ConnectTimeout, match="within 0.2 s") as caught:
            await pool.post(f"http://127.0.0.1:{port}/v1/x", b"{}", HEADERS, connect_timeout=0.2)
        assert isinstance(caught.value, TimeoutError) and isinstance(caught.value, ConnectionError)
    finally:
        await pool.close()
        waiting.close()
        listener.close()


@pytest.fixture
async def tls_upstream(tmp_path: Path) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    """An https upstream on loopback, and a client context trusting its CA."""
    ca = new_ca("upstream-ca")
    leaf = serving_cert(ca, "127.0.0.1")
    (tmp_path / "cert.pem").write_bytes(leaf.cert_pem)
    (tmp_path / "key.pem").write_bytes(leaf.key_pem)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=b"tls:" + await request.read())

    app = web.Application()
    app.router.add_post("/v1/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, ssl.create_default_context(cadata=ca.cert_pem.decode())
    finally:
        await runner.cleanup()


async def test_https_with_a_trusted_certificate(tls_upstream: tuple[int, ssl.SSLContext]) -> None:
    port, trusting = tls_upstream
    pool = UpstreamPool(ssl_context=trusting)
    try:
        for host in ("localhost", "127.0.0.1", "localhost"):
            response = await pool.post(f"https://{host}:{port}/v1/echo", b"hi", HEADERS, connect_timeout=2)
            assert (response.status, await response.read()) == (200, b"tls:hi")
        assert pool.idle_connections(f"https://localhost:{port}/") == 1
    finally:
        await pool.close()


async def test_https_with_an_untrusted_certificate_is_a_tls_error(tls_upstream: tuple[int, ssl.SSLContext]) -> None:
    port, _ = tls_upstream
    pool = UpstreamPool()  # the system's trust store knows nothing of the test CA
    try:
        with pytest.raises(TLSFailed, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await pool.post(f"https://localhost:{port}/v1/echo", b"hi", HEADERS, connect_timeout=2)
        assert isinstance(caught.value, ConnectionError)
    finally:
        await pool.close()


async def test_http_to_a_tls_port_is_a_connection_error(tls_upstream: tuple[int, ssl.SSLContext]) -> None:
    port, _ = tls_upstream
    pool = UpstreamPool()
    try:
        with pytest.raises(UpstreamError):
            async with asyncio.timeout(5):
                await pool.post(f"http://127.0.0.1:{port}/v1/echo", b"hi", HEADERS, connect_timeout=2)
    finally:
        await pool.close()
