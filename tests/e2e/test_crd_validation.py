"""The CRDs on a real kube-apiserver: mistakes are refused at `kubectl apply`
with a message that says what to fix, defaults are filled in, the contract
manifests are accepted as written, and `kubectl explain` reads well."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.e2e.lockgate_env import REPO, crds, wait_for  # noqa: F401  (fixtures)
from tests.kube.controlplane import ControlPlane

CONTRACT = REPO / "tests" / "unit" / "golden" / "contract" / "input.yaml"
API = "lockgate.io/v1alpha1"


def _apply(kube: ControlPlane, namespace: str, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kube.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False)


def _provider(**spec: Any) -> dict[str, Any]:
    body = {"type": "openai-compatible", "endpoint": "http://vllm.example:8000/v1", "models": [{"name": "m"}], **spec}
    return {"apiVersion": API, "kind": "ModelProvider", "metadata": {"name": "p"}, "spec": body}


def _route(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Route", "metadata": {"name": "r"}, "spec": {"type": "openai", **spec}}


def _tool_server(**request: Any) -> dict[str, Any]:
    tool = {"name": "t", "request": {"url": "https://api.example.com/x", **request}}
    return {"apiVersion": API, "kind": "MCPServer", "metadata": {"name": "s"}, "spec": {"path": "/s", "tools": [tool]}}


def _secret_header(name: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}


CREDENTIALS = {"secretRef": {"name": "openai", "key": "api-key"}}
REFUSED = [
    pytest.param(_provider(type="openai"), "openai, azure-openai and anthropic providers need credentials",
                 id="openai-without-credentials"),
    pytest.param(_provider(type="anthropic"), "openai, azure-openai and anthropic providers need credentials",
                 id="anthropic-without-credentials"),
    pytest.param(_provider(type="azure-openai", apiVersion="2024-10-21"), "providers need credentials",
                 id="azure-without-credentials"),
    pytest.param(_provider(loadBalancing={"strategy": "external"}), "strategy external needs the external block",
                 id="external-without-its-block"),
    pytest.param(_provider(models=[{"name": "m"}, {"name": "m", "kind": "embedding"}]),
                 'spec.models[1]: Duplicate value: map[string]interface {}{"name":"m"}', id="duplicate-models"),
    pytest.param(_route(hosts=["ai.example.com", "exa mple.com"]), "a host is a DNS name or IP address",
                 id="host-with-a-space"),
    pytest.param(_route(hosts=["https://ai.example.com"]), "a host is a DNS name or IP address", id="host-as-url"),
    pytest.param(_route(hosts=["ai.*.example.com"]), "a host is a DNS name or IP address", id="inner-wildcard"),
    pytest.param(_route(cache={"mode": "semantic"}), "cache mode semantic needs cache.semantic.embeddingModel",
                 id="semantic-cache-without-a-model"),
    pytest.param(_route(cache={"semantic": {"embeddingModel": "e", "threshold": 1.5}}),
                 "spec.cache.semantic.threshold: Invalid value", id="similarity-above-one"),
    pytest.param(_route(aliases=[{"name": "a", "targets": [{"model": "m"}]}, {"name": "a", "targets": [{"model": "n"}]}]),
                 "Duplicate value", id="duplicate-aliases"),
    pytest.param(_tool_server(headers={"X-Api-Key": "inline"}, headersFrom=[_secret_header("X-Api-Key")]),
                 "a header is set either in headers or in headersFrom, not in both", id="header-twice"),
    pytest.param(_tool_server(headersFrom=[_secret_header("X-Api-Key"), _secret_header("X-Api-Key")]),
                 "Duplicate value", id="duplicate-secret-headers"),
]


@pytest.mark.parametrize(("obj", "message"), REFUSED)
def test_mistakes_are_refused_with_a_clear_message(crds: ControlPlane, namespace: str, obj: dict[str, Any],
                                                   message: str) -> None:
    refused = _apply(crds, namespace, obj)
    assert refused.returncode != 0, f"accepted: {obj}"
    assert message in refused.stderr, refused.stderr


def test_the_corrected_objects_are_accepted(crds: ControlPlane, namespace: str) -> None:
    """The refusals above are about the mistake, not the rest of the object."""
    fixed = [
        _provider(type="openai", credentials=CREDENTIALS),
        _route(hosts=["ai.example.com", "*.ai.example.com", "127.0.0.1:8080", "*"]),
        _tool_server(headers={"Accept": "application/json"},
                     headersFrom=[{**_secret_header("Authorization"), "prefix": "Bearer "}]),
    ]
    for obj in fixed:
        accepted = _apply(crds, namespace, obj)
        assert accepted.returncode == 0, accepted.stderr


def test_defaults_are_filled_in_by_the_api_server(crds: ControlPlane, namespace: str) -> None:
    assert _apply(crds, namespace, _provider(timeouts={"connect": "1s"}, loadBalancing={})).returncode == 0
    spec = json.loads(crds.kubectl("get", "modelprovider", "p", "-n", namespace, "-o", "json").stdout)["spec"]
    assert spec["timeouts"] == {"connect": "1s", "firstToken": "60s", "request": "300s"}
    assert spec["loadBalancing"]["strategy"] == "least-request"
    assert spec["models"] == [{"name": "m", "kind": "chat"}]
    assert (spec["priority"], spec["weight"], spec["scheme"]) == (0, 100, "http")

    assert _apply(crds, namespace, _route()).returncode == 0
    route = json.loads(crds.kubectl("get", "route", "r", "-n", namespace, "-o", "json").stdout)["spec"]
    assert route["hosts"] == ["*"] and route["models"] == ["*"]


def test_two_conditions_of_one_type_are_refused_in_status(crds: ControlPlane, namespace: str) -> None:
    assert _apply(crds, namespace, _route()).returncode == 0
    ready = {"type": "Ready", "status": "True", "reason": "Ready", "message": "",
             "lastTransitionTime": "2026-01-01T00:00:00Z"}
    patch = {"status": {"conditions": [ready, {**ready, "status": "False", "reason": "NoEndpoints"}]}}
    refused = crds.kubectl("patch", "route", "r", "-n", namespace, "--subresource=status", "--type=merge",
                           "-p", json.dumps(patch), check=False)
    assert refused.returncode != 0 and "status.conditions[1]: Duplicate value" in refused.stderr, refused.stderr


def _contract() -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(CONTRACT.read_text()) if d]
    return [d for d in docs if d.get("kind") not in ("Namespace",)]


def test_the_contract_manifests_are_accepted_as_written(crds: ControlPlane, namespace: str) -> None:
    """Every CEL rule and list-map key holds for the manifests users already have."""
    manifests = []
    for doc in _contract():
        doc = copy.deepcopy(doc)
        doc["metadata"]["namespace"] = namespace
        manifests.append(doc)
    out = crds.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests), check=False)
    assert out.returncode == 0, out.stderr
    kinds = {d["kind"] for d in manifests}
    assert {"ModelProvider", "ApiKey", "Route", "MCPServer"} <= kinds


def _explain(kube: ControlPlane, field: str) -> str:
    def text() -> str | None:
        out = kube.kubectl("explain", field, check=False)
        return out.stdout if out.returncode == 0 else None
    return wait_for(text, 30, f"kubectl explain {field}", interval=0.5)


@pytest.mark.parametrize(("field", "words"), [
    ("modelproviders.spec.credentials", ["The API key sent upstream", "required for openai, azure-openai and anthropic",
                                         "secretRef", "The Secret key holding the credential"]),
    ("modelproviders.spec.loadBalancing.strategy", ["How an endpoint is picked", "least-request"]),
    ("apikeys.spec.secretName", ["app.kubernetes.io/managed-by=lockgate"]),
    ("routes.spec.hosts", ["Host names (or *.suffix, or *)"]),
    ("mcpservers.spec.tools.request.headersFrom", ["come from Secrets", "valueFrom", "prefix"]),
    ("apikeys.status.conditions", ["one per type", "lastTransitionTime", "When the status last changed"]),
])
def test_kubectl_explain_describes_the_fields(crds: ControlPlane, field: str, words: list[str]) -> None:
    text = " ".join(_explain(crds, field).split())
    for word in words:
        assert " ".join(word.split()) in text, f"{word!r} not in kubectl explain {field}:\n{text}"
    assert "<empty>" not in text

