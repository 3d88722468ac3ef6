"""response filters: a whole answer in the client's format.

The provider type's adapter translates the answer (Anthropic to OpenAI and
back), applies the provider's `compat` on the way back (reasoning split) and
reads the usage; send calls it within the attempt, so that an answer that
lies about its content type fails over. Here an upstream error body becomes
the client's error format. A stream's filter is the adapter's translator,
which send attached before the first event, and which `pipeline.stream.events`
feeds chunk by chunk.
"""

from __future__ import annotations

from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step


class ResponseFiltersStep(Step):
    name = "response_filters"

    def response(self, ctx: Context) -> None:
        if ctx.response is not None or ctx.adapter is None or ctx.target is None:
            return
        if ctx.upstream_status >= 400:
            ctx.answer = ctx.adapter.error_body(ctx.op, ctx.answer)
            return
        ctx.ok = True  # a whole 2xx answer: send translated it, a malformed one failed its attempt
