"""response filters: a whole answer in the client's format.

The provider type's adapter translates the answer (Anthropic to OpenAI and
back), applies the provider's `compat` on the way back (reasoning split) and
reads the usage. The send step already does so within its attempt, so that
an answer that lies about its content type fails over; this step translates
what is still untranslated. An upstream error body becomes the client's error
format. A stream's filter is the adapter's translator,
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
        if not ctx.translated:  # send translates within its attempt (a malformed answer fails it over)
            answer = ctx.adapter.answer(ctx.op, ctx.answer, ctx.target.provider, ctx.model)
            ctx.answer, ctx.usage, ctx.translated = answer.body, answer.usage, True
        ctx.ok = True
