"""choose: the model and providers to try, in failover order (aliases drawn by weight,
provider tiers by priority then weight); only providers whose type serves the operation.
The endpoint of a self-hosted provider is chosen per attempt, by send."""

from __future__ import annotations

import random

from lockgate.proxy.errors import ApiError, model_not_found
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.deps import Deps
from lockgate.proxy.pipeline.step import Step
from lockgate.proxy.providers import adapter_for
from lockgate.proxy.routing import expand_alias, plan


class ChooseStep(Step):
    name = "choose"

    def __init__(self, deps: Deps) -> None:
        self.rng: random.Random = deps.rng

    def request(self, ctx: Context) -> None:
        model, snapshot = ctx.model, ctx.snapshot
        alias = ctx.aliases.get(model) if ctx.aliases else None
        if alias is None and model in snapshot.fixed_plans:  # one provider: nothing to draw
            targets = snapshot.fixed_plans[model]
        else:
            models = expand_alias(alias, self.rng) if alias is not None else [model]
            targets = plan(models, snapshot.tiers, self.rng)
        if not targets:
            raise model_not_found(model)
        op = ctx.op
        ctx.targets = [t for t in targets if adapter_for(t.provider.type).supports(op)]
        if not ctx.targets:
            raise ApiError(400, f"The model '{model}' is not served for this API.", code="unsupported_operation",
                           param="model")
