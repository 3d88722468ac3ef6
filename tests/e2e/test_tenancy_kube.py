"""Namespaces are tenants on a real API server, with the operator and a
proxy: a provider shared with one namespace by `spec.allowedNamespaces`,
taken back and shared with all, while each namespace keeps its own model of
the same name and its keys only work on its own hosts."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import openai
import yaml

from tests.e2e.lockgate_env import Lockgate, Proxy, crds, lockgate, wait_for  # noqa: F401

API = "lockgate.io/v1alpha1"


def _provider(namespace: str, name: str, port: int, model: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ModelProvider", "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "openai-compatible", "endpoint": f"http://127.0.0.1:{port}/v1",
                     "models": [{"name": model}], **spec}}


def _tenant(namespace: str, host: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": API, "kind": "Route", "metadata": {"name": "api", "namespace": namespace},
         "spec": {"type": "openai", "hosts": [host]}},
        {"apiVersion": API, "kind": "ApiKey", "metadata": {"name": "app", "namespace": namespace},
         "spec": {"consumer": namespace, "secretName": "app-key"}},
    ]


class Tenants:
    def __init__(self, lockgate: Lockgate) -> None:
        self.lockgate = lockgate
        self.kube = lockgate.kube

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))

    def get(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        out = self.kube.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def condition(self, namespace: str, kind: str, name: str, type_: str) -> dict[str, Any]:
        conditions = (self.get(namespace, kind, name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def key(self, namespace: str) -> str | None:
        raw = ((self.get(namespace, "secret", "app-key").get("data")) or {}).get("api-key")
        return base64.b64decode(raw).decode() if raw else None

    def answer(self, proxy: Proxy, key: str, host: str, model: str) -> str | int:
        client = openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0, timeout=5,
                               default_headers={"Host": host})
        try:
            reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        except openai.APIStatusError as e:
            return e.status_code
        return reply.choices[0].message.content or ""


def test_a_grant_shares_a_provider_and_its_removal_takes_access_away(lockgate: Lockgate) -> None:
    platform = lockgate.namespace
    team_a, team_b = (f"team-{t}-{uuid.uuid4().hex[:6]}" for t in "ab")
    for ns in (team_a, team_b):
        lockgate.kube.kubectl("create", "namespace", ns)
    a_up, b_up, shared_up = (lockgate.upstreams.start(f"from {who}") for who in ("a", "b", "platform"))
    tenants = Tenants(lockgate)
    lockgate.start_operator("--namespace", team_a, "--namespace", team_b)
    proxy = lockgate.start_proxy()
    grant = {"from": "Names", "names": [team_a]}
    tenants.apply([
        _provider(platform, "shared", shared_up.port, "big", allowedNamespaces=grant),
        _provider(team_a, "own", a_up.port, "gpt-4o"),
        _provider(team_b, "own", b_up.port, "gpt-4o"),
        *_tenant(team_a, "a.test"), *_tenant(team_b, "b.test"),
        {"apiVersion": API, "kind": "Route", "metadata": {"name": "uses-big", "namespace": team_a},
         "spec": {"type": "openai", "hosts": ["a.test"], "aliases": [{"name": "big-alias", "targets": [{"model": "big"}]}]}},
    ])
    a_key = wait_for(lambda: tenants.key(team_a), 15, "team-a's key")
    b_key = wait_for(lambda: tenants.key(team_b), 15, "team-b's key")

    wait_for(lambda: tenants.answer(proxy, a_key, "a.test", "big") == "from platform", 15, "team-a served the shared model")
    assert tenants.answer(proxy, a_key, "a.test", "big-alias") == "from platform"
    assert tenants.answer(proxy, a_key, "a.test", "gpt-4o") == "from a"
    assert tenants.answer(proxy, b_key, "b.test", "gpt-4o") == "from b"
    assert tenants.answer(proxy, a_key, "b.test", "gpt-4o") == 401
    assert tenants.answer(proxy, b_key, "b.test", "big") == 404
    assert tenants.condition(team_a, "route", "uses-big", "Accepted")["status"] == "True"

    # the platform takes the grant back: team-a's Route says why, and `big` is gone for team-a
    lockgate.kubectl("patch", "modelprovider", "shared", "--type", "json",
                     "-p", '[{"op": "remove", "path": "/spec/allowedNamespaces"}]')
    refused = wait_for(lambda: tenants.condition(team_a, "route", "uses-big", "Accepted").get("status") == "False"
                       and tenants.condition(team_a, "route", "uses-big", "ResolvedRefs"), 15, "RefNotPermitted")
    assert refused["reason"] == "RefNotPermitted" and f"does not allow namespace {team_a}" in refused["message"]
    wait_for(lambda: tenants.answer(proxy, a_key, "a.test", "big") == 404, 15, "the shared model withdrawn")
    assert tenants.answer(proxy, a_key, "a.test", "gpt-4o") == "from a"
    served = len(shared_up.received)

    # shared with every namespace
    lockgate.kubectl("patch", "modelprovider", "shared", "--type", "merge",
                     "-p", '{"spec": {"allowedNamespaces": {"from": "All"}}}')
    wait_for(lambda: tenants.answer(proxy, b_key, "b.test", "big") == "from platform", 15, "shared with all")
    assert tenants.answer(proxy, a_key, "a.test", "big-alias") == "from platform"
    assert len(shared_up.received) == served + 2
