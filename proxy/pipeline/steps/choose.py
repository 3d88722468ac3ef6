"""choose: the model and providers to try, in failover order, from the key's view: a model
the view hides does not exist (404); aliases are drawn by weight, provider tiers by priority
then weight, in the namespace's pool (404 when nothing serves the model); a model outside the
key's globs is refused (403); only providers whose type serves the operation are kept (400).
The endpoint of a self-hosted provider is chosen per attempt, by send."""

from __future__ import annotations

import random

from lockgate.proxy.auth import check_model
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
        view, model = ctx.view, ctx.model
        assert view is not None and ctx.entry is not None
        if not view.shows(model):
            raise model_not_found(model)
        pool = view.pool
        alias = view.aliases.get(model)
        if alias is None and model in pool.fixed_plans:  # one provider: nothing to draw
            targets = pool.fixed_plans[model]
        else:
            models = expand_alias(alias, self.rng) if alias is not None else [model]
            targets = plan(models, pool.tiers, self.rng)
        if not targets:
            raise model_not_found(model)
        check_model(ctx.entry, model)
        op = ctx.op
        ctx.targets = [t for t in targets if adapter_for(t.provider.type).supports(op)]
        if not ctx.targets:
            raise ApiError(400, f"The model '{model}' is not served for this API.", code="unsupported_operation",
                           param="model")
