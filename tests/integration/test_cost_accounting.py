"""The cost of each request, from its real usage at its model's prices (cached input at its own price),
in lockgate_cost_total, the access log and the admin usage report; and a money limit per key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.api import ir
from lockgate.proxy.server import ProxyServer
from tests.gatewayconfig import KEY, key, snapshot

PRICING = ir.Pricing(currency="USD", input=3.0, output=15.0, cached_input=0.3)
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def priced_provider(url: str, pricing: ir.Pricing = PRICING) -> ir.Provider:
    model = ir.ProviderModel(name="gpt-4o", upstream_model="gpt-4o-up", pricing=pricing)
    return ir.Provider(id="ns/openai", type="openai", base_url=url, credential="ns/openai/cred", models=(model,))


async def admin(server: ProxyServer, path: str) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.admin_port}{path}") as response:
            assert response.status == 200
            return await (response.json() if path != "/metrics" else response.text())


def cost_samples(text: str) -> dict[tuple[str, str], float]:
    return {(s.labels["consumer"], s.labels["currency"]): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "lockgate_cost_total"}


async def test_cost_in_metrics_access_log_and_usage_is_usage_times_price(upstream, gateway, tmp_path: Path) -> None:
    fake = await upstream("openai")
    fake.usage, fake.cached_tokens = (1000, 200), 400
    log_path = tmp_path / "access.log"
    server = await gateway(snapshot([priced_provider(fake.url)]), access_log=str(log_path))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True})
    async for _ in stream:
        pass
    # 600 input tokens at 3, 400 cached at 0.3, 200 output at 15 per million: 0.00492 each.
    each = (600 * 3.0 + 400 * 0.3 + 200 * 15.0) / 1_000_000
    assert cost_samples(await admin(server, "/metrics")) == {("team-a", "USD"): pytest.approx(2 * each, abs=1e-12)}
    server.gateway.deps.access_log.flush()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [(line["cost"], line["currency"], line["cached_tokens"]) for line in lines] == [(each, "USD", 400)] * 2
    usage = (await admin(server, "/usage"))["ns/team-a"]
    assert (usage["cost"], usage["currency"], usage["remainingCost"]) == ("0.009840", "USD", None)
    assert usage["modelCosts"] == {"gpt-4o": "0.009840"} and usage["tokens"] == 2 * 1200


async def test_an_unpriced_model_costs_nothing_and_is_not_in_the_cost_metric(upstream, gateway, tmp_path) -> None:
    fake = await upstream("openai")
    model = ir.ProviderModel(name="gpt-4o", upstream_model="gpt-4o-up")
    provider = ir.Provider(id="ns/openai", type="openai", base_url=fake.url, credential="c", models=(model,))
    server = await gateway(snapshot([provider]), access_log=str(tmp_path / "log"))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0)
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert cost_samples(await admin(server, "/metrics")) == {}
    server.gateway.deps.access_log.flush()
    (line,) = [json.loads(x) for x in (tmp_path / "log").read_text().splitlines()]
    assert line["cost"] is None and line["currency"] is None
    assert (await admin(server, "/usage"))["ns/team-a"]["cost"] == "0.000000"


async def test_a_monthly_cost_limit_refuses_once_spent_and_never_overshoots(upstream, gateway) -> None:
    fake = await upstream("openai")
    fake.usage = (900, 200)  # 0.0057 a request at 3 / 15 per million
    limits = ir.RateLimits(monthly_cost=20_000)  # 0.02: three requests fit, a fourth's reservation does not
    server = await gateway(snapshot([priced_provider(fake.url)], [key("ns/team-a", limits=limits)]))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0)
    # About 1000 prompt tokens by the 4-characters rule, and 200 output: each reserves a little over 0.006.
    prompt = [{"role": "user", "content": "word " * 800}]
    for _ in range(3):
        await client.chat.completions.create(model="gpt-4o", messages=prompt, max_tokens=200)
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="gpt-4o", messages=prompt, max_tokens=200)
    assert refused.value.code == "insufficient_quota" and "monthly money budget" in refused.value.message
    assert len(fake.received) == 3
    usage = (await admin(server, "/usage"))["ns/team-a"]
    assert (usage["cost"], usage["remainingCost"]) == ("0.017100", "0.002900")


async def test_a_model_priced_in_another_currency_is_refused_under_a_money_limit(upstream, gateway) -> None:
    fake = await upstream("openai")
    euros = ir.Pricing(currency="EUR", input=1.0, output=1.0, cached_input=1.0)
    limits = ir.RateLimits(monthly_cost=1_000_000)
    server = await gateway(snapshot([priced_provider(fake.url, euros)], [key("ns/team-a", limits=limits)]))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert refused.value.code == "currency_mismatch" and "EUR" in refused.value.message
    assert fake.received == []
