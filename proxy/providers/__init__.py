"""Provider adapters: how a request is sent to each provider type and how its answer comes back.

`adapter_for(provider_type)` returns the adapter. OpenAI-shaped providers
(openai, azure-openai, openai-compatible) differ only in URL and auth header;
anthropic translates OpenAI chat to the Messages API and back.
"""

from __future__ import annotations

from lockgate.proxy.providers.anthropic import AnthropicAdapter
from lockgate.proxy.providers.base import Adapter, Operation, StreamTranslator, UpstreamCall, Usage
from lockgate.proxy.providers.openai import AzureOpenAIAdapter, OpenAIAdapter

_ADAPTERS: dict[str, Adapter] = {
    "openai": OpenAIAdapter(),
    "openai-compatible": OpenAIAdapter(),
    "azure-openai": AzureOpenAIAdapter(),
    "anthropic": AnthropicAdapter(),
}


def adapter_for(provider_type: str) -> Adapter:
    return _ADAPTERS[provider_type]


__all__ = ["Adapter", "Operation", "StreamTranslator", "UpstreamCall", "Usage", "adapter_for"]
