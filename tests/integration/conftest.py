from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from lockgate.proxy.server import ProxyServer, ProxySettings
from lockgate.proxy.source import Snapshot, StaticSource
from tests.upstreams import FakeUpstream

StartUpstream = Callable[..., Awaitable[FakeUpstream]]
StartGateway = Callable[..., Awaitable[ProxyServer]]


@pytest.fixture
async def upstream() -> AsyncIterator[StartUpstream]:
    started: list[FakeUpstream] = []

    async def start(kind: str = "openai", **fields: Any) -> FakeUpstream:
        fake = await FakeUpstream(kind=kind, **fields).start()  # type: ignore[arg-type]
        started.append(fake)
        return fake

    yield start
    for fake in started:
        await fake.stop()


@pytest.fixture
async def gateway() -> AsyncIterator[StartGateway]:
    servers: list[ProxyServer] = []

    async def start(snapshot: Snapshot, source: StaticSource | None = None, **settings: Any) -> ProxyServer:
        source = source or StaticSource(snapshot)
        settings.setdefault("access_log", None)
        server = ProxyServer(source, ProxySettings(port=0, admin_port=0, drain_seconds=2.0, **settings))
        await server.start()
        servers.append(server)
        await server.wait_ready()
        return server

    yield start
    for server in servers:
        await server.stop()


def base_url(server: ProxyServer) -> str:
    return f"http://127.0.0.1:{server.port}/v1"
