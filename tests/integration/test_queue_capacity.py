"""Requests wait for a free endpoint slot (maxConcurrency) instead of failing: the official
openai SDK against Lockgate against loopback upstreams that count what they carry."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from lockgate.api import ir
from lockgate.proxy.server import ProxyServer
from tests.gatewayconfig import KEY, OTHER_KEY, key, provider, snapshot
from tests.integration.conftest import StartGateway, StartUpstream, base_url
from tests.integration.slot_upstream import SlotUpstream
from tests.upstreams import Action

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def slot_upstreams() -> AsyncIterator[list[SlotUpstream]]:
    made: list[SlotUpstream] = []
    yield made
    for upstream in made:
        upstream.gate.set()
        await upstream.stop()


async def start_upstreams(made: list[SlotUpstream], count: int, hold: float = 0.0) -> list[SlotUpstream]:
    order: list[str] = []
    gate = asyncio.Event()
    for _ in range(count):
        made.append(await SlotUpstream(hold, order, gate).start())
    return made[-count:]


def busy_snapshot(upstreams: list[SlotUpstream], max_wait: float, batch_key: bool = False, **queue: Any) -> Any:
    qwen = provider("ns/qwen", "openai-compatible", None, [("qwen", "Qwen/Qwen2.5")], credential=None,
                    endpoints=[u.host for u in upstreams], load_balancing=ir.LoadBalancing(max_concurrency=1),
                    queue_max_wait=max_wait, **queue)
    keys = [key("ns/a", KEY, consumer="a"),
            key("ns/b", OTHER_KEY, consumer="b", **({"priority": "batch"} if batch_key else {}))]
    return snapshot([qwen], keys)


def depth(server: ProxyServer) -> int:
    queues = server.gateway.deps.slots._providers
    return queues["ns/qwen"].queue.depth if "ns/qwen" in queues else 0


async def until_depth(server: ProxyServer, count: int) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + 20
    while depth(server) != count:
        assert loop.time() < end, f"queue depth {depth(server)}, not {count}"
        await asyncio.sleep(0.005)


async def waits(server: ProxyServer) -> dict[str, float]:
    """From the admin /metrics: the provider's queue depth, and its interactive waits by outcome."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{server.admin_port}/metrics") as response:
            exposition = await response.text()
    found = {}
    for line in exposition.splitlines():
        name, _, value = line.rpartition(" ")
        if name == 'lockgate_endpoint_queue_depth{provider="ns/qwen"}':
            found["depth"] = float(value)
        match = re.fullmatch(r'lockgate_endpoint_queue_wait_seconds_count\{outcome="(\w+)",'
                             r'priority="interactive",provider="ns/qwen"\}', name)
        if match:
            found[match.group(1)] = float(value)
    return found


async def chat(server: ProxyServer, api_key: str, text: str, **headers: str) -> str:
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=api_key, max_retries=0, timeout=30,
                                default_headers=headers)
    try:
        reply = await client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content or ""
    finally:
        await client.close()


async def test_ten_clients_on_two_single_slot_endpoints_all_succeed_in_turns(
        gateway: StartGateway, slot_upstreams: list[SlotUpstream]) -> None:
    upstreams = await start_upstreams(slot_upstreams, 2, hold=0.02)
    server = await gateway(busy_snapshot(upstreams, max_wait=30))
    # consumer a sends six requests first, b four after them: two take the slots, eight wait
    calls = [asyncio.create_task(chat(server, KEY, f"a{i}")) for i in range(6)]
    await until_depth(server, 4)
    calls += [asyncio.create_task(chat(server, OTHER_KEY, f"b{i}")) for i in range(4)]
    await until_depth(server, 8)
    upstreams[0].gate.set()  # one gate for both
    assert await asyncio.gather(*calls) == ["ok"] * 10  # none refused
    assert all(u.most == 1 for u in upstreams)  # never two at once on an endpoint
    order = upstreams[0].order  # shared: both endpoints' arrivals in one list
    waited = [t[0] for t in order[2:]]  # after the two that found free slots: turns by consumer
    assert waited == ["a", "b", "a", "b", "a", "b", "a", "b"], order
    assert depth(server) == 0


