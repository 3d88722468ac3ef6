"""Traces through a real OpenTelemetry Collector: a stream, a failover and an MCP tool call
each arrive as one trace with the right parent/child links, kinds and attributes, continuing
the client's `traceparent` and handing it to the upstreams."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from aiohttp import web

from lockgate.api import ir
from lockgate.proxy.server import ProxyServer, ProxySettings
from lockgate.proxy.source import StaticSource
from lockgate.proxy.tracing import TracingSettings
from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.conftest import base_url
from tests.integration.mcp_fixtures import harness
from tests.otelcol import Collector, Span, collector
from tests.upstreams import Action

MESSAGES = [{"role": "user", "content": "a secret prompt"}]


@pytest.fixture
async def otel(tmp_path: Path) -> AsyncIterator[Collector]:
    async with collector(tmp_path) as running:
        yield running


def tracing(otel: Collector) -> TracingSettings:
    return TracingSettings(enabled=True, endpoint=otel.endpoint, service_name="lockgate-test")


def traceparent() -> tuple[str, str, str]:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, f"00-{trace_id}-{parent}-01"


def one_trace(spans: list[Span], trace_id: str) -> dict[str, Span]:
    mine = [s for s in spans if s.trace_id == trace_id]
    assert all(s.service == "lockgate-test" for s in mine)
    return {s.span_id: s for s in mine}


def named(spans: dict[str, Span], name: str) -> list[Span]:
    return [s for s in spans.values() if s.name == name]


async def test_a_stream_is_one_trace_continuing_the_client_and_reaching_the_upstream(upstream, gateway, otel) -> None:
    fake = await upstream("openai")
    server: ProxyServer = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]), tracing=tracing(otel))
    trace_id, client_span, header = traceparent()
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                  extra_headers={"traceparent": header})
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello there, friend."
    assert server.gateway.deps.tracing is not None and server.gateway.deps.tracing.flush()

    spans = one_trace(await otel.wait_for(lambda s: any(x.trace_id == trace_id and x.kind == "SERVER" for x in s)),
                      trace_id)
    [root] = [s for s in spans.values() if s.kind == "SERVER"]
    assert root.parent_id == client_span  # the client's trace, continued
    assert root.name == "POST /v1/chat/completions"
    assert root.attributes["lockgate.consumer"] == "team-a"
    assert root.attributes["gen_ai.request.model"] == "gpt-4o"
    assert root.attributes["lockgate.provider"] == "ns/openai"
    assert root.attributes["gen_ai.usage.output_tokens"] == 7
    assert root.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert root.attributes["lockgate.request_id"]
    [admit] = named(spans, "quota admission")
    [call] = named(spans, "chat gpt-4o-up")
    assert admit.parent_id == call.parent_id == root.span_id
    assert call.kind == "CLIENT"
    assert call.attributes["gen_ai.provider.name"] == "openai"
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.request.stream"] is True
    assert call.attributes["server.address"] == "127.0.0.1" and call.attributes["server.port"] == fake.port
    assert call.attributes["gen_ai.usage.input_tokens"] == 11
    assert call.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert "gen_ai.input.messages" not in call.attributes  # no content unless allowed
    assert not any("secret prompt" in str(v) for s in spans.values() for v in s.attributes.values())
    # The upstream was told it works for the attempt's span, in the same trace.
    sent = fake.received[-1].headers["traceparent"]
    assert sent.split("-")[1:3] == [trace_id, call.span_id]


async def test_a_failover_shows_every_attempt_under_one_request(upstream, gateway, otel, tmp_path: Path) -> None:
    primary = await upstream("openai")
    backup = await upstream("openai", text="from the backup")
    primary.then(Action(status=503), Action(status=500))
    snap = snapshot([provider("ns/primary", "openai", primary.url, retries=1),
                     provider("ns/backup", "openai", backup.url, priority=1)])
    access_log = tmp_path / "access.log"
    server = await gateway(snap, tracing=tracing(otel), access_log=str(access_log))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    answer = await client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert answer.parse().choices[0].message.content == "from the backup"
    assert server.gateway.deps.tracing is not None and server.gateway.deps.tracing.flush()

    spans = await otel.wait_for(lambda s: any(x.kind == "SERVER" for x in s))
    [root] = [s for s in spans if s.kind == "SERVER"]
    mine = one_trace(spans, root.trace_id)
    attempts = sorted((s for s in mine.values() if s.kind == "CLIENT"),
                      key=lambda s: (s.attributes["lockgate.provider"] != "ns/primary", s.attributes["lockgate.attempt"]))
    assert [(s.attributes["lockgate.provider"], s.attributes["lockgate.attempt"], s.status) for s in attempts] == [
        ("ns/primary", 1, "ERROR"), ("ns/primary", 2, "ERROR"), ("ns/backup", 1, "UNSET")]
    assert all(s.parent_id == root.span_id for s in attempts)
    assert attempts[0].attributes["error.type"] == "upstream_error"
    assert len(named(mine, "quota admission")) == 2  # one reservation per provider tried
    assert root.attributes["lockgate.attempts"] == 3
    assert root.attributes["http.response.status_code"] == 200
    assert root.status == "UNSET"
    # The request id is the span's; the client got it too, and the access log line leads to the trace.
    assert root.attributes["lockgate.request_id"] == answer.headers["x-request-id"]
    server.gateway.deps.access_log.flush()
    [line] = [json.loads(x) for x in access_log.read_text().splitlines()]
    assert (line["request_id"], line["trace_id"], line["span_id"]) == (
        answer.headers["x-request-id"], root.trace_id, root.span_id)


async def test_an_mcp_tool_call_and_its_upstream_request(otel, tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []

    async with harness.fixture_upstream("--stateless", "--json") as fixture:
        async def record(request: web.Request) -> web.StreamResponse:
            seen.append(dict(request.headers))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in harness.HOP_BY_HOP | {"host"}}
            return await harness._relay(request, request.method, fixture, headers, await request.read())

        async with harness.serve_app(harness._forwarding_app(record, "/mcp")) as relay:
            server_id = "team/fixture"
            snap = harness.snapshot([harness.upstream_server(server_id, "/fixture", (f"{relay}/mcp",))],
                                    [harness.key("full", (server_id,))])
            proxy = ProxyServer(StaticSource(snap), ProxySettings(port=0, admin_port=0, drain_seconds=0.5,
                                                                   access_log=None, tracing=tracing(otel)))
            async with proxy:
                await proxy.wait_ready()
                async with harness.mcp_client(f"http://127.0.0.1:{proxy.port}/fixture/mcp", "sk-full",
                                              mode="2026-07-28") as client:
                    result = await client.call_tool("add", {"a": 2, "b": 40})
                assert harness.text_of(result) == "42"
                assert proxy.gateway.deps.tracing is not None and proxy.gateway.deps.tracing.flush()
                spans = await otel.wait_for(lambda s: any(x.name == "tools/call add" and x.kind == "SERVER" for x in s))
    [call] = [s for s in spans if s.name == "tools/call add" and s.kind == "SERVER"]
    mine = one_trace(spans, call.trace_id)
    assert call.attributes["gen_ai.operation.name"] == "execute_tool"
    assert call.attributes["gen_ai.tool.name"] == "add"
    assert call.attributes["mcp.method.name"] == "tools/call"
    assert call.attributes["lockgate.mcp_server"] == server_id
    assert call.attributes["lockgate.consumer"] == "full"
    children = [s for s in mine.values() if s.parent_id == call.span_id]
    assert all(s.kind == "CLIENT" for s in children)  # the call itself and any era probe it needed first
    [upstream_call] = [s for s in children if s.name == "tools/call add"]
    assert upstream_call.attributes["gen_ai.tool.name"] == "add"
    assert upstream_call.attributes["server.address"] == "127.0.0.1"
    traced = [h["traceparent"] for h in seen if h.get("Mcp-Method") == "tools/call"]
    assert traced and traced[-1].split("-")[1:3] == [call.trace_id, upstream_call.span_id]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_the_official_exporters_carry_the_same_spans(upstream, gateway, otel, protocol: str) -> None:
    fake = await upstream("openai")
    settings = TracingSettings(enabled=True, protocol=protocol,  # type: ignore[arg-type]
                               endpoint=otel.grpc_endpoint if protocol == "grpc" else otel.endpoint,
                               service_name="lockgate-test")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)]), tracing=settings)
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert server.gateway.deps.tracing is not None and server.gateway.deps.tracing.flush()
    spans = await otel.wait_for(lambda s: any(x.kind == "CLIENT" for x in s))
    [root] = [s for s in spans if s.kind == "SERVER"]
    [call] = [s for s in one_trace(spans, root.trace_id).values() if s.kind == "CLIENT"]
    assert call.parent_id == root.span_id and call.name == "chat gpt-4o-up"
    assert call.attributes["gen_ai.usage.output_tokens"] == 7 and root.attributes["lockgate.consumer"] == "team-a"
