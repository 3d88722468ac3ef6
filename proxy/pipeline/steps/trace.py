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
    from lockgate.proxy.tracing.spans import AttributeValue
    from lockgate.proxy.tracing.tracer import Tracing


class TraceStep(Step):
    name = "trace"

    def __init__(self, tracing: Tracing) -> None:
        from lockgate.proxy.tracing import request  # the SDK is loaded only when tracing is on

        self.tracing = tracing
        self._trace, self._fail = request.RequestTrace, request.fail

    def request(self, ctx: Context) -> None:
        attributes: dict[str, AttributeValue] = {"http.request.method": ctx.method, "url.path": ctx.path, "lockgate.request_id": ctx.request_id,
                      "lockgate.host": ctx.host}
        if ctx.route is not None:
            attributes["lockgate.route"] = ctx.route.id
        ctx.trace = self._trace(self.tracing, f"{ctx.method} {ctx.path}", ctx.headers, attributes)

    def finish(self, ctx: Context) -> None:
        trace = ctx.trace
        if trace is None:
            return
        span, call = trace.span, trace.call
        if trace.recording:
            if ctx.answer:
                trace.scan(ctx.answer)
            facts: dict[str, AttributeValue] = {"http.response.status_code": ctx.status,
                                                  "lockgate.attempts": ctx.attempts}
            if ctx.entry is not None:
                facts["lockgate.consumer"] = ctx.entry.key.consumer
                facts["lockgate.key_id"] = ctx.entry.key.id
            if ctx.model:
                facts["gen_ai.request.model"] = ctx.model
            if ctx.provider:
                facts["lockgate.provider"] = ctx.provider
                facts["lockgate.upstream_model"] = ctx.upstream_model
            if ctx.stream:
                facts["gen_ai.request.stream"] = True
            usage = ctx.usage
            if usage.input_tokens or usage.output_tokens:
                facts["gen_ai.usage.input_tokens"] = usage.input_tokens
                facts["gen_ai.usage.output_tokens"] = usage.output_tokens
            span.set_attributes(facts)
            if trace.reasons:
                span.set_attribute("gen_ai.response.finish_reasons", trace.reasons)
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
        usage = ctx.usage
        if usage.input_tokens or usage.output_tokens:
            call.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            call.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        if ctx.upstream_model:
            call.set_attribute("gen_ai.response.model", ctx.upstream_model)
        if trace.reasons:
            call.set_attribute("gen_ai.response.finish_reasons", trace.reasons)
        if ctx.stream and ctx.ttft is not None:
            call.set_attribute("gen_ai.response.time_to_first_chunk", ctx.ttft)
        if self.tracing.capture_content:
            messages = ctx.body.get("messages", ctx.body.get("input"))
            if messages is not None:
                call.set_attribute("gen_ai.input.messages", orjson.dumps(messages).decode())
            if ctx.answer and not ctx.stream and ctx.status < 400:
                call.set_attribute("gen_ai.output.messages", ctx.answer.decode(errors="replace"))
        if ctx.status >= 400 or (ctx.error_type and ctx.error_type != "client_closed"):
            self._fail(call, ctx.error_type or str(ctx.status), ctx.error_code)
