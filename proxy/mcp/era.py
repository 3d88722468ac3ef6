"""Which protocol era a request speaks, and the 2026-07-28 header checks.

Modern (2026-07-28) requests carry MCP-Protocol-Version, Mcp-Method and, for
named methods, Mcp-Name; a server that reads the body must check them against
it (400 with -32020). Anything else is the legacy, session-based era.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Literal

from lockgate.proxy.mcp import jsonrpc as rpc

Era = Literal["modern", "legacy"]


def era_of(headers: Mapping[str, str], message: rpc.Message) -> Era:
    version = headers.get("MCP-Protocol-Version")
    if version in rpc.MODERN_VERSIONS:
        return "modern"
    if message.get("method") == "initialize" or version in rpc.LEGACY_VERSIONS:
        return "legacy"
    if version is not None:
        return "modern"  # an unknown version: answered with the modern UnsupportedProtocolVersion error
    if rpc.META_PROTOCOL_VERSION in rpc.meta_of(message) or message.get("method") == "server/discover":
        return "modern"
    return "legacy"


def check_modern_headers(headers: Mapping[str, str], message: rpc.Message, require_meta: bool = True) -> None:
    """Raise RpcError(400) when a modern request's headers disagree with its body.

    `require_meta=False` (proxying) leaves the body's own checks (required
    _meta, supported versions) to the upstream, which knows its versions.
    """
    version = headers.get("MCP-Protocol-Version")
    meta = rpc.meta_of(message)
    body_version = meta.get(rpc.META_PROTOCOL_VERSION)
    if version is not None and body_version is not None and version != body_version:
        raise _mismatch("MCP-Protocol-Version", version, body_version)
    if not rpc.is_request(message):
        return
    method = message.get("method")
    if require_meta:
        if body_version is None or not isinstance(meta.get(rpc.META_CLIENT_CAPABILITIES), dict):
            raise rpc.RpcError(rpc.INVALID_PARAMS, "params._meta needs io.modelcontextprotocol/protocolVersion "
                               "and io.modelcontextprotocol/clientCapabilities", status=400)
        if body_version not in rpc.MODERN_VERSIONS:
            raise rpc.RpcError(rpc.UNSUPPORTED_PROTOCOL_VERSION, f"unsupported protocol version {body_version!r}",
                               {"supported": list(rpc.MODERN_VERSIONS), "requested": body_version}, status=400)
        if version is None:
            raise _mismatch("MCP-Protocol-Version", version, body_version)
    if headers.get("Mcp-Method") is not None or require_meta:
        if decode_header_value(headers.get("Mcp-Method")) != method:
            raise _mismatch("Mcp-Method", headers.get("Mcp-Method"), method)
    field = rpc.NAMED_METHODS.get(str(method))
    if field is not None and (headers.get("Mcp-Name") is not None or require_meta):
        name = rpc.params_of(message).get(field)
        if decode_header_value(headers.get("Mcp-Name")) != name:
            raise _mismatch("Mcp-Name", headers.get("Mcp-Name"), name)


def decode_header_value(value: str | None) -> str | None:
    """Header values that are not header-safe travel as =?base64?...?=."""
    if value is not None and value.startswith("=?base64?") and value.endswith("?="):
        try:
            return base64.b64decode(value[9:-2]).decode()
        except ValueError:
            return value
    return value


def encode_header_value(value: str) -> str:
    if value.isascii() and value.isprintable() and value == value.strip():
        return value
    return "=?base64?" + base64.b64encode(value.encode()).decode() + "?="


def _mismatch(header: str, got: object, want: object) -> rpc.RpcError:
    return rpc.RpcError(rpc.HEADER_MISMATCH, f"{header} header {got!r} does not match the body ({want!r})", status=400)
