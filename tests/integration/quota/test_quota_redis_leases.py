"""Leases of Redis' capacity (lockgate.proxy.quota.lease) against a real redis-server: a busy key is
admitted mostly from leases, and the bounds of one-by-one admission still hold across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, Reservation, make_quota_service
from lockgate.proxy.quota.lease import LeasePlan
from lockgate.proxy.quota.service import StoreQuotaService

from tests.integration.quota.redis_server import RedisServer
from tests.integration.quota.test_quota_behaviour import attempt
from tests.integration.quota.test_quota_redis_pipelining import link_of

pytestmark = pytest.mark.redis

PATIENT = "?socket_timeout=2&socket_connect_timeout=2"  # a busy test host must not look like an outage
WAVE = 30  # concurrent attempts per wave: more than lease.BUSY, so a replica asks for a lease
PROVIDER = RateLimits()  # one object, as a configuration gives it: a key's plan is built once


def key(name: str, **limits: int) -> ConsumerKey:
    return ConsumerKey(id=f"ns/{name}", consumer=name, hashes=(), limits=RateLimits(**limits))  # type: ignore[arg-type]


def request(k: ConsumerKey, tokens: int = 10, repeat_of: str = "") -> AdmitRequest:
    return AdmitRequest(k, "gpt-4o", "ns/openai", PROVIDER, tokens, repeat_of=repeat_of)


def leased(outcomes: list[Reservation | QuotaRejected]) -> int:
    return sum(isinstance(o, Reservation) and isinstance(o.plan, LeasePlan) for o in outcomes)


@pytest.fixture
async def services(redis_server: RedisServer) -> AsyncIterator[Callable[[int], list[StoreQuotaService]]]:
    made: list[StoreQuotaService] = []

    def make(count: int) -> list[StoreQuotaService]:
        new = [make_quota_service(redis_server.url + PATIENT, "closed", count) for _ in range(count)]
        made.extend(new)  # type: ignore[arg-type]
        return new  # type: ignore[return-value]

    yield make
    for s in made:
        await s.close()


async def waves(replicas: list[StoreQuotaService], k: ConsumerKey, count: int,
                tokens: int = 10) -> list[Reservation | QuotaRejected]:
    """`count` waves of WAVE concurrent attempts, spread over the replicas in turn."""
    outcomes: list[Reservation | QuotaRejected] = []
    for _ in range(count):
        outcomes += await asyncio.gather(*(attempt(replicas[i % len(replicas)], request(k, tokens))
                                           for i in range(WAVE)))
    return outcomes


@pytest.mark.parametrize("limits", [{"rpm": 900}, {"tpm": 9000}], ids=["rpm", "tpm"])
async def test_three_replicas_admit_exactly_the_limit_of_a_busy_key_mostly_from_leases(
        services: Callable[..., list[StoreQuotaService]], limits: dict[str, int]) -> None:
    replicas = services(3)
    k = key("busy", **limits)
    outcomes = await waves(replicas, k, 60)  # 1,800 attempts of 10 tokens for 900 places
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    assert len(admitted) == 900
    assert leased(outcomes) > 450  # most of them without a round trip of their own
    refused = [o for o in outcomes if isinstance(o, QuotaRejected)]
    assert {r.code for r in refused} == {"rate_limit_exceeded"}
    assert all(0 < r.retry_after <= 61 for r in refused)
    usage = (await replicas[0].usage([k]))[k.id]  # the leases go back first
    assert usage["requests"] == 900
    assert usage["window"]["requests"] == 900  # type: ignore[index]  # one member per admitted request, no more
    assert usage["tokens"] == 9000 and usage["window"]["tokens"] == 9000  # type: ignore[index]
    await waves(replicas, k, 2)
    assert (await replicas[0].usage([k]))[k.id]["requests"] == 900  # and none after


async def test_a_monthly_budget_is_never_exceeded_through_leases(services: Callable[..., list[StoreQuotaService]]) -> None:
    replicas = services(3)
    budget, estimate = 60_000, 100
    k = key("budget", monthly_tokens=budget)

    from_leases = []

    async def client(n: int) -> int:
        served = 0
        while True:
            outcome = await attempt(replicas[n % len(replicas)], request(k, estimate))
            from_leases.append(isinstance(outcome, Reservation) and isinstance(outcome.plan, LeasePlan))
            if isinstance(outcome, QuotaRejected):
                assert outcome.code == "insufficient_quota"
                return served
            await asyncio.sleep(0)
            await replicas[n % len(replicas)].settle(outcome, 90 + n % 10)  # a little under the estimate
            served += 1

    first = await asyncio.gather(*(client(n) for n in range(24)))
    # What the last leases still held went back: the rest is spent one by one.
    await replicas[0].usage([k])
    last = await asyncio.gather(*(client(n) for n in range(24)))
    usage = (await replicas[0].usage([k]))[k.id]
    assert budget - estimate < usage["tokens"] <= budget  # within one reservation of the budget
    assert usage["requests"] == sum(first) + sum(last)
    assert sum(from_leases) > len(from_leases) // 2


async def test_closing_returns_the_leases_and_every_request_is_counted_once(redis_server: RedisServer,
                                                                          services: Callable[..., list[StoreQuotaService]]) -> None:
    (service,) = services(1)
    k = key("closing", rpm=10_000, tpm=10_000_000, monthly_tokens=10**9)
    outcomes = await waves([service], k, 10)
    assert leased(outcomes) > 100
    for o in outcomes[::2]:
        assert isinstance(o, Reservation)
        await service.settle(o, 7)  # the others are still on their way when the service closes
    await service.close()
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert await client.keys("lockgate:q:*:lease:*") == []  # every lease was returned
    finally:
        await client.aclose()
    (reader,) = services(1)
    usage = (await reader.usage([k]))[k.id]
    assert usage["requests"] == 300 and usage["window"]["requests"] == 300  # type: ignore[index]
    assert usage["tokens"] == 150 * 7 + 150 * 10  # settled ones their use, the others their reservation


async def test_a_request_settled_after_its_lease_went_back_is_settled_in_redis(services: Callable[..., list[StoreQuotaService]]) -> None:
    (service,) = services(1)
    k = key("late", rpm=10_000, tpm=10_000_000)
    outcomes = await waves([service], k, 4)
    from_lease = [o for o in outcomes if isinstance(o, Reservation) and isinstance(o.plan, LeasePlan)]
    assert from_lease
    assert await link_of(service).flush()  # returns every lease: their requests wait in Redis under their ids
    for o in outcomes:
        assert isinstance(o, Reservation)
        await service.settle(o, 3)
    assert await link_of(service).flush()
    usage = (await service.usage([k]))[k.id]
    assert usage["tokens"] == 3 * len(outcomes)
    assert usage["window"] == {"requests": len(outcomes), "tokens": 3 * len(outcomes),  # type: ignore[comparison-overlap]
                               "rpm": 10_000, "tpm": 10_000_000, "resetSeconds": usage["window"]["resetSeconds"]}  # type: ignore[index]


async def test_a_failover_of_a_leased_request_counts_it_once(services: Callable[..., list[StoreQuotaService]]) -> None:
    (service,) = services(1)
    k = key("failover", rpm=10_000, monthly_tokens=10**9)
    outcomes = await waves([service], k, 4)
    first = next(o for o in reversed(outcomes) if isinstance(o, Reservation) and isinstance(o.plan, LeasePlan))
    await service.settle(first, 0)  # its provider failed: nothing used, admitted again elsewhere
    again = await service.admit(request(k, 10, repeat_of=first.rid))
    await service.settle(again, 5)
    for o in outcomes:
        if o is not first:
            assert isinstance(o, Reservation)
            await service.settle(o, 10)
    usage = (await service.usage([k]))[k.id]
    assert usage["requests"] == len(outcomes)  # the failover is not a request of its own
    assert usage["window"]["requests"] == len(outcomes)  # type: ignore[index]
    assert usage["tokens"] == 10 * (len(outcomes) - 1) + 5


async def test_a_lease_redis_never_took_back_leaves_its_requests_owed_to_the_month(redis_server: RedisServer) -> None:
    service = make_quota_service(redis_server.url, "open", 1)
    assert isinstance(service, StoreQuotaService)
    k = key("away", rpm=10_000, monthly_tokens=10**9)
    try:
        outcomes = await waves([service], k, 4)
        store = link_of(service)
        assert store.leases is not None and store.leases.open  # a lease is open as Redis goes away
        outcomes += [await attempt(service, request(k)) for _ in range(3)]
        held = sum(len(lease.uses) for lease in store.leases.open)
        redis_server.kill()
        store.leases.return_all()  # RETURN gets no answer, nor its attempts after
        assert await store.flush(timeout=10)
        redis_server.start()  # back, empty
        end = asyncio.get_running_loop().time() + 10
        while not (service.store.available and isinstance(await attempt(service, request(k)), Reservation)):  # type: ignore[attr-defined]
            assert asyncio.get_running_loop().time() < end, "never went back to Redis"
            await asyncio.sleep(0.05)
        assert await store.flush()
        if service.store._flushing is not None:  # type: ignore[attr-defined]  # what was owed, on its way
            await service.store._flushing  # type: ignore[attr-defined]
        usage = (await service.usage([k]))[k.id]
        assert held > 0 and usage["requests"] >= held + 1  # the leased requests were owed, not lost
    finally:
        await service.close()
    assert all(isinstance(o, Reservation) for o in outcomes)
