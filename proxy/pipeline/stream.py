"""A streamed answer after the pipeline: the client's SSE bytes, through the stream's response filter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from lockgate.proxy.deadline import Deadline
from lockgate.proxy.pipeline.context import Context


async def events(ctx: Context) -> AsyncIterator[bytes]:
    """Client SSE bytes (whole events), the ones read before the first byte went out first.
    Raises mid-stream failures (ConnectionError, TimeoutError, UpstreamStreamError)."""
    pending, ctx.pending = ctx.pending, []
    trace = ctx.trace
    for block in pending:
        if trace is not None:
            trace.scan(block)
        yield block
    if ctx.replay:  # answered from the cache: `pending` was the whole stream
        return
    response, translator = ctx.response, ctx.translator
    assert response is not None and translator is not None
    with Deadline(asyncio.get_running_loop(), ctx.deadline):
        while True:
            t0 = time.perf_counter()
            chunk = await response.readany()
            ctx.upstream_seconds += time.perf_counter() - t0
            if not chunk:
                break
            out = translator.feed_bytes(chunk)
            if out:
                if trace is not None:
                    trace.scan(out)
                yield out
    out = translator.end()
    if out:
        if trace is not None:
            trace.scan(out)
        yield out
