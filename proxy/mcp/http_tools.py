"""Tools generated from a plain HTTP API: schema, request building, response rendering.

Each argument goes to its position, encoded for it: path values are
percent-encoded whole segments substituted only into the URL's path (they can
never change its scheme, host or port, nor climb out of the path), query values
are form-encoded, header values must be a single line, body values go into
the JSON body or the body template. Templates run in Jinja2's sandbox.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lockgate.api.ir import HttpTool, ToolArg
from lockgate.proxy.edge import is_field_value
from lockgate.proxy.mcp import jsonrpc as rpc

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")
_JSON_TYPES = {"string", "number", "integer", "boolean", "array", "object"}
_ENV = ImmutableSandboxedEnvironment(autoescape=False)


@dataclass
class HttpCall:
    method: str
    url: str  # already percent-encoded
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def input_schema(tool: HttpTool) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for arg in tool.args:
        prop: dict[str, Any] = {"type": arg.type if arg.type in _JSON_TYPES else "string"}
        if arg.description:
            prop["description"] = arg.description
        if arg.default is not None:
            prop["default"] = arg.default
        if arg.enum is not None:
            prop["enum"] = list(arg.enum)
        properties[arg.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [a.name for a in tool.args if a.required]
    if required:
        schema["required"] = required
    return schema


def resolve_args(tool: HttpTool, arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments with defaults applied, checked for presence, enum and type."""
    known = {a.name for a in tool.args}
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"unknown arguments: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for arg in tool.args:
        value = arguments.get(arg.name, arg.default)
        if value is None:
            if arg.required:
                raise rpc.RpcError(rpc.INVALID_PARAMS, f"missing required argument {arg.name!r}")
            continue
        _check_type(arg, value)
        if arg.enum is not None and value not in arg.enum:
            raise rpc.RpcError(rpc.INVALID_PARAMS, f"argument {arg.name!r} must be one of {list(arg.enum)}")
        values[arg.name] = value
    return values


def build_call(tool: HttpTool, values: dict[str, Any], credentials: Mapping[str, str] | None = None) -> HttpCall:
    """The request for a call; `credentials` holds the values of the tool's secret headers."""
    by_position: dict[str, dict[str, Any]] = {"query": {}, "path": {}, "header": {}, "body": {}}
    positions = {a.name: a.position for a in tool.args}
    for name, value in values.items():
        by_position[positions[name]][name] = value
    url = _fill_path(tool.url, by_position["path"])
    if by_position["query"]:
        url += ("&" if urlsplit(url).query else "?") + urlencode(
            [(k, _scalar(v)) for k, v in by_position["query"].items()])
    headers = dict(tool.headers)
    for name, value in by_position["header"].items():
        text = _scalar(value)
        if "\r" in text or "\n" in text or "\0" in text:
            raise rpc.RpcError(rpc.INVALID_PARAMS, f"argument {name!r} cannot go in a header: it has a line break")
        if not is_field_value(text):
            raise rpc.RpcError(rpc.INVALID_PARAMS, f"argument {name!r} cannot go in a header: only visible ASCII can")
        headers[name] = text
    for header in tool.secret_headers:  # last: no argument can replace a credential
        value = (credentials or {}).get(header.credential)
        if value is None:
            raise rpc.RpcError(rpc.INTERNAL_ERROR, f"the credential for header {header.name} is missing")
        headers[header.name] = header.prefix + value
    body: bytes | None = None
    if tool.body_template is not None:
        body = render(tool.body_template, {"args": values, **values}).encode()
    elif by_position["body"]:
        body = json.dumps(by_position["body"]).encode()
        headers.setdefault("Content-Type", "application/json")
    return HttpCall(tool.method.upper(), url, headers, body)


def render_response(tool: HttpTool, status: int, text: str, headers: dict[str, str]) -> str:
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    return render(tool.response_template, {"body": text, "json": parsed, "status": status, "headers": headers})


def render(source: str, context: dict[str, Any]) -> str:
    try:
        return _template(source).render(**context)
    except TemplateError as exc:
        raise rpc.RpcError(rpc.INTERNAL_ERROR, f"template error: {exc}") from None
    except (TypeError, ValueError, LookupError, ArithmeticError) as exc:  # a template's own runtime fault
        raise rpc.RpcError(rpc.INTERNAL_ERROR, f"template error: {type(exc).__name__}: {exc}") from None


@lru_cache(maxsize=256)
def _template(source: str) -> Any:
    return _ENV.from_string(source)


def _fill_path(template: str, values: dict[str, Any]) -> str:
    """Substitute {arg} only in the path; scheme, authority, query and fragment stay as written."""
    parts = urlsplit(template)
    if _PLACEHOLDER.search(parts.netloc) or _PLACEHOLDER.search(parts.scheme):
        raise rpc.RpcError(rpc.INTERNAL_ERROR, "tool URL has a placeholder outside its path")

    def segment(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise rpc.RpcError(rpc.INVALID_PARAMS, f"missing path argument {name!r}")
        text = quote(_scalar(values[name]), safe="")
        # "." and ".." would be read as path steps; their encoded form is not.
        return text.replace(".", "%2E") if text in (".", "..") else text

    path = _PLACEHOLDER.sub(segment, parts.path)
    url = f"{parts.scheme}://{parts.netloc}{path}"
    if parts.query:
        url += "?" + parts.query
    return url


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _check_type(arg: ToolArg, value: Any) -> None:
    expected = {
        "string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
        "array": (list,), "object": (dict,),
    }.get(arg.type)
    ok = expected is None or (isinstance(value, expected) and not (arg.type in ("number", "integer") and isinstance(value, bool)))
    if not ok:
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"argument {arg.name!r} must be of type {arg.type}")
