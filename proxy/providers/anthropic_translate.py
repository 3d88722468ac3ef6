"""OpenAI chat completions <-> Anthropic Messages API, as pure functions.

Requests: system and developer messages become `system`; text and image parts
become content blocks; assistant tool calls become `tool_use` blocks and tool
messages `tool_result` blocks; tools and tool_choice are mapped. Answers: text
and tool_use blocks become the message and its tool_calls; stop reasons and
usage are mapped. `StreamToOpenAI` turns Messages stream events into OpenAI
chunks.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

DEFAULT_MAX_TOKENS = 4096

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}

ERROR_TYPES = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "permission_error": "permission_error",
    "not_found_error": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "overloaded_error": "api_error",
    "api_error": "api_error",
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    if url.startswith("data:") and ";base64," in url:
        media_type, _, data = url[5:].partition(";base64,")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            blocks.append(_image_block(part))
    return blocks


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = {"_raw": arguments}
    return {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""), "input": parsed}


def _message(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    role = message.get("role")
    if role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                  "content": _text_of(message.get("content"))}
        return "user", [result]
    blocks = _blocks(message.get("content"))
    if role == "assistant":
        blocks += [_tool_use(c) for c in message.get("tool_calls") or ()]
        return "assistant", blocks
    return "user", blocks


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    out = {"name": function.get("name", ""), "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    return None


def request_to_anthropic(body: dict[str, Any], upstream_model: str) -> dict[str, Any]:
    """An OpenAI chat completion request as a Messages API request."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or ():
        if message.get("role") in ("system", "developer"):
            system.append(_text_of(message.get("content")))
            continue
        role, blocks = _message(message)
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)  # the Messages API alternates roles
        else:
            messages.append({"role": role, "content": blocks})
    out: dict[str, Any] = {"model": upstream_model, "messages": messages}
    if system:
        out["system"] = "\n\n".join(system)
    out["max_tokens"] = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    for name in ("temperature", "top_p", "top_k", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = [_tool(t) for t in body["tools"] if t.get("type", "function") == "function"]
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        out["tool_choice"] = choice
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    return out


def _usage(usage: dict[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    prompt = int(usage.get("input_tokens") or 0) + int(usage.get("cache_read_input_tokens") or 0) \
        + int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def response_to_openai(message: dict[str, Any], model: str) -> dict[str, Any]:
    """A Messages API answer as an OpenAI chat completion."""
    text: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
        elif kind == "tool_use":
            tool_calls.append({"id": block.get("id", ""), "type": "function",
                               "function": {"name": block.get("name", ""),
                                            "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    out_message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not tool_calls else None}
    if reasoning:
        out_message["reasoning_content"] = "".join(reasoning)
    if tool_calls:
        out_message["tool_calls"] = tool_calls
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": out_message, "logprobs": None,
                     "finish_reason": STOP_REASONS.get(message.get("stop_reason") or "", "stop")}],
        "usage": _usage(message.get("usage")),
    }


def error_to_openai(payload: Any) -> dict[str, Any]:
    """An Anthropic error body as OpenAI's error JSON."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return {"error": {"message": "The upstream failed.", "type": "api_error", "param": None, "code": None}}
    kind = str(error.get("type", "api_error"))
    return {"error": {"message": error.get("message", ""), "type": ERROR_TYPES.get(kind, "api_error"),
                      "param": None, "code": kind}}


class StreamToOpenAI:
    """Messages stream events in, OpenAI chat.completion.chunk payloads out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_tokens = 0  # of input_tokens, read from Anthropic's prompt cache
        self.tool_index: dict[int, int] = {}  # content block index -> tool_calls index
        self.started = False

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    def usage_chunk(self) -> dict[str, Any]:
        prompt, completion = self.input_tokens, self.output_tokens
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                         "total_tokens": prompt + completion}}

    def event(self, kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        if kind == "message_start":
            message = payload.get("message") or {}
            self.id = message.get("id", "")
            usage = _usage(message.get("usage"))
            self.input_tokens = usage["prompt_tokens"]
            self.output_tokens = usage["completion_tokens"]
            self.cached_tokens = int((message.get("usage") or {}).get("cache_read_input_tokens") or 0)
            self.started = True
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_index.setdefault(int(payload.get("index", 0)), len(self.tool_index))
                call = {"index": index, "id": block.get("id", ""), "type": "function",
                        "function": {"name": block.get("name", ""), "arguments": ""}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if dtype == "thinking_delta":
                return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
            if dtype == "input_json_delta":
                index = self.tool_index.get(int(payload.get("index", 0)), 0)
                call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_delta":
            usage = payload.get("usage") or {}
            if usage.get("output_tokens") is not None:
                self.output_tokens = int(usage["output_tokens"])
            if usage.get("input_tokens"):
                self.input_tokens = _usage(usage)["prompt_tokens"]
            reason = (payload.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, STOP_REASONS.get(reason or "", "stop"))]
        return []
