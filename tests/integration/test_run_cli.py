"""`lockgate run` and `lockgate dev run-quickstart` as users start them: real
processes on free loopback ports, real files, the official openai SDK."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from tests.integration.gateway_process import gateway_process, quickstart_process, wait_for

pytest.importorskip("lockgate.proxy.server", reason="the data plane (proxy/server.py) is not merged yet")

KEY = "lg-run-test-key-0000"
MANIFESTS = """\
apiVersion: v1
kind: Secret
metadata: {{name: k, namespace: t}}
stringData: {{api-key: {key}}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: k, namespace: t}}
spec: {{consumer: tests, secretName: k}}
---
apiVersion: lockgate.io/v1alpha1
kind: Route
metadata: {{name: api, namespace: t}}
spec: {{type: openai, hosts: ["*"]}}
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: p, namespace: t}}
spec:
  type: openai-compatible
  endpoint: http://127.0.0.1:9/v1
  models: [{models}]
"""


def _models(url: str) -> list[str]:
    response = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2)
    response.raise_for_status()
    return sorted(m["id"] for m in response.json()["data"])


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def test_run_serves_admin_endpoints_models_and_hot_reloads(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    manifest = folder / "all.yaml"
    manifest.write_text(MANIFESTS.format(key=KEY, models="{name: alpha}"))
    with gateway_process(["run", "-f", str(folder)], tmp_path) as gw:
        assert httpx.get(f"{gw.admin}/healthz").status_code == 200
        metrics = httpx.get(f"{gw.admin}/metrics")
        assert metrics.status_code == 200 and "# TYPE" in metrics.text
        assert _models(gw.url) == ["alpha"]
        assert httpx.get(f"{gw.url}/v1/models", headers={"Authorization": "Bearer lg-wrong"}).status_code == 401
        first_hash = httpx.get(f"{gw.admin}/config").json()["hash"]

        _write(manifest, MANIFESTS.format(key=KEY, models="{name: alpha}, {name: beta}"))
        wait_for(lambda: _models(gw.url) == ["alpha", "beta"], "the edit to be served", gw)
        second_hash = httpx.get(f"{gw.admin}/config").json()["hash"]
        assert second_hash != first_hash

        _write(manifest, "kind: [broken\n")
        wait_for(lambda: "keeping the last good config" in gw.logs(), "the broken edit to be reported", gw)
        assert _models(gw.url) == ["alpha", "beta"]
        assert httpx.get(f"{gw.admin}/config").json()["hash"] == second_hash
        assert KEY not in gw.logs()


def test_quickstart_answers_the_openai_sdk(tmp_path: Path) -> None:
    with quickstart_process(tmp_path) as gw:
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="lg-quickstart-demo-key", max_retries=0)
        assert {"small", "large", "embed", "chat"} <= {m.id for m in client.models.list()}
        answer = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi there"}])
        assert answer.choices[0].message.content == "echo: hi there"
