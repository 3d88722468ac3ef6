"""Rollouts cut no stream: `--drain-seconds` on a real `lockgate run` process, SIGTERM mid-stream.

A stream longer than the default drain (10 s) survives SIGTERM with `--drain-seconds 60` and
finishes whole; one still running at a short deadline ends with an OpenAI error event, and a
request with no answer yet gets a 503 in OpenAI's error format, both before the process exits.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.integration.gateway_process import Gateway, gateway_process
from tests.upstreams import Action

KEY = "lg-drain-test-key-0123456789abcdef"
PIECES = 13  # one a second: the stream outlives the default drain of 10 s
MANIFESTS = """\
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: ai}}
stringData: {{openai: sk-o, consumer: {key}}}
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: openai, namespace: ai}}
spec:
  type: openai
  endpoint: {url}
  credentials: {{secretRef: {{name: creds, key: openai}}}}
  retries: {{attempts: 0}}
  models: [{{name: gpt-4o}}]
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: team, namespace: ai}}
spec: {{consumer: team, existingSecret: {{name: creds, key: consumer}}}}
---
apiVersion: lockgate.io/v1alpha1
kind: Route
metadata: {{name: public, namespace: ai}}
spec: {{type: openai, hosts: ["127.0.0.1"]}}
"""
MESSAGES = [{"role": "user", "content": "hi"}]

pytestmark = pytest.mark.timeout(90)


def manifests(tmp: Path, url: str) -> Path:
    folder = tmp / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(MANIFESTS.format(key=KEY, url=url))
    return folder


async def first_piece_then_sigterm(gateway: Gateway) -> tuple[openai.AsyncStream, str, float]:
    """A stream opened and its first piece read; then SIGTERM. The stream, that piece, and when."""
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=120)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    first = ""
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = chunk.choices[0].delta.content
            break
    gateway.process.send_signal(signal.SIGTERM)
    return stream, first, time.monotonic()


async def rest_of(stream: openai.AsyncStream) -> str:
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def exit_code(gateway: Gateway, timeout: float) -> int:
    return await asyncio.to_thread(gateway.process.wait, timeout)


async def test_a_stream_longer_than_the_default_drain_survives_sigterm(upstream, tmp_path: Path) -> None:
    fake = await upstream("openai")
    fake.then(Action(chunks=[f"p{i} " for i in range(PIECES)], chunk_delay=1.0))
    with gateway_process(["run", "-f", str(manifests(tmp_path, fake.url)), "--drain-seconds", "60"],
                         tmp_path) as gateway:
        stream, first, signalled = await first_piece_then_sigterm(gateway)
        reading = asyncio.create_task(rest_of(stream))
        async with httpx.AsyncClient() as admin:  # readiness turned off at once, the stream goes on
            deadline = time.monotonic() + 5
            while (await admin.get(f"{gateway.admin}/readyz")).status_code != 503:
                assert time.monotonic() < deadline, "readiness stayed on after SIGTERM"
        text = first + await reading
        finished = time.monotonic()
        assert text == "".join(f"p{i} " for i in range(PIECES))
        assert finished - signalled > 10.5, "the stream must outlive the default drain to prove anything"
        assert await exit_code(gateway, 15) == 0
        assert "ended" not in gateway.logs()  # nothing was cut


async def test_what_runs_past_the_deadline_ends_in_openais_error_format(upstream, tmp_path: Path) -> None:
    streaming = await upstream("openai")
    streaming.then(Action(chunks=[f"p{i} " for i in range(PIECES)], chunk_delay=1.0))
    slow = await upstream("openai")
    slow.then(Action(hang=True))
    folder = manifests(tmp_path, streaming.url)
    (folder / "slow.yaml").write_text(
        MANIFESTS.format(key=KEY, url=slow.url).split("---\n")[1].replace("name: openai,", "name: slow,")
        .replace("gpt-4o", "gpt-slow"))
    with gateway_process(["run", "-f", str(folder), "--drain-seconds", "2"], tmp_path) as gateway:
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=60)
        waiting = asyncio.create_task(client.chat.completions.create(model="gpt-slow", messages=MESSAGES))
        deadline = time.monotonic() + 10
        while not slow.received:  # the request reached the upstream, which does not answer
            assert time.monotonic() < deadline, gateway.logs()
            await asyncio.sleep(0.02)
        stream, first, signalled = await first_piece_then_sigterm(gateway)
        with pytest.raises(openai.APIError) as streamed:
            await rest_of(stream)
        ended = time.monotonic() - signalled
        assert "shutting down" in streamed.value.message
        assert first == "p0 " and 1.5 < ended < 6
        with pytest.raises(openai.APIStatusError) as answered:
            await waiting
        assert answered.value.status_code == 503
        assert answered.value.body["code"] == "server_shutting_down"  # type: ignore[index]
        assert await exit_code(gateway, 10) == 0
        assert "ended 2 request(s)" in gateway.logs()


async def test_an_idle_mcp_stream_ends_cleanly_when_the_drain_starts() -> None:
    """An MCP client's SSE channel with nothing pending only waits for news: a draining replica
    closes it at once (the body ends properly, no reset), so the client reconnects to a replica
    that stays, and the drain does not wait for it."""
    from lockgate.api.ir import HttpTool, McpServer
    from lockgate.proxy.server import ProxyServer, ProxySettings
    from lockgate.proxy.source import StaticSource
    from tests.integration.mcp_fixtures.harness import key, snapshot

    tools = McpServer(id="team/orders", name="orders", path="/orders", kind="tools", description="Orders",
                      tools=(HttpTool(name="ping", method="GET", url="http://127.0.0.1:9/ping"),))
    server = ProxyServer(StaticSource(snapshot([tools], [key("full", ("team/orders",))])),
                         ProxySettings(port=0, admin_port=0, drain_seconds=30, access_log=None))
    await server.start()
    try:
        await server.wait_ready()
        async with httpx.AsyncClient(timeout=10) as http:
            async with http.stream("GET", f"http://127.0.0.1:{server.port}/orders/sse",
                                   headers={"Authorization": "Bearer sk-full"}) as stream:
                lines = stream.aiter_lines()
                assert (await anext(lines)) == "event: endpoint"
                started = time.monotonic()
                drain = asyncio.create_task(server.drain())
                rest = [line async for line in lines]  # ends, without an error, when the body ends
                assert any(line.startswith("data: ") for line in rest)
            await asyncio.wait_for(drain, 5)
            assert time.monotonic() - started < 5  # not the 30 s drain: nothing was in flight
    finally:
        await server.stop()
