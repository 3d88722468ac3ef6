"""A virtual model chosen by preferences (`auto`): hints, price, measured speed, failover."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from lockgate.api import ir
from lockgate.proxy.server import ProxyServer
from tests.gatewayconfig import KEY, key, provider, snapshot
from tests.integration.conftest import base_url
from tests.upstreams import Action, FakeUpstream

MESSAGES = [{"role": "user", "content": "hi"}]


def auto_route(*candidates: str, preferences: ir.ModelPreferences | None = None) -> ir.Route:
    alias = ir.Alias(name="auto", targets=tuple(ir.AliasTarget(model=m) for m in candidates), strategy="preferences",
                     preferences=preferences)
    return ir.Route(id="ns/api", type="openai", hosts=("*",), aliases=(alias,))


def client(server: ProxyServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url(server), api_key=KEY, max_retries=0)


async def ask(server: ProxyServer, prefs: dict[str, Any] | None = None, **headers: str) -> tuple[str, str]:
    """(the answer's text, the model the gateway says it chose)."""
    extra = {"model_preferences": prefs} if prefs is not None else None
    raw = await client(server).chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES, extra_body=extra, extra_headers=headers or None)
    return raw.parse().choices[0].message.content or "", raw.headers["x-lockgate-model"]


def described(p: ir.Provider, **metadata: Any) -> ir.Provider:
    """The provider with its one model's metadata (pricing, context_window, intelligence) set."""
    return p.model_copy(update={"models": (p.models[0].model_copy(update=metadata),)})


async def two_models(upstream: Any, **first: Any) -> tuple[FakeUpstream, FakeUpstream, list[ir.Provider]]:
    """A cheap, small-context, less able model and a dear, large-context, abler one."""
    a = await upstream("openai", text="from small")
    b = await upstream("openai", text="from large")
    return a, b, [described(provider("ns/a", "openai", a.url, [("small-chat", "small")], **first),
                            pricing=ir.Pricing(input=0.15, output=0.6), context_window=64, intelligence=0.4),
                  described(provider("ns/b", "openai", b.url, [("large-chat", "large")]),
                            pricing=ir.Pricing(input=2.5, output=10.0), context_window=128_000, intelligence=0.9)]


async def test_cost_priority_picks_the_cheap_model_and_intelligence_the_able_one(upstream, gateway) -> None:
    _, _, providers = await two_models(upstream)
    server = await gateway(snapshot(providers, routes=[auto_route("large-chat", "small-chat")]))
    assert await ask(server, {"costPriority": 1}) == ("from small", "small-chat")
    assert await ask(server, {"intelligencePriority": 1}) == ("from large", "large-chat")
    assert await ask(server, {"costPriority": 1, "intelligencePriority": 0.2}) == ("from small", "small-chat")


async def test_a_model_whose_context_window_is_too_small_is_left_out(upstream, gateway) -> None:
    _, _, providers = await two_models(upstream)
    server = await gateway(snapshot(providers, routes=[auto_route("small-chat", "large-chat")]))
    long = [{"role": "user", "content": "word " * 200}]  # ~250 tokens: over small-chat's 64
    raw = await client(server).chat.completions.with_raw_response.create(
        model="auto", messages=long, extra_body={"model_preferences": {"costPriority": 1}})
    assert raw.headers["x-lockgate-model"] == "large-chat"


async def test_a_hint_picks_the_hinted_model_before_any_priority(upstream, gateway) -> None:
    a, b, providers = await two_models(upstream)
    server = await gateway(snapshot(providers, routes=[auto_route("small-chat", "large-chat")]))
    assert await ask(server, {"hints": [{"name": "large"}], "costPriority": 1}) == ("from large", "large-chat")
    assert await ask(server, {"hints": [{"name": "claude"}, {"name": "SMALL"}]}) == ("from small", "small-chat")
    # the header form, for clients that cannot add body fields; the field never reaches the upstream
    assert await ask(server, None, **{"x-lockgate-model-preferences": '{"hints": [{"name": "large"}]}'}) == (
        "from large", "large-chat")
    assert all("model_preferences" not in r.body for r in a.received + b.received)
    assert b.received[-1].body["model"] == "large"


