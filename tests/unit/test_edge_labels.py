"""The door's checks and the bounded metric labels, as pure functions."""

from __future__ import annotations

from lockgate.api.ir import HttpTool, McpServer, McpUpstream
from lockgate.proxy.edge import clean_request_id, forwardable
from lockgate.proxy.labels import OTHER, ToolLabels, mcp_error_label, mcp_method_label


def test_request_ids_are_kept_only_as_short_printable_tokens() -> None:
    assert clean_request_id("3f2a-req_1.2/x:y=z") == "3f2a-req_1.2/x:y=z"
    for bad in (None, "", "a" * 129, "two words", "caf\u00e9", "line\r\nbreak", "nul\0", "tab\t", "\udcff"):
        assert clean_request_id(bad) is None, bad


def test_only_token_names_and_visible_ascii_values_are_forwarded() -> None:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Mcp-Name": "caf\udcc3\udca9",  # undecodable bytes as aiohttp hands them over
        "MCP-Protocol-Version": "2025-06-18",
        "mcp-param-ok": "=?base64?aGk=?=",
        "mcp-param-bad": "a\x7fb",
        "mcp-param-sp(ace": "x",
        "Authorization": "Bearer secret",
    }
    out = forwardable(headers, ("Accept", "Mcp-Name", "MCP-Protocol-Version", "Last-Event-ID"), prefix="mcp-param-")
    assert out == {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18",
                   "mcp-param-ok": "=?base64?aGk=?="}


def test_mcp_method_and_error_labels_are_a_closed_set() -> None:
    assert mcp_method_label("tools/call") == "tools/call"
    assert {mcp_method_label(m) for m in ("x" * 300, "tools/calls", 7, None, "PATCH")} == {OTHER}
    assert mcp_error_label(200, -32601) == "jsonrpc_-32601"
    assert mcp_error_label(200, 123456) == mcp_error_label(200, "boom") == "jsonrpc_other"
    assert mcp_error_label(404, None) == "http_404"
    assert mcp_error_label(200, None) is None


def test_tool_labels_are_the_configured_names_and_a_bounded_few_from_upstreams() -> None:
    tools = McpServer(id="t/tools", name="tools", path="/tools", kind="tools",
                      tools=(HttpTool(name="lookup", url="http://127.0.0.1:9/x"),))
    upstream = McpServer(id="t/up", name="up", path="/up", kind="upstream", upstream=McpUpstream(urls=()))
    labels = ToolLabels(cap=3)
    assert labels.label(tools, "lookup", False) == "lookup"
    assert labels.label(tools, "made-up", True) == OTHER
    assert labels.label(upstream, "failed-call", False) == OTHER
    seen = {labels.label(upstream, f"tool-{n}", True) for n in range(50)}
    assert seen == {"tool-0", "tool-1", "tool-2", OTHER}
    assert labels.label(upstream, "tool-1", False) == "tool-1"
    assert labels.label(upstream, "", True) == ""


def test_parsers_refuse_what_they_cannot_read_instead_of_failing() -> None:
    from lockgate.proxy.auth import lookup
    from lockgate.proxy.errors import ApiError
    from lockgate.proxy.mcp import jsonrpc as rpc
    from lockgate.proxy.mcp.session_token import _PREFIX, SessionSigner
    from lockgate.proxy.snapshot import compile_snapshot
    from tests.gatewayconfig import snapshot

    compiled = compile_snapshot(snapshot([]))
    for key in ("caf\udcc3\udca9", "\udc80", "k\u00e9y"):  # header bytes that are not UTF-8 arrive as surrogates
        try:
            lookup(compiled, key)
            raise AssertionError("expected a refusal")
        except ApiError as error:
            assert error.status == 401
    assert SessionSigner(b"k" * 32).decode(_PREFIX + "caf\u00e9.sig\udc80") is None
    for raw in (b"[" * 100_000, b'{"a":' * 5000):
        try:
            rpc.parse_body(raw)
            raise AssertionError("expected a parse error")
        except rpc.RpcError as error:
            assert error.code == rpc.PARSE_ERROR and error.status == 400
    message = rpc.parse_body(b'{"jsonrpc":"2.0","id":1,"method":"\\udc80"}')
    assert rpc.dumps(message).decode() == '{"jsonrpc":"2.0","id":1,"method":"\\udc80"}'
