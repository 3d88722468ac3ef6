"""Quota behaviour against real stores: the memory store on one replica, and
several QuotaService instances sharing one real redis-server (= replicas)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from lockgate.api.ir import ConsumerKey, Priority, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, Reservation
from lockgate.proxy.quota.memory_store import MemoryStore
from lockgate.proxy.quota.service import StoreQuotaService

from tests.integration.quota.conftest import Replicas


def key(name: str = "team", consumer: str | None = None, **kw: object) -> ConsumerKey:
    return ConsumerKey(id=f"ns/{name}", consumer=consumer or name, hashes=(), **kw)  # type: ignore[arg-type]


def req(k: ConsumerKey, tokens: int = 10, model: str = "gpt-4o", provider: RateLimits = RateLimits(),
        wait: float = 0.0) -> AdmitRequest:
    return AdmitRequest(k, model, "ns/openai", provider, tokens, wait)


async def attempt(service: StoreQuotaService, request: AdmitRequest) -> Reservation | QuotaRejected:
    try:
        return await service.admit(request)
    except QuotaRejected as e:
        return e


async def test_rpm_admits_exactly_the_limit_across_replicas(replicas: Replicas) -> None:
    services = replicas(count=3)
    k = key(limits=RateLimits(rpm=12))
    outcomes = await asyncio.gather(*(attempt(services[i % len(services)], req(k)) for i in range(45)))
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    refused = [o for o in outcomes if isinstance(o, QuotaRejected)]
    assert len(admitted) == 12
    assert {r.code for r in refused} == {"rate_limit_exceeded"} and all(r.status == 429 for r in refused)
    # the wait is until the oldest admission leaves the minute, not a whole fresh window
    assert all(0 < r.retry_after <= 60 for r in refused)
    assert all(int(r.headers["Retry-After"]) >= r.retry_after for r in refused)
    assert refused[0].headers["x-ratelimit-remaining-requests"] == "0"
    remaining = sorted(int(a.headers["x-ratelimit-remaining-requests"]) for a in admitted)
    assert remaining == list(range(12))  # each admission saw the shared count
    assert {a.headers["x-ratelimit-limit-requests"] for a in admitted} == {"12"}


async def test_rpm_reopens_after_the_advertised_wait(replicas: Replicas) -> None:
    services = replicas(count=3, window=0.6)
    k = key(limits=RateLimits(rpm=4))
    for window_round in range(2):
        outcomes = await asyncio.gather(*(attempt(services[i % len(services)], req(k)) for i in range(10)))
        assert sum(isinstance(o, Reservation) for o in outcomes) == 4, window_round
        wait = max(o.retry_after for o in outcomes if isinstance(o, QuotaRejected))
        assert 0 < wait <= 0.6
        await asyncio.sleep(wait + 0.62)  # the last admission of this burst leaves the window too


async def test_model_limits_apply_on_top_of_key_limits(replicas: Replicas) -> None:
    services = replicas(count=2)
    k = key(limits=RateLimits(rpm=10), model_limits={"gpt-4o": RateLimits(rpm=3)})
    outcomes = [await attempt(services[i % len(services)], req(k, model="gpt-4o")) for i in range(5)]
    assert [isinstance(o, Reservation) for o in outcomes] == [True, True, True, False, False]
    other = [await attempt(services[0], req(k, model="gpt-4o-mini")) for _ in range(8)]
    assert sum(isinstance(o, Reservation) for o in other) == 7  # the key-wide 10 minus the 3 above


async def test_tpm_reserves_then_settle_releases_the_rest(replicas: Replicas) -> None:
    services = replicas(count=2)
    k = key(limits=RateLimits(tpm=1000))
    first = [await services[i % len(services)].admit(req(k, tokens=300)) for i in range(3)]
    refused = await attempt(services[1 % len(services)], req(k, tokens=300))
    assert isinstance(refused, QuotaRejected) and refused.code == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-limit-tokens"] == "1000"
    assert first[2].headers["x-ratelimit-remaining-tokens"] == "100"
    await services[0].settle(first[0], 50)  # the answer was short: 250 tokens come back
    assert isinstance(await attempt(services[-1], req(k, tokens=300)), Reservation)
    too_large = await attempt(services[0], req(k, tokens=1001))
    assert isinstance(too_large, QuotaRejected) and "too large" in too_large.message


async def test_monthly_budget_holds_under_concurrency(replicas: Replicas) -> None:
    services = replicas(count=3)
    budget, estimate = 5000, 300
    k = key(limits=RateLimits(monthly_tokens=budget))

    async def client(n: int) -> int:
        served = 0
        while True:
            try:
                r = await services[n % len(services)].admit(req(k, tokens=estimate))
            except QuotaRejected as e:
                assert e.code == "insufficient_quota" and e.status == 429
                assert e.retry_after > 0 and int(e.headers["Retry-After"]) >= 1
                return served
            await asyncio.sleep(0)
            await services[(n + 1) % len(services)].settle(r, 250 + n % 50)
            served += 1

    served = await asyncio.gather(*(client(n) for n in range(8)))
    usage = (await services[0].usage([k]))[k.id]
    assert sum(served) >= budget // estimate
    assert budget - estimate < usage["tokens"] <= budget  # within one reservation of the budget
    assert usage["remaining"] == budget - usage["tokens"]
    assert usage["requests"] == sum(served)


async def test_settle_is_counted_once(replicas: Replicas) -> None:
    (service, *_) = replicas(count=1)
    k = key(limits=RateLimits(monthly_tokens=1000))
    r = await service.admit(req(k, tokens=100))
    await service.settle(r, 40)
    await service.settle(r, 40)
    assert (await service.usage([k]))[k.id]["tokens"] == 40


async def test_usage_survives_a_restart(replicas: Replicas, tmp_path: object) -> None:
    (first, *_) = replicas(count=1)
    k = key(limits=RateLimits(monthly_tokens=10_000), model_limits={"gpt-4o": RateLimits(rpm=5)})
    for _ in range(3):
        await first.settle(await first.admit(req(k, tokens=500)), 120)
    await first.close()
    (second, *_) = replicas(count=1)
    usage = (await second.usage([k]))[k.id]
    assert usage["month"] == time.strftime("%Y-%m", time.gmtime())
    assert usage["tokens"] == 360 and usage["remaining"] == 10_000 - 360 and usage["requests"] == 3
    assert usage["models"]["gpt-4o"]["tokens"] == 360  # type: ignore[index]


async def until(condition: Callable[[], bool], deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_fair_queue_serves_consumers_alternately(replicas: Replicas) -> None:
    (service, *_) = replicas(count=1, window=0.5)
    provider = RateLimits(rpm=2)
    order: list[str] = []

    async def client(k: ConsumerKey) -> None:
        await service.admit(req(k, provider=provider, wait=20))
        order.append(k.consumer)

    await client(key("x"))
    await client(key("x"))  # the provider model is saturated for this window
    depth = lambda: sum(q.depth for q in service._queues.values())  # noqa: E731
    tasks = [asyncio.create_task(client(key("a"))) for _ in range(3)]
    await until(lambda: depth() == 3)  # a's three requests wait first...
    tasks += [asyncio.create_task(client(key("b"))) for _ in range(3)]
    await until(lambda: depth() == 6)  # ...then b's three
    await asyncio.gather(*tasks)
    assert order == ["x", "x"] + ["a", "b"] * 3  # the queue takes turns by consumer
    assert depth() == 0


async def test_interactive_requests_overtake_batch_ones_waiting_for_the_providers_rate(replicas: Replicas) -> None:
    (service, *_) = replicas(count=1, window=0.5)
    provider = RateLimits(rpm=2)
    order: list[str] = []

    async def client(k: ConsumerKey, priority: Priority) -> None:
        request = req(k, provider=provider, wait=20)
        request.priority = priority
        await service.admit(request)
        order.append(f"{k.consumer}:{priority}")

    await client(key("x"), "interactive")
    await client(key("x"), "interactive")  # the provider model is saturated for this window
    depth = lambda: sum(q.depth for q in service._queues.values())  # noqa: E731
    tasks = [asyncio.create_task(client(key("nightly"), "batch")) for _ in range(2)]
    await until(lambda: depth() == 2)  # batch requests wait first...
    tasks += [asyncio.create_task(client(key("a"), "interactive")) for _ in range(2)]
    await until(lambda: depth() == 4)  # ...then interactive ones, which go first
    await asyncio.gather(*tasks)
    assert order[2:] == ["a:interactive", "a:interactive", "nightly:batch", "nightly:batch"]


async def test_queue_wait_runs_out_with_provider_rate_limited(replicas: Replicas) -> None:
    (service, *_) = replicas(count=1)
    provider = RateLimits(rpm=1)
    k = key(limits=RateLimits(rpm=100))
    await service.admit(req(k, provider=provider, wait=0.2))
    started = time.monotonic()
    refused = await attempt(service, req(k, provider=provider, wait=0.2))
    assert isinstance(refused, QuotaRejected) and refused.code == "provider_rate_limited"
    assert 0.2 <= time.monotonic() - started < 2
    now = await attempt(service, req(k, provider=provider, wait=0))
    assert isinstance(now, QuotaRejected) and now.code == "provider_rate_limited" and now.retry_after > 50
    # the refused requests gave back what they took from the consumer's own window
    assert (await service.usage([k]))[k.id]["window"]["requests"] == 1  # type: ignore[index]


async def test_consumer_limits_are_refused_at_once_never_queued(replicas: Replicas) -> None:
    (service, *_) = replicas(count=1)
    k = key(limits=RateLimits(rpm=1))
    await service.admit(req(k, provider=RateLimits(rpm=100), wait=30))
    started = time.monotonic()
    refused = await attempt(service, req(k, provider=RateLimits(rpm=100), wait=30))
    assert isinstance(refused, QuotaRejected) and refused.code == "rate_limit_exceeded"
    assert time.monotonic() - started < 1


async def test_provider_limits_hold_across_consumers_and_replicas(replicas: Replicas) -> None:
    services = replicas(count=3)
    provider = RateLimits(rpm=6)
    outcomes = await asyncio.gather(*(attempt(services[i % len(services)], req(key(f"k{i % 4}"), provider=provider))
                                      for i in range(20)))
    assert sum(isinstance(o, Reservation) for o in outcomes) == 6
    assert {o.code for o in outcomes if isinstance(o, QuotaRejected)} == {"provider_rate_limited"}


async def test_a_cancelled_admission_leaves_nothing_reserved(replicas: Replicas) -> None:
    (service, *_) = replicas(count=1)
    k = key(limits=RateLimits(rpm=3, monthly_tokens=10_000))
    # The memory store decides in one synchronous step, so a cancel lands before the check or after it
    # (the caller then holds the reservation and settles it); with Redis it lands during the round trip.
    shared = not isinstance(service.store, MemoryStore)
    for _ in range(5):
        task = asyncio.create_task(service.admit(req(k, tokens=700, provider=RateLimits(rpm=100))))
        if shared:
            await asyncio.sleep(0)  # the check is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def nothing_left() -> bool:
        usage = (await service.usage([k]))[k.id]
        return usage["tokens"] == 0 and usage["window"]["requests"] == 0  # type: ignore[index]

    end = time.monotonic() + 5
    while not await nothing_left():
        assert time.monotonic() < end, "a cancelled admission kept its reservation"
        await asyncio.sleep(0.01)
    assert isinstance(await attempt(service, req(k)), Reservation)  # the rpm slots are free again


async def test_a_model_budget_is_spent_while_the_key_budget_is_not(replicas: Replicas) -> None:
    services = replicas(count=2)
    k = key(limits=RateLimits(monthly_tokens=10_000), model_limits={"gpt-4o": RateLimits(monthly_tokens=500)})
    await services[0].settle(await services[0].admit(req(k, tokens=300)), 300)
    refused = await attempt(services[1 % len(services)], req(k, tokens=300))
    assert isinstance(refused, QuotaRejected) and refused.code == "insufficient_quota"
    assert "for gpt-4o" in refused.message
    assert isinstance(await attempt(services[0], req(k, tokens=300, model="gpt-4o-mini")), Reservation)
    usage = (await services[0].usage([k]))[k.id]
    assert usage["models"]["gpt-4o"] == {"tokens": 300, "remaining": 200}  # type: ignore[index]
    assert usage["tokens"] == 600 and usage["remaining"] == 9_400


async def test_consumers_over_their_own_limit_take_no_provider_capacity(replicas: Replicas) -> None:
    services = replicas(count=3)
    keys = [key(f"k{i}", limits=RateLimits(rpm=4)) for i in range(6)]  # 24 consumer slots, 20 provider slots
    provider = RateLimits(rpm=20)
    outcomes = await asyncio.gather(*(attempt(services[i % len(services)], req(keys[i % 6], provider=provider))
                                      for i in range(60)))
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    assert len(admitted) == 20  # every provider slot went to a request its consumer could make
    assert all(sum(a.request.key is k for a in admitted) <= 4 for k in keys)


async def test_a_failover_counts_one_request_against_the_key(replicas: Replicas) -> None:
    services = replicas(count=2)
    k = key(limits=RateLimits(rpm=2, tpm=1000, monthly_tokens=10_000))
    first = await services[0].admit(req(k, 300))
    await services[0].settle(first, 0)  # the first provider failed: nothing used
    again = await services[-1].admit(AdmitRequest(k, "gpt-4o", "ns/backup", RateLimits(rpm=5), 300,
                                                 repeat_of=first.rid))
    assert again.headers["x-ratelimit-remaining-requests"] == "1"  # still one request in the window
    assert again.headers["x-ratelimit-remaining-tokens"] == "700"  # its tokens reserved once
    await services[-1].settle(again, 120)
    second = await services[0].admit(req(k, 300))  # rpm 2: the failover did not use up the second
    await services[0].settle(second, 80)
    refused = await attempt(services[-1], req(k, 300))
    assert isinstance(refused, QuotaRejected) and refused.code == "rate_limit_exceeded"
    usage = (await services[0].usage([k]))[k.id]
    assert usage["requests"] == 2 and usage["tokens"] == 200
    assert usage["window"] == {"requests": 2, "tokens": 200, "rpm": 2, "tpm": 1000,  # type: ignore[comparison-overlap]
                               "resetSeconds": usage["window"]["resetSeconds"]}  # type: ignore[index]


async def test_a_failover_still_counts_against_the_next_provider(replicas: Replicas) -> None:
    services = replicas(count=1)
    k = key()
    backup = RateLimits(rpm=1)
    first = await services[0].admit(req(k, 10))
    await services[0].settle(first, 0)
    again = await services[0].admit(AdmitRequest(k, "gpt-4o", "ns/openai", backup, 10, repeat_of=first.rid))
    await services[0].settle(again, 10)
    refused = await attempt(services[0], req(k, 10, provider=backup))
    assert isinstance(refused, QuotaRejected) and refused.code == "provider_rate_limited"
