"""Namespaces are tenants, through `lockgate run` as users start it and the
official openai SDK: a key works only on its namespace's hosts, sees only its
namespace's models (two namespaces may both serve a `gpt-4o` of their own),
and a provider of another namespace only while that provider shares it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.integration.gateway_process import Gateway, gateway_process, wait_for

A_KEY = "lg-tenancy-team-a-0123456789abcdef"
B_KEY = "lg-tenancy-team-b-0123456789abcdef"
B_NARROW_KEY = "lg-tenancy-team-b-narrow-0123456789"
SHARED_GRANT = "allowedNamespaces: {from: Names, names: [team-a]}"

MANIFESTS = """\
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: team-a}}
stringData: {{app: {a_key}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: team-b}}
stringData: {{app: {b_key}, narrow: {b_narrow_key}}}
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: shared, namespace: platform}}
spec:
  type: openai-compatible
  endpoint: {platform_url}
  models: [{{name: big}}]
  {grant}
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: own, namespace: team-a}}
spec:
  type: openai-compatible
  endpoint: {a_url}
  models: [{{name: gpt-4o}}]
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: own, namespace: team-b}}
spec:
  type: openai-compatible
  endpoint: {b_url}
  models: [{{name: gpt-4o}}, {{name: b-only}}]
---
apiVersion: lockgate.io/v1alpha1
kind: Route
metadata: {{name: api, namespace: team-a}}
spec: {{type: openai, hosts: [a.test, shared.test]}}
---
apiVersion: lockgate.io/v1alpha1
kind: Route
metadata: {{name: api, namespace: team-b}}
spec: {{type: openai, hosts: [b.test, shared.test]}}
---
apiVersion: lockgate.io/v1alpha1
kind: Route
metadata: {{name: reply, namespace: team-b}}
spec:
  type: chatTemplate
  hosts: [b.test]
  path: /v1/reply
  chatTemplate: {{model: b-only, promptTemplate: "Reply to {{{{ text }}}}", variables: {{text: {{required: true}}}}}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: app, namespace: team-a}}
