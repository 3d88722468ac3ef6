"""The MCP gateway's pure pieces: eras and header checks, session ids, access, SSE parsing, prefixes."""

from __future__ import annotations

from collections.abc import AsyncIterator
import pytest

from lockgate.api.ir import ApiKeyHash, ConsumerKey, GatewayConfig, McpServer, Route, hash_key
from lockgate.proxy.mcp import access, sse
from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.aggregate import prefixed
from lockgate.proxy.mcp.era import check_modern_headers, decode_header_value, encode_header_value, era_of
from lockgate.proxy.mcp.session_token import SessionRef, SessionSigner

META = {rpc.META_PROTOCOL_VERSION: "2026-07-28", rpc.META_CLIENT_CAPABILITIES: {}}


def _call(name: str = "add") -> rpc.Message:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "_meta": META}}


def _headers(**extra: str) -> dict[str, str]:
    return {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "add", **extra}


def test_era_follows_the_version_header_then_the_body() -> None:
    assert era_of(_headers(), _call()) == "modern"
    assert era_of({}, {"jsonrpc": "2.0", "id": 1, "method": "initialize"}) == "legacy"
    assert era_of({"MCP-Protocol-Version": "2025-06-18"}, _call()) == "legacy"
    assert era_of({}, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) == "legacy"
    assert era_of({"MCP-Protocol-Version": "v999"}, _call()) == "modern"


def test_matching_headers_pass() -> None:
    check_modern_headers(_headers(), _call())


@pytest.mark.parametrize("headers, code", [
    (_headers(**{"Mcp-Name": "other"}), rpc.HEADER_MISMATCH),
    (_headers(**{"Mcp-Method": "tools/list"}), rpc.HEADER_MISMATCH),
    ({"Mcp-Method": "tools/call", "Mcp-Name": "add"}, rpc.HEADER_MISMATCH),
    (_headers(**{"MCP-Protocol-Version": "2025-11-25"}), rpc.HEADER_MISMATCH),
])
def test_mismatched_headers_are_400(headers: dict[str, str], code: int) -> None:
    with pytest.raises(rpc.RpcError) as caught:
        check_modern_headers(headers, _call())
    assert caught.value.code == code and caught.value.status == 400


def test_missing_meta_is_invalid_params_unless_proxying() -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
    with pytest.raises(rpc.RpcError) as caught:
        check_modern_headers(headers, message)
    assert caught.value.code == rpc.INVALID_PARAMS and caught.value.status == 400
    check_modern_headers(headers, message, require_meta=False)  # the upstream judges its own _meta


def test_base64_header_values_round_trip() -> None:
    assert encode_header_value("add") == "add"
    encoded = encode_header_value("天气 tool")
    assert encoded.startswith("=?base64?") and decode_header_value(encoded) == "天气 tool"
    check_modern_headers(_headers(**{"Mcp-Name": encoded}), _call("天气 tool"))


def test_session_ids_are_signed_and_bound() -> None:
    signer = SessionSigner(b"k" * 32)
    ref = SessionRef("ns/s", "ns/key", "http://10.0.0.7:8080/mcp", "upstream-session-1")
    token = signer.encode(ref)
    assert token.isascii() and token.isprintable() and " " not in token
    assert signer.decode(token) == ref
    assert SessionSigner(b"x" * 32).decode(token) is None  # another replica set's key
    payload, _, signature = token.removeprefix("lg1.").partition(".")
    other_key = SessionSigner(b"k" * 32).encode(SessionRef("ns/s", "ns/other", ref.upstream_url, ref.upstream_session))
    swapped = f"lg1.{other_key.removeprefix('lg1.').partition('.')[0]}.{signature}"  # another payload, our signature
    assert signer.decode(swapped) is None
    assert signer.decode("garbage") is None


def test_keys_tools_and_hosts() -> None:
    key = ConsumerKey(id="ns/k", consumer="c", hashes=(ApiKeyHash(sha256=hash_key("new")),),
                      mcp_servers=("ns/s",), mcp_tools={"ns/s": ("get_*", "echo")})
    config = GatewayConfig(keys=(key,), routes=(Route(id="ns/r", type="openai", hosts=("ai.example.com", "*.corp.example", "*")),))
    assert access.tool_allowed(key, "ns/s", "get_logs") and access.tool_allowed(key, "ns/s", "echo")
    assert not access.tool_allowed(key, "ns/s", "delete_all")
    assert access.tool_allowed(key, "ns/other", "anything")
    server = McpServer(id="ns/s", name="s", path="/s", kind="tools")
    allowed = access.allowed_hosts(server, config)
    assert access.origin_allowed("ai.example.com", "https://ai.example.com", allowed)
    assert access.origin_allowed("127.0.0.1:8080", None, allowed)
    assert access.origin_allowed("[::1]:80", "http://localhost:3000", allowed)
    assert not access.origin_allowed("evil.example.com", None, allowed)
    assert access.origin_allowed("tools.corp.example", "https://app.corp.example", allowed)
    assert access.origin_allowed("lockgate.ai-gateway.svc:8080", None, allowed)
    assert not access.origin_allowed("corp.example.evil.com", None, allowed)
    assert not access.origin_allowed("localhost", "http://evil.example.com", allowed)
    assert not access.origin_allowed("localhost", "null", allowed)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_sse_parser_handles_split_chunks_crlf_and_comments() -> None:
    stream = _chunks(b": keep-alive\r\n\r\nid: 7\r\nevent: message\r\ndata: {\"a\":", b"1}\r\n\r", b"\ndata: x\ndata: y\n\n")
    events = [e async for e in sse.parse(stream)]
    assert [(e.id, e.event, e.data) for e in events] == [("7", "message", '{"a":1}'), (None, None, "x\ny")]
    assert sse.Event("a\nb", id="1").encode() == b"id: 1\ndata: a\ndata: b\n\n"


def test_aggregate_names_keep_within_64_characters() -> None:
    assert prefixed("logs", "query") == "logs__query"
    assert prefixed("logs_", "query") == "logs_query"
    long = prefixed("a-very-long-server-name-for-the-platform", "and-an-even-longer-tool-name-that-goes-on")
    assert len(long) == 64
    assert long != prefixed("a-very-long-server-name-for-the-platform", "and-an-even-longer-tool-name-that-goes-on-too")


async def test_keepalives_fill_silences_and_the_source_is_closed() -> None:
    import asyncio

    closed: list[bool] = []
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[sse.Event]:
        try:
            await gate.wait()
            yield sse.Event("late")
            await asyncio.Event().wait()  # never yields again
            yield sse.Event("never")
        finally:
            closed.append(True)

    stream = sse.with_keepalives(slow(), every=0.01)
    first, second = await anext(stream), await anext(stream)
    gate.set()
    events = [first, second]
    while events[-1].data != "late":
        events.append(await anext(stream))
    await stream.aclose()
    assert first.encode() == b": keep-alive\n\n" and second.comment == "keep-alive"
    assert closed == [True]
