"""measure: each answered request's speed, fed to the proxy's per-model speed book, and the
choice a virtual model of strategy `preferences` made, counted by chosen model.

Speed is what choosing by preferences reads: the time to the first byte of the
answer and the output tokens per second over the whole request, per model."""

from __future__ import annotations

import time

from lockgate.proxy.metrics import CounterFamily
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.deps import Deps
from lockgate.proxy.pipeline.step import Step
from lockgate.proxy.speed import SpeedBook


class MeasureStep(Step):
    name = "measure"

    def __init__(self, deps: Deps) -> None:
        self.speeds: SpeedBook = deps.speeds
        self.choices: CounterFamily = deps.choices
        self.gateway = deps.metrics.gateway

    def finish(self, ctx: Context) -> None:
        target = ctx.target
        if target is None or not ctx.answered or ctx.upstream_status >= 400:
            return
        if ctx.ok or not ctx.stream:  # a stream cut short says nothing of the model's pace
            self.speeds.observe(target.model.name, ctx.ttft, ctx.usage.output_tokens,
                                time.perf_counter() - ctx.started)
        if ctx.chosen_by:
            self.choices.cell((self.gateway, ctx.host, ctx.chosen_by, target.model.name)).value += 1
