"""Money budgets across two `lockgate run` processes sharing one real Redis: a key's monthly cost
limit and a team Budget several keys spend from hold exactly (never passed, and refused only when
what is left is smaller than one request's reservation), called with the official openai SDK."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.integration.quota.proxies import Proxy
from tests.integration.quota.redis_server import RedisServer

KEY_A, KEY_B = "lg-money-test-key-a-0000", "lg-money-test-key-b-0000"
PROMPT: list[Any] = [{"role": "user", "content": "word " * 800}]  # about 1000 tokens by the 4-characters rule
EACH = 900 * 3 + 200 * 15  # micro-units a request really costs: the upstream reports 900 in, 200 out
RESERVATION = 7000  # micro-units, more than any one request reserves (~1010 in at 3, 200 out at 15)
KEY_LIMIT, TEAM_LIMIT = 50_000, 80_000

MANIFESTS = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: demo}}
stringData: {{a: {KEY_A}, b: {KEY_B}}}
---
apiVersion: lockgate.io/v1alpha1
kind: Budget
metadata: {{name: platform, namespace: demo}}
spec: {{monthlyCost: {TEAM_LIMIT / 1e6}, currency: USD}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: team-a, namespace: demo}}
spec:
  consumer: team-a
  existingSecret: {{name: keys, key: a}}
  limits: {{monthlyCost: {KEY_LIMIT / 1e6}}}
  budgets: [platform]
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: team-b, namespace: demo}}
spec:
  consumer: team-b
  existingSecret: {{name: keys, key: b}}
  budgets: [platform]
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: local, namespace: demo}}
spec:
  type: openai-compatible
  endpoint: {{upstream}}
  models: [{{name: gpt-4o, pricing: {{input: 3, output: 15}}}}]
---
apiVersion: lockgate.io/v1alpha1
kind: Route
metadata: {{name: api, namespace: demo}}
spec:
  type: openai
  hosts: ["127.0.0.1", "localhost"]
"""


async def call(proxy: Proxy, key: str) -> tuple[int, str, str]:
    client = openai.AsyncOpenAI(base_url=proxy.base_url, api_key=key, max_retries=0)
    try:
        await client.chat.completions.create(model="gpt-4o", messages=PROMPT, max_tokens=200)
        return 200, "", ""
    except openai.APIStatusError as e:
        return e.status_code, str(e.code), e.message
    finally:
        await client.close()


async def spend_until_refused(replicas: list[Proxy], key: str) -> tuple[int, set[tuple[int, str, str]]]:
    """Waves of concurrent calls alternating between the proxies until a whole wave is refused:
    (requests served, the refusals)."""
    served, refusals = 0, set()
    for _ in range(30):
        outcomes = await asyncio.gather(*(call(replicas[i % 2], key) for i in range(6)))
        ok = sum(1 for status, _, _ in outcomes if status == 200)
        served += ok
        refusals |= {o for o in outcomes if o[0] != 200}
        if not ok:
            return served, refusals
    raise AssertionError("the budget never ran out")


@pytest.mark.slow
@pytest.mark.redis
async def test_a_key_money_limit_and_a_team_budget_hold_exactly_across_two_proxies(
        redis_server: RedisServer, upstream, proxies, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake = await upstream("openai")
    fake.usage = (900, 200)
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "gateway.yaml").write_text(MANIFESTS.replace("{upstream}", fake.url))
    store = redis_server.url + "?socket_timeout=2&socket_connect_timeout=2"
    replicas = [proxies(folder, tmp_path / f"state-{i}", store, 2) for i in range(2)]
    await asyncio.gather(*(p.start() for p in replicas))

    served_a, refused_a = await spend_until_refused(replicas, KEY_A)
    spent_a = served_a * EACH
    assert spent_a <= KEY_LIMIT < spent_a + RESERVATION  # never passed; refused only when nothing fits
    assert {(s, c) for s, c, _ in refused_a} == {(429, "insufficient_quota")}
    assert all("monthly money budget of key demo/team-a" in m for _, _, m in refused_a)
    usage = await replicas[1].admin("/usage")
    assert usage["demo/team-a"]["cost"] == f"{spent_a / 1e6:.6f}"  # type: ignore[index]
    assert usage["demo/team-a"]["remainingCost"] == f"{(KEY_LIMIT - spent_a) / 1e6:.6f}"  # type: ignore[index]

    served_b, refused_b = await spend_until_refused(replicas, KEY_B)
    spent = (served_a + served_b) * EACH
    assert served_b > 0 and spent <= TEAM_LIMIT < spent + RESERVATION
    assert all("monthly money budget of Budget demo/platform" in m for _, _, m in refused_b)
    assert len(fake.received) == served_a + served_b
    budgets = await replicas[0].admin("/budgets")
    team = budgets["demo/platform"]  # type: ignore[index]
    assert (team["cost"], team["remainingCost"], team["currency"]) == (
        f"{spent / 1e6:.6f}", f"{(TEAM_LIMIT - spent) / 1e6:.6f}", "USD")
    assert team["requests"] == served_a + served_b
