"""The JSON-RPC 2.0 wire of MCP: message shapes, error codes, protocol versions."""

from __future__ import annotations

import json
from typing import Any

Message = dict[str, Any]

MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
LEGACY_VERSIONS: tuple[str, ...] = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
LATEST_MODERN = MODERN_VERSIONS[0]
LATEST_LEGACY = LEGACY_VERSIONS[0]

# _meta keys every modern request carries.
META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UPSTREAM_ERROR = -32000  # implementation-defined: the upstream failed or timed out
RATE_LIMITED = -32001
FORBIDDEN = -32003
HEADER_MISMATCH = -32020
UNSUPPORTED_PROTOCOL_VERSION = -32022

# Methods whose Mcp-Name header carries params.name / params.uri.
NAMED_METHODS: dict[str, str] = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


class RpcError(Exception):
    """A JSON-RPC error to answer with; `status` is the HTTP status to use."""

    def __init__(self, code: int, message: str, data: Any = None, status: int = 200,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.status = status
        self.headers = headers or {}

    def to_message(self, request_id: Any) -> Message:
        return error_message(request_id, self.code, self.message, self.data)


def error_message(request_id: Any, code: int, message: str, data: Any = None) -> Message:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def result_message(request_id: Any, result: dict[str, Any]) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def notification(method: str, params: dict[str, Any]) -> Message:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def is_request(message: Message) -> bool:
    return "method" in message and "id" in message


def is_response(message: Message) -> bool:
    return "method" not in message and ("result" in message or "error" in message)


def parse_body(raw: bytes) -> Message:
    """One JSON-RPC message (batches were removed in 2025-06-18)."""
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RpcError(PARSE_ERROR, f"parse error: {exc}", status=400) from None
    except RecursionError:
        raise RpcError(PARSE_ERROR, "parse error: nested too deeply", status=400) from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "expected one JSON-RPC 2.0 message", status=400)
    if "id" in message and message["id"] is None:
        raise RpcError(INVALID_REQUEST, "request ids must not be null", status=400)
    return message


def params_of(message: Message) -> dict[str, Any]:
    params = message.get("params")
    return params if isinstance(params, dict) else {}


def meta_of(message: Message) -> dict[str, Any]:
    meta = params_of(message).get("_meta")
    return meta if isinstance(meta, dict) else {}


def loads_message(text: str) -> Message | None:
    """One JSON-RPC message from an SSE event's data, or None for anything else."""
    try:
        message = json.loads(text) if text else None
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def result_of(answer: Message) -> dict[str, Any]:
    """The result of a response, or its error raised as RpcError."""
    if "error" in answer:
        error = answer["error"] if isinstance(answer["error"], dict) else {}
        raise RpcError(int(error.get("code", UPSTREAM_ERROR)), str(error.get("message", "upstream error")),
                       error.get("data"))
    result = answer.get("result")
    return result if isinstance(result, dict) else {}


def dumps(message: Message) -> bytes:
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate (JSON allows "\ud800"): escaped, so the output stays UTF-8
        return json.dumps(message, separators=(",", ":")).encode()


def trace_facts(message: Message) -> dict[str, str]:
    """What names an upstream request's span: its method, and a tool call's tool (aiohttp's trace_request_ctx)."""
    method = str(message.get("method", ""))
    name = params_of(message).get("name") if method == "tools/call" else None
    return {"method": method, "tool": name} if isinstance(name, str) else {"method": method}
