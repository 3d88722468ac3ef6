"""Generated HTTP tools: arguments encoded for their position, never escaping the URL's path."""

from __future__ import annotations

import json

import pytest

from lockgate.api.ir import HttpTool, SecretHeader, ToolArg
from lockgate.proxy.mcp import http_tools
from lockgate.proxy.mcp.jsonrpc import RpcError


def _tool(**fields: object) -> HttpTool:
    base: dict[str, object] = {
        "name": "t", "url": "https://api.example.com:8443/v1/items/{id}?fixed=1",
        "args": (ToolArg(name="id", required=True, position="path"),
                 ToolArg(name="q", position="query"),
                 ToolArg(name="n", type="integer", default=5, position="query"),
                 ToolArg(name="X-Tenant", position="header"),
                 ToolArg(name="note", position="body"),
                 ToolArg(name="level", enum=("INFO", "WARN"), position="query"))}
    return HttpTool(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize("value, encoded", [
    ("plain", "plain"),
    ("a/b", "a%2Fb"),
    ("..", "%2E%2E"),
    (".", "%2E"),
    ("x@evil.com:80", "x%40evil.com%3A80"),
    ("?q=1#frag", "%3Fq%3D1%23frag"),
    ("ünï code", "%C3%BCn%C3%AF%20code"),
    ("//evil.example.com", "%2F%2Fevil.example.com"),
])
def test_path_values_stay_inside_their_segment(value: str, encoded: str) -> None:
    call = http_tools.build_call(_tool(), {"id": value})
    assert call.url == f"https://api.example.com:8443/v1/items/{encoded}?fixed=1"


def test_query_header_and_body_positions() -> None:
    tool = _tool()
    values = http_tools.resolve_args(tool, {"id": "7", "q": "a&b=c", "X-Tenant": "acme", "note": "hi"})
    call = http_tools.build_call(tool, values)
    assert call.url == "https://api.example.com:8443/v1/items/7?fixed=1&q=a%26b%3Dc&n=5"
    assert call.headers["X-Tenant"] == "acme"
    assert json.loads(call.body or b"") == {"note": "hi"}
    assert call.headers["Content-Type"] == "application/json"


def test_header_values_cannot_inject_lines() -> None:
    with pytest.raises(RpcError, match="line break"):
        http_tools.build_call(_tool(), {"id": "1", "X-Tenant": "a\r\nX-Admin: 1"})


def test_header_values_are_visible_ascii_only() -> None:
    for value in ("caf\u00e9", "\ud800", "tab\x7f", "bell\x07"):
        with pytest.raises(RpcError, match="only visible ASCII"):
            http_tools.build_call(_tool(), {"id": "1", "X-Tenant": value})


def test_secret_headers_come_from_the_credentials_and_win_over_arguments() -> None:
    tool = _tool(secret_headers=(SecretHeader(name="X-Tenant", credential="mcp/ns/s/tools/t/headers/x-tenant",
                                              prefix="Token "),))
    call = http_tools.build_call(tool, {"id": "1", "X-Tenant": "forged"}, {"mcp/ns/s/tools/t/headers/x-tenant": "s3cret"})
    assert call.headers["X-Tenant"] == "Token s3cret"
    with pytest.raises(RpcError, match="credential for header X-Tenant is missing"):
        http_tools.build_call(tool, {"id": "1"}, {})


def test_placeholders_outside_the_path_are_refused() -> None:
    with pytest.raises(RpcError, match="outside its path"):
        http_tools.build_call(_tool(url="https://{id}.example.com/x"), {"id": "evil.com/"})


@pytest.mark.parametrize("arguments, message", [
    ({}, "missing required argument 'id'"),
    ({"id": "1", "level": "DEBUG"}, "must be one of"),
    ({"id": "1", "n": "five"}, "must be of type integer"),
    ({"id": "1", "n": True}, "must be of type integer"),
    ({"id": "1", "other": 1}, "unknown arguments: other"),
])
def test_arguments_are_checked(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(RpcError, match=message):
        http_tools.resolve_args(_tool(), arguments)


def test_input_schema_lists_types_defaults_enums_and_required() -> None:
    schema = http_tools.input_schema(_tool())
    assert schema["required"] == ["id"]
    assert schema["properties"]["n"] == {"type": "integer", "default": 5}
    assert schema["properties"]["level"]["enum"] == ["INFO", "WARN"]


def test_body_and_response_templates_are_sandboxed() -> None:
    tool = _tool(body_template='{"note": {{ note | tojson }}}', response_template="{{ json['items'] | length }} {{ status }}")
    call = http_tools.build_call(tool, {"id": "1", "note": 'say "hi"'})
    assert json.loads(call.body or b"") == {"note": 'say "hi"'}
    assert http_tools.render_response(tool, 200, '{"items": [1, 2]}', {}) == "2 200"
    escape = _tool(response_template="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(RpcError, match="template error"):
        http_tools.render_response(escape, 200, "{}", {})
    with pytest.raises(RpcError, match="template error"):
        http_tools.render_response(_tool(response_template="{{ 1 / 0 }}"), 200, "{}", {})
