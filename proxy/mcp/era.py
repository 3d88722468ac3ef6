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
    if rpc.meta_of(message).get(rpc.META_PROTOCOL_VERSION) in rpc.MODERN_VERSIONS:
        return "modern"
    return "legacy"


def check_modern_headers(headers: Mapping[str, str], message: rpc.Message, require_meta: bool = True) -> None:
    """Raise RpcError(400) when a modern request's headers disagree with its body.

    `require_meta=False` (proxying) leaves the body's own _meta checks to the upstream.
    """
    version = headers.get("MCP-Protocol-Version")
    meta = rpc.meta_of(message)
    body_version = meta.get(rpc.META_PROTOCOL_VERSION)
    if version is not None and version not in rpc.MODERN_VERSIONS + rpc.LEGACY_VERSIONS:
        raise rpc.RpcError(rpc.UNSUPPORTED_PROTOCOL_VERSION, f"unsupported protocol version {version!r}",
                           {"supported": list(rpc.MODERN_VERSIONS + rpc.LEGACY_VERSIONS), "requested": version},
                           status=400)
    if not rpc.is_request(message):
        if version is not None and body_version is not None and version != body_version:
            raise _mismatch("MCP-Protocol-Version", version, body_version)
        return
    if body_version is None and require_meta:
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"params._meta[{rpc.META_PROTOCOL_VERSION!r}] is required", status=400)
    if body_version is not None and body_version not in rpc.MODERN_VERSIONS:
        raise rpc.RpcError(rpc.UNSUPPORTED_PROTOCOL_VERSION, f"unsupported protocol version {body_version!r}",
                           {"supported": list(rpc.MODERN_VERSIONS), "requested": body_version}, status=400)
    if body_version is not None and version != body_version:
        raise _mismatch("MCP-Protocol-Version", version, body_version)
    method = message.get("method")
    if decode_header_value(headers.get("Mcp-Method")) != method:
        raise _mismatch("Mcp-Method", headers.get("Mcp-Method"), method)
    field = rpc.NAMED_METHODS.get(str(method))
    if field is not None:
        name = rpc.params_of(message).get(field)
        if decode_header_value(headers.get("Mcp-Name")) != name:
            raise _mismatch("Mcp-Name", headers.get("Mcp-Name"), name)
    if require_meta and not isinstance(meta.get(rpc.META_CLIENT_CAPABILITIES), dict) and method != "server/discover":
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"params._meta[{rpc.META_CLIENT_CAPABILITIES!r}] is required", status=400)


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
