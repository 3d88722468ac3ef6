"""A replica that stops hands its work back; a client that drops an upload leaves nothing; a line
that fails once is tried again; lists page with cursors through the SDK."""

from __future__ import annotations

import asyncio

import openai
import pytest

from lockgate.proxy.pipeline import STEPS, Context
from lockgate.proxy.pipeline.step import Step
from lockgate.proxy.server import ProxyServer, ProxySettings
from lockgate.proxy.source import StaticSource
from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.batch.batches import chat_lines, output_rows, submit, wait_until
from tests.integration.batch.echo_upstream import EchoUpstream
from tests.integration.conftest import base_url

pytestmark = pytest.mark.redis


def _snap(echo: EchoUpstream):  # type: ignore[no-untyped-def]
    return snapshot([provider("ns/local", "openai", echo.url, [("gpt-4o", "gpt-4o")])])


async def test_a_stopping_replica_gives_its_chunks_back(gateway, echo, batch_settings) -> None:
    first = await gateway(_snap(echo), batch=batch_settings)
    echo.gate = asyncio.Event()
    created = await submit(openai.AsyncOpenAI(base_url=base_url(first), api_key=KEY), chat_lines(40))
    await asyncio.wait_for(echo.arrived.wait(), 20)
    await first.drain()  # its lines in flight are given up, their chunks queued again
    assert echo.total == 0
    second = await gateway(_snap(echo), batch=batch_settings)
    echo.gate.set()
    client = openai.AsyncOpenAI(base_url=base_url(second), api_key=KEY)
    done = await wait_until(client, created.id)
    assert done.status == "completed" and done.request_counts is not None and done.request_counts.completed == 40
    rows = await output_rows(client, done.output_file_id)
    assert sorted(r["custom_id"] for r in rows) == sorted(f"line-{i}" for i in range(40))


async def test_an_upload_cut_off_midway_leaves_no_file(gateway, echo, batch_settings, tmp_path) -> None:
    server = await gateway(_snap(echo), batch=batch_settings)
    boundary = "cutcutcut"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write((f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 10000000\r\n\r\n"
                  ).encode() + head + chat_lines(200))
    await writer.drain()
    writer.close()  # the client goes away mid-file
    await writer.wait_closed()
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
    upload = await client.files.create(file=("in.jsonl", chat_lines(1)), purpose="batch")  # served after the cut
    assert [f.id async for f in client.files.list()] == [upload.id]
    stored = sorted(p.name for p in (tmp_path / "files").iterdir())
    assert stored == [upload.id], stored  # no partial file left behind


async def test_a_failed_line_is_tried_again_and_lists_page(gateway, echo, batch_settings) -> None:
    server = await gateway(_snap(echo), batch=batch_settings)
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
    first = await submit(client, chat_lines(2, prompt="flaky{i}"))
    second = await submit(client, chat_lines(1))
    done = await wait_until(client, first.id)
    assert done.status == "completed" and done.request_counts is not None and done.request_counts.failed == 0
    assert echo.seen["flaky0 (failed)"] == 1 and echo.seen["flaky0"] == 1
    await wait_until(client, second.id)
    assert [b.id async for b in client.batches.list(limit=1)] == [second.id, first.id]
    files = [f.id async for f in client.files.list(limit=1)]
    assert len(files) == 4 and files == sorted(files, reverse=True)
    assert [f.id async for f in client.files.list(limit=2, order="asc")] == sorted(files)
    assert [f.id async for f in client.files.list(purpose="batch_output")] == [
        f for f in files if f not in (first.input_file_id, second.input_file_id)]


class _Probe(Step):
    name = "probe"

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def request(self, ctx: Context) -> None:
        self.seen.append(ctx.priority)


async def test_lines_run_at_the_batch_priority(echo, batch_settings) -> None:
    seen: list[str] = []
    settings = ProxySettings(port=0, admin_port=0, access_log=None, batch=batch_settings)
    async with ProxyServer(StaticSource(_snap(echo)), settings, steps=[*STEPS, lambda deps: _Probe(seen)]) as server:
        await server.wait_ready()
        client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY)
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "live"}])
        done = await wait_until(client, (await submit(client, chat_lines(3))).id)
        assert done.status == "completed"
    assert seen == ["interactive", "batch", "batch", "batch"]
