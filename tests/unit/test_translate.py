"""Focused translator rules that golden files show less directly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lockgate.api.ir import hash_key
from lockgate.operator.translate import ObjectRef, translate

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _provider(name: str, **spec: Any) -> dict[str, Any]:
    body = {"type": "openai-compatible", "endpoint": "http://127.0.0.1:1/v1", "models": [{"name": name}]}
    body.update(spec)
    return {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": name, "namespace": "ns"}, "spec": body}


def _secret(name: str, **values: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "ns"}, "stringData": values}


def test_credentials_never_reach_the_config() -> None:
    objects = [
        _secret("s", token="sk-very-secret"),
        _provider("p", type="openai", endpoint="https://api.openai.com/v1", credentials={"secretRef": {"name": "s", "key": "token"}}),
    ]
    result = translate(objects, NOW)
    assert result.credentials.values == {"provider/ns/p": "sk-very-secret"}
    assert "sk-very-secret" not in result.config.model_dump_json()
    assert result.config.providers[0].credential == "provider/ns/p"


def test_string_data_wins_over_data_as_the_api_server_does() -> None:
    secret = _secret("s", token="from-string-data")
    secret["data"] = {"token": "ZnJvbS1kYXRh"}
    result = translate([secret, _provider("p", credentials={"secretRef": {"name": "s", "key": "token"}})], NOW)
    assert result.credentials.values["provider/ns/p"] == "from-string-data"


def test_max_tokens_param_auto_depends_on_the_provider_type() -> None:
    objects = [
        _secret("s", token="sk-test"),
        _provider("a", type="openai", endpoint="https://api.openai.com/v1", credentials={"secretRef": {"name": "s", "key": "token"}}),
        _provider("b"),
        _provider("c", compat={"maxTokensParam": "max_completion_tokens"}),
    ]
    by_id = {p.id: p.compat.max_tokens_param for p in translate(objects, NOW).config.providers}
    assert by_id == {"ns/a": "max_completion_tokens", "ns/b": "max_tokens", "ns/c": "max_completion_tokens"}


def test_compat_an_anthropic_provider_cannot_honour_is_refused_with_a_condition() -> None:
    key = {"credentials": {"secretRef": {"name": "s", "key": "token"}}}
    objects = [
        _secret("s", token="sk-test"),
        _provider("a", type="anthropic", endpoint="https://api.anthropic.com", compat={"reasoning": "strip"}, **key),
        _provider("b", type="anthropic", endpoint="https://api.anthropic.com",
                  compat={"maxTokensParam": "max_completion_tokens"}, **key),
        _provider("c", type="anthropic", endpoint="https://api.anthropic.com",
                  compat={"dropParams": ["logit_bias"], "defaultParams": {"top_k": 5}}, **key),
    ]
    result = translate(objects, NOW)
    assert [p.id for p in result.config.providers] == ["ns/c"]  # parameters apply to every type
    for name, field in (("a", "spec.compat.reasoning"), ("b", "spec.compat.maxTokensParam")):
        accepted = next(c for c in result.statuses[ObjectRef("ModelProvider", "ns", name)].conditions
                        if c.type == "Accepted")
        assert (accepted.status, accepted.reason) == ("False", "UnsupportedField")
        assert accepted.message.startswith(field)


def test_ipv6_endpoints_and_endpoints_without_ready_condition() -> None:
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "s-1", "namespace": "ns", "labels": {"kubernetes.io/service-name": "s"}},
        "addressType": "IPv6", "ports": [{"name": "http", "port": 8000}],
        "endpoints": [{"addresses": ["fd00::1"]}, {"addresses": ["fd00::2"], "conditions": {"ready": False}}],
    }
    provider = _provider("p", service={"name": "s", "port": "http"}, basePath="/v1")
    del provider["spec"]["endpoint"]
    result = translate([slice_, provider], NOW)
    assert result.config.providers[0].endpoint_urls() == ["http://[fd00::1]:8000/v1"]
    assert result.statuses[ObjectRef("ModelProvider", "ns", "p")].fields["readyEndpoints"] == 1


def test_a_rotated_out_key_keeps_working_until_its_expiry() -> None:
    secret = _secret("k", **{"api-key": "lg-new", "previous-api-key": "lg-old"})
    secret["metadata"]["annotations"] = {"lockgate.io/previous-key-expires": "2026-01-01T00:30:00Z"}
    key = {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey", "metadata": {"name": "k", "namespace": "ns"},
           "spec": {"consumer": "c", "secretName": "k"}}
    before = translate([secret, key], NOW).config.keys[0]
    assert [h.sha256 for h in before.hashes] == [hash_key("lg-new"), hash_key("lg-old")]
    assert before.hashes[1].not_after == datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    after = translate([secret, key], datetime(2026, 1, 1, 1, tzinfo=UTC)).config.keys[0]
    assert [h.sha256 for h in after.hashes] == [hash_key("lg-new")]


def test_translation_is_deterministic_whatever_the_input_order() -> None:
    objects = [_provider("a"), _provider("b"), _secret("s", x="y")]
    assert translate(objects, NOW).config.hash == translate(list(reversed(objects)), NOW).config.hash


def test_conditions_carry_the_generation() -> None:
    provider = _provider("p")
    provider["metadata"]["generation"] = 7
    status = translate([provider], NOW).statuses[ObjectRef("ModelProvider", "ns", "p")]
    assert {c.observed_generation for c in status.conditions} == {7}
    assert status.accepted


def test_a_providers_tls_material_goes_to_the_credentials_secret_only() -> None:
    objects = [
        _secret("ca", **{"ca.crt": "-----BEGIN CERTIFICATE-----\nCA\n"}),
        _secret("client", **{"tls.crt": "-----BEGIN CERTIFICATE-----\nLEAF\n", "tls.key": "-----BEGIN PRIVATE KEY-----\nK\n"}),
        _provider("p", endpoint="https://llm.internal/v1", proxy="http://proxy.internal:3128",
                  tls={"caBundle": {"name": "ca", "key": "ca.crt"}, "clientCertificate": {"name": "client"}}),
    ]
    result = translate(objects, NOW)
    provider = result.config.providers[0]
    assert (provider.ca_bundle, provider.client_certificate) == ("provider/ns/p/ca", "provider/ns/p/client")
    assert provider.proxy == "http://proxy.internal:3128"
    assert result.credentials.values == {"provider/ns/p/ca": "-----BEGIN CERTIFICATE-----\nCA\n",
                                         "provider/ns/p/client": "-----BEGIN CERTIFICATE-----\nLEAF\n",
                                         "provider/ns/p/client.key": "-----BEGIN PRIVATE KEY-----\nK\n"}
    assert "BEGIN" not in result.config.model_dump_json()


def test_a_missing_client_certificate_secret_is_secret_not_found() -> None:
    objects = [_secret("client", **{"tls.crt": "x"}),
               _provider("p", endpoint="https://llm.internal/v1", tls={"clientCertificate": {"name": "client"}}),
               _provider("q", endpoint="https://llm.internal/v1", tls={"caBundle": {"name": "nope", "key": "ca.crt"}})]
    result = translate(objects, NOW)
    assert result.config.providers == ()
    p = result.statuses[ObjectRef("ModelProvider", "ns", "p")]
    q = result.statuses[ObjectRef("ModelProvider", "ns", "q")]
    assert not p.accepted and not q.accepted
    assert [(c.reason, "tls.key" in c.message) for c in p.conditions if c.type == "Accepted"] == [("SecretNotFound", True)]
    assert [c.reason for c in q.conditions if c.type == "Accepted"] == ["SecretNotFound"]


def test_a_proxy_url_with_credentials_is_refused() -> None:
    result = translate([_provider("p", proxy="http://user:pw@proxy:3128")], NOW)
    status = result.statuses[ObjectRef("ModelProvider", "ns", "p")]
    assert not status.accepted and "pw" not in str(result.config.model_dump_json())


def test_tool_header_secrets_reach_only_the_credentials() -> None:
    server = {"apiVersion": "lockgate.io/v1alpha1", "kind": "MCPServer", "metadata": {"name": "w", "namespace": "ns"},
              "spec": {"path": "/w", "tools": [{"name": "t", "request": {
                  "url": "https://api.example.com/x",
                  "headersFrom": [{"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}]}}]}}
    result = translate([_secret("s", token="tool-secret-value"), server], NOW)
    assert result.credentials.values == {"mcp/ns/w/tools/t/headers/x-api-key": "tool-secret-value"}
    assert "tool-secret-value" not in result.config.model_dump_json()
    (header,) = result.config.mcp_servers[0].tools[0].secret_headers
    assert (header.name, header.credential) == ("X-Api-Key", "mcp/ns/w/tools/t/headers/x-api-key")

    broken = translate([_secret("s", token="line\n"), server], NOW)
    (accepted,) = [c for c in broken.statuses[ObjectRef("MCPServer", "ns", "w")].conditions if c.type == "Accepted"]
    assert accepted.status == "False" and "line break" in accepted.message and not broken.credentials.values
