"""Balancing through the whole proxy: the official OpenAI SDK against Lockgate
against loopback vLLM-style upstreams."""

from __future__ import annotations

import aiohttp
import openai

from lockgate.api import ir
from tests.gatewayconfig import KEY, provider, snapshot
from tests.integration.conftest import StartGateway, StartUpstream, base_url


async def test_prefix_affinity_keeps_each_system_prompt_on_one_endpoint(
    upstream: StartUpstream, gateway: StartGateway
) -> None:
    fakes = [await upstream("vllm", text=f"pod {i}") for i in range(3)]
    snap = snapshot([provider("ns/qwen", "openai-compatible", None, [("qwen", "Qwen/Qwen2.5")], credential=None,
                              endpoints=[f.host for f in fakes],
                              load_balancing=ir.LoadBalancing(strategy="prefix-affinity", prefix_length=512))])
    server = await gateway(snap)
    client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
    served_by: dict[int, set[str]] = {}
    for turn in range(3):
        for persona in range(8):
            system = f"You are assistant number {persona}. " * 40  # longer than the 512-character prefix
            history = [{"role": "system", "content": system}]
            for earlier in range(turn + 1):
                history += [{"role": "user", "content": f"question {earlier}"}]
            reply = await client.chat.completions.create(model="qwen", messages=history)  # type: ignore[arg-type]
            served_by.setdefault(persona, set()).add(reply.choices[0].message.content or "")
    assert all(len(pods) == 1 for pods in served_by.values()), served_by  # every turn of a persona: same pod
    assert len(set().union(*served_by.values())) >= 2  # and the personas are spread over the pods
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{server.admin_port}/metrics") as response:
            exposition = await response.text()
    assert 'lockgate_balancer_picks_total{gateway="lockgate",provider="ns/qwen",rule="affinity",strategy="prefix-affinity"} 24.0' in exposition


async def test_the_balancer_is_told_the_prompt_and_the_clients_max_tokens_apart(
    upstream: StartUpstream, gateway: StartGateway
) -> None:
    from aiohttp import web

    from tests.integration.test_balancing_http import serve

    fake = await upstream("vllm", text="pod")
    asked: list[dict] = []

    async def pick(request: web.Request) -> web.Response:
        body = await request.json()
        asked.append(body)
        return web.json_response({"endpoint": body["candidates"][0]["url"]})

    async with serve({("POST", "/pick"): pick}) as picker:
        lb = ir.LoadBalancing(strategy="external", external=ir.ExternalPicker(url=f"{picker}/pick", timeout=2.0))
        snap = snapshot([provider("ns/qwen", "openai-compatible", None, [("qwen", "Qwen/Qwen2.5")], credential=None,
                                  endpoints=[fake.host], load_balancing=lb)])
        server = await gateway(snap)
        client = openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)
        messages = [{"role": "user", "content": "word " * 200}]  # about 250 tokens by the 4-characters rule
        await client.chat.completions.create(model="qwen", messages=messages, max_tokens=40)  # type: ignore[arg-type]
        await client.chat.completions.create(model="qwen", messages=messages)  # type: ignore[arg-type]
    assert [a["maxTokens"] for a in asked] == [40, 0]  # absent: the balancer's own default, not a quota cap
    assert all(250 <= a["promptTokens"] < 300 for a in asked), asked
