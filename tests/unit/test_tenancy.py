"""Namespaces are tenants, on the request path: the compiled snapshot and the
authorization checks, without I/O. (The translator's side is the golden case
`tenancy`; traffic through `lockgate run` is tests/integration/test_tenancy.py.)"""

from __future__ import annotations

import random

import pytest

from lockgate.api import ir
from lockgate.proxy.auth import authenticate, check_model, openai_view, template_view
from lockgate.proxy.errors import ApiError
from lockgate.proxy.routing import plan
from lockgate.proxy.snapshot import CompiledSnapshot, KeyEntry, compile_snapshot
from tests.gatewayconfig import KEY, OTHER_KEY, key, provider, snapshot

A_KEY, B_KEY = KEY, OTHER_KEY


def _tenants(*, shared_with: tuple[str, ...] = (), b_models: tuple[str, ...] | None = None) -> CompiledSnapshot:
    providers = [
        provider("team-a/own", "openai", "http://a", [("gpt-4o", "a-gpt")]),
        provider("team-b/own", "openai", "http://b", [("gpt-4o", "b-gpt"), ("b-only", "b-only")]),
        provider("platform/shared", "openai", "http://p", [("big", "p-big")], shared_with=shared_with),
    ]
    routes = [
        ir.Route(id="team-a/api", type="openai", hosts=("a.example.com", "shared.example.com")),
        ir.Route(id="team-b/api", type="openai", hosts=("b.example.com", "shared.example.com")),
        ir.Route(id="team-b/reply", type="chatTemplate", hosts=("b.example.com",), path="/v1/reply",
                 chat_template=ir.ChatTemplate(model="b-only", prompt_template="{{ x }}")),
    ]
    keys = [key("team-a/app", A_KEY), key("team-b/app", B_KEY, models=b_models, routes=("other",))]
    return compile_snapshot(snapshot(providers, keys, routes))


def _entry(snap: CompiledSnapshot, clear: str) -> KeyEntry:
    return authenticate(snap, {"Authorization": f"Bearer {clear}"})


def _upstream(snap: CompiledSnapshot, clear: str, host: str, model: str) -> str:
    view = openai_view(snap, _entry(snap, clear), host, "/v1/chat/completions")
    if not view.shows(model):
        raise LookupError(model)
    targets = plan([model], view.pool.tiers, random.Random(0))
    return targets[0].model.upstream_model if targets else ""


def _refusal(call) -> tuple[int, str | None]:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as error:
        call()
    return error.value.status, error.value.code


def test_a_key_is_valid_only_on_hosts_of_its_namespace() -> None:
    snap = _tenants()
    a = _entry(snap, A_KEY)
    assert openai_view(snap, a, "a.example.com", "/v1/models").route_ids == ("team-a/api",)
    assert _refusal(lambda: openai_view(snap, a, "b.example.com", "/v1/models")) == (401, "invalid_api_key")
    assert _refusal(lambda: openai_view(snap, a, "nowhere.example.com", "/v1/models")) == (404, "unknown_url")


def test_the_same_model_name_in_two_namespaces_does_not_pool() -> None:
    snap = _tenants()
    for host in ("shared.example.com", "a.example.com"):
        assert _upstream(snap, A_KEY, host, "gpt-4o") == "a-gpt"
    assert _upstream(snap, B_KEY, "shared.example.com", "gpt-4o") == "b-gpt"
    # another namespace's model is not there for this key, even on a shared host
    assert _upstream(snap, A_KEY, "shared.example.com", "b-only") == ""
    assert "b-only" not in openai_view(snap, _entry(snap, A_KEY), "shared.example.com", "/").pool.served_models


def test_a_grant_shares_a_provider_with_chosen_namespaces() -> None:
    assert _upstream(_tenants(), A_KEY, "a.example.com", "big") == ""
    granted = _tenants(shared_with=("team-a",))
    assert _upstream(granted, A_KEY, "a.example.com", "big") == "p-big"
    assert _upstream(granted, B_KEY, "b.example.com", "big") == ""
    everyone = _tenants(shared_with=("*",))
    assert _upstream(everyone, B_KEY, "b.example.com", "big") == "p-big"


def test_chat_templates_are_the_namespace_s_and_honour_the_key_s_lists() -> None:
    snap = _tenants(b_models=("gpt-*",))
    route = snap.host_view("b.example.com").templates["/v1/reply"]  # type: ignore[union-attr]
    a, b = _entry(snap, A_KEY), _entry(snap, B_KEY)
    assert _refusal(lambda: template_view(snap, a, "b.example.com", route)) == (401, "invalid_api_key")
    assert _refusal(lambda: template_view(snap, b, "b.example.com", route)) == (403, "route_not_allowed")
    allowed = compile_snapshot(snapshot(list(snap.config.providers),
                                        [key("team-b/app", B_KEY, models=("gpt-*",), routes=("reply",))],
                                        list(snap.config.routes)))
    b = _entry(allowed, B_KEY)
    view = template_view(allowed, b, "b.example.com", route)
    assert "b-only" in view.pool.tiers and "big" not in view.pool.tiers
    assert _refusal(lambda: check_model(b, "b-only")) == (403, "model_not_allowed")


def test_with_no_openai_route_every_key_sees_its_own_namespace_everywhere() -> None:
    providers = [provider("team-a/own", "openai", "http://a", [("gpt-4o", "a-gpt")]),
                 provider("team-b/own", "openai", "http://b", [("gpt-4o", "b-gpt")])]
    snap = compile_snapshot(snapshot(providers, [key("team-a/app", A_KEY), key("team-b/app", B_KEY)]))
    assert _upstream(snap, A_KEY, "anything", "gpt-4o") == "a-gpt"
    assert _upstream(snap, B_KEY, "anything", "gpt-4o") == "b-gpt"
