"""The Redis store at memory speed: reservations of one event-loop turn share one round trip,
settlements leave the request's path and are flushed on close, and a settlement Redis did not
answer is tried again without being counted twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from lockgate.api.ir import ConsumerKey, RateLimits
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, Reservation, lua, make_quota_service
from lockgate.proxy.quota.redis_store import RedisStore
from lockgate.proxy.quota.redis_wire import PipelinedLink
from lockgate.proxy.quota.service import StoreQuotaService

from tests.integration.quota.redis_server import RedisServer
from tests.integration.quota.test_quota_redis_failure import month_tokens  # the same key id

pytestmark = pytest.mark.redis

KEY = ConsumerKey(id="ns/team", consumer="team", hashes=(), limits=RateLimits(rpm=40, monthly_tokens=10**6))
PATIENT = "?socket_timeout=2&socket_connect_timeout=2"  # a busy test host must not look like an outage


def request(tokens: int = 100) -> AdmitRequest:
    return AdmitRequest(KEY, "gpt-4o", "ns/openai", RateLimits(rpm=1000), tokens)


def link_of(service: StoreQuotaService) -> RedisStore:
    store = service.store.shared  # type: ignore[attr-defined]
    assert isinstance(store, RedisStore) and store.link is not None
    return store


async def test_concurrent_reservations_share_one_round_trip_and_stay_exact(redis_server: RedisServer) -> None:
    service = make_quota_service(redis_server.url + PATIENT, "closed", 1)
    assert isinstance(service, StoreQuotaService)
    store = link_of(service)
    try:
        await service.admit(request())  # connects and loads the scripts
        writes = store.link.writes  # type: ignore[union-attr]

        async def attempt() -> Reservation | QuotaRejected:
            try:
                return await service.admit(request())
            except QuotaRejected as e:
                return e

        outcomes = await asyncio.gather(*(attempt() for _ in range(60)))
        assert store.link.writes - writes == 1  # type: ignore[union-attr]  # sixty requests, one write
        admitted = [o for o in outcomes if isinstance(o, Reservation)]
        assert len(admitted) == 39  # the rpm (40) less the first request: exact in one batch
        assert all(isinstance(o, QuotaRejected) and o.code == "rate_limit_exceeded"
                   for o in outcomes if not isinstance(o, Reservation))
    finally:
        await service.close()


async def test_settlements_leave_the_request_path_and_are_flushed_on_close(redis_server: RedisServer) -> None:
    service = make_quota_service(redis_server.url + PATIENT, "closed", 1)
    assert isinstance(service, StoreQuotaService)
    reservations = [await service.admit(request(500)) for _ in range(20)]
    for r in reservations:
        assert service.settle_later(r, 30) is None  # nothing for the request to wait for
    assert service.settle_later(reservations[0], 30) is None  # settled once only
    await service.close()  # drains: every settlement reached Redis before the connection closed
    assert await month_tokens(redis_server.url, "tokens") == 20 * 30
    assert await month_tokens(redis_server.url, "requests") == 20


async def test_a_settlement_redis_did_not_answer_is_retried_and_counted_once(redis_server: RedisServer) -> None:
    # Short timeouts: a paused Redis does not answer in time, so the settlement is sent again.
    service = make_quota_service(redis_server.url + "?socket_timeout=0.1&socket_connect_timeout=1", "open", 1)
    assert isinstance(service, StoreQuotaService)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        reservations = [await service.admit(request(500)) for _ in range(5)]
        await admin.execute_command("CLIENT", "PAUSE", 400, "WRITE")  # writes wait: no answer within 100 ms
        for r in reservations:
            service.settle_later(r, 70)
        store = link_of(service)
        assert await store.flush(timeout=10)  # each tried again after the pause, until answered
        # The first attempts ran when the pause ended and the later ones found them applied:
        # the month has the tokens used once, not twice.
        assert await month_tokens(redis_server.url, "tokens") == 5 * 70
        assert await month_tokens(redis_server.url, "requests") == 5
    finally:
        await admin.aclose()
        await service.close()


async def test_the_settle_script_applied_twice_with_again_counts_the_month_once(redis_server: RedisServer) -> None:
    """A reply lost after Redis ran the script (the case a retry cannot tell apart): the second run,
    marked `again`, finds the window holding the used tokens and leaves the month alone."""
    service = make_quota_service(redis_server.url + PATIENT, "closed", 1)
    assert isinstance(service, StoreQuotaService)
    store = link_of(service)
    client = redis.Redis.from_url(redis_server.url)
    try:
        r = await service.admit(request(500))
        consumer = r.groups[:1]
        keys = [*(k for w in consumer[0].windows for k in (f"lockgate:q:{{{consumer[0].tag}}}:w:{w.name}:z",
                                                             f"lockgate:q:{{{consumer[0].tag}}}:w:{w.name}:h")),
                f"lockgate:q:{{{consumer[0].tag}}}:m:{r.month}"]
        fields = [b.field for b in consumer[0].budgets]
        for again in (0, 1, 1):
            await client.eval(lua.SETTLE, len(keys), *keys, r.rid, 70, 70 - 500, 0, int(r.month_end) + 86400, again,
                              0, 1, 0, len(consumer[0].windows), len(fields), *fields)
        assert await month_tokens(redis_server.url, "tokens") == 70
        for again in (1, 1):  # a release tried again: the request is taken back once
            await client.eval(lua.SETTLE, len(keys), *keys, r.rid, 0, -70, 1, int(r.month_end) + 86400, again,
                              0, 1, 0, len(consumer[0].windows), len(fields), *fields)
        assert await month_tokens(redis_server.url, "requests") == 0
        assert await month_tokens(redis_server.url, "tokens") == 0
        assert store.link is not None
    finally:
        await client.aclose()
        await service.close()


async def turns(n: int = 3) -> None:
    """Let the event loop run a few turns (what is queued in a turn is written at its end)."""
    for _ in range(n):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def paused_redis(server: RedisServer) -> AsyncIterator[tuple[StoreQuotaService, Reservation, PipelinedLink]]:
    """A service with one reservation made (connected, scripts loaded), then Redis paused for 300 ms."""
    service = make_quota_service(server.url + PATIENT, "closed", 1)
    assert isinstance(service, StoreQuotaService)
    admin = redis.Redis.from_url(server.url)
    try:
        reservation = await service.admit(request())
        link = link_of(service).link
        assert link is not None
        await admin.execute_command("CLIENT", "PAUSE", 300, "ALL")  # Redis answers nothing meanwhile
        yield service, reservation, link
    finally:
        await admin.aclose()
        await service.close()


async def test_reservations_made_while_one_awaits_its_reply_leave_together(redis_server: RedisServer) -> None:
    async with paused_redis(redis_server) as (service, _, link):
        first = asyncio.ensure_future(service.admit(request()))
        await turns()
        writes = link.writes
        later = []
        for _ in range(3):  # three more, each in a turn of its own
            later.append(asyncio.ensure_future(service.admit(request())))
            await turns()
        assert link.writes == writes  # held back while the first awaits its reply
        await first
        await asyncio.gather(*later)
        assert link.writes == writes + 1  # then the three left in one write


async def test_a_settlement_in_flight_holds_no_reservation_back(redis_server: RedisServer) -> None:
    async with paused_redis(redis_server) as (service, reservation, link):
        service.settle_later(reservation, 30)
        link.wake()  # out now, not with the next write
        await turns()
        writes = link.writes  # the settlement is out, unanswered
        assert link.in_flight == 1
        admitted = asyncio.ensure_future(service.admit(request()))
        await turns()
        assert link.writes == writes + 1  # the reservation did not wait for the settlement's reply
        assert isinstance(await admitted, Reservation)


async def test_a_settlement_rides_along_with_the_next_reservation_or_leaves_alone_soon(
        redis_server: RedisServer) -> None:
    service = make_quota_service(redis_server.url + PATIENT, "closed", 1)
    assert isinstance(service, StoreQuotaService)
    store = link_of(service)
    try:
        first = await service.admit(request(500))
        link = store.link
        assert link is not None
        writes = link.writes
        service.settle_later(first, 30)
        await turns()
        assert link.writes == writes  # waits for a write to ride along with
        second = await service.admit(request(500))
        assert link.writes == writes + 1  # settlement and reservation in one write
        service.settle_later(second, 40)
        settling = list(store._settling)
        assert settling
        await asyncio.wait_for(asyncio.gather(*settling), 2)  # alone, after LAZY_DELAY: answered
        assert link.writes == writes + 2
        assert await month_tokens(redis_server.url, "tokens") == 30 + 40
    finally:
        await service.close()
