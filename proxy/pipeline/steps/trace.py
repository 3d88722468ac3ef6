"""trace: the request's SERVER span, first in and last out.

On the way in it continues the client's W3C `traceparent` and opens the
request's span (`ctx.trace`: admit and send hang their spans under it); at
finish, after every other step, it records what the request came to
(consumer, route, model, provider, tokens, finish reasons, status) on the
span and on the inference span of the attempt that answered, and ends both.
Never prompts, answers or keys, unless content capture is allowed.
Built only when tracing is on (`build_pipeline` puts it first): otherwise it is not in the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step

if TYPE_CHECKING:
    from lockgate.proxy.tracing.request import RequestTrace
    from lockgate.proxy.tracing.tracer import Tracing


class TraceStep(Step):
    name = "trace"

    def __init__(self, tracing: Tracing) -> None:
        from lockgate.proxy.tracing import request  # the SDK is loaded only when tracing is on

        self.tracing = tracing
        self._trace, self._fail, self._answered_fixed = request.RequestTrace, request.fail, request.answered

    def request(self, ctx: Context) -> None:
        route = ctx.route
        ctx.trace = self._trace(self.tracing, ctx.method, ctx.path, ctx.host, route.id if route is not None else None,
                                ctx.request_id, ctx.headers)

    def finish(self, ctx: Context) -> None:
        trace = ctx.trace
        if trace is None:
            return
        span, call = trace.span, trace.call
        if trace.recording:
            if ctx.answer:
                trace.scan(ctx.answer)
            entry = ctx.entry
            key = entry.key if entry is not None else None
            span.fixed = self._answered_fixed(span.fixed, key.consumer if key is not None else None,
                                              key.id if key is not None else None, ctx.model, ctx.provider,
                                              ctx.upstream_model, ctx.stream)
            facts = span.attributes
            facts["http.response.status_code"] = ctx.status
            facts["lockgate.attempts"] = ctx.attempts
            usage = ctx.usage
            if usage.input_tokens or usage.output_tokens:
                facts["gen_ai.usage.input_tokens"] = usage.input_tokens
                facts["gen_ai.usage.output_tokens"] = usage.output_tokens
            if trace.reasons:
                facts["gen_ai.response.finish_reasons"] = trace.reasons
            if ctx.error_type or ctx.status >= 500:
                self._fail(span, ctx.error_type or "_OTHER", ctx.error_code)
        if call is not None:
            if call.is_recording():
                self._answered(ctx, trace)
            call.end()
        span.end()

    def _answered(self, ctx: Context, trace: RequestTrace) -> None:
        call = trace.call
        assert call is not None
        facts = call.attributes
        usage = ctx.usage
        if usage.input_tokens or usage.output_tokens:
            facts["gen_ai.usage.input_tokens"] = usage.input_tokens
            facts["gen_ai.usage.output_tokens"] = usage.output_tokens
        if ctx.upstream_model:
            facts["gen_ai.response.model"] = ctx.upstream_model
        if trace.reasons:
            facts["gen_ai.response.finish_reasons"] = trace.reasons
        if ctx.stream and ctx.ttft is not None:
            facts["gen_ai.response.time_to_first_chunk"] = ctx.ttft
        if self.tracing.capture_content:
            messages = ctx.body.get("messages", ctx.body.get("input"))
            if messages is not None:
                facts["gen_ai.input.messages"] = orjson.dumps(messages).decode()
            if ctx.answer and not ctx.stream and ctx.status < 400:
                facts["gen_ai.output.messages"] = ctx.answer.decode(errors="replace")
        if ctx.status >= 400 or (ctx.error_type and ctx.error_type != "client_closed"):
            self._fail(call, ctx.error_type or str(ctx.status), ctx.error_code)
