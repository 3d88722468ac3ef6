"""Errors in OpenAI's JSON, hosts, aliases, the other endpoints, admin endpoints and metrics."""

from __future__ import annotations

import json

import aiohttp
import openai
import pytest

from lockgate.api import ir
from tests.gatewayconfig import KEY, key, provider, snapshot
from tests.integration.conftest import base_url
from tests.upstreams import Action

AUTH = {"Authorization": f"Bearer {KEY}"}
MESSAGES = [{"role": "user", "content": "hi"}]


async def _post(server, path: str, *, data: bytes | None = None, json_body=None, headers=None):  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{server.port}{path}", data=data, json=json_body,
                                headers=headers or AUTH) as response:
            return response.status, response.headers, await response.json(content_type=None)


async def test_request_errors_are_precise(upstream, gateway) -> None:
    fake = await upstream("openai")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url)],
                                    [key("ns/a", KEY, models=("gpt-*",))]), max_body_bytes=4096)
    status, headers, body = await _post(server, "/v1/chat/completions", data=b"{not json")
    assert (status, body["error"]["code"]) == (400, "invalid_json") and headers["x-request-id"]
    status, _, body = await _post(server, "/v1/chat/completions", json_body={"messages": MESSAGES})
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "missing_required_parameter", "model")
    status, _, body = await _post(server, "/v1/chat/completions", json_body={"model": "gpt-4o"})
    assert (status, body["error"]["param"]) == (400, "messages")
    status, _, body = await _post(server, "/v1/chat/completions", data=b'{"model": "' + b"x" * 8000 + b'"}')
    assert (status, body["error"]["code"]) == (413, "request_too_large")
    status, headers, body = await _post(server, "/v1/nowhere", json_body={})
    assert (status, body["error"]["code"]) == (404, "unknown_url") and len(headers["x-request-id"]) == 24
    status, _, body = await _post(server, "/v1/chat/completions", json_body={"model": "nope", "messages": MESSAGES})
    assert (status, body["error"]["code"]) == (404, "model_not_found")
    snap = snapshot([provider("ns/openai", "openai", fake.url, [("gpt-4o", "g"), ("o1", "o1")])],
                    [key("ns/a", KEY, models=("gpt-*",))])
    await server.gateway.apply(snap)
    status, _, body = await _post(server, "/v1/chat/completions", json_body={"model": "o1", "messages": MESSAGES})
    assert (status, body["error"]["code"], body["error"]["type"]) == (403, "model_not_allowed", "permission_error")
    async with aiohttp.ClientSession() as session:
        async with session.get(base_url(server) + "/chat/completions", headers=AUTH) as response:
            assert response.status == 405


async def test_hosts_aliases_and_fallbacks(upstream, gateway) -> None:
    qwen = await upstream("vllm", text="qwen")
    mini = await upstream("openai", text="mini")
    qwen.then(*[Action(status=500)] * 20)
    routes = [ir.Route(id="ns/public", type="openai", hosts=("127.0.0.1",), models=("gpt-4o-mini", "qwen*"),
                       aliases=(ir.Alias(name="chat-default", targets=(ir.AliasTarget(model="qwen", weight=100),),
                                         fallbacks=("gpt-4o-mini",)),)),
              ir.Route(id="ns/other", type="openai", hosts=("other.example",), models=("text-*",))]
    snap = snapshot([provider("ns/qwen", "openai", qwen.url, [("qwen", "qwen")]),
                     provider("ns/openai", "openai", mini.url, [("gpt-4o-mini", "mini"), ("text-embed", "te")])],
                    routes=routes)
    server = await gateway(snap)
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    answer = await client.chat.completions.create(model="chat-default", messages=MESSAGES)
    assert answer.choices[0].message.content == "mini"
    assert sorted([m.id async for m in client.models.list()]) == ["chat-default", "gpt-4o-mini", "qwen"]
    with pytest.raises(openai.NotFoundError):  # served, but not on this host
        await client.embeddings.create(model="text-embed", input="x")
    other = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0,
                               default_headers={"Host": "other.example"})
    embedding = await other.embeddings.create(model="text-embed", input=["a", "b"])
    assert len(embedding.data) == 2
    unknown = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0,
                                 default_headers={"Host": "unknown.example"})
    with pytest.raises(openai.NotFoundError):
        await unknown.models.list()


async def test_completions_embeddings_responses(upstream, gateway) -> None:
    fake = await upstream("openai", text="done")
    server = await gateway(snapshot([provider("ns/openai", "openai", fake.url, [("gpt-4o", "g"), ("emb", "e")])]))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    completion = await client.completions.create(model="gpt-4o", prompt="say")
    assert completion.choices[0].text == "done"
    chunks = [c async for c in await client.completions.create(model="gpt-4o", prompt="say", stream=True)]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "done"
    embedding = await client.embeddings.create(model="emb", input="x")
    assert embedding.data[0].embedding == [0.1, 0.2, 0.3]
    response = await client.responses.create(model="gpt-4o", input="hello")
    assert response.output_text == "done"
    assert fake.received[-1].path == "/v1/responses"


async def test_admin_metrics_config_and_access_log(upstream, gateway, tmp_path) -> None:
    fake = await upstream("openai")
    snap = snapshot([provider("ns/openai", "openai", fake.url)])
    log_path = tmp_path / "access.log"
    server = await gateway(snap, access_log=str(log_path))
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "secret prompt"}])
    admin = f"http://127.0.0.1:{server.admin_port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(admin + "/config") as response:
            config = await response.json()
            assert config["hash"] == snap.config.hash and config["credentialsHash"] and config["loadedAt"]
        async with session.get(admin + "/readyz") as response:
            assert response.status == 200
        async with session.get(admin + "/healthz") as response:
            assert response.status == 200
        async with session.get(admin + "/usage") as response:
            assert response.status == 200 and isinstance(await response.json(), dict)
        async with session.get(admin + "/metrics") as response:
            metrics = await response.text()
    assert ('lockgate_requests_total{consumer="team-a",error_type="",gateway="lockgate",host="*",model="gpt-4o",'
            'provider="ns/openai",status_code="200",upstream_model="gpt-4o-up"} 1.0') in metrics
    for name in ("gen_ai_client_operation_duration_seconds_bucket", "gen_ai_server_time_to_first_token_seconds_bucket",
                 "lockgate_gateway_overhead_seconds_bucket", "lockgate_requests_in_flight"):
        assert name in metrics
    server.gateway.deps.access_log.flush()
    logged = log_path.read_text()
    lines = [json.loads(line) for line in logged.splitlines()]
    assert lines[-1]["status"] == 200 and lines[-1]["consumer"] == "team-a" and lines[-1]["output_tokens"] == 7
    assert "secret prompt" not in logged and KEY not in logged and "secret-of" not in logged
