"""The Redis store's batches: one RESERVE_MANY and one SETTLE_MANY per event-loop turn, whatever the
number of requests and plans in it, deciding as one call after the other would."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, Reservation, make_quota_service
from lockgate.proxy.quota.service import StoreQuotaService

from tests.integration.quota.redis_server import RedisServer
from tests.integration.quota.test_quota_behaviour import attempt
from tests.integration.quota.test_quota_redis_pipelining import link_of

pytestmark = pytest.mark.redis

PATIENT = "?socket_timeout=2&socket_connect_timeout=2"  # a busy test host must not look like an outage


def key(name: str, **limits: int) -> ConsumerKey:
    return ConsumerKey(id=f"ns/{name}", consumer=name, hashes=(), limits=RateLimits(**limits))  # type: ignore[arg-type]


def request(k: ConsumerKey, tokens: int = 100, model: str = "gpt-4o") -> AdmitRequest:
    return AdmitRequest(k, model, "ns/openai", RateLimits(rpm=1000), tokens)


async def test_one_script_call_decides_many_keys_and_models_exactly(redis_server: RedisServer) -> None:
    service = make_quota_service(redis_server.url + PATIENT, "closed", 1)
    assert isinstance(service, StoreQuotaService)
    store = link_of(service)
    a, b = key("a", rpm=5), key("b", rpm=3, tpm=1000)
    try:
        await service.admit(request(key("warm")))  # connects and loads the scripts
        calls = store.batches.reserves.calls  # type: ignore[union-attr]
        wanted = [request(a, model=m) for m in ("gpt-4o", "gpt-4o-mini") for _ in range(4)] + \
                 [request(b, 300) for _ in range(4)]
        outcomes = await asyncio.gather(*(attempt(service, r) for r in wanted))
        assert store.batches.reserves.calls - calls == 1  # type: ignore[union-attr]  # three plans, one call
        admitted = [r.request.key.id for r in outcomes if isinstance(r, Reservation)]
        assert admitted.count("ns/a") == 5  # the rpm, across both models
        assert admitted.count("ns/b") == 3  # 3 x 300 tokens fit in 1000, and the rpm is 3
        seen = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in outcomes
                      if isinstance(r, Reservation) and r.request.key is a)
        assert seen == [0, 1, 2, 3, 4]  # each saw the ones before it in the same call
        settles = store.batches.settles.calls  # type: ignore[union-attr]
        for r in outcomes:
            if isinstance(r, Reservation):
                assert service.settle_later(r, 10) is None
        assert await store.flush()
        assert store.batches.settles.calls - settles == 1  # type: ignore[union-attr]
        usage = await service.usage([a, b])
        assert usage["ns/a"]["tokens"] == 50 and usage["ns/a"]["requests"] == 5
        assert usage["ns/b"]["tokens"] == 30 and usage["ns/b"]["window"]["tokens"] == 30  # type: ignore[index]
    finally:
        await service.close()


async def test_an_admission_cancelled_during_its_batch_gives_its_reservation_back(redis_server: RedisServer) -> None:
    service = make_quota_service(redis_server.url + PATIENT, "closed", 1)
    assert isinstance(service, StoreQuotaService)
    k = key("c", rpm=2)
    try:
        first = await service.admit(request(k))  # the scripts are loaded: the next ones go in batches
        tasks = [asyncio.create_task(service.admit(request(k))) for _ in range(3)]
        await asyncio.sleep(0)  # sent
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert all(t.cancelled() for t in tasks)
        end = time.monotonic() + 5
        while (await service.usage([k]))["ns/c"]["window"]["requests"] != 1:  # type: ignore[index]
            assert time.monotonic() < end, "a cancelled admission kept its reservation"
            await asyncio.sleep(0.01)
        assert isinstance(await attempt(service, request(k)), Reservation)  # the second rpm slot is free
        service.settle_later(first, 1)
    finally:
        await service.close()


async def test_month_counters_past_double_precision_stay_exact(redis_server: RedisServer) -> None:
    service = make_quota_service(redis_server.url + PATIENT, "closed", 1)
    assert isinstance(service, StoreQuotaService)
    k = key("d", monthly_tokens=2**62)
    client = redis.Redis.from_url(redis_server.url)
    try:
        r = await service.admit(request(k, 1))
        month = f"lockgate:q:{{key:ns/d}}:m:{r.month}"
        await client.hset(month, "tokens", 2**60 + 1)
        service.settle_later(r, 3)
        reservations = await asyncio.gather(*(service.admit(request(k, 5)) for _ in range(3)))
        for each in reservations:
            service.settle_later(each, 2)
        assert await link_of(service).flush()
        assert int(await client.hget(month, "tokens")) == 2**60 + 1 + 2 + 3 * 2  # type: ignore[arg-type]
    finally:
        await client.aclose()
        await service.close()
