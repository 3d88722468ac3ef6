"""The `modelTools` kind: gateway models as tools, answered through the LLM pipeline."""

from __future__ import annotations

from typing import Any

from lockgate.api.ir import ModelTool
from lockgate.proxy.mcp.backend import CallContext, ToolsOnly, text_result
from lockgate.proxy.mcp.host import ChatFailed, ChatRequest, McpHost

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string", "description": "What to ask the model."},
        "max_tokens": {"type": "integer", "minimum": 1, "description": "Upper bound on the answer's tokens."},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2, "description": "Sampling temperature."},
    },
    "required": ["prompt"],
}


class ModelToolsBackend(ToolsOnly):
    def __init__(self, tools: tuple[ModelTool, ...], host: McpHost, namespace: str | None = None) -> None:
        """`namespace`: the server's, whose models and aliases the tools call."""
        self._tools = {t.tool_name: t for t in tools}
        self._host = host
        self._namespace = namespace
        self._listing = [
            {"name": t.tool_name, "description": t.description or f"Ask the model {t.model}", "inputSchema": _SCHEMA}
            for t in tools
        ]

    def tools(self) -> list[dict[str, Any]]:
        return self._listing

    async def call(self, ctx: CallContext, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        tool = self._tools[name]
        prompt = arguments.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return text_result("prompt must be a non-empty string", is_error=True)
        max_tokens = arguments.get("max_tokens", tool.max_tokens)
        if tool.max_tokens is not None and isinstance(max_tokens, int):
            max_tokens = min(max_tokens, tool.max_tokens)
        messages = [{"role": "system", "content": tool.system_prompt}] if tool.system_prompt else []
        messages.append({"role": "user", "content": prompt})
        request = ChatRequest(ctx.key, tool.model, messages, max_tokens, arguments.get("temperature"), self._namespace)
        parts: list[str] = []
        try:
            async for delta in self._host.chat(request):
                parts.append(delta)
                await ctx.progress(len(parts), message=delta)
        except ChatFailed as exc:
            return text_result(f"{tool.model}: {exc}", is_error=True)
        return text_result("".join(parts))
