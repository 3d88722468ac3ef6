"""Config swaps under load, rotated keys, readiness and draining on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from datetime import datetime, timedelta, timezone

import aiohttp
import openai

from lockgate.api import ir
from lockgate.proxy.source import StaticSource
from tests.gatewayconfig import KEY, OTHER_KEY, key, provider, snapshot
from tests.integration.conftest import base_url
from tests.upstreams import Action
from tests.loopback import free_port

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_zero_failed_requests_while_config_swaps_under_load(upstream, gateway) -> None:
    first = await upstream("openai", text="first")
    second = await upstream("openai", text="second")
    snap_a = snapshot([provider("ns/a", "openai", first.url)])
    snap_b = snapshot([provider("ns/b", "openai", second.url)])
    source = StaticSource(snap_a)
    server = await gateway(snap_a, source=source)
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    first.then(*[Action(chunk_delay=0.002)] * 1000)
    stop = asyncio.Event()
    answers: list[str] = []

    async def worker(stream: bool) -> None:
        while not stop.is_set():
            if stream:
                chunks = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
                answers.append("".join([c.choices[0].delta.content or "" async for c in chunks if c.choices]))
            else:
                answer = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                answers.append(answer.choices[0].message.content or "")

    workers = [asyncio.create_task(worker(i % 2 == 0)) for i in range(6)]
    for i in range(10):  # swap back and forth while requests are in flight
        await asyncio.sleep(0.03)
        source.push(snap_b if i % 2 == 0 else snap_a)
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*workers)  # any failed request raises here
    assert len(answers) > 20
    assert set(answers) == {"first", "second"}


async def test_rotated_out_key_is_refused_after_not_after(upstream, gateway) -> None:
    fake = await upstream("openai")
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    rotated = ir.ConsumerKey(id="ns/a", consumer="a", hashes=(ir.ApiKeyHash(sha256=ir.hash_key(KEY)),
                                                               ir.ApiKeyHash(sha256=ir.hash_key(OTHER_KEY),
                                                                             not_after=past)))
    grace = key("ns/b", "lg-grace-key-000000000000", not_after=future)
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)], [rotated, grace]))
    for clear, ok in ((KEY, True), (OTHER_KEY, False), ("lg-grace-key-000000000000", True)):
        client = openai.AsyncOpenAI(base_url=base_url(server), api_key=clear, max_retries=0)
        try:
            await client.models.list()
            assert ok
        except openai.AuthenticationError:
            assert not ok


async def test_drain_turns_readiness_off_and_lets_streams_finish(upstream, gateway) -> None:
    fake = await upstream("openai")
    fake.then(Action(chunks=["a", "b", "c", "d"], chunk_delay=0.1))
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)

    async def consume() -> str:
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    task = asyncio.create_task(consume())
    await asyncio.wait_for(fake.in_stream.wait(), 3)
    drain = asyncio.create_task(server.drain())
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.admin_port}/readyz") as response:
            assert response.status == 503
    assert not drain.done()
    assert await task == "abcd"
    await asyncio.wait_for(drain, 3)


async def test_serve_exits_cleanly_on_sigterm_after_draining(upstream, tmp_path) -> None:
    fake = await upstream("openai")
    fake.then(Action(chunks=["x", "y", "z"], chunk_delay=0.2))
    snap = snapshot([provider("ns/openai", "openai", fake.url)])
    (tmp_path / "config.json").write_text(snap.config.model_dump_json())
    (tmp_path / "creds.json").write_text(snap.credentials.model_dump_json())
    port, admin = free_port(), free_port()
    script = textwrap.dedent(f"""
        import pathlib
        from lockgate.api.ir import Credentials, GatewayConfig
        from lockgate.proxy.server import ProxySettings, run
        from lockgate.proxy.source import Snapshot, StaticSource
        d = pathlib.Path({str(tmp_path)!r})
        snap = Snapshot(GatewayConfig.model_validate_json((d / "config.json").read_text()),
                        Credentials.model_validate_json((d / "creds.json").read_text()))
        run(StaticSource(snap), ProxySettings(port={port}, admin_port={admin}, drain_seconds=5))
    """)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    try:
        async with aiohttp.ClientSession() as session:
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{admin}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, "proxy never became ready"
                await asyncio.sleep(0.05)
            client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            os.kill(process.pid, signal.SIGTERM)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "xyz"
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_not_ready_until_the_first_snapshot(upstream) -> None:
    from lockgate.proxy.server import ProxyServer, ProxySettings

    fake = await upstream("openai")
    source = StaticSource()
    async with ProxyServer(source, ProxySettings(port=0, admin_port=0, access_log=None)) as server:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.admin_port}/readyz") as response:
                assert response.status == 503
            async with session.get(f"http://127.0.0.1:{server.port}/v1/models",
                                   headers={"Authorization": f"Bearer {KEY}"}) as response:
                assert response.status == 503
                assert (await response.json())["error"]["code"] == "not_ready"
                assert response.headers["x-request-id"]
            source.push(snapshot([provider("ns/openai", "openai", fake.url)]))
            await server.wait_ready()
            async with session.get(f"http://127.0.0.1:{server.admin_port}/readyz") as response:
                assert response.status == 200
