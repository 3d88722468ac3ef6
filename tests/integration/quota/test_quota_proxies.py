"""Three `lockgate run` processes sharing one real Redis, called with the official
openai SDK: the key's rpm holds across them, headers come on plain and streamed
answers, and a restarted proxy keeps the month's usage."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.integration.quota.proxies import CONSUMER_KEY, Proxy, write_manifests
from tests.integration.quota.redis_server import RedisServer

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
RPM = 15


async def call(proxy: Proxy, stream: bool) -> tuple[int, dict[str, str], str]:
    """(status, headers, error code) of one chat completion through a proxy."""
    client = openai.AsyncOpenAI(base_url=proxy.base_url, api_key=CONSUMER_KEY, max_retries=0)
    try:
        raw = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES,
                                                                      stream=stream, max_tokens=20)
        answer = raw.parse()
        if stream:
            async for _ in answer:  # type: ignore[union-attr]
                pass
        return raw.status_code, dict(raw.headers), ""
    except openai.APIStatusError as e:
        return e.status_code, dict(e.response.headers), str(e.code)
    finally:
        await client.close()


@pytest.mark.slow
@pytest.mark.redis
async def test_three_proxies_sharing_redis_admit_exactly_the_rpm(
        redis_server: RedisServer, upstream, proxies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    manifests = write_manifests(tmp_path / "manifests", fake.url, rpm=RPM)
    # Patient Redis timeouts: on a busy test host a slow moment must not turn this into a fail-open test.
    store = redis_server.url + "?socket_timeout=2&socket_connect_timeout=2"
    replicas = [proxies(manifests, tmp_path / f"state-{i}", store, 3) for i in range(3)]
    await asyncio.gather(*(p.start() for p in replicas))
    outcomes = await asyncio.gather(*(call(replicas[i % 3], stream=i % 2 == 1) for i in range(3 * RPM)))
    ok = [o for o in outcomes if o[0] == 200]
    refused = [o for o in outcomes if o[0] != 200]
    assert len(ok) == RPM  # exactly the limit, across three processes
    assert {(status, code) for status, _, code in refused} == {(429, "rate_limit_exceeded")}
    assert all(1 <= int(h["retry-after"]) <= 60 for _, h, _ in refused)
    for stream in (False, True):  # the x-ratelimit-* headers come on plain and streamed answers
        headers = [h for i, (status, h, _) in enumerate(outcomes) if status == 200 and (i % 2 == 1) == stream]
        assert headers and all(h["x-ratelimit-limit-requests"] == str(RPM) for h in headers)
    assert sorted(int(h["x-ratelimit-remaining-requests"]) for _, h, _ in ok) == list(range(RPM))
    assert len(fake.received) == RPM
    usage = await replicas[2].admin("/usage")
    assert usage["demo/team"]["requests"] == RPM  # type: ignore[index]
    used = usage["demo/team"]["tokens"]  # type: ignore[index]
    assert used == RPM * sum(fake.usage)  # settled with the real usage, reservations released
    assert "lockgate_quota_reservations_total" in str(await replicas[0].admin("/metrics"))
    # a restarted replica reads the same month from Redis
    await replicas[0].stop()
    await replicas[0].start()
    assert (await replicas[0].admin("/usage"))["demo/team"]["tokens"] == used  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.redis
async def test_two_proxies_with_the_charts_default_quota_settings_admit_exactly_the_rpm(
        upstream, proxies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The quota flags and store URL `helm template` gives the proxies by default: the bundled
    Redis, behind the password the operator generates (here a real redis-server with one)."""
    from tests.unit.chart_support import one, render

    (container,) = one(render(), "Deployment", "-proxy")["spec"]["template"]["spec"]["containers"]
    flags = dict(a.split("=", 1) for a in container["args"] if a.startswith("--") and "=" in a)
    env = {e["name"]: e for e in container["env"]}
    assert flags["--quota-fail-mode"] == "open" and flags["--replicas-hint"] == "2"
    assert "--quota-store" not in flags  # the URL comes from the environment
    password = "generated-by-the-operator-0123456789abcdefghijkl"
    server = RedisServer()
    server.extra = ["--requirepass", password]
    server.start()
    try:
        url = env["LOCKGATE_QUOTA_STORE_URL"]["value"].replace("$(LOCKGATE_REDIS_PASSWORD)", password)
        url = re.sub(r"@[^/]+/", f"@127.0.0.1:{server.port}/", url)  # the Service's name, on loopback
        # Patient timeouts on a shared, busy test host: a slow moment must not make this a fail-open test.
        store = url + "?socket_timeout=2&socket_connect_timeout=2"
        fake = await upstream("openai")
        manifests = write_manifests(tmp_path / "manifests", fake.url, rpm=RPM)
        replicas = [proxies(manifests, tmp_path / f"state-{i}", store, int(flags["--replicas-hint"]),
                            flags["--quota-fail-mode"]) for i in range(2)]
        await asyncio.gather(*(p.start() for p in replicas))
        outcomes = await asyncio.gather(*(call(replicas[i % 2], stream=False) for i in range(3 * RPM)))
        assert sum(1 for o in outcomes if o[0] == 200) == RPM == len(fake.received)  # exactly the rpm, across both
        assert {(s, code) for s, _, code in outcomes if s != 200} == {(429, "rate_limit_exceeded")}
    finally:
        server.kill()


