"""MCP sampling answered by the gateway: an SDK server asks, a gateway model answers, the key pays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import CreateMessageResult, ElicitResult, ListRootsResult, Root, TextContent

from lockgate.api.ir import ModelPreferences, Provider, ProviderModel, SamplingPolicy
from lockgate.proxy.server import ProxyServer, ProxySettings
from lockgate.proxy.source import StaticSource
from tests.integration.mcp_fixtures.harness import fixture_upstream, key, mcp_client, snapshot, text_of, upstream_server
from tests.upstreams import FakeUpstream

SERVER = "team/fixture"
ERAS = ["2026-07-28", "legacy"]


def llm(pid: str, url: str, model: str) -> Provider:
    return Provider(id=pid, type="openai", base_url=url, credential="llm",
                    models=(ProviderModel(name=model, upstream_model=f"{model}-up"),))


@asynccontextmanager
async def setup(policy: SamplingPolicy | None) -> AsyncIterator[tuple[str, ProxyServer, FakeUpstream, FakeUpstream]]:
    """The SDK fixture server behind the gateway with two gateway models; yields (MCP URL, proxy, small, large)."""
    small = await FakeUpstream(text="Paris", usage=(20, 3)).start()
    large = await FakeUpstream(text="PARIS", usage=(20, 5)).start()
    try:
        async with fixture_upstream() as upstream:
            server = upstream_server(SERVER, "/fixture", (upstream,)).model_copy(update={"sampling": policy})
            snap = snapshot([server], [key("full", (SERVER,))],
                            providers=(llm("team/small", small.url, "small-chat"), llm("team/large", large.url,
                                                                                          "large-chat")))
            proxy = ProxyServer(StaticSource(snap), ProxySettings(port=0, admin_port=0, drain_seconds=0.5))
            await proxy.start()
            try:
                await proxy.wait_ready()
                yield f"http://127.0.0.1:{proxy.port}/fixture/mcp", proxy, small, large
            finally:
                await proxy.stop()
    finally:
        await small.stop()
        await large.stop()


POLICY = SamplingPolicy(models=("small-chat", "large-chat"), max_tokens=25, requests_per_minute=3)


async def usage(proxy: ProxyServer) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{proxy.admin_port}/usage") as response:
            return (await response.json())["team/full"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ERAS)
async def test_the_sample_resolver_gets_a_gateway_models_answer(mode: str) -> None:
    async with setup(POLICY) as (url, proxy, small, large):
        async with mcp_client(url, "sk-full", mode=mode) as client:  # no sampling callback: no capability
            hinted = await client.call_tool("ask_model", {"hint": "large"})
            other = await client.call_tool("ask_model", {"hint": "small"})
        spent = await usage(proxy)
    assert text_of(hinted) == "large-chat: PARIS" and not hinted.is_error
    assert text_of(other) == "small-chat: Paris"
    sent = large.received[0].body
    assert sent["model"] == "large-chat-up" and sent["max_tokens"] == 25  # the policy's cap under the asked 40
    assert sent["messages"] == [{"role": "system", "content": "Answer in one word."},
                                {"role": "user", "content": "What is the capital of France?"}]
    assert spent["tokens"] == 25 + 23  # both answers charged to the calling key


async def test_a_legacy_sessions_create_message_gets_a_gateway_models_answer() -> None:
    async with setup(POLICY) as (url, _, small, _large):
        async with mcp_client(url, "sk-full", mode="legacy") as client:
            result = await client.call_tool("ask_model_in_session", {"hint": "small"})
    assert text_of(result) == "small-chat: Paris"
    assert small.received[0].body["messages"] == [{"role": "user", "content": "Name a colour."}]


@pytest.mark.parametrize("mode", ERAS)
async def test_sampling_past_the_keys_limit_is_refused(mode: str) -> None:
    async with setup(POLICY) as (url, _, small, large):
        async with mcp_client(url, "sk-full", mode=mode) as client:
            for _ in range(3):
                assert not (await client.call_tool("ask_model", {"hint": "small"})).is_error
            # legacy: the server's request is refused (-1) and its resolver fails the call
            with pytest.raises(MCPError, match="sampling limit reached for this key: 3 per minute"):
                await client.call_tool("ask_model", {"hint": "small"})
            if mode == "legacy":  # the session's create_message is refused the same way
                with pytest.raises(MCPError, match="sampling limit reached"):
                    await client.call_tool("ask_model_in_session", {"hint": "small"})
    assert len(small.received) == 3 and not large.received


@pytest.mark.parametrize("mode", ERAS)
async def test_a_client_that_samples_answers_itself_unless_the_policy_says_always(mode: str) -> None:
    async def sample(context: object, params: object) -> CreateMessageResult:
        return CreateMessageResult(role="assistant", model="client-model", content=TextContent(type="text", text="Lyon"))

    async with setup(POLICY) as (url, _, small, large):
        async with mcp_client(url, "sk-full", mode=mode, sampling_callback=sample) as client:
            result = await client.call_tool("ask_model", {"hint": "large"})
    assert text_of(result) == "client-model: Lyon" and not small.received and not large.received
    always = POLICY.model_copy(update={"answer": "always",
                                       "model_preferences": ModelPreferences(hints=("large",))})
    async with setup(always) as (url, _, small, large):
        async with mcp_client(url, "sk-full", mode=mode, sampling_callback=sample) as client:
            result = await client.call_tool("ask_model", {"hint": ""})  # the policy's default hint decides
    assert text_of(result) == "large-chat: PARIS"


@pytest.mark.parametrize("mode", ERAS)
async def test_without_a_policy_sampling_still_goes_to_the_client(mode: str) -> None:
    async with setup(None) as (url, _, small, _large):
        async with mcp_client(url, "sk-full", mode=mode) as client:
            tool = "ask_model_in_session" if mode == "legacy" else "ask_model"
            with pytest.raises(MCPError, match="Sampling not supported|sampling"):
                await client.call_tool(tool, {"hint": "small"})
    assert not small.received


async def test_mixed_input_requests_the_gateway_answers_sampling_and_the_client_the_rest() -> None:
    asked: list[str] = []

    async def elicit(context: object, params: object) -> ElicitResult:
        asked.append("elicitation")
        return ElicitResult(action="accept", content={"name": "Ada"})

    async def roots(context: object) -> ListRootsResult:
        asked.append("roots")
        return ListRootsResult(roots=[Root(uri="file:///work")])  # type: ignore[arg-type]

    async with setup(POLICY) as (url, _, small, _large):
        async with mcp_client(url, "sk-full", mode="2026-07-28", elicitation_callback=elicit,
                              list_roots_callback=roots) as client:
            result = await client.call_tool("test_input_required_result_multiple_inputs", {})
    assert text_of(result) == "All inputs received."
    assert sorted(asked) == ["elicitation", "roots"]
    assert small.received[0].body["messages"] == [{"role": "user", "content": "Generate a greeting"}]
