"""A small validator for the structural subset of OpenAPI v3 our CRDs use:
what the API server checks before CEL (types, enums, patterns, bounds,
required fields, list-map keys) and the unknown fields it would silently
prune. CEL rules are checked by the API server itself (tests/e2e)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float),
}


def problems(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    where = path or "<root>"
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: want int or string"]
    kind = schema.get("type")
    if kind is None:
        return [] if schema.get("x-kubernetes-preserve-unknown-fields") else [f"{where}: schema node has no type"]
    if not isinstance(value, _TYPES[kind]) or (kind in ("integer", "number") and isinstance(value, bool)):
        return [f"{where}: want {kind}, got {type(value).__name__}"]
    out: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in {schema['enum']}")
    if kind == "string":
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)) or len(value) < schema.get("minLength", 0):
            out.append(f"{where}: length out of bounds")
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                out.append(f"{where}: not a date-time")
    if kind in ("integer", "number"):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            out.append(f"{where}: {value} out of bounds")
    if kind == "array":
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            out.append(f"{where}: item count out of bounds")
        if schema.get("x-kubernetes-list-type") == "map":
            keys = [tuple(i.get(k) for k in schema["x-kubernetes-list-map-keys"]) for i in value if isinstance(i, dict)]
            out += [f"{where}: duplicate entry {k}" for k in sorted({k for k in keys if keys.count(k) > 1}, key=str)]
        for i, item in enumerate(value):
            out += problems(item, schema["items"], f"{path}[{i}]")
    if kind == "object":
        out += [f"{where}: missing {name}" for name in schema.get("required", []) if name not in value]
        if len(value) > schema.get("maxProperties", len(value)):
            out.append(f"{where}: too many properties")
        props = schema.get("properties")
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if props is not None and key in props:
                out += problems(item, props[key], child)
            elif "additionalProperties" in schema:
                out += problems(item, schema["additionalProperties"], child)
            elif not schema.get("x-kubernetes-preserve-unknown-fields") and props is not None:
                out.append(f"{child}: unknown field (the API server would prune it)")
    return out


def structural_problems(schema: dict[str, Any], path: str = "") -> list[str]:
    """Rules of a structural schema: a type everywhere (bar the two escapes),
    no references or unions left."""
    out = [f"{path}: {k} left in" for k in ("$ref", "anyOf", "oneOf", "allOf", "nullable", "title") if k in schema]
    if "default" in schema:
        out += [f"{path}: default {p}" for p in problems(schema["default"], schema, path)]
    if schema.get("x-kubernetes-list-type") == "map":
        item = schema.get("items") or {}
        for key in schema.get("x-kubernetes-list-map-keys") or ["<none>"]:
            if key not in item.get("required", []) and "default" not in (item.get("properties") or {}).get(key, {}):
                out.append(f"{path}: list-map key {key} is neither required nor defaulted")
    escapes = schema.get("x-kubernetes-int-or-string") or schema.get("x-kubernetes-preserve-unknown-fields")
    if "type" not in schema and not escapes:
        out.append(f"{path or '<root>'}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        out.append(f"{path}: properties and additionalProperties together")
    for key, child in (schema.get("properties") or {}).items():
        out += structural_problems(child, f"{path}.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        out += structural_problems(schema["additionalProperties"], f"{path}.*")
    if "items" in schema:
        out += structural_problems(schema["items"], f"{path}[]")
    return out
