"""What a pipeline step is.

A step is an object with up to four hooks, each taking the request's
`Context`; it overrides only those it needs, and the pipeline calls only
those. A hook is a plain function returning None, or a coroutine function
when it must wait (quota, upstream I/O): the pipeline awaits only what
returns an awaitable, so a synchronous step costs one call.

- `request(ctx)`: on the way in, in the order the steps are assembled.
  Raise `ApiError` to stop and answer; a step of the per-target phase may
  raise `Skip` to give up this target and fail over to the next one.
- `undo(ctx)` (per-target phase only): this target was given up.
- `response(ctx)`: once an answer is in hand (a stream: its first events); in reverse order.
- `finish(ctx)`: always, after the answer was delivered or the request failed; in reverse
  order, with `ctx.usage` final.

`phase` is "request" (once per request) or "target" (once per provider tried,
in failover order). `idle(snapshot)` says a step has nothing to do on any
request of a configuration (a cache with no cached Route): the pipeline
built for it calls none of its hooks. Steps never import each other: what one leaves for the
next is a field of the context, and what a step needs from the process
(quota, balancers, metrics...) is given to it when the pipeline is built.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import ClassVar, Literal

from lockgate.proxy.errors import ApiError
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.snapshot import CompiledSnapshot

Phase = Literal["request", "target"]
Hook = Awaitable[None] | None


class Skip(Exception):
    """Give up the current target (failover); `error` is what the client sees if none is left
    (`weak`: unless an earlier target already left an error)."""

    def __init__(self, error: ApiError, weak: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.weak = weak


class Step:
    name: ClassVar[str] = "step"
    phase: ClassVar[Phase] = "request"

    def idle(self, snapshot: CompiledSnapshot) -> bool:
        """True when no request on `snapshot` gives this step anything to do."""
        return False

    def request(self, ctx: Context) -> Hook:
        return None

    def undo(self, ctx: Context) -> Hook:
        return None

    def response(self, ctx: Context) -> Hook:
        return None

    def finish(self, ctx: Context) -> Hook:
        return None
