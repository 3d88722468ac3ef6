"""Validation rules of the v1alpha1 models, as a user meets them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lockgate.api import ApiKey, MCPServer, ModelProvider, Route
from lockgate.api.duration import parse_duration
from lockgate.api.mcpserver import ToolRequest
from lockgate.api.route import RouteSpec


def _provider(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "openai", "endpoint": "https://api.example.com/v1", "models": [{"name": "m"}],
                            "credentials": {"secretRef": {"name": "openai", "key": "api-key"}}}
    base.update(spec)
    return {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": "p", "namespace": "ns"}, "spec": base}


@pytest.mark.parametrize(("text", "seconds"), [("200ms", 0.2), ("5s", 5.0), ("1m", 60.0), ("1h30m", 5400.0), ("1.5s", 1.5)])
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "s", "5sec", "-1s", "", "1d"])
def test_bad_durations_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_provider_defaults_fill_timeouts_and_retries() -> None:
    provider = ModelProvider.model_validate(_provider())
    assert provider.spec.timeouts.first_token == "60s"
    assert provider.spec.retries.attempts == 1
    assert provider.ref == "ns/p"


def test_provider_needs_exactly_one_of_endpoint_and_service() -> None:
    with pytest.raises(ValidationError, match="exactly one of endpoint and service"):
        ModelProvider.model_validate(_provider(service={"name": "svc", "port": "http"}))
    with pytest.raises(ValidationError, match="exactly one of endpoint and service"):
        ModelProvider.model_validate(_provider(endpoint=None))


def test_provider_refuses_unknown_fields_and_bad_enums() -> None:
    with pytest.raises(ValidationError, match="weigth"):
        ModelProvider.model_validate(_provider(weigth=3))
    with pytest.raises(ValidationError, match="loadBalancing|load_balancing|strategy"):
        ModelProvider.model_validate(_provider(loadBalancing={"strategy": "random"}))
    with pytest.raises(ValidationError):
        ModelProvider.model_validate(_provider(timeouts={"connect": "five seconds"}))


def test_hosted_apis_need_credentials_and_external_needs_its_block() -> None:
    for kind in ("openai", "azure-openai", "anthropic"):
        with pytest.raises(ValidationError, match=f"type {kind} needs credentials"):
            ModelProvider.model_validate(_provider(type=kind, apiVersion="2024-10-21", credentials=None))
    assert ModelProvider.model_validate(_provider(type="openai-compatible", credentials=None)).spec.credentials is None
    with pytest.raises(ValidationError, match="strategy external needs the external block"):
        ModelProvider.model_validate(_provider(loadBalancing={"strategy": "external"}))


def test_azure_needs_api_version_and_models_are_unique() -> None:
    with pytest.raises(ValidationError, match="apiVersion"):
        ModelProvider.model_validate(_provider(type="azure-openai"))
    with pytest.raises(ValidationError, match="unique"):
        ModelProvider.model_validate(_provider(models=[{"name": "a"}, {"name": "a"}]))


def test_apikey_needs_one_key_source() -> None:
    doc = {"kind": "ApiKey", "metadata": {"name": "k"}, "spec": {"consumer": "c"}}
    with pytest.raises(ValidationError, match="exactly one of secretName and existingSecret"):
        ApiKey.model_validate(doc)
    doc["spec"]["secretName"] = "k-key"
    assert ApiKey.model_validate(doc).spec.secret_name == "k-key"


def test_route_of_type_chat_template_needs_its_template() -> None:
    doc = {"kind": "Route", "metadata": {"name": "r"}, "spec": {"type": "chatTemplate", "path": "/v1/x"}}
    with pytest.raises(ValidationError, match="needs path and chatTemplate"):
        Route.model_validate(doc)


def test_route_refuses_a_malformed_host() -> None:
    doc = {"kind": "Route", "metadata": {"name": "r"}, "spec": {"type": "openai", "hosts": ["bad host"]}}
    with pytest.raises(ValidationError, match="invalid host"):
        Route.model_validate(doc)


def test_mcpserver_needs_exactly_one_kind() -> None:
    doc: dict[str, Any] = {"kind": "MCPServer", "metadata": {"name": "m"}, "spec": {"path": "/m"}}
    with pytest.raises(ValidationError, match="exactly one of upstream, tools, aggregate and modelTools"):
        MCPServer.model_validate(doc)
    doc["spec"]["aggregate"] = {"servers": ["a"]}
    doc["spec"]["modelTools"] = [{"model": "x", "toolName": "t"}]
    with pytest.raises(ValidationError, match="exactly one"):
        MCPServer.model_validate(doc)
    del doc["spec"]["modelTools"]
    assert MCPServer.model_validate(doc).spec.kind == "aggregate"


def test_tool_headers_from_secrets_are_unique_and_not_also_fixed() -> None:
    def request(**fields: Any) -> dict[str, Any]:
        return {"url": "https://api.example.com/x", **fields}

    ref = {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    assert ToolRequest.model_validate(request(headersFrom=[{"name": "X-Key", **ref}])).headers_from[0].prefix == ""
    with pytest.raises(ValidationError, match="either in headers or in headersFrom"):
        ToolRequest.model_validate(request(headers={"x-key": "inline"}, headersFrom=[{"name": "X-Key", **ref}]))
    with pytest.raises(ValidationError, match="headersFrom names must be unique"):
        ToolRequest.model_validate(request(headersFrom=[{"name": "X-Key", **ref}, {"name": "x-key", **ref}]))
    with pytest.raises(ValidationError, match="prefix"):
        ToolRequest.model_validate(request(headersFrom=[{"name": "X-Key", "prefix": "a\nb", **ref}]))


def test_hosts_are_names_or_wildcards() -> None:
    ok = ["ai.example.com", "*.example.com", "127.0.0.1", "localhost:8080", "*"]
    assert RouteSpec.model_validate({"type": "openai", "hosts": ok}).hosts == ok
    for bad in ("exa mple.com", "https://ai.example.com", "ai.*.example.com", "**", ""):
        with pytest.raises(ValidationError):
            RouteSpec.model_validate({"type": "openai", "hosts": [bad]})


def test_allowed_namespaces_names_go_with_from_names() -> None:
    shared = ModelProvider.model_validate(_provider(allowedNamespaces={"from": "Names", "names": ["a", "b"]}))
    grant = shared.spec.allowed_namespaces
    assert grant.grants("ns", "a") and grant.grants("ns", "ns") and not grant.grants("ns", "c")
    assert grant.shared_with() == ("a", "b")
    assert ModelProvider.model_validate(_provider(allowedNamespaces={"from": "All"})).spec.allowed_namespaces.grants("ns", "c")
    assert ModelProvider.model_validate(_provider()).spec.allowed_namespaces.shared_with() == ()
    for bad in ({"from": "Names"}, {"from": "All", "names": ["a"]}, {"names": ["a"]}, {"from": "Names", "names": ["Not_A_Name"]}):
        with pytest.raises(ValidationError):
            ModelProvider.model_validate(_provider(allowedNamespaces=bad))
