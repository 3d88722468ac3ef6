"""How the pool connects and bounds its connections: happy eyeballs, TLS per address, caps, age,
pruning, whole-body caps, CONNECT proxies and per-provider TLS (CA bundle, client certificate)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lockgate.proxy.upstream import (
    ProxyFailed,
    ResponseTooLarge,
    TLSFailed,
    UpstreamError,
    UpstreamPool,
    UpstreamSettings,
    UpstreamTransport,
)
from lockgate.proxy.upstream.resolve import Resolver
from tests.connectproxy import ConnectProxy
from tests.kube.certs import KeyPair, client_cert, new_ca, serving_cert
from tests.rawhttp import RawRequest, RawServer, answer
from tests.tlsupstream import serve_tls, tls_server_context

HEADERS = {"Content-Type": "application/json"}
MiB = 1024 * 1024


class TwoAddresses(Resolver):
    """Every name has two loopback addresses, 127.0.0.2 first (a fake at the resolver seam)."""

    async def resolve(self, host: str, port: int) -> list[str]:
        return ["127.0.0.2", "127.0.0.1"]


async def ok(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer(b"ok:" + request.body))
    return True


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port on 127.0.0.2 whose SYNs go unanswered (a full backlog); the same port is free on 127.0.0.1."""
    listener = socket.socket()
    listener.bind(("127.0.0.2", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    waiting = socket.create_connection(("127.0.0.2", port))
    try:
        yield port
    finally:
        waiting.close()
        listener.close()


async def test_happy_eyeballs_reaches_the_address_that_answers(blackhole: int) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(b"second"))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", blackhole)
    pool = UpstreamPool(UpstreamSettings(happy_eyeballs_delay=0.1), resolver=TwoAddresses())
    try:
        response = await pool.post(f"http://upstream.test:{blackhole}/v1", b"{}", HEADERS, connect_timeout=3)
        assert (response.status, await response.read()) == (200, b"second")
    finally:
        await pool.close()
        server.close()


async def test_a_tls_failure_on_one_address_tries_the_next(tmp_path: Path) -> None:
    trusted, stranger = new_ca("trusted"), new_ca("stranger")
    good = await serve_tls("127.0.0.1", 0, tls_server_context(tmp_path, serving_cert(trusted, "127.0.0.1"), "good"),
                            b"trusted")
    port = good.sockets[0].getsockname()[1]
    bad = await serve_tls("127.0.0.2", port, tls_server_context(tmp_path, serving_cert(stranger, "127.0.0.1"),
                                                                  "bad"), b"stranger")
    pool = UpstreamPool(ssl_context=ssl.create_default_context(cadata=trusted.cert_pem.decode()),
                        resolver=TwoAddresses())
    try:
        response = await pool.post(f"https://localhost:{port}/v1", b"{}", HEADERS, connect_timeout=3)
        assert (response.status, await response.read()) == (200, b"trusted")
    finally:
        await pool.close()
        good.close()
        bad.close()


async def test_an_origin_at_its_connection_cap_makes_requests_wait() -> None:
    busy = 0
    most = 0

    async def slow(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0.02)
        busy -= 1
        writer.write(answer(b"ok"))
        return True

    pool = UpstreamPool(UpstreamSettings(max_connections_per_origin=2))
    try:
        async with RawServer(slow) as server:

            async def one() -> int:
                response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
                await response.read()
                return response.status

            assert await asyncio.gather(*(one() for _ in range(8))) == [200] * 8
            assert server.connections == 2 and most == 2
    finally:
        await pool.close()


async def test_a_waiting_request_gives_up_with_its_timeout() -> None:
    release, arrived = asyncio.Event(), asyncio.Event()

    async def held(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        arrived.set()
        await release.wait()
        writer.write(answer(b"ok"))
        return True

    pool = UpstreamPool(UpstreamSettings(max_connections_per_origin=1))
    try:
        async with RawServer(held) as server:
            first = asyncio.create_task(pool.post(server.url, b"{}", HEADERS, connect_timeout=2))
            await arrived.wait()  # the only connection is busy
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
            release.set()
            assert await (await first).read() == b"ok"
            response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)  # the turn was not lost
            assert await response.read() == b"ok" and server.connections == 1
    finally:
        await pool.close()


async def test_connections_past_the_maximum_age_are_not_reused() -> None:
    pool = UpstreamPool(UpstreamSettings(max_connection_age=0))
    try:
        async with RawServer(ok) as server:
            for _ in range(3):
                response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
                assert await response.read() == b"ok:{}"
            assert server.connections == 3 and pool.idle_connections(server.url) == 0
    finally:
        await pool.close()


async def test_origins_with_no_connection_left_are_forgotten() -> None:
    pool = UpstreamPool(UpstreamSettings(sweep_interval=0))

    async def once(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(b"bye", headers="Connection: close\r\n"))
        return False

    try:
        for _ in range(5):
            async with RawServer(once) as server:
                response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
                assert await response.read() == b"bye"
                await asyncio.wait_for(server.closed[0].wait(), 5)
        async with RawServer(ok) as server:
            response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
            assert await response.read() == b"ok:{}"
            assert pool.origins <= 2  # the five closed upstreams are gone (one may still be closing)
    finally:
        await pool.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_whole_body_over_the_cap_is_refused(framing: str) -> None:
    sent: list[int] = []

    async def big(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        piece = b"x" * 65536
        if framing == "content-length":
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {64 * MiB}\r\n\r\n".encode()
            chunk = piece
        else:
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            chunk = b"10000\r\n" + piece + b"\r\n"
        total = 0
        try:
            writer.write(head)
            while total < 64 * MiB:
                writer.write(chunk)
                total += len(piece)
                await writer.drain()
        except ConnectionError:
            pass
        sent.append(total)
        return False

    pool = UpstreamPool(UpstreamSettings(max_body_bytes=MiB))
    try:
        async with RawServer(big) as server:
            response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
            with pytest.raises(ResponseTooLarge, match="over the limit of 1048576 bytes"):
                await response.read()
            await asyncio.wait_for(server.closed[0].wait(), 10)
        assert sent[0] < 32 * MiB
    finally:
        await pool.close()


@pytest.mark.parametrize(("size", "reused"), [(100, True), (10 * MiB, False)])
async def test_a_dropped_error_body_is_read_only_when_short(size: int, reused: bool) -> None:
    async def busy(request: RawRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            writer.write(answer(b"e" * size, "503 Service Unavailable"))
            await writer.drain()
        except ConnectionError:
            return False
        return True

    pool = UpstreamPool()
    try:
        async with RawServer(busy) as server:
            response = await pool.post(server.url, b"{}", HEADERS, connect_timeout=2)
            await response.drop(64 * 1024)
            assert response.complete == reused and pool.idle_connections(server.url) == int(reused)
    finally:
        await pool.close()


async def test_the_environments_proxy_tunnels_and_no_proxy_bypasses() -> None:
    async with ConnectProxy() as proxy, RawServer(ok) as server:
        pool = UpstreamPool(UpstreamSettings(http_proxy=proxy.url, no_proxy="direct.localhost"))
        try:
            for _ in range(3):
                response = await pool.post(server.url + "/v1", b"a", HEADERS, connect_timeout=2)
                assert await response.read() == b"ok:a"
            assert proxy.tunnels == [server.url.removeprefix("http://")]  # one tunnel, kept alive
            port = server.url.rsplit(":", 1)[1]
            response = await pool.post(f"http://direct.localhost:{port}/v1", b"b", HEADERS, connect_timeout=2)
            assert await response.read() == b"ok:b" and len(proxy.tunnels) == 1
        finally:
            await pool.close()


async def test_a_providers_own_proxy_with_credentials() -> None:
    async with ConnectProxy(require="Basic dXNlcjpwQHNz") as proxy, RawServer(ok) as server:
        pool = UpstreamPool()
        authority = proxy.url.removeprefix("http://")
        try:
            own = UpstreamTransport(proxy=f"http://user:p%40ss@{authority}")
            response = await pool.post(server.url, b"c", HEADERS, connect_timeout=2, transport=own)
            assert await response.read() == b"ok:c" and len(proxy.tunnels) == 1
            with pytest.raises(ProxyFailed, match="refused the tunnel .* \\(407\\)") as caught:
                await pool.post(server.url, b"c", HEADERS, connect_timeout=2,
                                transport=UpstreamTransport(proxy=f"http://user:wrong@{authority}"))
            assert "wrong" not in str(caught.value)
            response = await pool.post(server.url, b"d", HEADERS, connect_timeout=2)  # no transport: direct
            assert await response.read() == b"ok:d" and len(proxy.tunnels) == 1
        finally:
            await pool.close()


@pytest.fixture
async def mtls_upstream(tmp_path: Path) -> AsyncIterator[tuple[int, KeyPair, KeyPair]]:
    """An https upstream on loopback that wants a client certificate of its own CA."""
    server_ca, client_ca = new_ca("upstream-ca"), new_ca("client-ca")
    context = tls_server_context(tmp_path, serving_cert(server_ca, "127.0.0.1"), "mtls", client_ca)
    server = await serve_tls("127.0.0.1", 0, context, b"mutual")
    try:
        yield server.sockets[0].getsockname()[1], server_ca, client_ca
    finally:
        server.close()


async def test_a_providers_ca_bundle_and_client_certificate(mtls_upstream: tuple[int, KeyPair, KeyPair]) -> None:
    port, server_ca, client_ca = mtls_upstream
    leaf = client_cert(client_ca, "lockgate")
    ca_pem = server_ca.cert_pem.decode()
    mutual = UpstreamTransport(ca_pem=ca_pem, cert_pem=leaf.cert_pem.decode(), key_pem=leaf.key_pem.decode())
    assert "PRIVATE" not in repr(mutual)
    pool = UpstreamPool()
    url = f"https://localhost:{port}/v1"
    try:
        for _ in range(2):
            response = await pool.post(url, b"{}", HEADERS, connect_timeout=2, transport=mutual)
            assert (response.status, await response.read()) == (200, b"mutual")
        assert pool.idle_connections(url, mutual) == 1 and pool.idle_connections(url) == 0
        with pytest.raises(TLSFailed, match="CERTIFICATE_VERIFY_FAILED"):  # the system store: not trusted
            await pool.post(url, b"{}", HEADERS, connect_timeout=2)
        with pytest.raises(UpstreamError):  # trusted, but no client certificate: the upstream refuses
            response = await pool.post(url, b"{}", HEADERS, connect_timeout=2,
                                       transport=UpstreamTransport(ca_pem=ca_pem))
            await response.read()
    finally:
        await pool.close()


async def test_https_through_a_proxy_tunnel(mtls_upstream: tuple[int, KeyPair, KeyPair]) -> None:
    port, server_ca, client_ca = mtls_upstream
    leaf = client_cert(client_ca, "lockgate")
    async with ConnectProxy() as proxy:
        mutual = UpstreamTransport(proxy=proxy.url, ca_pem=server_ca.cert_pem.decode(),
                                   cert_pem=leaf.cert_pem.decode(), key_pem=leaf.key_pem.decode())
        pool = UpstreamPool()
        try:
            for _ in range(2):
                response = await pool.post(f"https://localhost:{port}/v1", b"{}", HEADERS, connect_timeout=2,
                                           transport=mutual)
                assert await response.read() == b"mutual"
            assert proxy.tunnels == [f"localhost:{port}"]
        finally:
            await pool.close()
