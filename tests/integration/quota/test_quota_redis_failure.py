"""Redis goes away mid-test: the configured fail mode applies at once, nothing
hangs, and the service returns to Redis (with the usage it counted meanwhile)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, QuotaStoreUnavailable, Reservation, make_quota_service
from lockgate.proxy.quota.service import StoreQuotaService

from tests.integration.quota.redis_server import RedisServer

pytestmark = pytest.mark.redis

KEY = ConsumerKey(id="ns/team", consumer="team", hashes=(), limits=RateLimits(rpm=9, monthly_tokens=100_000))


def request(tokens: int = 100) -> AdmitRequest:
    return AdmitRequest(KEY, "gpt-4o", "ns/openai", RateLimits(), tokens)


async def timed_admit(service: StoreQuotaService) -> tuple[Reservation | QuotaRejected, float]:
    started = time.monotonic()
    try:
        outcome: Reservation | QuotaRejected = await service.admit(request())
    except QuotaRejected as e:
        outcome = e
    return outcome, time.monotonic() - started


async def until_shared_store_answers(service: StoreQuotaService, deadline: float = 10.0) -> Reservation:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        outcome, _ = await timed_admit(service)
        if isinstance(outcome, Reservation) and service.store.available:  # type: ignore[attr-defined]
            return outcome
        await asyncio.sleep(0.05)
    raise AssertionError("the service never went back to Redis")


async def month_tokens(url: str, field: str = "tokens") -> int:
    client = redis.Redis.from_url(url)
    try:
        month = time.strftime("%Y-%m", time.gmtime())
        return int(await client.hget(f"lockgate:q:{{key:{KEY.id}}}:m:{month}", field) or 0)
    finally:
        await client.aclose()


@pytest.fixture
async def services(redis_server: RedisServer, request: pytest.FixtureRequest) -> AsyncIterator[list[StoreQuotaService]]:
    made = [make_quota_service(redis_server.url, request.param, 3) for _ in range(3)]
    yield made  # type: ignore[misc]
    for s in made:
        await s.close()


@pytest.mark.parametrize("services", ["open"], indirect=True)
async def test_fail_open_limits_each_replica_to_its_share_then_recovers(
        services: list[StoreQuotaService], redis_server: RedisServer) -> None:
    first = await services[0].admit(request())
    await services[0].settle(first, 70)
    redis_server.kill()
    outcomes = [await timed_admit(services[0]) for _ in range(6)]
    assert all(took < 0.2 for _, took in outcomes)  # no hang
    admitted = [o for o, _ in outcomes if isinstance(o, Reservation)]
    assert len(admitted) == 9 // 3  # the replica's share of rpm 9
    assert {o.code for o, _ in outcomes if isinstance(o, QuotaRejected)} == {"rate_limit_exceeded"}
    for r in admitted:
        await services[0].settle(r, 30)  # usage counted while Redis is away
    redis_server.start()
    back = await until_shared_store_answers(services[1])
    await services[1].settle(back, 5)
    await until_shared_store_answers(services[0])  # replica 0 also returns, and hands over what it counted
    end = time.monotonic() + 5
    while await month_tokens(redis_server.url) != 3 * 30 + 5 + 100 and time.monotonic() < end:
        await asyncio.sleep(0.05)
    # the restarted Redis lost the 70 from before (no persistence in this test), but not what came after
    assert await month_tokens(redis_server.url) == 3 * 30 + 5 + 100


@pytest.mark.parametrize("services", ["open"], indirect=True)
async def test_a_failover_while_redis_is_away_counts_one_request(
        services: list[StoreQuotaService], redis_server: RedisServer) -> None:
    redis_server.kill()
    first = await services[0].admit(request())
    await services[0].settle(first, 0)  # the first provider failed
    again = await services[0].admit(AdmitRequest(KEY, "gpt-4o", "ns/backup", RateLimits(), 100, repeat_of=first.rid))
    await services[0].settle(again, 30)
    outcomes = [await timed_admit(services[0]) for _ in range(3)]
    assert [isinstance(o, Reservation) for o, _ in outcomes] == [True, True, False]  # the local share is 3
    for o, _ in outcomes[:2]:
        await services[0].settle(o, 10)  # type: ignore[arg-type]
    redis_server.start()
    back = await until_shared_store_answers(services[0])  # and hands over what it counted
    await services[0].settle(back, 5)
    end = time.monotonic() + 5
    while await month_tokens(redis_server.url) != 30 + 2 * 10 + 5 and time.monotonic() < end:
        await asyncio.sleep(0.05)
    assert await month_tokens(redis_server.url) == 30 + 2 * 10 + 5
    assert await month_tokens(redis_server.url, "requests") == 3 + 1


@pytest.mark.parametrize("services", ["closed"], indirect=True)
async def test_fail_closed_answers_503_fast_then_recovers(
        services: list[StoreQuotaService], redis_server: RedisServer) -> None:
    assert isinstance(await services[0].admit(request()), Reservation)
    redis_server.kill()
    for _ in range(5):
        outcome, took = await timed_admit(services[0])
        assert isinstance(outcome, QuotaStoreUnavailable) and took < 0.2
        assert outcome.status == 503 and outcome.code == "quota_store_unavailable"
        assert outcome.headers["Retry-After"] == "1"
    usage = await services[0].usage([KEY])  # the admin view stays up too
    assert KEY.id in usage
    redis_server.start()
    await until_shared_store_answers(services[0])


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
async def test_a_silent_redis_times_out_in_tens_of_milliseconds(fail_mode: str) -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(30)  # accepts, reads, never answers

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    service = make_quota_service(f"redis://127.0.0.1:{port}/0", fail_mode, 1)
    try:
        took_each = []
        for _ in range(4):
            outcome, took = await timed_admit(service)  # type: ignore[arg-type]
            took_each.append(took)
            if fail_mode == "open":
                assert isinstance(outcome, Reservation)
            else:
                assert isinstance(outcome, QuotaStoreUnavailable)
        # each of the first three waited for its timeout (one slow answer is not an outage)...
        assert all(0.04 <= t < 0.3 for t in took_each[:3])
        # ...then Redis is left alone for a while: no more waiting
        assert took_each[3] < 0.03
    finally:
        await service.close()
        server.close()


async def test_scripts_are_loaded_again_after_a_script_flush(redis_server: RedisServer) -> None:
    service = make_quota_service(redis_server.url, "closed", 1)
    limited = AdmitRequest(KEY, "gpt-4o", "ns/openai", RateLimits(rpm=5), 100)
    try:
        for flush_first in (False, True, True):
            if flush_first:
                client = redis.Redis.from_url(redis_server.url)
                await client.script_flush()
                await client.aclose()
            # one group (EVALSHA alone) and two groups (a pipeline of EVALSHAs)
            assert isinstance(await service.admit(request()), Reservation)
            assert isinstance(await service.admit(limited), Reservation)
    finally:
        await service.close()
