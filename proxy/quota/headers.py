"""OpenAI's x-ratelimit-* response headers and Retry-After."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from lockgate.proxy.quota.window import SlidingWindow, WindowState

# (window, limit, the limit as text): a window with a limit, as a compiled admission plan holds it
LimitRow = tuple[SlidingWindow, int, str]
MAX_RESETS = 10_000  # remembered reset texts; a window's resets take at most about a thousand values
_RESETS: dict[int, str] = {}


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


def reset_text(seconds: float) -> str:
    """`format_reset(seconds)`, remembered by the rounded value it shows (milliseconds below a
    second, whole seconds above): every response carries one, and few values recur."""
    if seconds <= 0:
        return "0s"
    shown = math.ceil(seconds * 1000) if seconds < 1 else -math.ceil(seconds)
    text = _RESETS.get(shown)
    if text is None:
        if len(_RESETS) >= MAX_RESETS:
            _RESETS.clear()
        text = _RESETS[shown] = format_reset(seconds)
    return text


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
        headers["x-ratelimit-reset-requests"] = reset_text(requests.reset_requests)
    if tokens is not None:
        limit = tokens.tpm
        headers["x-ratelimit-limit-tokens"] = str(limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limit - tokens.tokens))  # type: ignore[operator]
        headers["x-ratelimit-reset-tokens"] = reset_text(tokens.reset_tokens)
    return headers


def window_headers(requests: Sequence[LimitRow], tokens: Sequence[LimitRow], now: float) -> dict[str, str]:
    """`ratelimit_headers` of the windows' states at `now`, read from the live windows right after an
    admission pruned them: `requests` are the windows with an rpm, `tokens` those with a tpm.
    This runs on every admission: one dict built at once, each reset formatted once."""
    headers: dict[str, str] = {}
    reset_of: SlidingWindow | None = None
    reset = "0s"
    if requests:
        w, text, left = _tightest(requests, False)
        reset, reset_of = _reset(w, now), w
        headers = {"x-ratelimit-limit-requests": text,
                   "x-ratelimit-remaining-requests": str(left) if left > 0 else "0",
                   "x-ratelimit-reset-requests": reset}
    if tokens:
        w, text, left = _tightest(tokens, True)
        if w is not reset_of:
            reset = _reset(w, now)
        headers["x-ratelimit-limit-tokens"] = text
        headers["x-ratelimit-remaining-tokens"] = str(left) if left > 0 else "0"
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


def _tightest(rows: Sequence[LimitRow], tokens: bool) -> tuple[SlidingWindow, str, int]:
    """The row with the least left of its limit (the first one on a tie): its window, limit text and what is left."""
    w, limit, text = rows[0]
    left = limit - (w.total if tokens else w.count)
    for row in rows[1:]:
        row_left = row[1] - (row[0].total if tokens else row[0].count)
        if row_left < left:
            w, _, text = row
            left = row_left
    return w, text, left


def _reset(w: SlidingWindow, now: float) -> str:
    """When the oldest request of a pruned window leaves it."""
    return reset_text(w.slots[0][1] + w.length - now) if w.count else "0s"
