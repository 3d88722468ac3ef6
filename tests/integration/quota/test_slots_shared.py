"""An endpoint's maxConcurrency across three `lockgate run` processes sharing one real Redis:
together they never exceed it (the loopback upstream counts), and the slots of a replica
killed mid-request come back within the lease time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
import redis.asyncio as redis

from tests.integration.quota.proxies import CONSUMER_KEY, ROUTE_MANIFEST, Proxy, key_manifests
from tests.integration.quota.redis_server import RedisServer
from tests.integration.slot_upstream import SlotUpstream

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]

LEASE = 1.5  # seconds (--slot-lease)
SLOTS = 2  # the endpoint's maxConcurrency

MANIFESTS = """\
apiVersion: v1
kind: Service
metadata: {{name: vllm, namespace: demo}}
spec:
  ports: [{{name: http, port: 8000, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: vllm-1
  namespace: demo
  labels: {{kubernetes.io/service-name: vllm}}
addressType: IPv4
ports: [{{name: http, port: {port}, protocol: TCP}}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {{ready: true}}
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: qwen, namespace: demo}}
spec:
  type: openai-compatible
  service: {{name: vllm, port: http}}
  basePath: /v1
  retries: {{attempts: 0}}
  loadBalancing: {{maxConcurrency: {slots}}}
  queue: {{maxWait: 30s}}
  models: [{{name: qwen}}]
---
"""


@pytest.fixture
async def setup(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[tuple[SlotUpstream, list[Proxy]]]:
    upstream = await SlotUpstream(hold=0.05).start()
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "gateway.yaml").write_text(key_manifests() + MANIFESTS.format(port=upstream.port, slots=SLOTS)
                                         + ROUTE_MANIFEST)
    # Patient Redis timeouts: on a busy test host a slow moment must not make this a fail-open test.
    store = redis_server.url + "?socket_timeout=2&socket_connect_timeout=2"
    replicas = [Proxy(folder, tmp_path / f"state-{i}", store, 3, extra=("--slot-lease", str(LEASE)))
                for i in range(3)]
    try:
        await asyncio.gather(*(p.start() for p in replicas))
        yield upstream, replicas
    finally:
        upstream.gate.set()
        await asyncio.gather(*(p.stop() for p in replicas))
        await upstream.stop()


async def chat(proxy: Proxy, text: str) -> str:
    client = openai.AsyncOpenAI(base_url=proxy.base_url, api_key=CONSUMER_KEY, max_retries=0, timeout=60)
    try:
        reply = await client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": text}])
        return reply.choices[0].message.content or ""
    finally:
        await client.close()


@pytest.mark.slow
async def test_three_replicas_never_exceed_the_endpoints_concurrency_together(
        setup: tuple[SlotUpstream, list[Proxy]]) -> None:
    upstream, replicas = setup
    upstream.gate.set()
    answers = await asyncio.gather(*(chat(replicas[i % 3], f"r{i}") for i in range(24)))
    assert answers == ["ok"] * 24  # all waited their turn, none refused
    assert len(upstream.order) == 24
    assert upstream.most == SLOTS  # each replica alone would have let 2, so 6, through at once


@pytest.mark.slow
async def test_a_killed_replicas_slots_come_back_within_the_lease_time(
        setup: tuple[SlotUpstream, list[Proxy]], redis_server: RedisServer) -> None:
    upstream, replicas = setup
    held = [asyncio.create_task(chat(replicas[0], f"held{i}")) for i in range(SLOTS)]
    await upstream.wait_for(lambda: len(upstream.order) == SLOTS)  # replica 0 holds both slots
    loop = asyncio.get_running_loop()
    await replicas[0].kill()
    killed = loop.time()
    key = f"lockgate:slots:{{demo/qwen}}:http://127.0.0.1:{upstream.port}/v1"
    async with redis.from_url(redis_server.url) as r:
        leases = await r.zrange(key, 0, -1, withscores=True)
    assert len(leases) == SLOTS  # the dead replica's, still counted
    expiry = max(score for _, score in leases)  # Redis' clock: this host's
    await asyncio.gather(*held, return_exceptions=True)  # their connections died with the replica
    upstream.gate.set()
    assert await asyncio.gather(chat(replicas[1], "after1"), chat(replicas[2], "after2")) == ["ok", "ok"]
    assert loop.time() - killed <= LEASE + 3.0
    assert sorted(upstream.order[SLOTS:]) == ["after1", "after2"]
    # neither went through before the dead replica's leases expired (renewed until the kill, then not)
    assert all(upstream.arrived_at[t] >= expiry - 0.01 for t in ("after1", "after2")), (upstream.arrived_at, expiry)


async def test_shared_slots_count_across_instances_and_let_a_failing_redis_go(redis_server: RedisServer) -> None:
    """The semaphore alone, two instances as two replicas: limit, release, expiry, Redis away."""
    from lockgate.proxy.admission.shared import SharedSlots
    from lockgate.proxy.admission.shared_api import SharedUnavailable

    one, two = SharedSlots(redis_server.url, lease_seconds=0.5), SharedSlots(redis_server.url, lease_seconds=0.5)
    try:
        assert await one.acquire("k", "lease-1", 1)
        assert not await two.acquire("k", "lease-2", 1)  # full across both
        one.release("k", "lease-1")
        await asyncio.wait(one._background)
        assert await two.acquire("k", "lease-2", 1)
        await asyncio.sleep(0.8)  # longer than the lease: two renews what it holds
        assert not await one.acquire("k", "lease-3", 1)
        assert two._renewer is not None
        two._renewer.cancel()  # two dies: nothing renews its lease any more
        loop = asyncio.get_running_loop()
        end = loop.time() + 5
        while not await one.acquire("k", "lease-3", 1):
            assert loop.time() < end, "the dead instance's lease never expired"
            await asyncio.sleep(0.05)
        redis_server.kill()
        with pytest.raises(SharedUnavailable):
            await one.acquire("k", "lease-4", 1)
        started = loop.time()
        with pytest.raises(SharedUnavailable):  # left alone for a while: no new timeout per request
            await one.acquire("k", "lease-5", 1)
        assert loop.time() - started < 0.05
    finally:
        await one.close()
        await two.close()
