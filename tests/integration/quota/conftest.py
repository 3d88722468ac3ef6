from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from lockgate.proxy.quota import make_quota_service
from lockgate.proxy.quota.service import StoreQuotaService

from tests.integration.quota.proxies import Proxy
from tests.integration.quota.redis_server import RedisServer

Replicas = Callable[..., list[StoreQuotaService]]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Replicas]:
    """Quota services as replicas see them: one for the memory store, several sharing one Redis."""
    made: list[StoreQuotaService] = []
    store = request.param

    def make(count: int = 3, window: float = 60.0, fail_mode: str = "open",
             state_dir: Path | None = None) -> list[StoreQuotaService]:
        if store == "memory":
            services = [make_quota_service("memory", state_dir=str(state_dir or tmp_path), window=window)]
        else:
            # The host running tests is shared and busy: behaviour tests get patient timeouts so a
            # slow moment does not turn them into failover tests (those use the defaults).
            url = request.getfixturevalue("redis_server").url + "?socket_timeout=2&socket_connect_timeout=2"
            services = [make_quota_service(url, fail_mode, count, window=window) for _ in range(count)]
        made.extend(services)  # type: ignore[arg-type]
        return services  # type: ignore[return-value]

    yield make
    for s in made:
        await s.close()


@pytest.fixture
async def proxies() -> AsyncIterator[Callable[..., Proxy]]:
    """`lockgate run` processes (`Proxy(...)`, started by the test), stopped at the end."""
    started: list[Proxy] = []

    def make(*args: object, **kw: object) -> Proxy:
        p = Proxy(*args, **kw)  # type: ignore[arg-type]
        started.append(p)
        return p

    yield make
    await asyncio.gather(*(p.stop() for p in started))
