"""The request pipeline: steps in a fixed order, built once per configuration.

`Pipeline(steps, snapshot)` sorts the hooks of the steps with work on that
configuration into tuples once; `run(ctx)` calls
the request-phase hooks, then the target-phase hooks for each target in
failover order until one target goes through (none when a request step answered), then the response hooks (in
reverse, as an answer travels back); `finish(ctx)` calls the finish hooks,
in reverse too, once, whatever happened. Nothing is allocated per request but the context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lockgate.proxy.errors import ApiError, no_upstream
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Hook, Skip, Step
from lockgate.proxy.snapshot import CompiledSnapshot

HookFn = Callable[[Context], Hook]


def _hooks(steps: Sequence[Step], name: str) -> tuple[HookFn, ...]:
    """The bound hooks the steps override (a default no-op is never called)."""
    return tuple(getattr(s, name) for s in steps if getattr(type(s), name) is not getattr(Step, name))


class Pipeline:
    def __init__(self, steps: Sequence[Step], snapshot: CompiledSnapshot | None = None) -> None:
        """`snapshot`: the configuration the pipeline serves; steps idle on it are left out of the calls."""
        self.steps = tuple(steps)
        self.names = tuple(s.name for s in self.steps)
        busy = [s for s in self.steps if snapshot is None or not s.idle(snapshot)]
        per_request = [s for s in busy if s.phase == "request"]
        self._per_target = tuple(s for s in busy if s.phase == "target")
        self._request = _hooks(per_request, "request")
        self._target = tuple(s.request for s in self._per_target)
        self._response = _hooks(busy[::-1], "response")
        self._finish = _hooks(busy[::-1], "finish")

    async def run(self, ctx: Context) -> None:
        """Through every step up to an answer in hand; raises ApiError to refuse."""
        for hook in self._request:
            pending = hook(ctx)
            if pending is not None:
                await pending
        hooks = self._target
        if hooks and not ctx.answered:  # a request step may answer itself (a cache hit): no target then  # failover: the targets in order until one goes through every target-phase step
            last_error: ApiError | None = None
            for index, target in enumerate(ctx.targets):
                ctx.target, ctx.target_index = target, index
                done = 0
                try:
                    for hook in hooks:
                        pending = hook(ctx)
                        if pending is not None:
                            await pending
                        done += 1
                except Skip as skip:
                    await self._undo(ctx, done)
                    if not (skip.weak and last_error is not None):
                        last_error = skip.error
                    continue
                except BaseException:
                    await self._undo(ctx, done)
                    raise
                break
            else:
                raise last_error or no_upstream("No upstream is available for this model.")
        for hook in self._response:
            pending = hook(ctx)
            if pending is not None:
                await pending

    async def _undo(self, ctx: Context, done: int) -> None:
        """Undo, latest first, what the target's steps that went through left behind."""
        for step in self._per_target[:done][::-1]:
            pending = step.undo(ctx)
            if pending is not None:
                await pending

    async def finish(self, ctx: Context) -> None:
        if ctx.finished:
            return
        ctx.finished = True
        if ctx.answered:
            ctx.usage = ctx.final_usage()
        for hook in self._finish:
            pending = hook(ctx)
            if pending is not None:
                await pending
