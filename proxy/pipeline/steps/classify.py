"""classify: the request's terms in the queues for capacity (after authorize).

Its class is `batch` when the entry point, the key or a Route (one of the host's
openai Routes, or the chatTemplate Route) says so, else `interactive`. The Route's
`queue.maxWait`, when set, replaces the providers' own; the client may ask for less
with the `x-lockgate-max-wait` header (seconds), never for more.
"""

from __future__ import annotations

import math

from lockgate.proxy.errors import bad_request
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step

MAX_WAIT_HEADER = "x-lockgate-max-wait"


def asked_wait(value: str) -> float:
    """Seconds from the header; 400 for anything but a finite number >= 0."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise bad_request(f"The {MAX_WAIT_HEADER} header must be a number of seconds (0 or more), not {value[:40]!r}.",
                          code="invalid_header")
    return seconds


class ClassifyStep(Step):
    name = "classify"

    def request(self, ctx: Context) -> None:
        assert ctx.entry is not None
        key = ctx.entry.key
        if ctx.route is not None:
            batch, ctx.route_wait = ctx.route.priority == "batch", ctx.route.queue_max_wait
        elif ctx.view is not None:
            batch, ctx.route_wait = ctx.view.batch, ctx.view.queue_max_wait
        else:
            batch = False
        if batch or key.priority == "batch":
            ctx.priority = "batch"
        asked = ctx.headers.get(MAX_WAIT_HEADER)
        if asked is not None:
            seconds = asked_wait(asked)
            ctx.max_wait = seconds if ctx.max_wait is None else min(ctx.max_wait, seconds)
