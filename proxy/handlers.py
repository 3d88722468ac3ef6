"""HTTP entry points of the OpenAI API (and Anthropic's /v1/messages) and of chatTemplate Routes.

Each is a thin envelope around the request pipeline (`lockgate.proxy.pipeline`):
begin a context, run the pipeline, deliver the answer (whole or streamed),
and always finish (settle, metrics, access log); errors in OpenAI's format,
499 when the client goes away.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from lockgate.api.ir import Route
from lockgate.proxy.auth import authenticate, may_use_model, openai_view
from lockgate.proxy.errors import ApiError, path_not_found, shutting_down
from lockgate.proxy.edge import assign_request_id, request_id_of
from lockgate.proxy.gateway import GATEWAY
from lockgate.proxy.pipeline import Context, Kind
from lockgate.proxy.pipeline.steps.send import CONNECT_ERRORS
from lockgate.proxy.pipeline.stream import events
from lockgate.proxy.providers.base import Operation, UpstreamStreamError, sse
from lockgate.proxy.templates import parse_json_answer

Deliver = Callable[[web.Request, Context], Awaitable[web.StreamResponse]]

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStreamResponse(web.StreamResponse):
    """An SSE response whose headers leave with its first event, in one write: the handler
    writes that event right after prepare(), so the headers alone would cost a system call."""

    _send_headers_immediately = False  # what aiohttp's web.Response does for the same reason


async def envelope(request: web.Request, kind: Kind, deliver: Deliver, op: Operation = "chat",
                   route: Route | None = None) -> web.StreamResponse:
    """One request's context around `deliver`: begun, failed in OpenAI's error format (Anthropic's
    for /v1/messages), marked 499 when the client goes away, and always finished."""
    anthropic = op == "messages"
    gateway = request.app[GATEWAY]
    request_id = assign_request_id(request)
    try:
        ctx = gateway.begin(request_id, request.method, request.path, request.host, kind, request.headers)
    except ApiError as error:
        return error.response(request_id, anthropic)
    ctx.request, ctx.op, ctx.route = request, op, route
    # The handler's own task (request.task is the connection's). Given its loop, current_task() is a dict
    # look-up; without, Python 3.11 finds the running loop with a getpid() system call.
    task = gateway.open_requests.enter(task=asyncio.current_task(request.task.get_loop()))
    try:
        return await deliver(request, ctx)
    except ApiError as error:
        ctx.fail(error)
        refused = error.response(ctx.request_id, anthropic)
        if ctx.cache is not None:  # refused after the cache looked (a hit over the key's rpm)
            refused.headers["x-lockgate-cache"] = ctx.cache.status
        return refused
    except asyncio.CancelledError:
        if gateway.open_requests.ended(task):  # the drain's deadline, before any answer
            ended = shutting_down()
            ctx.fail(ended)
            return ended.response(ctx.request_id, anthropic)
        if not ctx.error_type:  # the client went away
            ctx.status, ctx.error_type = 499, "client_closed"
        raise
    finally:
        gateway.open_requests.leave(task)
        await gateway.finish(ctx)


def openai_handler(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    # A partial of the coroutine function, not a closure awaiting it: one coroutine less per request.
    return functools.partial(envelope, kind="openai", deliver=_answer, op=op)


async def _answer(request: web.Request, ctx: Context) -> web.StreamResponse:
    assert ctx.pipeline is not None
    await ctx.pipeline.run(ctx)
    if ctx.response is None and not ctx.replay:
        if ctx.status >= 400:
            ctx.error_type = "bad_request" if ctx.status < 500 else "upstream_error"
        return web.Response(status=ctx.status, body=ctx.answer, content_type="application/json",
                            headers=ctx.response_headers())
    return await stream_out(request, ctx)


async def stream_out(request: web.Request, ctx: Context) -> web.StreamResponse:
    """Forward a stream event by event. Mid-stream failures end it with an error event."""
    response = EventStreamResponse(status=200, headers={**SSE_HEADERS, **ctx.response_headers()})
    ctx.status = 200
    try:
        await response.prepare(request)
        try:
            async for event in events(ctx):
                await response.write(event)
            ctx.ok = True
        except (*CONNECT_ERRORS, TimeoutError, UpstreamStreamError) as exc:
            if isinstance(exc, ConnectionResetError) and request.transport is None:
                raise  # the client went away
            ctx.error_type = "timeout" if isinstance(exc, TimeoutError) else "upstream_error"
            body = exc.body if isinstance(exc, UpstreamStreamError) else {
                "error": {"message": "The upstream stream failed.", "type": "api_error", "param": None,
                          "code": "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_error"}}
            await response.write(sse(orjson.dumps(body)))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or not request.app[GATEWAY].open_requests.ended(task):
                raise
            error = shutting_down()  # the drain's deadline: the client is told, not cut off
            ctx.error_type = error.error_type
            await response.write(sse(orjson.dumps(error.body())))
        await response.write_eof()
    except (asyncio.CancelledError, ConnectionResetError):
        ctx.ok = False
        ctx.status, ctx.error_type = 499, "client_closed"
        raise
    return response


async def list_models(request: web.Request) -> web.StreamResponse:
    return await envelope(request, "openai", _models)


async def _models(request: web.Request, ctx: Context) -> web.Response:
    snapshot = ctx.snapshot
    entry = ctx.entry = authenticate(snapshot, request.headers)
    view = openai_view(snapshot, entry, request.host, request.path)
    names = [m for m in view.pool.served_models if view.shows(m)] + sorted(view.aliases)
    created = int(snapshot.loaded_at.timestamp())
    data = [{"id": name, "object": "model", "created": created, "owned_by": "lockgate"}
            for name in dict.fromkeys(names) if may_use_model(entry, name)]
    ctx.status = 200
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json",
                        headers={"x-request-id": ctx.request_id})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", openai_handler("chat"))
    app.router.add_post("/v1/completions", openai_handler("completions"))
    app.router.add_post("/v1/embeddings", openai_handler("embeddings"))
    app.router.add_post("/v1/responses", openai_handler("responses"))
    app.router.add_post("/v1/messages", openai_handler("messages"))
    app.router.add_get("/v1/models", list_models)


async def _template_answer(request: web.Request, ctx: Context) -> web.Response:
    """A chatTemplate Route: variables in, the model's answer (text or JSON) out."""
    assert ctx.pipeline is not None and ctx.route is not None and ctx.route.chat_template is not None
    await ctx.pipeline.run(ctx)
    if ctx.status >= 400:
        ctx.error_type = "upstream_error"
        return web.Response(status=ctx.status, body=ctx.answer, content_type="application/json",
                            headers=ctx.response_headers())
    try:
        text = orjson.loads(ctx.answer)["choices"][0]["message"]["content"] or ""
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise ApiError(502, "The model's answer has no message.", type="api_error", code="invalid_model_output",
                       error_type="upstream_error") from None
    if ctx.route.chat_template.response == "json":
        value = parse_json_answer(text)
        return web.Response(body=orjson.dumps(value), content_type="application/json",
                            headers=ctx.response_headers())
    return web.Response(text=text, content_type="text/plain", headers=ctx.response_headers())


_API_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages",
                        "/v1/models"})


async def fallback(request: web.Request) -> web.StreamResponse:
    """Paths no fixed route serves: chatTemplate Routes, then 404 (405 on the API's own paths)."""
    snapshot = request.app[GATEWAY].snapshot
    if snapshot is not None and request.method == "POST":
        view = snapshot.host_view(request.host)
        route = view.templates.get(request.path) if view is not None else None
        if route is not None:
            return await envelope(request, "template", _template_answer, "chat", route)
    request_id = request_id_of(request)
    if request.path in _API_PATHS:
        return ApiError(405, f"Method {request.method} is not allowed on {request.path}.", code="method_not_allowed",
                        error_type="bad_request").response(request_id, request.path == "/v1/messages")
    return path_not_found(request.path).response(request_id)