async def test_route_defaults_apply_when_the_request_says_nothing(upstream, gateway) -> None:
    _, _, providers = await two_models(upstream)
    route = auto_route("small-chat", "large-chat", preferences=ir.ModelPreferences(hints=("large",)))
    server = await gateway(snapshot(providers, routes=[route]))
    assert await ask(server) == ("from large", "large-chat")
    assert await ask(server, {"hints": [{"name": "small"}]}) == ("from small", "small-chat")


async def test_speed_priority_picks_the_model_measured_fastest(upstream, gateway) -> None:
    slow = await upstream("openai", text="slow")
    fast = await upstream("openai", text="fast")
    slow.then(*[Action(delay=0.15)] * 10)
    server = await gateway(snapshot([provider("ns/slow", "openai", slow.url, [("slow-chat", "s")]),
                                     provider("ns/fast", "openai", fast.url, [("fast-chat", "f")])],
                                    routes=[auto_route("slow-chat", "fast-chat")]))
    prefs = {"speedPriority": 1}
    # neither measured: each is tried once (the listed order first), then judged by its pace
    answers = [await ask(server, prefs) for _ in range(5)]
    assert answers[:2] == [("slow", "slow-chat"), ("fast", "fast-chat")]
    assert answers[2:] == [("fast", "fast-chat")] * 3
    assert len(slow.received) == 1


async def test_failover_past_a_failing_model_and_then_past_it_ejected(upstream, gateway) -> None:
    a, b, providers = await two_models(
        upstream, outlier_detection=ir.OutlierDetection(consecutive_failures=1, base_ejection_time=60))
    a.then(Action(status=500))
    server = await gateway(snapshot(providers, routes=[auto_route("small-chat", "large-chat")]))
    prefs = {"hints": [{"name": "small"}]}
    assert await ask(server, prefs) == ("from large", "large-chat")  # small failed: the next candidate answered
    assert len(a.received) == 1
    assert await ask(server, prefs) == ("from large", "large-chat")  # small is ejected: not even tried
    assert len(a.received) == 1


async def test_candidates_the_key_may_not_use_are_left_out(upstream, gateway) -> None:
    _, _, providers = await two_models(upstream)
    keys = [key("ns/team-a", models=("auto", "small-*"))]
    server = await gateway(snapshot(providers, keys, routes=[auto_route("small-chat", "large-chat")]))
    assert await ask(server, {"hints": [{"name": "large"}]}) == ("from small", "small-chat")


async def test_bad_preferences_get_an_openai_error(upstream, gateway) -> None:
    _, _, providers = await two_models(upstream)
    server = await gateway(snapshot(providers, routes=[auto_route("small-chat", "large-chat")]))
    with pytest.raises(openai.BadRequestError) as caught:
        await ask(server, {"costPriority": 2})
    assert caught.value.body["param"] == "model_preferences"  # type: ignore[index]
    assert "costPriority" in caught.value.body["message"]  # type: ignore[index]


async def test_the_choice_is_a_metric_dimension(upstream, gateway) -> None:
    _, _, providers = await two_models(upstream)
    server = await gateway(snapshot(providers, routes=[auto_route("small-chat", "large-chat")]))
    await ask(server, {"hints": [{"name": "large"}]})
    await ask(server, {"hints": [{"name": "large"}]})
    await ask(server, {"hints": [{"name": "small"}]})
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{server.admin_port}/metrics")).text
    assert 'lockgate_model_choices_total{gateway="lockgate",host="*",model="large-chat",virtual_model="auto"} 2.0' in text
    assert 'lockgate_model_choices_total{gateway="lockgate",host="*",model="small-chat",virtual_model="auto"} 1.0' in text


async def test_a_candidate_over_the_keys_quota_for_it_is_passed_over(upstream, gateway) -> None:
    _, _, providers = await two_models(upstream)
    keys = [key("ns/team-a", model_limits={"small-chat": ir.RateLimits(rpm=1)})]
    server = await gateway(snapshot(providers, keys, routes=[auto_route("small-chat", "large-chat")]))
    assert await ask(server, {"costPriority": 1}) == ("from small", "small-chat")
    assert await ask(server, {"costPriority": 1}) == ("from large", "large-chat")  # small-chat: 1 per minute
