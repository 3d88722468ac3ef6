"""admit: the quota reservation for the target being tried (keys, models, provider limits and queue).

A failover admits the request again for the next provider as a repeat of the
first reservation (`AdmitRequest.repeat_of`), so the key's rpm and monthly
request count see one request. A provider's own rate limit moves on to the
next target while there is one, and so does any quota refusal of a model
chosen by preferences (the next candidate is tried: a model over quota is left
out); any other refusal answers 429 (503 while a closed-mode quota store is
away). The reservation is settled with the tokens really used when the
request finishes, or with none when its target is given up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from lockgate.api.ir import Budget, ConsumerKey
from lockgate.proxy.admission import outage_pause
from lockgate.proxy.errors import ApiError, no_upstream
from lockgate.proxy.estimate import Estimate
from lockgate.proxy.metrics import Metrics
from lockgate.proxy.outlier import OutlierDetector
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.deps import Deps
from lockgate.proxy.pipeline.step import Skip, Step
from lockgate.proxy.quota import AdmitRequest, QuotaRejected, QuotaService, Reservation
from lockgate.proxy.quota.refusal import quota_error
from lockgate.proxy.quota.plan import model_limits_for
from lockgate.proxy.snapshot import Target


def charged(target: Target, key: ConsumerKey) -> bool:
    """Whether requests to `target` count in the key's money: priced in the key's currency."""
    return target.rates is not None and target.rates.currency == key.currency


def money_limited(key: ConsumerKey, budgets: tuple[Budget, ...], model: str) -> bool:
    per_model = model_limits_for(key, model)
    return (key.limits.monthly_cost is not None or (per_model is not None and per_model.monthly_cost is not None)
            or any(b.monthly_cost is not None for b in budgets))


def reservation_cost(estimate: Estimate, tokens: int, target: Target) -> int:
    """The money to reserve: the reservation's tokens at the model's prices, the prompt estimate as
    input (none of it cached) and the rest as output."""
    if target.rates is None:
        return 0
    prompt = min(estimate.prompt_tokens, tokens)
    return target.rates.cost(prompt, tokens - prompt)


def reservation_size(estimate: Estimate, cap: int, key: ConsumerKey, target: Target) -> int:
    """Tokens to reserve for one target: without max_tokens the cap yields to the tightest tpm."""
    if estimate.max_tokens is not None:
        return estimate.reserved(cap)
    per_model = model_limits_for(key, target.model.name)
    return estimate.reserved(cap, (key.limits.tpm, per_model.tpm if per_model else None, target.model.limits.tpm))


class AdmitStep(Step):
    name = "admit"
    phase = "target"

    def __init__(self, deps: Deps) -> None:
        self.quota: QuotaService = deps.quota
        self.metrics: Metrics = deps.metrics
        self.outliers: OutlierDetector = deps.outliers
        self.cap = deps.default_output_reservation
        # A service that settles in the background (a shared store): the answer does not wait for it.
        self.settle: Callable[[Reservation, int, int], Awaitable[None] | None] = getattr(
            self.quota, "settle_later", self.quota.settle)

    async def request(self, ctx: Context) -> None:
        assert ctx.entry is not None and ctx.target is not None and ctx.estimate is not None
        target, key = ctx.target, ctx.entry.key
        provider = target.provider
        if provider.base_url is not None and self.outliers.is_ejected(provider.id):
            # A short outage (the ejection ends within the request's queue wait) is waited out on the last target.
            pause = outage_pause([self.outliers.ejected_for(provider.id)], ctx.queue_wait())
            if pause is None:
                raise Skip(no_upstream("Every upstream for this model is ejected after failures."), weak=True)
            await asyncio.sleep(pause)
        budgets = ctx.snapshot.budgets.get(key.id, ())
        priced = charged(target, key)
        if not priced and target.rates is not None and money_limited(key, budgets, target.model.name):
            error = ApiError(400, f"{target.model.name} is priced in {target.rates.currency}, and the money budgets "
                                  f"of key {key.id} are in {key.currency}; ask for a model priced in {key.currency}",
                             code="currency_mismatch", param="model")
            if ctx.target_index + 1 < len(ctx.targets):  # another provider may price it in the key's currency
                raise Skip(error)
            raise error
        span = ctx.trace.child("quota admission", {"lockgate.provider": provider.id}) if ctx.trace else None
        try:
            tokens = reservation_size(ctx.estimate, self.cap, key, target)
            ctx.reservation = await self.quota.admit(AdmitRequest(
                key, target.model.name, provider.id, target.model.limits, tokens,
                ctx.queue_wait(any_target=True), repeat_of=ctx.counted,
                priority=ctx.priority, weight=key.queue_weight, queue_max_depth=provider.queue_max_depth,
                queue_max_batch_delay=provider.queue_max_batch_delay,
                estimated_cost=reservation_cost(ctx.estimate, tokens, target) if priced else 0, budgets=budgets))
        except QuotaRejected as rejected:
            if span is not None:
                span.set_attribute("lockgate.quota.code", rejected.code)
                span.end()
            self.metrics.quota_rejected(key.consumer, rejected.code, ctx.host, ctx.model)
            error = quota_error(rejected)
            more = ctx.target_index + 1 < len(ctx.targets)
            # A provider's own limit moves on; so does any quota of a model chosen by preferences
            # (the next candidate may be within the key's limits for it).
            if more and (rejected.code == "provider_rate_limited" or (ctx.chosen_by and rejected.status == 429)):
                raise Skip(error) from None
            raise error from None
        except BaseException:
            if span is not None:
                span.end()
            raise
        if span is not None:
            span.set_attribute("lockgate.quota.reserved_tokens", tokens)
            span.end()
        ctx.provider, ctx.upstream_model = provider.id, target.model.upstream_model

    async def undo(self, ctx: Context) -> None:
        reservation, ctx.reservation = ctx.reservation, None
        if reservation is not None:
            await self.quota.settle(reservation, 0)
            ctx.counted = ctx.counted or reservation.rid

    def finish(self, ctx: Context) -> Awaitable[None] | None:
        if ctx.reservation is not None:
            key = ctx.reservation.request.key
            cost = ctx.cost() if ctx.target is not None and charged(ctx.target, key) else 0
            return self.settle(ctx.reservation, ctx.usage.input_tokens + ctx.usage.output_tokens, cost)
        return None
