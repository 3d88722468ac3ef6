"""parse: the request as an OpenAI-shaped body, its model and whether it streams.

The OpenAI endpoints read a JSON object with the fields their operation
requires (400 otherwise, 413 past the size limit); a chatTemplate Route reads
the variables, checks them and renders the messages with the Route's
model and parameters; an MCP model tool brings its body, and so does a batch line (an OpenAI request without
its HTTP envelope). Then the prompt
estimate the quota reserves for.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import orjson
from aiohttp import web

from lockgate.proxy.errors import ApiError, bad_request
from lockgate.proxy.estimate import estimate_request
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.step import Step
from lockgate.proxy.providers.base import Operation
from lockgate.proxy.templates import render_messages, validate_variables

# Fields each operation requires, besides model.
REQUIRED: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "chat": (("messages", list),),
    "completions": (("prompt", (str, list)),),
    "embeddings": (("input", (str, list)),),
    "responses": (("input", (str, list)),),
    "messages": (("messages", list), ("max_tokens", int)),
}


def _too_large() -> ApiError:
    return ApiError(413, "The request body is too large.", code="request_too_large", error_type="payload_too_large")


def body_in_hand(request: web.Request) -> bytes | None:
    """The request body when the whole of it came with the head (most requests), taken as it lies in the
    buffer: no await, none of request.read()'s copies. The limit is the one read() applies (413).
    None while more of it is still to come."""
    content = request.content
    if not content.is_eof():
        return None
    raw = content.read_nowait()
    if len(raw) > request.client_max_size:
        raise _too_large()
    return raw


async def read_body(request: web.Request) -> bytes:
    """The request body's bytes (413 past the app's size limit)."""
    raw = body_in_hand(request)
    if raw is not None:
        return raw
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large() from None


def parse_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; 400 otherwise."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return body


async def read_json(request: web.Request) -> tuple[dict[str, Any], int]:
    """The request body as a JSON object, and its size."""
    raw = await read_body(request)
    return parse_object(raw), len(raw)


def check_fields(op: Operation, body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("Missing required parameter: 'model'.", code="missing_required_parameter", param="model")
    for name, kind in REQUIRED[op]:
        if not isinstance(body.get(name), kind):
            raise bad_request(f"Missing or invalid required parameter: '{name}'.", code="missing_required_parameter",
                              param=name)
    return model


class ParseStep(Step):
    name = "parse"

    def request(self, ctx: Context) -> Awaitable[None] | None:
        # A plain function: a coroutine only when the body must be waited for (a large one, a template's).
        if ctx.kind == "openai":
            if ctx.request is not None:
                raw = body_in_hand(ctx.request)
                if raw is None:
                    return self._read_openai(ctx, ctx.request)
                self._openai(ctx, raw)
            else:  # a body handed over whole (a line of a batch): checked the same way
                self._openai(ctx, None)
        elif ctx.kind == "template":
            return self._template(ctx)
        else:
            model = ctx.body.get("model")
            ctx.model = model if isinstance(model, str) else ""
            if ctx.op == "embeddings":  # the cache's embeddings come whole
                ctx.stream = False
            else:  # streamed unless the caller wants it whole
                ctx.stream = ctx.body.get("stream") is not False
                ctx.body = {**ctx.body, "stream": ctx.stream}
            _estimate(ctx)
        return None

    async def _read_openai(self, ctx: Context, request: web.Request) -> None:
        self._openai(ctx, await read_body(request))

    @staticmethod
    def _openai(ctx: Context, raw: bytes | None) -> None:
        if raw is not None:
            ctx.body, ctx.size, ctx.raw_body = parse_object(raw), len(raw), raw
        ctx.model = check_fields(ctx.op, ctx.body)
        ctx.stream = bool(ctx.body.get("stream")) and ctx.op != "embeddings"
        _estimate(ctx)

    @staticmethod
    async def _template(ctx: Context) -> None:
        assert ctx.request is not None and ctx.route is not None and ctx.route.chat_template is not None
        template = ctx.route.chat_template
        posted, _ = await read_json(ctx.request)
        messages = render_messages(template, validate_variables(template, posted))
        ctx.body = {**template.params, "model": template.model, "messages": messages, "stream": False}
        ctx.model = template.model
        _estimate(ctx)


def _estimate(ctx: Context) -> None:
    ctx.estimate = estimate_request(ctx.body, ctx.size)
    ctx.prompt_tokens = ctx.estimate.prompt_tokens
