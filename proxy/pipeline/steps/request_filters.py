"""request filters: the body as the target's provider wants it.

The provider's `compat` block applies the same way to every provider type:
the upstream model name, dropped parameters, default parameters and the name
of the output token cap. The provider type's adapter (kept on the context)
then turns the filtered body into its own wire format when send builds the
call. A `compat` field a type cannot honour is refused by the translator.
"""

from __future__ import annotations

from lockgate.proxy.filters.params import rewrite_request, rewrites
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step
from lockgate.proxy.providers import adapter_for


class RequestFiltersStep(Step):
    name = "request_filters"
    phase = "target"

    def request(self, ctx: Context) -> None:
        assert ctx.target is not None
        provider = ctx.target.provider
        ctx.adapter = adapter_for(provider.type)
        upstream_model = ctx.target.model.upstream_model
        if rewrites(ctx.body, upstream_model, provider.compat):
            ctx.upstream_body, ctx.upstream_raw = rewrite_request(ctx.body, upstream_model, provider.compat), b""
        else:  # nothing to change: the client's body, and its bytes when they still say the same
            ctx.upstream_body, ctx.upstream_raw = ctx.body, ctx.raw_body
