"""What the MCP gateway needs from the proxy it runs in (the seam to the data plane).

`dataplane.DataPlaneHost` adapts the data plane's `Gateway` to it; the MCP
modules use nothing else of the proxy, so they can be run and tested against
any other implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from lockgate.api.ir import ConsumerKey
from lockgate.proxy.completion import Completion
from lockgate.proxy.preferences import Preferences
from lockgate.proxy.quota import QuotaService
from lockgate.proxy.source import Snapshot


@dataclass(frozen=True)
class ChatRequest:
    """A chat completion for a model tool, run through the same pipeline as /v1/chat/completions."""

    key: ConsumerKey
    model: str
    messages: list[dict[str, str]]
    max_tokens: int | None = None
    temperature: float | None = None
    namespace: str | None = None  # whose models and aliases (the MCPServer's namespace); None: the key's


@dataclass(frozen=True)
class SampleRequest:
    """A whole chat completion answering an MCP server's sampling request, by a model chosen among
    `candidates` by `preferences`, charged to `key`."""

    key: ConsumerKey
    body: dict[str, Any]  # OpenAI chat parameters: messages, max_tokens, temperature, stop
    candidates: tuple[str, ...]
    preferences: Preferences | None
    namespace: str  # the MCPServer's: whose models


class McpHost(Protocol):
    gateway_name: str

    def snapshot(self) -> Snapshot | None: ...

    def authenticate(self, request: web.Request) -> ConsumerKey | None:
        """The key of the request's Bearer token, or None when absent, unknown or expired."""
        ...

    @property
    def http(self) -> aiohttp.ClientSession: ...

    @property
    def quota(self) -> QuotaService: ...

    def chat(self, request: ChatRequest) -> AsyncIterator[str]:
        """Text deltas of the answer; raises ChatFailed when the pipeline refuses or fails."""
        ...

    async def sample(self, request: SampleRequest) -> Completion:
        """The whole answer and the model chosen; raises ChatFailed when the pipeline refuses or fails."""
        ...


class ChatFailed(Exception):
    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status
