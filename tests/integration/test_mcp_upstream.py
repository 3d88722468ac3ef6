"""The `upstream` kind through the gateway, with the official SDK on both sides."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError
from mcp.types import CreateMessageResult, TextContent

from tests.integration.mcp_fixtures.harness import (
    UPSTREAM_TOKEN,
    fixture_upstream,
    gateway,
    key,
    mcp_client,
    one_era_only,
    serve_app,
    snapshot,
    text_of,
    upstream_server,
)

SERVER = "team/fixture"




@pytest.fixture(params=["stateful", "stateless"])
async def gw_url(request: pytest.FixtureRequest):
    flags = ("--stateless", "--json") if request.param == "stateless" else ()
    async with fixture_upstream(*flags) as upstream:
        snap = snapshot([upstream_server(SERVER, "/fixture", (upstream,))], [
            key("full", (SERVER,)),
            key("narrow", (SERVER,), {SERVER: ("add", "echo", "whoami")}),
            key("none", ()),
        ])
        async with gateway(snap) as base:
            yield f"{base}/fixture/mcp"


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy", "auto"])
async def test_lists_and_calls_tools_in_each_era(gw_url: str, mode: str) -> None:
    async with mcp_client(gw_url, "sk-full", mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"add", "echo", "test_simple_text", "secret_tool"} <= names
        result = await client.call_tool("add", {"a": 2, "b": 40})
        assert not result.is_error and text_of(result) == "42"


async def test_gateway_sends_its_own_credential_upstream(gw_url: str) -> None:
    async with mcp_client(gw_url, "sk-full", mode="legacy") as client:
        result = await client.call_tool("whoami", {})
    assert text_of(result) == f"Bearer {UPSTREAM_TOKEN}"


async def test_key_sees_and_calls_only_allowed_tools(gw_url: str) -> None:
    async with mcp_client(gw_url, "sk-narrow", mode="2026-07-28") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"add", "echo", "whoami"}
        with pytest.raises(MCPError, match="unknown tool"):
            await client.call_tool("secret_tool", {})


async def test_key_without_the_server_is_refused(gw_url: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(gw_url, headers={"Authorization": "Bearer sk-none", "Accept": "application/json, text/event-stream"},
                                   json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                                       "protocolVersion": "2025-11-25", "capabilities": {},
                                       "clientInfo": {"name": "t", "version": "1"}}})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == -32003
        anonymous = await http.post(gw_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert anonymous.status_code == 401


async def test_sampling_is_relayed_in_a_legacy_session() -> None:
    async with fixture_upstream() as upstream:
        snap = snapshot([upstream_server(SERVER, "/fixture", (upstream,))], [key("full", (SERVER,))])
        async with gateway(snap) as base:
            asked: list[str] = []

            async def sample(context: object, params: object) -> CreateMessageResult:
                asked.append(params.messages[0].content.text)  # type: ignore[attr-defined]
                return CreateMessageResult(role="assistant", model="client-model",
                                           content=TextContent(type="text", text="Paris"))

            async with mcp_client(f"{base}/fixture/mcp", "sk-full", mode="legacy", sampling_callback=sample) as client:
                result = await client.call_tool("test_sampling", {"prompt": "Capital of France?"})
    assert asked == ["Capital of France?"]
    assert text_of(result) == "LLM response: Paris"


async def test_sse_transport_lists_and_calls() -> None:
    async with fixture_upstream() as upstream:
        snap = snapshot([upstream_server(SERVER, "/fixture", (upstream,))], [key("full", (SERVER,))])
        async with gateway(snap) as base:
            transport = sse_client(f"{base}/fixture/sse", headers={"Authorization": "Bearer sk-full"})
            async with Client(transport, mode="legacy") as client:  # type: ignore[arg-type]
                names = {t.name for t in (await client.list_tools()).tools}
                assert "echo" in names
                result = await client.call_tool("echo", {"text": "über / ?&"})
    assert text_of(result) == "über / ?&"


@pytest.mark.parametrize("upstream_era, client_mode", [("legacy", "2026-07-28"), ("modern", "legacy"),
                                                       ("legacy", "legacy"), ("modern", "2026-07-28")])
async def test_gateway_speaks_each_upstream_its_own_era(upstream_era: str, client_mode: str) -> None:
    async with fixture_upstream() as dual, serve_app(one_era_only(dual, upstream_era)) as front:
        snap = snapshot([upstream_server(SERVER, "/fixture", (f"{front}/mcp",))], [key("full", (SERVER,))])
        async with gateway(snap) as base:
            async with mcp_client(f"{base}/fixture/mcp", "sk-full", mode=client_mode) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert "add" in names
                assert text_of(await client.call_tool("add", {"a": 5, "b": 6})) == "11"
                assert text_of(await client.call_tool("whoami", {})) == f"Bearer {UPSTREAM_TOKEN}"


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_http_sse_upstream_is_served_in_both_eras(mode: str) -> None:
    async with fixture_upstream("--sse") as upstream:
        snap = snapshot([upstream_server(SERVER, "/fixture", (upstream,), transport="sse")], [
            key("full", (SERVER,)), key("narrow", (SERVER,), {SERVER: ("echo",)})])
        async with gateway(snap) as base:
            async with mcp_client(f"{base}/fixture/mcp", "sk-full", mode=mode) as client:
                assert "add" in {t.name for t in (await client.list_tools()).tools}
                assert text_of(await client.call_tool("add", {"a": 1, "b": 2})) == "3"
                assert text_of(await client.call_tool("whoami", {})) == f"Bearer {UPSTREAM_TOKEN}"
            async with mcp_client(f"{base}/fixture/mcp", "sk-narrow", mode=mode) as client:
                assert {t.name for t in (await client.list_tools()).tools} == {"echo"}


async def test_safety_checks_answer_with_proper_errors() -> None:
    from tests.integration.mcp_fixtures.harness import free_port

    dead = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
    snap = snapshot([upstream_server(SERVER, "/fixture", (dead,))], [key("full", (SERVER,))])
    async with gateway(snap) as base:
        url = f"{base}/fixture/mcp"
        headers = {"Authorization": "Bearer sk-full", "Accept": "application/json, text/event-stream"}
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "add", "arguments": {}}}
        async with httpx2.AsyncClient(timeout=10.0) as http:
            down = await http.post(url, headers=headers, json=call)
            assert down.status_code == 200 and down.json()["id"] == 7
            assert down.json()["error"]["code"] == -32000 and "upstream" in down.json()["error"]["message"]
            rebinding = await http.post(url, headers={**headers, "Origin": "http://evil.example.com"}, json=call)
            assert rebinding.status_code == 403
            wrong_host = await http.post(url, headers={**headers, "Host": "evil.example.com"}, json=call)
            assert wrong_host.status_code == 403
            huge = await http.post(url, headers=headers, content=b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"p":"'
                                   + b"a" * (11 * 1024 * 1024) + b'"}}')
            assert huge.status_code == 413
            garbage = await http.post(url, headers=headers, content=b"{not json")
            assert garbage.status_code == 400 and garbage.json()["error"]["code"] == -32700
            mismatch = await http.post(url, headers={**headers, "MCP-Protocol-Version": "2026-07-28",
                                                     "Mcp-Method": "tools/call", "Mcp-Name": "other"}, json=call)
            assert mismatch.status_code == 400 and mismatch.json()["error"]["code"] == -32020
            stream = await http.get(url, headers=headers)
            assert stream.status_code == 405
            unknown = await http.post(f"{base}/nothing/mcp", headers=headers, json=call)
            assert unknown.status_code == 404


async def test_a_silent_upstream_times_out_into_an_error() -> None:
    from aiohttp import web

    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/mcp", hang)
    async with serve_app(app) as silent:
        server = upstream_server(SERVER, "/fixture", (f"{silent}/mcp",))
        server = server.model_copy(update={"upstream": server.upstream.model_copy(update={"timeout": 1.0})})  # type: ignore[union-attr]
        async with gateway(snapshot([server], [key("full", (SERVER,))])) as base:
            async with httpx2.AsyncClient(timeout=10.0) as http:
                started = asyncio.get_running_loop().time()
                answer = await http.post(f"{base}/fixture/mcp", headers={"Authorization": "Bearer sk-full"},
                                         json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
                elapsed = asyncio.get_running_loop().time() - started
        never.set()
    assert answer.json()["error"]["code"] == -32000 and answer.json()["id"] == 3
    assert 0.9 < elapsed < 5


async def test_legacy_client_answers_a_modern_only_upstreams_input_requests() -> None:
    from mcp.types import ElicitResult

    async with fixture_upstream() as dual, serve_app(one_era_only(dual, "modern")) as front:
        snap = snapshot([upstream_server(SERVER, "/fixture", (f"{front}/mcp",))], [key("full", (SERVER,))])
        async with gateway(snap) as base:
            async def elicit(context: object, params: object) -> ElicitResult:
                return ElicitResult(action="accept", content={"name": "Grace"})

            async with mcp_client(f"{base}/fixture/mcp", "sk-full", mode="legacy", elicitation_callback=elicit) as client:
                result = await client.call_tool("test_input_required_result_elicitation", {})
                rounds = await client.call_tool("test_input_required_result_multi_round", {})
    assert text_of(result) == "Hello, Grace!"
    assert text_of(rounds) == "Grace likes None."
