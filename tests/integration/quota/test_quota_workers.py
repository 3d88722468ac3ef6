"""`lockgate run --workers 2`: two serving processes on one port (SO_REUSEPORT), one admin port,
quotas in a real Redis exact across the workers, called with the official openai SDK."""

from __future__ import annotations

import asyncio
import os
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


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the field after the state: the parent's pid
            found.append(int(stat.parent.name))
    return found


async def _exited(pid: int) -> None:
    """Awaits a process that is not ours to wait for: its pidfd turns readable when it exits."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, done.set_result, None)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


@pytest.mark.slow
@pytest.mark.redis
async def test_workers_stop_when_their_supervisor_is_killed(
        redis_server: RedisServer, upstream, proxies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    manifests = write_manifests(tmp_path / "manifests", fake.url, rpm=RPM)
    proxy = await proxies(manifests, tmp_path / "state", redis_server.url, workers=2).start()
    assert proxy.process is not None
    workers = _children(proxy.process.pid)
    assert len(workers) == 2
    await proxy.kill()  # SIGKILL: the supervisor cannot tell anyone
    # An orphaned worker would go on serving the last configuration, unsupervised: each stops by itself.
    await asyncio.wait_for(asyncio.gather(*(_exited(pid) for pid in workers)), 30)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and
                Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
