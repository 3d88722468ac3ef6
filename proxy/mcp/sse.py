"""Server-sent events on MCP transports: keep-alives and headers; events and the parser are
`lockgate.proxy.sse`'s, the one parser of the proxy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from lockgate.proxy.sse import Event, parse

__all__ = ["HEADERS", "KEEPALIVE", "Event", "parse", "with_keepalives"]


KEEPALIVE = b": keep-alive\n\n"
KEEPALIVE_SECONDS = 15.0


async def with_keepalives(events: AsyncIterator[Event], every: float = KEEPALIVE_SECONDS) -> AsyncIterator[Event]:
    """The events, with a comment whenever `every` seconds pass without one (proxies drop idle streams)."""
    pending: asyncio.Future[Event] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield Event(comment="keep-alive")
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield event
    finally:
        # Close the source too (releasing its upstream response) when the client goes away mid-stream.
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        closer = getattr(events, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
