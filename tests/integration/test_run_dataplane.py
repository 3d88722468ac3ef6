"""`lockgate run -f DIR` as users start it, with manifests shaped like the contract's, against loopback
upstreams shaped like OpenAI, Azure OpenAI, Anthropic and vLLM; official openai and anthropic SDKs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic
import httpx
import openai

from tests.integration.gateway_process import gateway_process

KEY = "lg-dataplane-run-key-0123456789"

MANIFESTS = """\
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: ai}}
stringData: {{openai: sk-o, azure: az-key, anthropic: sk-ant, consumer: {key}}}
---
apiVersion: v1
kind: Service
metadata: {{name: vllm, namespace: ai}}
spec:
  ports: [{{name: http, port: 8000, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: vllm-1
  namespace: ai
  labels: {{kubernetes.io/service-name: vllm}}
addressType: IPv4
ports: [{{name: http, port: {vllm_port}, protocol: TCP}}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {{ready: true}}
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: openai, namespace: ai}}
spec:
  type: openai
  endpoint: {openai_url}
  credentials: {{secretRef: {{name: creds, key: openai}}}}
  retries: {{attempts: 0}}
  models: [{{name: gpt-4o, upstreamModel: gpt-4o-2024-08-06}}]
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: azure, namespace: ai}}
spec:
  type: azure-openai
  endpoint: {azure_url}
  apiVersion: "2024-10-21"
  priority: 1
  credentials: {{secretRef: {{name: creds, key: azure}}}}
  models: [{{name: gpt-4o, upstreamModel: gpt-4o-prod}}]
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: anthropic, namespace: ai}}
spec:
  type: anthropic
  endpoint: {anthropic_url}
  credentials: {{secretRef: {{name: creds, key: anthropic}}}}
  models: [{{name: claude-sonnet, upstreamModel: claude-sonnet-4-5}}]
---
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: qwen, namespace: ai}}
spec:
  type: openai-compatible
  service: {{name: vllm, port: http}}
  basePath: /v1
  engine: vllm
  models: [{{name: qwen2.5-72b, upstreamModel: Qwen/Qwen2.5-72B-Instruct}}]
  compat: {{reasoning: separate}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: search, namespace: ai}}
spec:
  consumer: search
  existingSecret: {{name: creds, key: consumer}}
  models: ["gpt-4o", "qwen*", "claude-*"]
---
apiVersion: lockgate.io/v1alpha1
kind: Route
metadata: {{name: public, namespace: ai}}
spec: {{type: openai, hosts: ["127.0.0.1", "localhost"]}}
"""


async def test_lockgate_run_serves_every_provider_type(upstream, tmp_path: Path) -> None:
    from tests.upstreams import Action

    openai_fake = await upstream("openai", text="from openai")
    azure_fake = await upstream("azure", text="from azure")
    anthropic_fake = await upstream("anthropic", text="from claude")
    vllm_fake = await upstream("vllm")
    vllm_fake.then(Action(chunks=["<think>hm", "m</think>", "from vllm"]))
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(MANIFESTS.format(
        key=KEY, vllm_port=vllm_fake.port, openai_url=openai_fake.url, azure_url=azure_fake.url,
        anthropic_url=anthropic_fake.url))
    with gateway_process(["run", "-f", str(folder)], tmp_path) as gateway:
        base = f"{gateway.url}/v1"

        def sync_chat(model: str) -> str:
            client = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0)
            return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}]
                                                  ).choices[0].message.content or ""

        assert await asyncio.to_thread(sync_chat, "gpt-4o") == "from openai"
        assert openai_fake.received[-1].body["model"] == "gpt-4o-2024-08-06"
        assert openai_fake.received[-1].headers["Authorization"] == "Bearer sk-o"
        openai_fake.then(Action(status=503))
        assert await asyncio.to_thread(sync_chat, "gpt-4o") == "from azure"  # tier 1 after a 503
        assert azure_fake.received[-1].headers["api-key"] == "az-key"
        assert await asyncio.to_thread(sync_chat, "claude-sonnet") == "from claude"

        client = openai.AsyncOpenAI(base_url=base, api_key=KEY, max_retries=0)
        stream = await client.chat.completions.create(model="qwen2.5-72b", stream=True,
                                                      messages=[{"role": "user", "content": "hi"}])
        content, reasoning = "", ""
        async for chunk in stream:
            if chunk.choices:
                content += chunk.choices[0].delta.content or ""
                reasoning += (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        assert (content, reasoning) == ("from vllm", "hmm")

        claude = anthropic.AsyncAnthropic(base_url=gateway.url, api_key=KEY, max_retries=0)
        message = await claude.messages.create(model="claude-sonnet", max_tokens=10,
                                               messages=[{"role": "user", "content": "hi"}])
        assert message.content[0].text == "from claude"

        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{gateway.admin}/metrics")).text
        assert 'consumer="search"' in metrics and 'provider="ai/azure"' in metrics
