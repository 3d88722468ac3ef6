"""All four MCPServer kinds through `lockgate run` (the real proxy process, manifests from files)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from tests.integration.mcp_fixtures.harness import (
    RestApi,
    fixture_upstream,
    llm_app,
    lockgate_run,
    mcp_client,
    serve_app,
    text_of,
)

KEY = "sk-mcp-test-key-0001"
NARROW_KEY = "sk-mcp-test-key-0002"
UPSTREAM_SECRET = "gateway-owned-upstream-token"


def _manifests(upstream: str, api: str, llm: str) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: tools}}
stringData: {{full: {KEY}, narrow: {NARROW_KEY}, upstream: {UPSTREAM_SECRET}, llm: sk-llm}}
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: local-llm, namespace: tools}}
spec:
  type: openai-compatible
  endpoint: {llm}/v1
  credentials: {{secretRef: {{name: keys, key: llm}}}}
  models: [{{name: tiny, upstreamModel: tiny-1}}]
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: full, namespace: tools}}
spec:
  consumer: full
  existingSecret: {{name: keys, key: full}}
  mcpServers: [fixture, orders, platform, llm]
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: narrow, namespace: tools}}
spec:
  consumer: narrow
  existingSecret: {{name: keys, key: narrow}}
  mcpServers: [fixture]
  mcpTools: {{fixture: [echo, "test_*"]}}
---
apiVersion: lockgate.io/v1alpha1
kind: MCPServer
metadata: {{name: fixture, namespace: tools}}
spec:
  path: /fixture
  description: The SDK fixture
  upstream:
    url: {upstream}
    auth: {{secretRef: {{name: keys, key: upstream}}}}
---
apiVersion: lockgate.io/v1alpha1
kind: MCPServer
metadata: {{name: orders, namespace: tools}}
spec:
  path: /orders
  tools:
    - name: find_orders
      description: Orders of a customer
      args:
        - {{name: customer, required: true, position: path}}
        - {{name: status, enum: [open, closed], default: open, position: query}}
      request: {{method: GET, url: "{api}/customers/{{customer}}/orders"}}
      response: {{template: "{{{{ json.path }}}} {{{{ json.query.status }}}}"}}
---
apiVersion: lockgate.io/v1alpha1
kind: MCPServer
metadata: {{name: llm, namespace: tools}}
spec:
  path: /llm
  modelTools:
    - {{model: tiny, toolName: ask_tiny, description: A tiny model}}
---
apiVersion: lockgate.io/v1alpha1
kind: MCPServer
metadata: {{name: platform, namespace: tools}}
spec:
  path: /platform
  aggregate: {{servers: [fixture, orders, llm]}}
"""


