"""GenAI semantic conventions (v1.41) as pure functions: operation and provider
names, and the finish reasons found in an answer's bytes."""

from __future__ import annotations

import re

# Our operations -> `gen_ai.operation.name`.
OPERATIONS = {"chat": "chat", "messages": "chat", "responses": "chat", "completions": "text_completion",
              "embeddings": "embeddings"}
# Provider types -> `gen_ai.provider.name` (well-known values; a self-hosted engine names itself).
PROVIDERS = {"openai": "openai", "azure-openai": "azure.ai.openai", "anthropic": "anthropic"}
# OpenAI's and Anthropic's finish fields, in whole answers and stream events alike.
_FINISH = re.compile(rb'"(?:finish_reason|stop_reason)"\s*:\s*"([A-Za-z_]{1,32})"')


def operation_name(op: str) -> str:
    return OPERATIONS.get(op, op)


def provider_name(provider_type: str, engine: str = "generic") -> str:
    known = PROVIDERS.get(provider_type)
    if known is not None:
        return known
    return engine if engine != "generic" else provider_type


def finish_reasons(data: bytes) -> list[str]:
    """The distinct finish reasons in `data`, in order of appearance (empty for none)."""
    if b"_reason" not in data or data.count(b"_reason") == data.count(b'_reason":null'):
        return []  # none, or only the `null` of every stream event but the last
    reasons: list[str] = []
    for found in _FINISH.findall(data):
        reason = found.decode()
        if reason not in reasons:
            reasons.append(reason)
    return reasons
