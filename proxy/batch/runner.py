"""One batch line through the request pipeline, as a request of the key that created the batch.

The line runs as its endpoint's request on the host the batch was created on, so the key's
namespace, models, quotas and budgets apply as to a live request; it is accounted (metrics,
access log) like one. A refusal to wait for (429: a quota; 503: no upstream free) is retried
after the time it names until the batch's deadline; other failures are retried a few times.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson

from lockgate.proxy.batch.records import ENDPOINTS
from lockgate.proxy.edge import new_request_id
from lockgate.proxy.errors import ApiError
from lockgate.proxy.gateway import Gateway
from lockgate.proxy.providers.base import Operation
from lockgate.proxy.snapshot import KeyEntry

WAIT_STATUSES = frozenset({429, 503})  # retried until the deadline: the gateway says "later"
RETRY_STATUSES = frozenset({500, 502, 504})  # retried a few times
RETRIES = 3
MAX_PAUSE = 30.0


@dataclass(frozen=True)
class Outcome:
    status: int
    body: bytes
    request_id: str
    input_tokens: int = 0
    output_tokens: int = 0
    retry_after: float | None = None


def key_entry(gateway: Gateway, key_id: str) -> KeyEntry | None:
    """The current entry of the key that created a batch (by its id: a rotated key keeps its batches)."""
    snapshot = gateway.snapshot
    if snapshot is None:
        return None
    for entry in snapshot.keys_by_hash.values():
        if entry.key.id == key_id and entry.not_after is None:
            return entry
    return next((e for e in snapshot.keys_by_hash.values() if e.key.id == key_id), None)


async def run_once(gateway: Gateway, entry: KeyEntry, host: str, endpoint: str, body: dict[str, Any]) -> Outcome:
    op: Operation = ENDPOINTS[endpoint]  # type: ignore[assignment]
    request_id = new_request_id()
    ctx = gateway.begin(request_id, "POST", endpoint, host, kind="openai")
    ctx.entry, ctx.body, ctx.op = entry, body, op
    ctx.priority = "batch"  # interactive requests are admitted first when capacity is short
    retry_after: float | None = None
    try:
        assert ctx.pipeline is not None
        await ctx.pipeline.run(ctx)
        if ctx.response is not None:  # a stream (the line asked for none): never kept open
            ctx.status, ctx.answer = 500, orjson.dumps(ApiError(500, "The upstream streamed an answer.").body())
        if ctx.status >= 400:
            ctx.error_type = ctx.error_type or ("bad_request" if ctx.status < 500 else "upstream_error")
            retry_after = _seconds(ctx.response_headers().get("retry-after"))
        else:
            ctx.ok = True
        answer = ctx.answer
    except ApiError as error:
        ctx.fail(error)
        answer = orjson.dumps(error.body())
        retry_after = _seconds(error.headers.get("Retry-After") or error.headers.get("retry-after"))
    finally:
        await gateway.finish(ctx)
    usage = ctx.final_usage()
    return Outcome(ctx.status, answer, request_id, usage.input_tokens, usage.output_tokens, retry_after)


async def run_line(gateway: Gateway, entry: KeyEntry, host: str, endpoint: str, body: dict[str, Any],
                   deadline: float) -> Outcome:
    """The line's final outcome, retried as the module says; an outcome to wait for at the deadline
    is returned as it is."""
    failures = 0
    while True:
        outcome = await run_once(gateway, entry, host, endpoint, body)
        if outcome.status in RETRY_STATUSES and failures < RETRIES:
            failures += 1
            pause = min(MAX_PAUSE, 2.0 ** (failures - 1))
        elif outcome.status in WAIT_STATUSES:
            pause = min(MAX_PAUSE, outcome.retry_after if outcome.retry_after is not None else 1.0)
        else:
            return outcome
        if time.time() + pause >= deadline:
            return outcome
        await asyncio.sleep(pause)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
