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
    headers: dict[str, str] = {}
    states = list(states)
    req = [s for s in states if s.rpm is not None]
    if req:
        s = min(req, key=lambda s: (s.rpm or 0) - s.requests)
        headers["x-ratelimit-limit-requests"] = str(s.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, (s.rpm or 0) - s.requests))
        headers["x-ratelimit-reset-requests"] = format_reset(s.reset_requests)
    tok = [s for s in states if s.tpm is not None]
    if tok:
        s = min(tok, key=lambda s: (s.tpm or 0) - s.tokens)
        headers["x-ratelimit-limit-tokens"] = str(s.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, (s.tpm or 0) - s.tokens))
        headers["x-ratelimit-reset-tokens"] = format_reset(s.reset_tokens)
    return headers
