"""Generated HTTP tools, model tools, aggregates, the catalog and cross-replica sessions."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest
from mcp.types import PromptReference

from lockgate.api.ir import Alias, AliasTarget, AggregateMember, HttpTool, McpServer, ModelTool, Route, ToolArg
from lockgate.proxy.source import Snapshot
from tests.integration.mcp_fixtures.harness import (
    RestApi,
    fixture_upstream,
    gateway,
    key,
    llm_app,
    llm_provider,
    mcp_client,
    serve_app,
    snapshot,
    text_of,
    upstream_server,
)




def _http_tools_server(api: str) -> McpServer:
    return McpServer(id="team/orders", name="orders", path="/orders", kind="tools", description="Orders API", tools=(
        HttpTool(name="get_order", description="One order", method="GET",
                 url=f"{api}/shops/{{shop}}/orders/{{order_id}}", headers={"X-Static": "1"},
                 args=(ToolArg(name="shop", required=True, position="path"),
                       ToolArg(name="order_id", required=True, position="path"),
                       ToolArg(name="q", position="query"),
                       ToolArg(name="limit", type="integer", default=10, position="query"),
                       ToolArg(name="X-Trace", position="header")),
                 response_template="shop={{ json.path }} q={{ json.query.q }}"),
        HttpTool(name="create_order", method="POST", url=f"{api}/orders",
                 args=(ToolArg(name="item", required=True, position="body"),
                       ToolArg(name="size", enum=("S", "M"), default="M", position="body")),
                 response_template="{{ status }}"),
    ))


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_http_tool_reaches_the_api_with_encoded_arguments(mode: str) -> None:
    api = RestApi()
    async with serve_app(api.app()) as api_url:
        server = _http_tools_server(api_url)
        async with gateway(snapshot([server], [key("full", ("team/orders",))])) as base:
            async with mcp_client(f"{base}/orders/mcp", "sk-full", mode=mode) as client:
                tools = {t.name: t for t in (await client.list_tools()).tools}
                assert set(tools) == {"get_order", "create_order"}
                assert tools["get_order"].input_schema["required"] == ["shop", "order_id"]
                result = await client.call_tool("get_order", {
                    "shop": "a/b@evil.example:81", "order_id": "..", "q": "x&y=1 ü", "X-Trace": "t-1"})
                created = await client.call_tool("create_order", {"item": "tea"})
                bad = await client.call_tool("create_order", {"item": "tea", "size": "XL"})
    get, post = api.seen[0], api.seen[1]
    # The path value stays one segment of the path: no new host, port or path step.
    assert get["host"] == api_url.removeprefix("http://")
    assert get["raw_path"].startswith("/shops/a%2Fb%40evil.example%3A81/orders/%2E%2E?")
    assert get["query"] == {"q": "x&y=1 ü", "limit": "10"}
    assert get["headers"]["X-Trace"] == "t-1" and get["headers"]["X-Static"] == "1"
    assert "Authorization" not in get["headers"]
    assert text_of(result) == "shop=/shops/a/b@evil.example:81/orders/.. q=x&y=1 ü"
    assert post["method"] == "POST" and post["body"] == '{"item": "tea", "size": "M"}'
    assert text_of(created) == "200"
    assert bad.is_error and "must be one of" in text_of(bad)
    assert len(api.seen) == 2  # the refused call never reached the API


async def test_model_tool_answers_from_the_llm_with_progress() -> None:
    async with serve_app(llm_app(["Hello", ", ", "world"])) as llm:
        server = McpServer(id="team/llm", name="llm", path="/llm", kind="modelTools", model_tools=(
            ModelTool(model="tiny", tool_name="ask_tiny", description="A tiny model", max_tokens=64),))
        snap = snapshot([server], [key("full", ("team/llm",))], providers=(llm_provider(f"{llm}/v1"),))
        async with gateway(snap) as base:
            progress: list[float] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append(value)

            async with mcp_client(f"{base}/llm/mcp", "sk-full", mode="2026-07-28") as client:
                tools = (await client.list_tools()).tools
                assert [t.name for t in tools] == ["ask_tiny"]
                assert tools[0].input_schema["required"] == ["prompt"]
                result = await client.call_tool("ask_tiny", {"prompt": "hi", "max_tokens": 5},
                                                progress_callback=on_progress)
    assert text_of(result) == "Hello, world (hi)"
    assert progress == [1, 2, 3, 4]


async def test_model_tool_may_name_an_alias() -> None:
    # The translator accepts an alias of any openai Route as a model tool's model;
    # the gateway must resolve it the same way.
    async with serve_app(llm_app(["ok"])) as llm:
        server = McpServer(id="team/llm", name="llm", path="/llm", kind="modelTools", model_tools=(
            ModelTool(model="default-chat", tool_name="ask"),))
        route = Route(id="team/public", type="openai", hosts=("*",), aliases=(
            Alias(name="default-chat", targets=(AliasTarget(model="tiny"),)),))
        snap = snapshot([server], [key("full", ("team/llm",))], providers=(llm_provider(f"{llm}/v1"),), routes=(route,))
        async with gateway(snap) as base:
            async with mcp_client(f"{base}/llm/mcp", "sk-full", mode="2026-07-28") as client:
                result = await client.call_tool("ask", {"prompt": "hi"})
    assert not result.is_error
    assert text_of(result) == "ok (hi)"


async def test_aggregate_prefixes_and_routes_calls() -> None:
    api = RestApi()
    async with fixture_upstream() as upstream, serve_app(api.app()) as api_url:
        servers = [
            upstream_server("team/fixture", "/fixture", (upstream,)),
            _http_tools_server(api_url),
            McpServer(id="team/platform", name="platform", path="/platform", kind="aggregate", members=(
                AggregateMember(server="team/fixture", prefix="fx"),
                AggregateMember(server="team/orders", prefix="orders"))),
        ]
        keys = [key("full", ("team/platform",)),
                key("narrow", ("team/platform",), {"team/platform": ("fx__echo", "orders__*")})]
        async with gateway(snapshot(servers, keys)) as base:
            for mode in ("2026-07-28", "legacy"):
                async with mcp_client(f"{base}/platform/mcp", "sk-full", mode=mode) as client:
                    names = {t.name for t in (await client.list_tools()).tools}
                    assert {"fx__echo", "fx__add", "orders__get_order", "orders__create_order"} <= names
                    assert all(len(n) <= 64 for n in names)
                    assert text_of(await client.call_tool("fx__add", {"a": 1, "b": 2})) == "3"
                    prompts = {p.name for p in (await client.list_prompts()).prompts}
                    assert "fx__test_simple_prompt" in prompts
                    resources = {r.name: str(r.uri) for r in (await client.list_resources()).resources}
                    assert resources["fx__static_text"] == "test://static-text"
                    completed = await client.complete(PromptReference(type="ref/prompt", name="fx__test_prompt_with_arguments"),
                                                      {"name": "arg1", "value": "a"})
                    assert completed.completion.values == []
                    read = await client.read_resource("test://static-text")
                    assert read.contents[0].text == "This is the content of the static text resource."  # type: ignore[union-attr]
                    created = await client.call_tool("orders__create_order", {"item": "cake"})
                    assert text_of(created) == "200"
            async with mcp_client(f"{base}/platform/mcp", "sk-narrow", mode="legacy") as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert names == {"fx__echo", "orders__get_order", "orders__create_order"}
    assert [s["body"] for s in api.seen] == ['{"item": "cake", "size": "M"}'] * 2


async def test_catalog_lists_what_the_key_may_use() -> None:
    api = RestApi()
    async with serve_app(api.app()) as api_url:
        orders = _http_tools_server(api_url)
        other = orders.model_copy(update={"id": "team/other", "name": "other", "path": "/other"})
        snap = snapshot([orders, other], [key("narrow", ("team/orders",), {"team/orders": ("get_*",)})])
        async with gateway(snap) as base:
            async with httpx2.AsyncClient() as http:
                response = await http.get(f"{base}/v1/mcp/servers", headers={"Authorization": "Bearer sk-narrow"})
                anonymous = await http.get(f"{base}/v1/mcp/servers")
    assert response.status_code == 200 and anonymous.status_code == 401
    entries = response.json()["data"]
    assert [e["id"] for e in entries] == ["team/orders"]
    assert entries[0]["url"] == f"{base}/orders/mcp" and entries[0]["description"] == "Orders API"
    assert [t["name"] for t in entries[0]["tools"]] == ["get_order"]


def _fixture_aggregate(upstream: str) -> Snapshot:
    """An aggregate whose one member (prefix fx) is the fixture upstream, for a key that may use it."""
    servers = [upstream_server("team/fixture", "/fixture", (upstream,)),
               McpServer(id="team/platform", name="platform", path="/platform", kind="aggregate",
                         members=(AggregateMember(server="team/fixture", prefix="fx"),))]
    return snapshot(servers, [key("full", ("team/platform",))])


async def _first_line_with(lines: object, needle: str) -> dict:
    async for line in lines:  # type: ignore[attr-defined]
        if line.startswith("data:") and needle in line:
            return json.loads(line[5:])
    raise AssertionError(f"stream ended before {needle}")


async def test_aggregate_merges_list_changed_notifications() -> None:
    async with fixture_upstream() as upstream:
        async with gateway(_fixture_aggregate(upstream)) as base:
            url = f"{base}/platform/mcp"
            headers = {"Authorization": "Bearer sk-full", "Accept": "application/json, text/event-stream"}
            meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}}
            modern = {**headers, "MCP-Protocol-Version": "2026-07-28"}
            trigger = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": "fx__test_trigger_tool_change", "arguments": {}, "_meta": meta}}
            async with httpx2.AsyncClient(timeout=20.0) as http:
                listen = {"jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen",
                          "params": {"notifications": {"toolsListChanged": True}, "_meta": meta}}
                async with http.stream("POST", url, json=listen,
                                       headers={**modern, "Mcp-Method": "subscriptions/listen"}) as stream:
                    lines = stream.aiter_lines()
                    ack = await _first_line_with(lines, "acknowledged")
                    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
                    called = await http.post(url, json=trigger, headers={
                        **modern, "Mcp-Method": "tools/call", "Mcp-Name": "fx__test_trigger_tool_change"})
                    assert "tool list changed" in called.text
                    changed = await asyncio.wait_for(_first_line_with(lines, "list_changed"), 10)
                assert changed["method"] == "notifications/tools/list_changed"
                assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "sub-1"
                init = await http.post(url, headers=headers, json={
                    "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
                assert init.json()["result"]["capabilities"]["tools"]["listChanged"] is True
                legacy = {**headers, "Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
                async with http.stream("GET", url, headers=legacy) as stream:
                    assert stream.status_code == 200
                    lines = stream.aiter_lines()
                    for _ in range(50):  # the GET stream carries no acknowledgement: trigger until one arrives
                        await http.post(url, headers=legacy, json={
                            "jsonrpc": "2.0", "id": 3, "method": "tools/call",
                            "params": {"name": "fx__test_trigger_tool_change", "arguments": {}}})
                        try:
                            changed = await asyncio.wait_for(_first_line_with(lines, "list_changed"), 0.2)
                            break
                        except asyncio.TimeoutError:
                            continue
                assert changed["method"] == "notifications/tools/list_changed"


async def test_input_required_results_pass_through_an_aggregate() -> None:
    from mcp.types import ElicitResult

    async with fixture_upstream() as upstream:
        async with gateway(_fixture_aggregate(upstream)) as base:
            asked: list[str] = []

            async def elicit(context: object, params: object) -> ElicitResult:
                asked.append(params.message)  # type: ignore[attr-defined]
                return ElicitResult(action="accept", content={"name": "Ada"})

            async with mcp_client(f"{base}/platform/mcp", "sk-full", mode="2026-07-28",
                                  elicitation_callback=elicit) as client:
                result = await client.call_tool("fx__test_input_required_result_elicitation", {})
                rounds = await client.call_tool("fx__test_input_required_result_multi_round", {})
    assert text_of(result) == "Hello, Ada!"
    assert asked[0] == "What is your name?"
    assert text_of(rounds) == "Ada likes None."  # the second answer names no color: the state still round-tripped


async def test_tool_calls_count_against_the_keys_rpm() -> None:
    api = RestApi()
    async with serve_app(api.app()) as api_url:
        snap = snapshot([_http_tools_server(api_url)], [key("slow", ("team/orders",), rpm=2)])
        async with gateway(snap) as base:
            async with httpx2.AsyncClient(timeout=10.0) as http:
                headers = {"Authorization": "Bearer sk-slow", "Accept": "application/json, text/event-stream"}
                answers = [await http.post(f"{base}/orders/mcp", headers=headers, json={
                    "jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": "create_order", "arguments": {"item": "tea"}}}) for i in range(3)]
                listing = await http.post(f"{base}/orders/mcp", headers=headers,
                                          json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
    assert [a.status_code for a in answers] == [200, 200, 429], [a.text for a in answers]
    assert answers[2].json()["error"]["code"] == -32001
    assert listing.status_code == 200  # listing is not a call
    assert len(api.seen) == 2


async def test_legacy_clients_answer_input_requests_as_sampling_through_an_aggregate() -> None:
    from mcp.types import CreateMessageResult, TextContent

    async with fixture_upstream() as upstream:
        async with gateway(_fixture_aggregate(upstream)) as base:
            asked: list[str] = []

            async def sample(context: object, params: object) -> CreateMessageResult:
                asked.append(params.messages[0].content.text)  # type: ignore[attr-defined]
                return CreateMessageResult(role="assistant", model="m", content=TextContent(type="text", text="Paris"))

            async with mcp_client(f"{base}/platform/mcp", "sk-full", mode="legacy", sampling_callback=sample) as client:
                result = await client.call_tool("fx__test_input_required_result_sampling", {})
    assert asked == ["What is the capital of France?"]
    assert text_of(result) == "Model said: Paris"


async def test_old_sse_clients_reach_generated_tools() -> None:
    from mcp import Client
    from mcp.client.sse import sse_client

    api = RestApi()
    async with serve_app(api.app()) as api_url:
        async with gateway(snapshot([_http_tools_server(api_url)], [key("full", ("team/orders",))])) as base:
            transport = sse_client(f"{base}/orders/sse", headers={"Authorization": "Bearer sk-full"})
            async with Client(transport, mode="legacy") as client:  # type: ignore[arg-type]
                assert {t.name for t in (await client.list_tools()).tools} == {"get_order", "create_order"}
                result = await client.call_tool("get_order", {"shop": "s1", "order_id": "o 1"})
    assert text_of(result) == "shop=/shops/s1/orders/o 1 q="
    assert api.seen[0]["raw_path"] == "/shops/s1/orders/o%201?limit=10"


async def test_large_chunked_bodies_arrive_whole() -> None:
    api = RestApi()
    async with serve_app(api.app()) as api_url:
        async with gateway(snapshot([_http_tools_server(api_url)], [key("full", ("team/orders",))])) as base:
            item = "x" * 300_000
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": "create_order", "arguments": {"item": item}}}).encode()

            async def chunks():  # no Content-Length: sent chunked, in many pieces
                for start in range(0, len(body), 8192):
                    yield body[start:start + 8192]

            async with httpx2.AsyncClient(timeout=20.0) as http:
                answer = await http.post(f"{base}/orders/mcp", content=chunks(), headers={
                    "Authorization": "Bearer sk-full", "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert json.loads(api.seen[0]["body"])["item"] == item
