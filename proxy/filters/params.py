"""Request parameter filters for a provider: upstream model, dropped, default and renamed parameters."""

from __future__ import annotations

from typing import Any

from lockgate.api.ir import Compat

_TOKEN_PARAMS = ("max_tokens", "max_completion_tokens")


def rewrite_request(body: dict[str, Any], upstream_model: str, compat: Compat) -> dict[str, Any]:
    """A copy of an OpenAI request body as this provider wants it."""
    out = dict(body)
    out["model"] = upstream_model
    for name in compat.drop_params:
        out.pop(name, None)
    for name, value in compat.default_params.items():
        out.setdefault(name, value)
    wanted = compat.max_tokens_param
    other = _TOKEN_PARAMS[1] if wanted == _TOKEN_PARAMS[0] else _TOKEN_PARAMS[0]
    if other in out:
        value = out.pop(other)
        out.setdefault(wanted, value)
    return out


def rewrites(body: dict[str, Any], upstream_model: str, compat: Compat) -> bool:
    """Whether `rewrite_request` would change anything in `body` (else the body goes as it came)."""
    if body.get("model") != upstream_model:
        return True
    if compat.drop_params and any(name in body for name in compat.drop_params):
        return True
    if compat.default_params and any(name not in body for name in compat.default_params):
        return True
    wanted = compat.max_tokens_param
    return (_TOKEN_PARAMS[1] if wanted == _TOKEN_PARAMS[0] else _TOKEN_PARAMS[0]) in body


def with_usage_requested(body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Ask a streaming upstream for a usage chunk; returns (body, whether the client asked itself): `body`
    itself when the client asked, else a copy that asks."""
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        return body, True
    return {**body, "stream_options": {**(options if isinstance(options, dict) else {}), "include_usage": True}}, False


def max_output_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None