spec: {{consumer: a, existingSecret: {{name: keys, key: app}}}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: app, namespace: team-b}}
spec: {{consumer: b, existingSecret: {{name: keys, key: app}}, routes: [reply]}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: narrow, namespace: team-b}}
spec: {{consumer: b-narrow, existingSecret: {{name: keys, key: narrow}}, models: [gpt-4o], routes: [reply]}}
"""


def _client(gateway: Gateway, key: str, host: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, default_headers={"Host": host})


def _chat(gateway: Gateway, key: str, host: str, model: str) -> str:
    answer = _client(gateway, key, host).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content or ""


def _refusal(gateway: Gateway, key: str, host: str, model: str) -> tuple[int, Any]:
    with pytest.raises(openai.APIStatusError) as error:
        _chat(gateway, key, host, model)
    body = error.value.body
    return error.value.status_code, body.get("code") if isinstance(body, dict) else body


def _models(gateway: Gateway, key: str, host: str) -> list[str]:
    return sorted(m.id for m in _client(gateway, key, host).models.list())


def _reply(gateway: Gateway, key: str, host: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/reply", json={"text": "hello"}, timeout=10,
                      headers={"Authorization": f"Bearer {key}", "Host": host})


async def test_tenants_stay_apart_and_a_grant_shares_a_provider(upstream, tmp_path: Path) -> None:
    a_fake = await upstream("openai", text="from team-a")
    b_fake = await upstream("openai", text="from team-b")
    platform_fake = await upstream("openai", text="from platform")
    folder = tmp_path / "manifests"
    folder.mkdir()
    manifest = folder / "all.yaml"

    def write(grant: str) -> None:
        text = MANIFESTS.format(a_key=A_KEY, b_key=B_KEY, b_narrow_key=B_NARROW_KEY, grant=grant,
                                a_url=a_fake.url, b_url=b_fake.url, platform_url=platform_fake.url)
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(manifest)

    write(SHARED_GRANT)
    with gateway_process(["run", "-f", str(folder)], tmp_path) as gw:
        def check() -> None:
            # the same model name in two namespaces: each reaches its own upstream, on a host both serve
            assert _chat(gw, A_KEY, "shared.test", "gpt-4o") == "from team-a"
            assert _chat(gw, B_KEY, "shared.test", "gpt-4o") == "from team-b"
            assert _chat(gw, B_KEY, "b.test", "gpt-4o") == "from team-b"
            # a key of team-a is no key at all on team-b's host, and team-b's models are not there for it
            assert _refusal(gw, A_KEY, "b.test", "gpt-4o") == (401, "invalid_api_key")
            assert _refusal(gw, A_KEY, "shared.test", "b-only") == (404, "model_not_found")
            # the platform shares `big` with team-a only
            assert _chat(gw, A_KEY, "a.test", "big") == "from platform"
            assert _refusal(gw, B_KEY, "b.test", "big") == (404, "model_not_found")
            assert _models(gw, A_KEY, "shared.test") == ["big", "gpt-4o"]
            assert _models(gw, B_KEY, "shared.test") == ["b-only", "gpt-4o"]
            # a chatTemplate Route: its namespace's keys only, within their route and model allowlists
            reply = _reply(gw, B_KEY, "b.test")
            assert reply.status_code == 200 and reply.text == "from team-b", reply.text
            assert b_fake.received[-1].body["messages"][-1]["content"] == "Reply to hello"
            assert _reply(gw, A_KEY, "b.test").status_code == 401
            narrow = _reply(gw, B_NARROW_KEY, "b.test")
            assert (narrow.status_code, narrow.json()["error"]["code"]) == (403, "model_not_allowed")

        await asyncio.to_thread(check)
        assert [r.body["model"] for r in platform_fake.received] == ["big"]

        write("")  # the platform takes the grant back
        await asyncio.to_thread(
            wait_for, lambda: _models(gw, A_KEY, "a.test") == ["gpt-4o"], "the grant's removal to be served", gw)
        assert await asyncio.to_thread(_refusal, gw, A_KEY, "a.test", "big") == (404, "model_not_found")
        assert len(platform_fake.received) == 1
        assert await asyncio.to_thread(_chat, gw, A_KEY, "a.test", "gpt-4o") == "from team-a"
        for key in (A_KEY, B_KEY, B_NARROW_KEY):
            assert key not in gw.logs()


def test_render_strict_reports_a_reference_not_granted(tmp_path: Path) -> None:
    route = """\
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {name: shared, namespace: platform}
spec:
  type: openai-compatible
  endpoint: http://127.0.0.1:9/v1
  models: [{name: big}]
---
apiVersion: lockgate.io/v1alpha1
kind: Route
metadata: {name: api, namespace: team-a}
spec:
  type: openai
  aliases: [{name: default, targets: [{model: big}]}]
---
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: team-a}
stringData: {app: lg-tenancy-render-0123456789abcdef}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {name: app, namespace: team-a}
spec: {consumer: a, existingSecret: {name: keys, key: app}, mcpServers: [platform/tools]}
"""
    (tmp_path / "all.yaml").write_text(route)
    result = subprocess.run([sys.executable, "-m", "lockgate.cli.main", "render", "--strict", "-f", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "error: Route team-a/api: not accepted (RefNotPermitted)" in result.stderr
    assert "platform/shared, which does not allow namespace team-a" in result.stderr
    assert "error: ApiKey team-a/app: references left out (RefNotPermitted): spec.mcpServers: platform/tools" \
        in result.stderr
    granted = route.replace("models: [{name: big}]", "models: [{name: big}]\n  allowedNamespaces: {from: All}")
    granted = granted.replace(", mcpServers: [platform/tools]", "")
    (tmp_path / "all.yaml").write_text(granted)
    result = subprocess.run([sys.executable, "-m", "lockgate.cli.main", "render", "--strict", "-f", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
