"""Where the pipeline is assembled: the steps in order. A new step is a module under
`steps/` and one line here (or, for a test or an embedding process, a `steps` argument).
Tracing is not a line of the list: `build_pipeline` puts its step first when it is on."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lockgate.proxy.pipeline.deps import Deps
from lockgate.proxy.pipeline.pipeline import Pipeline
from lockgate.proxy.pipeline.step import Step
from lockgate.proxy.pipeline.steps.account import AccountStep
from lockgate.proxy.pipeline.steps.admit import AdmitStep
from lockgate.proxy.pipeline.steps.authenticate import AuthenticateStep
from lockgate.proxy.pipeline.steps.authorize import AuthorizeStep
from lockgate.proxy.pipeline.steps.cache import CacheStep
from lockgate.proxy.pipeline.steps.choose import ChooseStep
from lockgate.proxy.pipeline.steps.classify import ClassifyStep
from lockgate.proxy.pipeline.steps.measure import MeasureStep
from lockgate.proxy.pipeline.steps.parse import ParseStep
from lockgate.proxy.pipeline.steps.request_filters import RequestFiltersStep
from lockgate.proxy.pipeline.steps.response_filters import ResponseFiltersStep
from lockgate.proxy.pipeline.steps.route import RouteStep
from lockgate.proxy.pipeline.steps.send import SendStep
from lockgate.proxy.pipeline.steps.trace import TraceStep
from lockgate.proxy.snapshot import CompiledSnapshot

StepFactory = Callable[[Deps], Step]

STEPS: tuple[StepFactory, ...] = (
    lambda deps: RouteStep(),
    lambda deps: AuthenticateStep(),
    lambda deps: AuthorizeStep(),
    lambda deps: ClassifyStep(),
    lambda deps: ParseStep(),
    ChooseStep,
    CacheStep,  # a hit answers here: no target phase; a miss stores its answer at finish
    AdmitStep,  # per target, in failover order, from here to send
    lambda deps: RequestFiltersStep(),
    SendStep,
    lambda deps: ResponseFiltersStep(),
    MeasureStep,
    AccountStep,
)


def build_pipeline(deps: Deps, steps: Sequence[StepFactory] = STEPS,
                   snapshot: CompiledSnapshot | None = None) -> Pipeline:
    """The steps in order; with tracing on, the trace step before them all (first in, last out),
    whatever the list. With tracing off it is not there at all. Given the `snapshot` it serves,
    the pipeline calls no hook of a step idle on it."""
    traced: list[Step] = [TraceStep(deps.tracing)] if deps.tracing is not None else []
    return Pipeline([*traced, *(make(deps) for make in steps)], snapshot)
