"""Each pipeline step driven on its own, on a context and a compiled snapshot (no HTTP server
but the one loopback upstream send talks to)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from lockgate.api import ir
from lockgate.proxy.accesslog import AccessLog
from lockgate.proxy.errors import ApiError
from lockgate.proxy.metrics import make_metrics
from lockgate.proxy.pipeline import Context, Deps, Pipeline, Skip, Step
from lockgate.proxy.pipeline.steps.account import AccountStep
from lockgate.proxy.pipeline.steps.admit import AdmitStep
from lockgate.proxy.pipeline.steps.authenticate import AuthenticateStep
from lockgate.proxy.pipeline.steps.authorize import AuthorizeStep
from lockgate.proxy.pipeline.steps.choose import ChooseStep
from lockgate.proxy.pipeline.steps.parse import ParseStep
from lockgate.proxy.pipeline.steps.request_filters import RequestFiltersStep
from lockgate.proxy.pipeline.steps.response_filters import ResponseFiltersStep
from lockgate.proxy.pipeline.steps.route import RouteStep
from lockgate.proxy.pipeline.steps.send import SendStep
from lockgate.proxy.quota import make_quota_service
from lockgate.proxy.snapshot import CompiledSnapshot, Target, compile_snapshot
from lockgate.proxy.upstream import UpstreamPool
from tests.gatewayconfig import KEY, key, provider, snapshot
from tests.loopback import serve_app

COMPAT = ir.Compat(drop_params=("logit_bias",), default_params={"top_k": 20}, max_tokens_param="max_tokens")


def _target(snap: CompiledSnapshot, model: str) -> Target:
    return snap.namespace_view("ns").pool.tiers[model][0][0]


def _snapshot(url: str = "http://127.0.0.1:9", **key_fields: Any) -> CompiledSnapshot:
    providers = [provider("ns/openai", "openai", url, [("gpt-4o", "gpt-4o-up")]),
                 provider("ns/claude", "anthropic", url, [("claude", "claude-up")], compat=COMPAT)]
    routes = [ir.Route(id="ns/public", type="openai", hosts=("api.example",), models=("gpt-*", "claude"),
                       aliases=(ir.Alias(name="fast", targets=(ir.AliasTarget(model="gpt-4o"),)),))]
    return compile_snapshot(snapshot(providers, [key("ns/team-a", **key_fields)], routes))


def _ctx(snap: CompiledSnapshot, **fields: Any) -> Context:
    fields.setdefault("headers", {"Authorization": f"Bearer {KEY}"})
    fields.setdefault("raw_host", "api.example")
    return Context("rid-1", snap, "POST", "/v1/chat/completions", "api.example", **fields)


def _deps(**fields: Any) -> Deps:
    return Deps(quota=fields.pop("quota", None) or make_quota_service(), metrics=make_metrics("test"),
                access_log=AccessLog(None), upstreams=UpstreamPool(), **fields)


def _through(ctx: Context, *steps: Step) -> Context:
    for step in steps:
        assert step.request(ctx) is None  # these steps are plain calls: nothing to await
    return ctx


def test_route_finds_the_host_and_authorize_the_keys_view_of_it() -> None:
    snap = _snapshot()
    ctx = _through(_ctx(snap), RouteStep(), AuthenticateStep(), AuthorizeStep())
    assert ctx.host_view is not None and ctx.view is not None and "fast" in ctx.view.aliases
    with pytest.raises(ApiError) as error:
        _through(_ctx(snap, raw_host="other.example"), RouteStep(), AuthenticateStep(), AuthorizeStep())
    assert error.value.status == 404
    internal = _through(_ctx(snap, kind="internal", raw_host=""), RouteStep(), AuthenticateStep(), AuthorizeStep())
    assert internal.host_view is None and internal.view is not None and "gpt-4o" in internal.view.pool.tiers


def test_authenticate_takes_the_key_or_answers_401() -> None:
    snap = _snapshot()
    assert _through(_ctx(snap), AuthenticateStep()).entry is not None
    with pytest.raises(ApiError) as error:
        AuthenticateStep().request(_ctx(snap, headers={}))
    assert (error.value.status, error.value.code) == (401, "invalid_api_key")


def test_parse_takes_an_internal_body_as_a_stream_with_its_estimate() -> None:
    ctx = _ctx(_snapshot(), kind="internal", body={"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 40}],
                                                   "max_tokens": 7})
    _through(ctx, ParseStep())  # a body in hand: nothing to wait for
    assert ctx.model == "gpt-4o" and ctx.stream and ctx.body["stream"] is True
    assert ctx.estimate is not None and ctx.estimate.max_tokens == 7 and ctx.prompt_tokens > 10


def test_choose_hides_models_outside_the_view_and_refuses_the_keys_others() -> None:
    ctx = _through(_ctx(_snapshot(models=("claude",))), RouteStep(), AuthenticateStep(), AuthorizeStep())
    ctx.model = "claude"
    ChooseStep(_deps()).request(ctx)
    for model, status in (("gpt-4o", 403), ("mistral", 404)):
        ctx.model = model
        with pytest.raises(ApiError) as error:
            ChooseStep(_deps()).request(ctx)
        assert error.value.status == status


def test_choose_resolves_aliases_and_keeps_providers_that_serve_the_operation() -> None:
    choose = ChooseStep(_deps())
    ctx = _through(_ctx(_snapshot()), RouteStep(), AuthenticateStep(), AuthorizeStep())
    ctx.model = "fast"
    choose.request(ctx)
    assert [t.provider.id for t in ctx.targets] == ["ns/openai"]
    ctx.model, ctx.op = "claude", "embeddings"
    with pytest.raises(ApiError) as error:
        choose.request(ctx)
    assert (error.value.status, error.value.code) == (400, "unsupported_operation")
    ctx.model = "nothing"
    with pytest.raises(ApiError) as error:
        choose.request(ctx)
    assert error.value.status == 404


async def test_admit_reserves_refuses_past_the_limit_and_settles_on_undo() -> None:
    admit = AdmitStep(_deps())
    snap = _snapshot(limits=ir.RateLimits(rpm=1))
    first = _through(_ctx(snap), RouteStep(), AuthenticateStep(), AuthorizeStep())
    first.model = "gpt-4o"
    ChooseStep(_deps()).request(first)
    _through(_set_internal(first), ParseStep())
    first.target = first.targets[0]
    await admit.request(first)  # type: ignore[misc]
    assert first.reservation is not None and first.provider == "ns/openai"
    await admit.undo(first)  # type: ignore[misc]
    assert first.reservation is None and first.counted  # a failover's repeat counts as the same request
    second = _through(_ctx(snap), AuthenticateStep())
    second.model, second.targets, second.estimate = "gpt-4o", first.targets, first.estimate
    second.target = second.targets[0]
    with pytest.raises(ApiError) as error:
        await admit.request(second)  # type: ignore[misc]
    assert error.value.status == 429


def _set_internal(ctx: Context) -> Context:
    ctx.kind, ctx.body = "internal", {"model": ctx.model, "messages": []}
    return ctx


def test_request_filters_apply_compat_to_every_provider_type() -> None:
    ctx = _ctx(_snapshot())
    ctx.body = {"model": "claude", "messages": [], "logit_bias": {"1": 1}, "max_completion_tokens": 9}
    ctx.target = _target(_snapshot(), "claude")
    RequestFiltersStep().request(ctx)
    assert ctx.upstream_body == {"model": "claude-up", "messages": [], "top_k": 20, "max_tokens": 9}
    assert ctx.body["model"] == "claude"  # the client's body is left as it came


def test_response_filters_translate_a_whole_anthropic_answer() -> None:
    ctx = _ctx(_snapshot())
    ctx.target = _target(_snapshot(), "claude")
    RequestFiltersStep().request(ctx)
    ctx.model, ctx.upstream_status = "claude", 200
    ctx.answer = orjson.dumps({"id": "m1", "type": "message", "role": "assistant", "model": "claude-up",
                               "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                               "usage": {"input_tokens": 3, "output_tokens": 1}})
    ResponseFiltersStep().response(ctx)
    answer = orjson.loads(ctx.answer)
    assert answer["choices"][0]["message"]["content"] == "hi" and answer["model"] == "claude"
    assert (ctx.usage.input_tokens, ctx.usage.output_tokens, ctx.ok) == (3, 1, True)


def test_account_counts_the_request_in_its_series() -> None:
    deps = _deps()
    ctx = _through(_ctx(_snapshot()), AuthenticateStep())
    ctx.status, ctx.model = 200, "gpt-4o"
    AccountStep(deps).finish(ctx)
    series = deps.metrics.series("api.example", "team-a", "", "gpt-4o", "", "200", "")
    assert series.requests == 1


@pytest.fixture
async def upstream_url() -> AsyncIterator[str]:
    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        if body["model"] == "broken":
            return web.Response(status=500)
        return web.json_response({"id": "c", "object": "chat.completion", "model": body["model"],
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
                                  "usage": {"prompt_tokens": 2, "completion_tokens": 1}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with serve_app(app) as url:
        yield url


async def test_send_answers_from_the_upstream_and_skips_a_failing_one(upstream_url: str) -> None:
    deps = _deps()
    send = SendStep(deps)
    snap = _snapshot(f"{upstream_url}/v1")
    ctx = _ctx(snap)
    ctx.target = _target(snap, "gpt-4o")
    ctx.body = {"model": "gpt-4o", "messages": []}
    RequestFiltersStep().request(ctx)
    await send.request(ctx)  # type: ignore[misc]
    assert ctx.upstream_status == 200 and ctx.answered and ctx.attempts == 1
    ctx.upstream_body["model"] = "broken"
    with pytest.raises(Skip) as skipped:
        await send.request(ctx)  # type: ignore[misc]
    assert skipped.value.error.status == 502
    await deps.upstreams.close()


async def test_the_pipeline_fails_over_and_undoes_a_skipped_target() -> None:
    seen: list[str] = []

    class Flaky(Step):
        name, phase = "flaky", "target"

        def request(self, ctx: Context) -> None:
            assert ctx.target is not None
            seen.append(f"try {ctx.target.provider.id}")
            if ctx.target_index == 0:
                raise Skip(ApiError(502, "down"))

        def undo(self, ctx: Context) -> None:
            seen.append("undo")

    class Mark(Step):
        name, phase = "mark", "target"

        def undo(self, ctx: Context) -> None:
            seen.append("undo mark")

    snap = _snapshot()
    ctx = _ctx(snap)
    ctx.targets = [_target(snap, "gpt-4o"), _target(snap, "claude")]
    await Pipeline([Mark(), Flaky()]).run(ctx)
    assert seen == ["try ns/openai", "undo mark", "try ns/claude"]  # the failing step undoes itself


async def test_a_step_idle_on_the_configuration_is_never_called() -> None:
    calls: list[str] = []

    class Noted(Step):
        name = "noted"

        def __init__(self, idle_on: CompiledSnapshot | None) -> None:
            self.idle_on = idle_on

        def idle(self, snapshot: CompiledSnapshot) -> bool:
            return snapshot is self.idle_on

        def request(self, ctx: Context) -> None:
            calls.append("request")

        def finish(self, ctx: Context) -> None:
            calls.append("finish")

    snap = _snapshot()
    for idle_on, expected in ((snap, []), (None, ["request", "finish"])):
        calls.clear()
        pipeline = Pipeline([Noted(idle_on)], snap)
        ctx = _ctx(snap, pipeline=pipeline)
        await pipeline.run(ctx)
        await pipeline.finish(ctx)
        assert calls == expected and pipeline.names == ("noted",)


def test_the_cache_step_is_idle_without_a_cached_route() -> None:
    from prometheus_client import CollectorRegistry

    from lockgate.proxy.cache import make_cache_service
    from lockgate.proxy.pipeline.steps.cache import CacheStep

    step = CacheStep(_deps(cache=make_cache_service("memory", "test", CollectorRegistry(), 1 << 20)))
    plain = _snapshot()
    assert step.idle(plain)
    cached_route = ir.Route(id="ns/cached", type="openai", hosts=("api.example",), cache=ir.CachePolicy())
    cached = snapshot(list(plain.config.providers), list(plain.config.keys), [*plain.config.routes, cached_route])
    assert not step.idle(compile_snapshot(cached))
    assert CacheStep(_deps()).idle(plain)  # no cache service at all
