"""Sampling answered by the gateway: an upstream MCP server's `sampling/createMessage`, answered
with a gateway model instead of the client's.

Only a server whose MCPServer has a sampling policy is answered, and then only
when the policy says so (`always`, or `ifClientCannot` and the client did not
declare the sampling capability). The model is chosen among the policy's models
by the request's `modelPreferences` (hints first, in order, then the
priorities, over the policy's defaults), as a request of the calling key
through the whole pipeline: its quotas, its budgets, its metrics. `maxTokens`
is respected (capped by the policy's own maximum) and the result names the
model actually used. Each key may have `requestsPerMinute` sampling requests
per server answered, counted in the quota store, so replicas share the count.

Text, image and audio content are passed on. Tool use inside sampling is not:
the gateway does not run a tool loop, so it never declares `sampling.tools`,
and a request carrying tools is refused as the spec asks.
"""

from __future__ import annotations

from typing import Any

from lockgate.api.ir import ConsumerKey, McpServer, RateLimits, SamplingPolicy, namespace_of
from lockgate.proxy.choice import defaults_of
from lockgate.proxy.completion import Completion
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.host import ChatFailed, McpHost, SampleRequest
from lockgate.proxy.preferences import PreferenceError, parse_preferences
from lockgate.proxy.quota import AdmitRequest, QuotaRejected

METHOD = "sampling/createMessage"
REJECTED = -1  # 2025-11-25: the client (here, the gateway's policy) declined the sampling request
MAX_STOP_SEQUENCES = 4
STOP_REASONS = {"stop": "endTurn", "length": "maxTokens", "content_filter": "contentFilter"}


def gateway_answers(server: McpServer, client_samples: bool) -> bool:
    """Whether the gateway answers this server's sampling requests for a client that does (or does not)
    declare the sampling capability."""
    policy = server.sampling
    if policy is None or policy.answer == "never":
        return False
    return policy.answer == "always" or not client_samples


def client_declares_sampling(capabilities: Any) -> bool:
    return isinstance(capabilities, dict) and isinstance(capabilities.get("sampling"), dict)


def with_sampling(capabilities: Any) -> dict[str, Any]:
    """Client capabilities with `sampling` declared (without tools: the gateway runs no tool loop)."""
    out = dict(capabilities) if isinstance(capabilities, dict) else {}
    if not isinstance(out.get("sampling"), dict):
        out["sampling"] = {}
    return out


class Sampler:
    def __init__(self, host: McpHost) -> None:
        self._host = host
        self._limit_keys: dict[tuple[str, str, int], ConsumerKey] = {}

    async def answer(self, key: ConsumerKey, server: McpServer, params: Any) -> dict[str, Any]:
        """The CreateMessageResult for the server's request, or RpcError (REJECTED when refused)."""
        policy = server.sampling
        if policy is None or not isinstance(params, dict):
            raise rpc.RpcError(REJECTED, "sampling is not answered by the gateway for this server")
        body = chat_body(params, policy)
        try:
            preferences = parse_preferences(params.get("modelPreferences") or {})
        except PreferenceError as exc:
            raise rpc.RpcError(rpc.INVALID_PARAMS, str(exc)) from None
        await self._count(key, server, policy)
        request = SampleRequest(key, body, policy.models, preferences.over(defaults_of(policy.model_preferences)),
                                namespace_of(server.id))
        try:
            completion = await self._host.sample(request)
        except ChatFailed as exc:
            raise rpc.RpcError(REJECTED, f"the gateway's model could not answer: {exc}") from None
        return create_message_result(completion)

    async def _count(self, key: ConsumerKey, server: McpServer, policy: SamplingPolicy) -> None:
        """One sampling request against the key's per-server sampling rate; REJECTED past it."""
        limit_key = self._limit_key(key, server.id, policy.requests_per_minute)
        scope = f"sampling:{server.id}"
        try:
            reservation = await self._host.quota.admit(AdmitRequest(limit_key, scope, scope, RateLimits(), 0))
        except QuotaRejected as exc:
            raise rpc.RpcError(REJECTED, f"sampling limit reached for this key: {policy.requests_per_minute} per "
                                         f"minute; try again in {max(1, round(exc.retry_after))}s",
                               {"retryAfter": exc.retry_after}) from None
        await self._host.quota.settle(reservation, 0)

    def _limit_key(self, key: ConsumerKey, server_id: str, rpm: int) -> ConsumerKey:
        """A key of its own for the sampling rate of (key, server): counted apart from the key's own rpm."""
        found = self._limit_keys.get((key.id, server_id, rpm))
        if found is None:
            if len(self._limit_keys) > 10_000:  # keys and servers come from the configuration
                self._limit_keys.clear()
            found = self._limit_keys[(key.id, server_id, rpm)] = ConsumerKey(
                id=f"{key.id}#sampling@{server_id}", consumer=key.consumer, hashes=(), limits=RateLimits(rpm=rpm))
        return found


def chat_body(params: dict[str, Any], policy: SamplingPolicy) -> dict[str, Any]:
    """OpenAI chat parameters for a sampling request; RpcError(INVALID_PARAMS) for what cannot be sent."""
    if params.get("tools") or params.get("toolChoice"):
        raise rpc.RpcError(rpc.INVALID_PARAMS, "tools in sampling need the sampling.tools capability, "
                                               "which the gateway does not declare")
    max_tokens = params.get("maxTokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise rpc.RpcError(rpc.INVALID_PARAMS, "maxTokens must be a positive integer")
    raw_messages = params.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise rpc.RpcError(rpc.INVALID_PARAMS, "messages must be a non-empty list")
    messages: list[dict[str, Any]] = []
    system = params.get("systemPrompt")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    messages.extend(_message(m) for m in raw_messages)
    body: dict[str, Any] = {"messages": messages,
                            "max_tokens": min(max_tokens, policy.max_tokens or max_tokens)}
    temperature = params.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        body["temperature"] = temperature
    stop = params.get("stopSequences")
    if isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        body["stop"] = stop[:MAX_STOP_SEQUENCES]
    return body


def _message(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("role") not in ("user", "assistant"):
        raise rpc.RpcError(rpc.INVALID_PARAMS, "each message needs a role, user or assistant")
    content = raw.get("content")
    blocks = content if isinstance(content, list) else [content]
    parts = [_part(b) for b in blocks]
    if all(p["type"] == "text" for p in parts):
        return {"role": raw["role"], "content": "".join(p["text"] for p in parts)}
    if raw["role"] != "user":
        raise rpc.RpcError(rpc.INVALID_PARAMS, "only user messages may carry images or audio")
    return {"role": "user", "content": parts}


def _part(block: Any) -> dict[str, Any]:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text" and isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    if kind in ("image", "audio") and isinstance(block.get("data"), str) and isinstance(block.get("mimeType"), str):
        if kind == "image":
            return {"type": "image_url", "image_url": {"url": f"data:{block['mimeType']};base64,{block['data']}"}}
        return {"type": "input_audio", "input_audio": {"data": block["data"],
                                                       "format": block["mimeType"].rpartition("/")[2]}}
    if kind in ("tool_use", "tool_result"):
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"{kind} content needs the sampling.tools capability")
    raise rpc.RpcError(rpc.INVALID_PARAMS, f"unsupported sampling content: {kind!r}")


def create_message_result(completion: Completion) -> dict[str, Any]:
    text = completion.message.get("content")
    return {"role": "assistant", "content": {"type": "text", "text": text if isinstance(text, str) else ""},
            "model": completion.model,
            "stopReason": STOP_REASONS.get(completion.finish_reason, completion.finish_reason)}