async def test_a_request_that_waited_its_wait_gets_503_with_a_retry_after(
        gateway: StartGateway, slot_upstreams: list[SlotUpstream]) -> None:
    (upstream,) = await start_upstreams(slot_upstreams, 1)
    server = await gateway(busy_snapshot([upstream], max_wait=30, queue_max_depth=2))
    before = await waits(server)  # the metric families are the process': counted from here
    holder = asyncio.create_task(chat(server, KEY, "holds the slot"))
    await upstream.wait_for(lambda: len(upstream.order) == 1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(openai.APIStatusError) as refused:  # the request asks for less than the provider's 30 s
        await chat(server, KEY, "asks for 0.3 s", **{"x-lockgate-max-wait": "0.3"})
    assert 0.3 <= loop.time() - t0 < 5
    error = refused.value
    assert error.status_code == 503 and error.code == "model_at_capacity"
    assert error.body["type"] == "api_error" and "queue wait" in error.message  # type: ignore[index]
    assert int(error.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.BadRequestError) as bad:
        await chat(server, KEY, "bad header", **{"x-lockgate-max-wait": "soon"})
    assert bad.value.code == "invalid_header"
    # a full queue refuses at once
    waiting = [asyncio.create_task(chat(server, KEY, f"w{i}")) for i in range(2)]
    await until_depth(server, 2)
    with pytest.raises(openai.APIStatusError) as full:
        await chat(server, OTHER_KEY, "one too many")
    assert full.value.status_code == 503 and "too many requests are waiting" in full.value.message
    upstream.gate.set()
    assert await asyncio.gather(holder, *waiting) == ["ok"] * 3
    after = await waits(server)
    assert after["depth"] == 0.0
    assert {o: after[o] - before.get(o, 0.0) for o in ("timeout", "full", "admitted")} == {
        "timeout": 1.0, "full": 1.0, "admitted": 2.0}


async def test_without_a_queue_wait_a_full_provider_answers_503_at_once(
        gateway: StartGateway, slot_upstreams: list[SlotUpstream]) -> None:
    (upstream,) = await start_upstreams(slot_upstreams, 1)
    server = await gateway(busy_snapshot([upstream], max_wait=0))
    holder = asyncio.create_task(chat(server, KEY, "holds the slot"))
    await upstream.wait_for(lambda: len(upstream.order) == 1)
    with pytest.raises(openai.APIStatusError) as refused:
        await chat(server, KEY, "no wait")
    assert refused.value.status_code == 503 and refused.value.response.headers["retry-after"] == "1"
    upstream.gate.set()
    assert await holder == "ok"


async def test_interactive_requests_overtake_queued_batch_ones(
        gateway: StartGateway, slot_upstreams: list[SlotUpstream]) -> None:
    (upstream,) = await start_upstreams(slot_upstreams, 1)
    server = await gateway(busy_snapshot([upstream], max_wait=30, batch_key=True))
    calls = [asyncio.create_task(chat(server, OTHER_KEY, f"batch{i}")) for i in range(4)]  # b is a batch key
    await until_depth(server, 3)
    calls += [asyncio.create_task(chat(server, KEY, f"interactive{i}")) for i in range(2)]
    await until_depth(server, 5)
    upstream.gate.set()
    assert await asyncio.gather(*calls) == ["ok"] * 6
    assert upstream.order == ["batch0", "interactive0", "interactive1", "batch1", "batch2", "batch3"]
    assert upstream.most == 1


async def test_a_client_that_goes_away_leaves_the_queue_at_once(
        gateway: StartGateway, slot_upstreams: list[SlotUpstream]) -> None:
    (upstream,) = await start_upstreams(slot_upstreams, 1)
    server = await gateway(busy_snapshot([upstream], max_wait=30))
    holder = asyncio.create_task(chat(server, KEY, "holds the slot"))
    await upstream.wait_for(lambda: len(upstream.order) == 1)
    quitter = asyncio.create_task(chat(server, KEY, "gives up"))
    stayer = asyncio.create_task(chat(server, OTHER_KEY, "stays"))
    await until_depth(server, 2)
    quitter.cancel()  # the client closes its connection
    await asyncio.gather(quitter, return_exceptions=True)
    await until_depth(server, 1)
    upstream.gate.set()
    assert await asyncio.gather(holder, stayer) == ["ok", "ok"]
    assert upstream.order == ["holds the slot", "stays"]  # the one that left never reached the upstream


@pytest.mark.parametrize("hosting", ["endpoint", "service"])
async def test_a_short_outage_is_waited_out_within_the_queue_wait(
        gateway: StartGateway, upstream: StartUpstream, hosting: str) -> None:
    fake = await upstream("vllm")
    fake.then(Action(status=503, retry_after=1))  # the upstream asks for a second: ejected that long
    where: dict[str, Any] = ({"base_url": fake.url} if hosting == "endpoint" else {"base_url": None,
                                                                                   "endpoints": [fake.host]})
    up = provider("ns/up", "openai-compatible", models=[("qwen", "Qwen/Qwen2.5")], credential=None,
                  queue_max_wait=5.0, **where)
    server = await gateway(snapshot([up]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.APIStatusError):  # the failure itself reaches the client (no retries configured)
        await client.chat.completions.create(model="qwen", messages=messages)
    with pytest.raises(openai.APIStatusError) as impatient:  # asks to wait less than the outage: at once
        await client.chat.completions.create(model="qwen", messages=messages,
                                             extra_headers={"x-lockgate-max-wait": "0.1"})
    assert impatient.value.status_code == 503 and impatient.value.code == "no_upstream_available"
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    reply = await client.chat.completions.create(model="qwen", messages=messages)  # waits for the ejection to end
    assert reply.choices[0].message.content and 0.5 <= loop.time() - t0 < 4
    assert len(fake.received) == 2  # the failed one and this one: nothing was sent while it was ejected
    await client.close()
