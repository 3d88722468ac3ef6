"""All four MCPServer kinds through `lockgate run` (the real proxy process, manifests from files)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from tests.integration.mcp_fixtures.harness import (
    RestApi,
    fixture_upstream,
    free_port,
    llm_app,
    mcp_client,
    running,
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


@asynccontextmanager
async def lockgate_run(folder: Path) -> AsyncIterator[tuple[str, str]]:
    port, admin = free_port(), free_port()
    argv = [sys.executable, "-m", "lockgate.cli.main", "run", "-f", str(folder), "--port", str(port),
            "--admin-port", str(admin), "--state-dir", str(folder / "state")]
    async with running(argv, admin, {"LOCKGATE_SESSION_KEY": "t"}):
        async with httpx2.AsyncClient() as http:
            deadline = time.monotonic() + 20
            while (await http.get(f"http://127.0.0.1:{admin}/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "lockgate run never became ready"
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"


@pytest.mark.slow
async def test_every_kind_through_lockgate_run(tmp_path: Path) -> None:
    api = RestApi()
    async with fixture_upstream() as upstream, serve_app(api.app()) as api_url, \
            serve_app(llm_app(["forty", "-two"])) as llm:
        (tmp_path / "manifests.yaml").write_text(_manifests(upstream, api_url, llm))
        async with lockgate_run(tmp_path) as (base, admin):
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
