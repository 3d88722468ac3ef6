"""Replicas sharing a real Redis Cluster: every group's keys live in one slot
(hash tags), so the Lua checks run there, and a consumer + provider check
spans two slots in one pipelined round trip."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, Reservation, make_quota_service
from lockgate.proxy.quota.service import StoreQuotaService
from tests.integration.quota.redis_server import RedisCluster

pytestmark = pytest.mark.redis


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    c = RedisCluster(tmp_path / "cluster")
    try:
        c.start()
        yield c
    finally:
        c.kill()


@pytest.fixture
async def services(cluster: RedisCluster) -> AsyncIterator[list[StoreQuotaService]]:
    made = [make_quota_service(cluster.url + "?socket_timeout=2&socket_connect_timeout=2", "closed", 3)
            for _ in range(3)]
    yield made  # type: ignore[misc]
    for s in made:
        await s.close()


async def test_limits_hold_across_replicas_on_a_cluster(services: list[StoreQuotaService]) -> None:
    keys = [ConsumerKey(id=f"ns/k{i}", consumer=f"c{i}", hashes=(), limits=RateLimits(rpm=4, monthly_tokens=10**6))
            for i in range(6)]  # enough ids to land in several slots and nodes
    provider = RateLimits(rpm=20)

    async def attempt(i: int) -> Reservation | QuotaRejected:
        k = keys[i % len(keys)]
        try:
            return await services[i % 3].admit(AdmitRequest(k, "gpt-4o", "ns/p", provider, 100, 0))
        except QuotaRejected as e:
            return e

    outcomes = await asyncio.gather(*(attempt(i) for i in range(60)))
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    assert len(admitted) == 20  # the provider's cap, across consumers and replicas
    per_key = {k.id: sum(1 for a in admitted if a.request.key.id == k.id) for k in keys}
    assert all(n <= 4 for n in per_key.values())  # and no key past its own rpm
    for r in admitted:
        await services[0].settle(r, 40)
    usage = await services[1].usage(keys)
    assert sum(u["tokens"] for u in usage.values()) == 40 * 20  # type: ignore[misc]


async def test_a_failover_refused_by_the_next_provider_keeps_one_request_counted(
        services: list[StoreQuotaService]) -> None:
    k = ConsumerKey(id="ns/failover", consumer="f", hashes=(), limits=RateLimits(rpm=5))
    first = await services[0].admit(AdmitRequest(k, "gpt-4o", "ns/a", RateLimits(), 100))
    await services[0].settle(first, 0)
    with pytest.raises(QuotaRejected) as refused:  # the next provider takes nothing: undone across slots
        await services[1].admit(AdmitRequest(k, "gpt-4o", "ns/b", RateLimits(rpm=0), 100, repeat_of=first.rid))
    assert refused.value.code == "provider_rate_limited"
    usage = (await services[2].usage([k]))[k.id]
    assert usage["requests"] == 1 and usage["window"]["requests"] == 1  # type: ignore[index]
