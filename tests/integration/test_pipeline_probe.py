"""A step registered in the pipeline runs, in order, for every entry point: the OpenAI endpoints
(chat whole and streamed, completions, embeddings, responses), Anthropic messages, a chatTemplate
Route and an MCP model tool."""

from __future__ import annotations

from typing import ClassVar

import aiohttp
import anthropic
import openai

from lockgate.api import ir
from lockgate.proxy.pipeline import STEPS, Context, Deps, Step, StepFactory
from lockgate.proxy.pipeline.step import Phase
from lockgate.proxy.server import ProxyServer, ProxySettings
from lockgate.proxy.source import Snapshot, StaticSource
from tests.gatewayconfig import KEY, key, provider
from tests.integration.conftest import base_url
from tests.integration.mcp_fixtures.harness import mcp_client, text_of
from tests.upstreams import Action, FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]
# The default steps whose request hook runs on the way in, and their phases.
BEFORE = (("route", "request"), ("authenticate", "request"), ("authorize", "request"), ("classify", "request"),
          ("parse", "request"), ("choose", "request"), ("admit", "target"), ("request_filters", "target"), ("send", "target"))
EXPECTED = [name for name, _ in BEFORE] + ["response", "finish"]


class Probe(Step):
    """Records, per request path, that it ran and after which step."""

    log: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, after: str, phase: Phase, edge: bool = False) -> None:
        self.name = f"probe-after-{after}"  # type: ignore[misc]
        self.phase = phase  # type: ignore[misc]
        self.after, self.edge = after, edge

    def request(self, ctx: Context) -> None:
        if not self.edge:
            self.log.append((ctx.path, self.after))

    def response(self, ctx: Context) -> None:
        if self.edge:
            self.log.append((ctx.path, "response"))

    def finish(self, ctx: Context) -> None:
        if self.edge:
            self.log.append((ctx.path, "finish"))


def _probe(after: str, phase: Phase, edge: bool = False) -> StepFactory:
    return lambda deps: Probe(after, phase, edge)


def _probed_steps() -> list[StepFactory]:
    steps: list[StepFactory] = []
    for factory, (name, phase) in zip(STEPS, BEFORE):
        steps += [factory, _probe(name, phase)]
    return [*steps, *STEPS[len(BEFORE):], _probe("", "request", edge=True)]


def _snapshot(openai_url: str, anthropic_url: str) -> Snapshot:
    template = ir.Route(id="ns/greet", type="chatTemplate", hosts=("127.0.0.1",), path="/v1/greet",
                        chat_template=ir.ChatTemplate(model="gpt-4o", response="text", prompt_template="Say {{ x }}",
                                                      variables={"x": ir.TemplateVariable(type="string")}))
    tool_server = ir.McpServer(id="ns/llm", name="llm", path="/llm", kind="modelTools",
                               model_tools=(ir.ModelTool(model="gpt-4o", tool_name="ask"),))
    config = ir.GatewayConfig(
        providers=(provider("ns/openai", "openai", openai_url),
                   provider("ns/claude", "anthropic", anthropic_url, [("claude", "claude-up")])),
        keys=(key("ns/team-a", mcp_servers=("ns/llm",)),),
        routes=(ir.Route(id="ns/public", type="openai", hosts=("127.0.0.1",)), template),
        mcp_servers=(tool_server,)).with_hash()
    return Snapshot(config, ir.Credentials(values={"ns/openai/cred": "sk-o", "ns/claude/cred": "sk-a"}))


async def test_a_registered_step_runs_in_order_for_every_entry_point(upstream) -> None:
    fake: FakeUpstream = await upstream("openai", text="hello")
    claude: FakeUpstream = await upstream("anthropic", text="hello")
    fake.then(*[Action(text="hello") for _ in range(8)])
    server = ProxyServer(StaticSource(_snapshot(fake.url, claude.url)),
                         ProxySettings(port=0, admin_port=0, access_log=None), steps=_probed_steps())
    await server.start()
    try:
        await server.wait_ready()
        assert server.gateway.pipeline is not None
        names = server.gateway.pipeline.names
        assert names[:2] == ("route", "probe-after-route") and names[-2:] == ("account", "probe-after-")
        client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
        runs: dict[str, list[str]] = {}

        async def probe(label: str, path: str, call) -> None:  # type: ignore[no-untyped-def]
            Probe.log.clear()
            await call()
            runs[label] = [step for p, step in Probe.log if p == path]

        async def chat_stream() -> None:
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
            assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "hello"

        async def template() -> None:
            async with aiohttp.ClientSession() as session:
                async with session.post(f"http://127.0.0.1:{server.port}/v1/greet",
                                        headers={"Authorization": f"Bearer {KEY}"}, json={"x": "hi"}) as answer:
                    assert answer.status == 200 and await answer.text() == "hello"

        async def model_tool() -> None:
            async with mcp_client(f"http://127.0.0.1:{server.port}/llm/mcp", KEY, mode="2026-07-28") as mcp:
                result = await mcp.call_tool("ask", {"prompt": "hi"})
            assert text_of(result) == "hello"

        async def messages() -> None:
            claude_client = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{server.port}", api_key=KEY,
                                                     max_retries=0)
            answer = await claude_client.messages.create(model="claude", max_tokens=16, messages=MESSAGES)
            assert answer.content[0].text == "hello"  # type: ignore[union-attr]

        await probe("chat", "/v1/chat/completions",
                    lambda: client.chat.completions.create(model="gpt-4o", messages=MESSAGES))
        await probe("chat stream", "/v1/chat/completions", chat_stream)
        await probe("completions", "/v1/completions", lambda: client.completions.create(model="gpt-4o", prompt="hi"))
        await probe("embeddings", "/v1/embeddings", lambda: client.embeddings.create(model="gpt-4o", input="hi"))
        await probe("responses", "/v1/responses", lambda: client.responses.create(model="gpt-4o", input="hi"))
        await probe("messages", "/v1/messages", messages)
        await probe("chatTemplate Route", "/v1/greet", template)
        await probe("MCP model tool", "(internal)/chat", model_tool)
    finally:
        await server.stop()
    assert runs == {label: EXPECTED for label in runs} and len(runs) == 8, runs