@pytest.mark.slow
async def test_every_kind_through_lockgate_run(tmp_path: Path) -> None:
    api = RestApi()
    async with fixture_upstream() as upstream, serve_app(api.app()) as api_url, \
            serve_app(llm_app(["forty", "-two"])) as llm:
        (tmp_path / "manifests").mkdir()
        (tmp_path / "manifests" / "all.yaml").write_text(_manifests(upstream, api_url, llm))
        async with lockgate_run(tmp_path / "manifests") as (base, admin):
            for mode in ("2026-07-28", "legacy"):
                async with mcp_client(f"{base}/fixture/mcp", KEY, mode=mode) as client:
                    assert text_of(await client.call_tool("whoami", {})) == f"Bearer {UPSTREAM_SECRET}"
                async with mcp_client(f"{base}/orders/mcp", KEY, mode=mode) as client:
                    assert text_of(await client.call_tool("find_orders", {"customer": "ann marie/1"})) == \
                        "/customers/ann marie/1/orders open"
                async with mcp_client(f"{base}/llm/mcp", KEY, mode=mode) as client:
                    assert text_of(await client.call_tool("ask_tiny", {"prompt": "6x7"})) == "forty-two (6x7)"
                async with mcp_client(f"{base}/platform/mcp", KEY, mode=mode) as client:
                    names = {t.name for t in (await client.list_tools()).tools}
                    assert {"fixture__add", "orders__find_orders", "llm__ask_tiny"} <= names
                    assert text_of(await client.call_tool("fixture__add", {"a": 40, "b": 2})) == "42"
            async with mcp_client(f"{base}/fixture/mcp", NARROW_KEY, mode="legacy") as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert "echo" in names and "add" not in names and "whoami" not in names
                with pytest.raises(MCPError):
                    await client.call_tool("add", {"a": 1, "b": 1})
            async with httpx2.AsyncClient() as http:
                refused = await http.post(f"{base}/orders/mcp", headers={"Authorization": f"Bearer {NARROW_KEY}"},
                                          json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                assert refused.status_code == 403
                catalog = (await http.get(f"{base}/v1/mcp/servers", headers={"Authorization": f"Bearer {NARROW_KEY}"})).json()
                assert [e["id"] for e in catalog["data"]] == ["tools/fixture"]
                metrics = (await http.get(f"{admin}/metrics")).text
    assert api.seen[0]["raw_path"] == "/customers/ann%20marie%2F1/orders?status=open"
    assert 'lockgate_mcp_requests_total{' in metrics and 'server="tools/orders"' in metrics
    assert 'tool="find_orders"' in metrics
    # The model tool went through the OpenAI pipeline: its requests are counted there too.
    assert 'lockgate_requests_total{' in metrics and 'model="tiny"' in metrics


def _replica_manifests(ports: list[int]) -> str:
    slices = "".join(f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: fixture-{i}
  namespace: tools
  labels: {{kubernetes.io/service-name: fixture}}
addressType: IPv4
ports: [{{name: http, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]""" for i, port in enumerate(ports))
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: tools}}
stringData: {{full: {KEY}}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: full, namespace: tools}}
spec: {{consumer: full, existingSecret: {{name: keys, key: full}}, mcpServers: [fixture]}}
---
apiVersion: v1
kind: Service
metadata: {{name: fixture, namespace: tools}}
spec: {{ports: [{{name: http, port: 80, protocol: TCP}}]}}
---
apiVersion: lockgate.io/v1alpha1
kind: MCPServer
metadata: {{name: fixture, namespace: tools}}
spec:
  path: /fixture
  upstream: {{service: {{name: fixture, port: http}}, path: /mcp}}
{slices}
"""


@pytest.mark.slow
async def test_legacy_session_keeps_to_its_upstream_across_two_gateway_processes(tmp_path: Path) -> None:
    async with fixture_upstream("--name", "first") as first, fixture_upstream("--name", "second") as second:
        ports = [int(url.split(":")[2].split("/")[0]) for url in (first, second)]
        (tmp_path / "manifests").mkdir()
        (tmp_path / "manifests" / "all.yaml").write_text(_replica_manifests(ports))
        async with lockgate_run(tmp_path / "manifests") as (replica_a, _), \
                lockgate_run(tmp_path / "manifests") as (replica_b, _):
            async with httpx2.AsyncClient(timeout=20.0) as http:
                headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json, text/event-stream"}
                init = await http.post(f"{replica_a}/fixture/mcp", headers=headers, json={
                    "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
                assert init.status_code == 200, init.text
                session = init.headers["mcp-session-id"]
                session_headers = {**headers, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
                note = await http.post(f"{replica_b}/fixture/mcp", headers=session_headers,
                                       json={"jsonrpc": "2.0", "method": "notifications/initialized"})
                assert note.status_code == 202
                # Either replica sends every call to the endpoint holding the session (the other would answer 404).
                for i, replica in enumerate([replica_b, replica_a, replica_b, replica_a, replica_b, replica_b], start=2):
                    call = await http.post(f"{replica}/fixture/mcp", headers=session_headers, json={
                        "jsonrpc": "2.0", "id": i, "method": "tools/call",
                        "params": {"name": "add", "arguments": {"a": i, "b": 1}}})
                    assert call.status_code == 200, call.text
                    assert f'"text":"{i + 1}"' in call.text.replace(" ", "")
                forged = session[:-2] + ("AA" if not session.endswith("AA") else "BB")
                refused = await http.post(f"{replica_b}/fixture/mcp", headers={**session_headers, "Mcp-Session-Id": forged},
                                          json={"jsonrpc": "2.0", "id": 9, "method": "tools/list"})
                assert refused.status_code == 404
                ended = await http.delete(f"{replica_b}/fixture/mcp", headers=session_headers)
                assert ended.status_code == 200
                gone = await http.post(f"{replica_a}/fixture/mcp", headers=session_headers, json={
                    "jsonrpc": "2.0", "id": 10, "method": "tools/list"})
                assert gone.status_code == 404
