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
    """The tightest window for requests and for tokens decides each trio (the first one on a tie)."""
    requests: WindowState | None = None
    tokens: WindowState | None = None
    for s in states:  # one pass, no intermediate lists: this runs on every admission
        if s.rpm is not None and (requests is None or s.rpm - s.requests < requests.rpm - requests.requests):  # type: ignore[operator]
            requests = s
        if s.tpm is not None and (tokens is None or s.tpm - s.tokens < tokens.tpm - tokens.tokens):  # type: ignore[operator]
            tokens = s
    headers: dict[str, str] = {}
    if requests is not None:
        limit = requests.rpm
        headers["x-ratelimit-limit-requests"] = str(limit)
        headers["x-ratelimit-remaining-requests"] = str(max(0, limit - requests.requests))  # type: ignore[operator]
        headers["x-ratelimit-reset-requests"] = format_reset(requests.reset_requests)
    if tokens is not None:
        limit = tokens.tpm
        headers["x-ratelimit-limit-tokens"] = str(limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limit - tokens.tokens))  # type: ignore[operator]
        headers["x-ratelimit-reset-tokens"] = format_reset(tokens.reset_tokens)
    return headers