@pytest.mark.slow
async def test_two_memory_store_proxies_with_a_replicas_hint_admit_at_most_the_limit_together(
        upstream, proxies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    manifests = write_manifests(tmp_path / "manifests", fake.url, rpm=RPM)
    replicas = [proxies(manifests, tmp_path / f"state-{i}", "memory", 2) for i in range(2)]
    await asyncio.gather(*(p.start() for p in replicas))
    outcomes = await asyncio.gather(*(call(replicas[i % 2], stream=False) for i in range(2 * RPM)))
    admitted = [sum(1 for i, o in enumerate(outcomes) if o[0] == 200 and i % 2 == r) for r in range(2)]
    assert admitted == [RPM // 2, RPM // 2]  # each its share, rounded down: 7 + 7 <= 15
    assert sum(admitted) <= RPM and len(fake.received) == sum(admitted)
    refused = {(status, code) for status, _, code in outcomes if status != 200}
    assert refused == {(429, "rate_limit_exceeded")}


@pytest.mark.slow
async def test_a_restarted_standalone_proxy_keeps_the_month(upstream, proxies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    manifests = write_manifests(tmp_path / "manifests", fake.url, rpm=100, monthly=1000)
    proxy = await proxies(manifests, tmp_path / "state", "memory").start()
    for stream in (False, True, False):
        assert (await call(proxy, stream))[0] == 200
    before = (await proxy.admin("/usage"))["demo/team"]  # type: ignore[index]
    assert before["tokens"] == 3 * sum(fake.usage) and before["requests"] == 3
    await proxy.stop()
    await proxy.start()
    after = (await proxy.admin("/usage"))["demo/team"]  # type: ignore[index]
    assert after["tokens"] == before["tokens"] and after["remaining"] == 1000 - before["tokens"]


@pytest.mark.slow
@pytest.mark.redis
async def test_fail_closed_proxy_answers_503_while_redis_is_away_then_recovers(
        redis_server: RedisServer, upstream, proxies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    manifests = write_manifests(tmp_path / "manifests", fake.url, rpm=1000)
    proxy = await proxies(manifests, tmp_path / "state", redis_server.url, 1, "closed").start()
    assert (await call(proxy, stream=False))[0] == 200
    redis_server.kill()
    status, headers, code = await call(proxy, stream=True)
    assert (status, code) == (503, "quota_store_unavailable") and headers["retry-after"] == "1"
    redis_server.start()
    end = asyncio.get_running_loop().time() + 10
    while (await call(proxy, stream=False))[0] != 200:
        assert asyncio.get_running_loop().time() < end, "the proxy never went back to Redis"
        await asyncio.sleep(0.1)
