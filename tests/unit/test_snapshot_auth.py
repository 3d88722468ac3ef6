from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lockgate.api import ir
from lockgate.proxy.auth import authenticate, check_model, check_route, presented_key
from lockgate.proxy.errors import ApiError
from lockgate.proxy.filters.params import rewrite_request, with_usage_requested
from lockgate.proxy.snapshot import compile_snapshot
from tests.gatewayconfig import KEY, OTHER_KEY, key, provider, snapshot


def _compiled(routes: list[ir.Route] = (), keys: list[ir.ConsumerKey] | None = None):  # type: ignore[no-untyped-def]
    return compile_snapshot(snapshot([provider("ns/p", "openai", "http://x", [("gpt-4o", "g"), ("qwen-7b", "q")])],
                                     keys, routes))


def test_keys_from_every_header() -> None:
    assert presented_key({"Authorization": "Bearer abc"}) == "abc"
    assert presented_key({"x-api-key": "abc"}) == "abc"
    assert presented_key({"api-key": "abc"}) == "abc"
    assert presented_key({"Authorization": "Basic abc"}) is None


def test_authentication_codes() -> None:
    expired = key("ns/old", OTHER_KEY, expires_at=datetime(2024, 1, 1, tzinfo=timezone.utc))
    snap = _compiled(keys=[key("ns/a", KEY), expired])
    assert authenticate(snap, {"Authorization": f"Bearer {KEY}"}).key.id == "ns/a"
    for headers, code in (({}, "invalid_api_key"), ({"api-key": "x"}, "invalid_api_key"),
                          ({"api-key": OTHER_KEY}, "expired_api_key")):
        with pytest.raises(ApiError) as error:
            authenticate(snap, headers)
        assert (error.value.status, error.value.code) == (401, code)


def test_model_globs_and_routes() -> None:
    entry = authenticate(_compiled(keys=[key("ns/a", KEY, models=("gpt-*",), routes=("reply-to-en",))]),
                         {"api-key": KEY})
    check_model(entry, "gpt-4o")
    with pytest.raises(ApiError) as error:
        check_model(entry, "qwen-7b")
    assert error.value.status == 403
    check_route(entry, "ns/reply-to-en")
    with pytest.raises(ApiError):
        check_route(entry, "ns/other")


def test_hosts_exact_port_suffix_and_default() -> None:
    routes = [ir.Route(id="ns/a", type="openai", hosts=("ai.example.com",), models=("gpt-*",)),
              ir.Route(id="ns/b", type="openai", hosts=("*.corp.example",), models=("qwen*",))]
    snap = _compiled(routes)
    a = snap.host_view("ai.example.com:8080")
    a_api = a.openai_for("ns") if a is not None else None
    assert a_api is not None and a_api.shows("gpt-4o") and not a_api.shows("qwen-7b")
    b = snap.host_view("x.corp.example")
    b_api = b.openai_for("ns") if b is not None else None
    assert b_api is not None and b_api.shows("qwen-7b")
    assert snap.host_view("elsewhere") is None
    open_everywhere = _compiled([])
    view = open_everywhere.host_view("anything")
    api = view.openai_for("ns") if view is not None else None
    assert api is not None and api.shows("gpt-4o") and "gpt-4o" in api.pool.tiers


def test_param_rewrites() -> None:
    compat = ir.Compat(drop_params=("logit_bias",), default_params={"top_k": 20, "temperature": 1},
                       max_tokens_param="max_completion_tokens")
    body = {"model": "m", "logit_bias": {}, "temperature": 0, "max_tokens": 5}
    out = rewrite_request(body, "up", compat)
    assert out == {"model": "up", "temperature": 0, "top_k": 20, "max_completion_tokens": 5}
    assert body["model"] == "m"  # the client's body is not changed
    assert with_usage_requested({"stream_options": {"include_usage": True}})[1] is True
    injected, asked = with_usage_requested({})
    assert injected["stream_options"] == {"include_usage": True} and not asked
