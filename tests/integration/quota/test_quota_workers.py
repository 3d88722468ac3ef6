"""`lockgate run --workers 2`: two serving processes on one port (SO_REUSEPORT), one admin port,
quotas in a real Redis exact across the workers, called with the official openai SDK."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from tests.integration.quota.proxies import write_manifests
from tests.integration.quota.redis_server import RedisServer
from tests.integration.quota.test_quota_proxies import call

RPM = 12



@pytest.mark.slow
@pytest.mark.redis
async def test_two_workers_sharing_redis_admit_exactly_the_rpm_behind_one_admin_port(
        redis_server: RedisServer, upstream, proxies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    manifests = write_manifests(tmp_path / "manifests", fake.url, rpm=RPM)
    store = redis_server.url + "?socket_timeout=2&socket_connect_timeout=2"
    proxy = await proxies(manifests, tmp_path / "state", store, workers=2).start()
    # A client per call: a new connection each, which the kernel spreads over the workers.
    outcomes = await asyncio.gather(*(call(proxy, stream=i % 2 == 1) for i in range(4 * RPM)))
    assert sum(1 for status, _, _ in outcomes if status == 200) == RPM  # exactly the limit, across the workers
    assert {(status, code) for status, _, code in outcomes if status != 200} == {(429, "rate_limit_exceeded")}
    assert len(fake.received) == RPM
    metrics = str(await proxy.admin("/metrics"))
    served = {int(w) for w in re.findall(r'lockgate_requests_total\{[^}]*worker="(\d+)"', metrics)}
    assert served == {0, 1}  # both workers answered, both counted on the one metrics endpoint
    assert metrics.count("# TYPE lockgate_requests_total counter") == 1  # one family, not one per worker
    usage = await proxy.admin("/usage")
    assert usage["demo/team"]["requests"] == RPM  # type: ignore[index]
