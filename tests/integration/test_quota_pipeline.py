"""How the data plane uses the quota service: admit before, settle once after, refusals as 429.

`RecordingQuota` is a small implementation of the QuotaService protocol that
records what the proxy asks of it (the real stores have their own tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import openai
import pytest

from lockgate.api.ir import Budget, ConsumerKey
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, Reservation
from lockgate.proxy.server import ProxyServer, ProxySettings
from lockgate.proxy.source import StaticSource
from tests.gatewayconfig import KEY, provider, snapshot
from tests.upstreams import Action

MESSAGES = [{"role": "user", "content": "hi"}]


class RecordingQuota:
    def __init__(self) -> None:
        self.admitted: list[AdmitRequest] = []
        self.settled: list[tuple[Reservation, int]] = []
        self.reject: QuotaRejected | None = None

    async def admit(self, request: AdmitRequest) -> Reservation:
        if self.reject is not None:
            raise self.reject
        self.admitted.append(request)
        return Reservation(request, request.estimated_tokens, {"x-ratelimit-remaining-tokens": "999"})

    async def settle(self, reservation: Reservation, used_tokens: int, used_cost: int = 0) -> None:
        self.settled.append((reservation, used_tokens))

    async def usage(self, keys: Sequence[ConsumerKey] | None = None) -> dict[str, dict[str, object]]:
        return {"ns/team-a": {"tokens": sum(t for _, t in self.settled)}}

    async def budget_usage(self, budgets: Sequence[Budget]) -> dict[str, dict[str, object]]:
        return {}

    async def close(self) -> None:
        return None


@pytest.fixture
async def quota_gateway(upstream):  # type: ignore[no-untyped-def]
    servers: list[ProxyServer] = []

    async def start(snap, quota):  # type: ignore[no-untyped-def]
        server = ProxyServer(StaticSource(snap), ProxySettings(port=0, admin_port=0, access_log=None), quota=quota)
        await server.start()
        await server.wait_ready()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def _settled(quota: RecordingQuota, count: int) -> None:
    async with asyncio.timeout(3):
        while len(quota.settled) < count:
            await asyncio.sleep(0.01)


async def test_admit_with_an_estimate_and_settle_once_with_real_usage(upstream, quota_gateway) -> None:
    fake = await upstream("openai")
    quota = RecordingQuota()
    server = await quota_gateway(snapshot([provider("ns/openai", "openai", fake.url)]), quota)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{server.port}/v1/chat/completions",
                                headers={"Authorization": f"Bearer {KEY}"},
                                json={"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 100}) as response:
            assert response.status == 200
            assert response.headers["x-ratelimit-remaining-tokens"] == "999"
    admitted = quota.admitted[-1]
    assert admitted.key.id == "ns/team-a" and admitted.model == "gpt-4o" and admitted.provider_id == "ns/openai"
    assert 100 < admitted.estimated_tokens < 150  # prompt chars / 4 + max_tokens
    assert [t for _, t in quota.settled] == [18]  # 11 in + 7 out, from the upstream's usage
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    [c async for c in stream]
    await _settled(quota, 2)
    assert [t for _, t in quota.settled] == [18, 18]


async def test_failover_settles_the_failed_reservation_with_nothing(upstream, quota_gateway) -> None:
    bad, good = await upstream("openai"), await upstream("openai")
    bad.then(Action(status=500))
    quota = RecordingQuota()
    server = await quota_gateway(snapshot([provider("ns/bad", "openai", bad.url),
                                           provider("ns/good", "openai", good.url, priority=1)]), quota)
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [(r.request.provider_id, t) for r, t in quota.settled] == [("ns/bad", 0), ("ns/good", 18)]


async def test_quota_refusal_is_a_429_with_retry_after_and_headers(upstream, quota_gateway) -> None:
    fake = await upstream("openai")
    quota = RecordingQuota()
    quota.reject = QuotaRejected("rate_limit_exceeded", "Too many tokens this minute.", 12.2,
                                 {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "0"})
    server = await quota_gateway(snapshot([provider("ns/openai", "openai", fake.url)]), quota)
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError) as error:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert error.value.code == "rate_limit_exceeded"
    headers = error.value.response.headers
    assert headers["retry-after"] == "13" and headers["x-ratelimit-remaining-tokens"] == "0"
    assert fake.received == []
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.admin_port}/metrics") as response:
            metrics = await response.text()
        async with session.get(f"http://127.0.0.1:{server.admin_port}/usage") as response:
            assert (await response.json()) == {"ns/team-a": {"tokens": 0}}
    assert ('lockgate_quota_rejections_total{consumer="team-a",gateway="lockgate",host="*",model="gpt-4o",'
            'reason="rate_limit_exceeded"} 1.0') in metrics
    assert 'error_type="policy_rate_limited"' in metrics


async def test_client_disconnect_settles_what_was_produced(upstream, quota_gateway) -> None:
    fake = await upstream("openai")
    fake.then(Action(chunks=["x"] * 50, chunk_delay=0.1))
    quota = RecordingQuota()
    server = await quota_gateway(snapshot([provider("ns/openai", "openai", fake.url)]), quota)
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"http://127.0.0.1:{server.port}/v1/chat/completions",
                                      headers={"Authorization": f"Bearer {KEY}"},
                                      json={"model": "gpt-4o", "messages": MESSAGES, "stream": True})
        for _ in range(3):
            await response.content.readline()
        response.close()
    await _settled(quota, 1)
    assert len(quota.settled) == 1 and 0 < quota.settled[0][1] < 50


async def test_real_memory_quota_limits_a_key_and_reports_usage(upstream, gateway, tmp_path) -> None:
    from lockgate.api import ir
    from tests.gatewayconfig import key

    fake = await upstream("openai")
    snap = snapshot([provider("ns/openai", "openai", fake.url)], [key("ns/team-a", KEY, limits=ir.RateLimits(rpm=2))])
    server = await gateway(snap, state_dir=str(tmp_path))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0)
    for _ in range(2):
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as error:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert int(error.value.response.headers["retry-after"]) >= 1
    assert len(fake.received) == 2
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.admin_port}/usage") as response:
            usage = await response.json()
    assert usage["ns/team-a"]["tokens"] == 36  # two answers of 11 + 7 tokens
