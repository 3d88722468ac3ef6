"""OpenAI's x-ratelimit-* response headers and Retry-After."""

from __future__ import annotations

import math
from collections.abc import Iterable

from lockgate.proxy.quota.window import WindowState


def format_reset(seconds: float) -> str:
    """OpenAI's duration format: '120ms', '1s', '6m0s', '1h2m3s'."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def retry_after_value(seconds: float) -> str:
    """Retry-After is whole seconds; round up so a client that obeys it is admitted."""
    return str(max(1, math.ceil(seconds)))


def ratelimit_headers(states: Iterable[WindowState]) -> dict[str, str]:
    """The tightest window for requests and for tokens decides each trio."""
    states = list(states)
    headers: dict[str, str] = {}
    trios = (("requests", [(s.rpm, s.requests, s.reset_requests) for s in states if s.rpm is not None]),
             ("tokens", [(s.tpm, s.tokens, s.reset_tokens) for s in states if s.tpm is not None]))
    for kind, windows in trios:
        if windows:
            limit, used, reset = min(windows, key=lambda w: w[0] - w[1])
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, limit - used))
            headers[f"x-ratelimit-reset-{kind}"] = format_reset(reset)
    return headers
