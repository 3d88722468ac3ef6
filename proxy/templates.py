"""Chat templates: a Route that turns posted JSON variables into a prompt and asks a model.

Variables are checked against the Route's declared types (400 naming the
field); the prompt is rendered in Jinja2's immutable sandbox with `len`,
`jsonify`, `make_json_object` and `slice_to_index_map`; the answer is returned
as text, or parsed as JSON (502 when the model's answer is not JSON).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lockgate.api.ir import ChatTemplate, TemplateVariable
from lockgate.proxy.errors import ApiError, bad_request

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def jsonify(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def make_json_object(*pairs: Any, **fields: Any) -> dict[str, Any]:
    """A dict from keyword arguments, or from alternating key, value arguments."""
    out: dict[str, Any] = {}
    if len(pairs) == 1 and isinstance(pairs[0], dict):
        out.update(pairs[0])
    else:
        out.update(zip(pairs[::2], pairs[1::2]))
    out.update(fields)
    return out


def slice_to_index_map(items: list[Any], start: int = 0) -> dict[str, Any]:
    """{"<start>": items[0], "<start+1>": items[1], ...}: numbered items for a prompt."""
    return {str(start + i): item for i, item in enumerate(items)}


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.update(len=len, jsonify=jsonify, make_json_object=make_json_object,
                       slice_to_index_map=slice_to_index_map)
    env.filters.update(jsonify=jsonify)
    return env


_ENV = _environment()


@lru_cache(maxsize=256)
def _compiled(source: str):  # type: ignore[no-untyped-def]
    return _ENV.from_string(source)


def _check(name: str, value: Any, spec: TemplateVariable) -> None:
    kinds = _TYPES.get(spec.type, (object,))
    if not isinstance(value, kinds) or (spec.type in ("number", "integer") and isinstance(value, bool)):
        raise bad_request(f"Variable '{name}' must be of type {spec.type}.", code="invalid_variable", param=name)
    if spec.enum is not None and value not in spec.enum:
        raise bad_request(f"Variable '{name}' must be one of {list(spec.enum)}.", code="invalid_variable", param=name)
    if isinstance(value, list) and spec.items is not None:
        for i, item in enumerate(value):
            _check(f"{name}[{i}]", item, spec.items)


def validate_variables(template: ChatTemplate, posted: dict[str, Any]) -> dict[str, Any]:
    """The variables to render with (defaults filled), or a 400 naming the bad field."""
    values: dict[str, Any] = {}
    for name, spec in template.variables.items():
        if name not in posted or posted[name] is None:
            if spec.required:
                raise bad_request(f"Missing required variable '{name}'.", code="missing_variable", param=name)
            values[name] = spec.default
            continue
        _check(name, posted[name], spec)
        values[name] = posted[name]
    unknown = sorted(set(posted) - set(template.variables))
    if unknown:
        raise bad_request(f"Unknown variable '{unknown[0]}'.", code="unknown_variable", param=unknown[0])
    return values


def render_messages(template: ChatTemplate, values: dict[str, Any]) -> list[dict[str, str]]:
    try:
        messages = []
        if template.system_prompt:
            messages.append({"role": "system", "content": _compiled(template.system_prompt).render(**values)})
        messages.append({"role": "user", "content": _compiled(template.prompt_template).render(**values)})
    except TemplateError as exc:
        raise ApiError(500, f"The route's template failed to render: {exc}", type="api_error",
                       code="template_error", error_type="internal") from None
    return messages


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


def parse_json_answer(text: str) -> Any:
    """The model's answer as JSON (a ```json fence around it is allowed), or a 502."""
    match = _FENCE.match(text)
    candidate = match.group(1) if match else text
    try:
        return json.loads(candidate)
    except ValueError:
        raise ApiError(502, "The model's answer is not valid JSON.", type="api_error", code="invalid_model_output",
                       error_type="upstream_error") from None
