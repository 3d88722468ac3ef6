"""MCP servers between namespaces, through `lockgate run` and the official mcp
SDK: a server shared with one namespace by `allowedNamespaces`, aggregated
across namespaces, and model tools answered from the pool of the server's
own namespace."""

from __future__ import annotations

from pathlib import Path

import httpx2

from tests.integration.mcp_fixtures.harness import llm_app, lockgate_run, mcp_client, serve_app, text_of

A_KEY = "sk-mcp-tenancy-team-a-0001"
B_KEY = "sk-mcp-tenancy-team-b-0002"


def _manifests(platform_llm: str, team_llm: str) -> str:
    return f"""
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: team-a}}
stringData: {{app: {A_KEY}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: team-b}}
stringData: {{app: {B_KEY}}}
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: llm, namespace: platform}}
spec: {{type: openai-compatible, endpoint: "{platform_llm}/v1", models: [{{name: tiny}}]}}
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: llm, namespace: team-a}}
spec: {{type: openai-compatible, endpoint: "{team_llm}/v1", models: [{{name: tiny}}]}}
---
apiVersion: lockgate.io/v1alpha1
kind: MCPServer
metadata: {{name: llm, namespace: platform}}
spec:
  path: /platform/llm
  modelTools: [{{model: tiny, toolName: ask}}]
  allowedNamespaces: {{from: Names, names: [team-a]}}
---
apiVersion: lockgate.io/v1alpha1
kind: MCPServer
metadata: {{name: own, namespace: team-a}}
spec:
  path: /team-a/own
  modelTools: [{{model: tiny, toolName: ask}}]
---
apiVersion: lockgate.io/v1alpha1
kind: MCPServer
metadata: {{name: both, namespace: team-a}}
spec:
  path: /team-a/both
  aggregate: {{servers: [platform/llm, own]}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: app, namespace: team-a}}
spec: {{consumer: a, existingSecret: {{name: keys, key: app}}, mcpServers: [platform/llm, own, both]}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: app, namespace: team-b}}
spec: {{consumer: b, existingSecret: {{name: keys, key: app}}, mcpServers: [platform/llm]}}
"""


async def test_a_shared_mcp_server_and_model_tools_per_namespace(tmp_path: Path) -> None:
    async with serve_app(llm_app(["platform"])) as platform_llm, serve_app(llm_app(["team-a"])) as team_llm:
        (tmp_path / "manifests").mkdir()
        (tmp_path / "manifests" / "all.yaml").write_text(_manifests(platform_llm, team_llm))
        async with lockgate_run(tmp_path / "manifests") as (base, _):
            async with mcp_client(f"{base}/platform/llm/mcp", A_KEY) as client:
                assert text_of(await client.call_tool("ask", {"prompt": "hi"})) == "platform (hi)"
            async with mcp_client(f"{base}/team-a/own/mcp", A_KEY) as client:
                assert text_of(await client.call_tool("ask", {"prompt": "hi"})) == "team-a (hi)"
            async with mcp_client(f"{base}/team-a/both/mcp", A_KEY) as client:
                assert {t.name for t in (await client.list_tools()).tools} == {"llm__ask", "own__ask"}
                assert text_of(await client.call_tool("llm__ask", {"prompt": "x"})) == "platform (x)"
                assert text_of(await client.call_tool("own__ask", {"prompt": "x"})) == "team-a (x)"
            async with httpx2.AsyncClient() as http:
                refused = await http.post(f"{base}/platform/llm/mcp", headers={"Authorization": f"Bearer {B_KEY}"},
                                          json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                assert refused.status_code == 403
                catalog = (await http.get(f"{base}/v1/mcp/servers", headers={"Authorization": f"Bearer {B_KEY}"})).json()
                assert catalog["data"] == []
                catalog = (await http.get(f"{base}/v1/mcp/servers", headers={"Authorization": f"Bearer {A_KEY}"})).json()
                assert sorted(e["id"] for e in catalog["data"]) == ["platform/llm", "team-a/both", "team-a/own"]
