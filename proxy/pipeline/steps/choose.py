"""choose: the model and providers to try, in failover order, from the key's view: a model
the view hides does not exist (404); aliases are drawn by weight, provider tiers by priority
then weight, in the namespace's pool (404 when nothing serves the model); a model outside the
key's globs is refused (403); only providers whose type serves the operation are kept (400).
The endpoint of a self-hosted provider is chosen per attempt, by send.
A virtual model of strategy `preferences` (or the candidates an internal caller gives, as
gateway-answered MCP sampling does) is ranked by the request's model preferences over the
Route's defaults: the best candidate first, the others as fallbacks (see proxy/choice.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from lockgate.api.ir import Provider
from lockgate.proxy.auth import check_model
from lockgate.proxy.choice import FIELD as PREFERENCES_FIELD, defaults_of, preference_order, requested
from lockgate.proxy.errors import ApiError, model_not_found
from lockgate.proxy.outlier import OutlierDetector
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.deps import Deps
from lockgate.proxy.pipeline.step import Step
from lockgate.proxy.preferences import Preferences
from lockgate.proxy.providers import adapter_for
from lockgate.proxy.routing import expand_alias, plan
from lockgate.proxy.snapshot import Target
from lockgate.proxy.speed import SpeedBook


class ChooseStep(Step):
    name = "choose"

    def __init__(self, deps: Deps) -> None:
        self.rng: random.Random = deps.rng
        self.outliers: OutlierDetector = deps.outliers
        self.speeds: SpeedBook = deps.speeds

    def request(self, ctx: Context) -> None:
        view, model = ctx.view, ctx.model
        assert view is not None and ctx.entry is not None
        if ctx.raw_body and PREFERENCES_FIELD in ctx.body:  # the gateway's field leaves the body: its bytes too
            ctx.raw_body = b""
        asked = requested(ctx.body, ctx.headers) if ctx.body else None
        if ctx.candidates:  # an internal caller's own candidates (MCP sampling)
            self._by_preferences(ctx, ctx.candidates, asked or ctx.preferences, None)
            return
        if not view.shows(model):
            raise model_not_found(model)
        pool = view.pool
        alias = view.aliases.get(model)
        if alias is not None and alias.strategy == "preferences":
            check_model(ctx.entry, model)
            self._by_preferences(ctx, [t.model for t in alias.targets] + list(alias.fallbacks), asked,
                                 defaults_of(alias.preferences))
            return
        if alias is None and model in pool.fixed_plans:  # one provider: nothing to draw
            targets = pool.fixed_plans[model]
        else:
            models = expand_alias(alias, self.rng) if alias is not None else [model]
            targets = plan(models, pool.tiers, self.rng)
        if not targets:
            raise model_not_found(model)
        check_model(ctx.entry, model)
        self._keep_served(ctx, targets)

    def _by_preferences(self, ctx: Context, names: Sequence[str], asked: Preferences | None,
                        defaults: Preferences | None) -> None:
        assert ctx.view is not None and ctx.entry is not None and ctx.estimate is not None
        prefs = (asked or Preferences()).over(defaults)
        needed = ctx.estimate.prompt_tokens + (ctx.estimate.max_tokens or 0)
        order = preference_order(names, prefs, ctx.view.pool, ctx.entry, self._ejected, self.speeds, needed)
        ctx.chosen_by = ctx.model
        self._keep_served(ctx, plan(order, ctx.view.pool.tiers, self.rng))

    def _ejected(self, provider: Provider) -> bool:
        return provider.base_url is not None and self.outliers.is_ejected(provider.id)

    @staticmethod
    def _keep_served(ctx: Context, targets: list[Target]) -> None:
        op = ctx.op
        ctx.targets = [t for t in targets if adapter_for(t.provider.type).supports(op)]
        if not ctx.targets:
            raise ApiError(400, f"The model '{ctx.model}' is not served for this API.", code="unsupported_operation",
                           param="model")
