"""A 1,000-line batch across two `lockgate run` processes sharing redis-server and a file
directory: one is killed mid-batch, the other takes over its leased chunks, and every line's
answer is in the output file once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import openai
import pytest

from tests.integration.batch.batches import chat_lines, output_rows, submit, wait_until
from tests.integration.batch.echo_upstream import EchoUpstream
from tests.integration.quota.proxies import CONSUMER_KEY, write_manifests
from tests.integration.quota.redis_server import RedisServer
from tests.loopback import free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LINES = 1000


async def start_replica(manifests: Path, state: Path, files: Path, redis_url: str) -> tuple[asyncio.subprocess.Process,
                                                                                           str]:
    port, admin = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "lockgate"), "run", "-f", str(manifests), "--port", str(port),
        "--admin-port", str(admin), "--state-dir", str(state), "--quota-store", redis_url,
        "--batch-files-dir", str(files), "--batch-lease-seconds", "2", "--log-level", "WARNING",
        "--workers", "1",  # one serving process: SIGKILL ends the replica with no drain at all
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=asyncio.subprocess.DEVNULL)
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            assert process.returncode is None, "lockgate run exited"
            try:
                async with session.get(f"http://127.0.0.1:{admin}/readyz") as r:
                    if r.status == 200:
                        return process, f"http://127.0.0.1:{port}/v1"
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError("lockgate run did not become ready")


async def test_a_batch_survives_a_killed_replica(redis_server: RedisServer, echo: EchoUpstream,
                                                 tmp_path: Path) -> None:
    manifests = write_manifests(tmp_path / "manifests", echo.url, rpm=1_000_000)
    echo.delay = 0.02
    replicas = [await start_replica(manifests, tmp_path / f"state-{i}", tmp_path / "files", redis_server.url)
                for i in range(2)]
    try:
        (doomed, doomed_url), (_, survivor_url) = replicas
        created = await submit(openai.AsyncOpenAI(base_url=doomed_url, api_key=CONSUMER_KEY), chat_lines(LINES))
        await asyncio.wait_for(echo.answered(LINES // 5), 60)
        doomed.send_signal(signal.SIGKILL)  # no drain: its leases run out
        await doomed.wait()
        client = openai.AsyncOpenAI(base_url=survivor_url, api_key=CONSUMER_KEY)
        at_kill = await client.batches.retrieve(created.id)
        assert at_kill.status == "in_progress" and at_kill.request_counts is not None
        assert at_kill.request_counts.completed < LINES  # killed mid-batch
        print(f"at the kill: {at_kill.request_counts.completed} of {LINES} lines recorded")
        done = await wait_until(client, created.id, timeout=120)
        assert done.status == "completed", done
        assert done.request_counts is not None and done.request_counts.completed == LINES
        assert done.request_counts.failed == 0 and done.error_file_id is None
        rows = await output_rows(client, done.output_file_id)
        assert len(rows) == LINES  # recorded once each, although some ran twice
        assert {r["custom_id"] for r in rows} == {f"line-{i}" for i in range(LINES)}
        for row in rows:
            i = row["custom_id"].removeprefix("line-")
            assert row["response"]["body"]["choices"][0]["message"]["content"] == f"echo: q{i}"
        assert set(echo.seen) == {f"q{i}" for i in range(LINES)}
        assert done.usage is not None and done.usage.input_tokens == 3 * LINES
    finally:
        for process, _ in replicas:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 30)
