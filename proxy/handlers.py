"""HTTP handlers of the OpenAI API (and Anthropic's /v1/messages): thin steps over the pipeline.

route (host) -> authenticate -> parse -> plan (model checks) -> forward (quota,
choice, failover) -> respond (whole or streamed) -> account.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from lockgate.api.ir import Route
from lockgate.proxy.auth import check_route, may_use_model
from lockgate.proxy.errors import ApiError, bad_request, path_not_found
from lockgate.proxy.forward import CONNECT_ERRORS, Outcome, forward
from lockgate.proxy.gateway import GATEWAY, Gateway, estimate_tokens, request_id_of
from lockgate.proxy.providers.anthropic import UpstreamStreamError
from lockgate.proxy.providers.base import Operation, sse
from lockgate.proxy.record import RequestRecord
from lockgate.proxy.templates import parse_json_answer, render_messages, validate_variables

Serve = Callable[[Gateway, RequestRecord], Awaitable[web.StreamResponse]]

# Fields each operation requires, besides model.
REQUIRED: dict[str, tuple[tuple[str, type | tuple[type, ...]], ...]] = {
    "chat": (("messages", list),),
    "completions": (("prompt", (str, list)),),
    "embeddings": (("input", (str, list)),),
    "responses": (("input", (str, list)),),
    "messages": (("messages", list), ("max_tokens", int)),
}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStreamResponse(web.StreamResponse):
    """An SSE response whose headers leave with its first event, in one write: the handler
    writes that event right after prepare(), so the headers alone would cost a system call."""

    _send_headers_immediately = False  # what aiohttp's web.Response does for the same reason


async def read_json(request: web.Request) -> tuple[dict[str, Any], int]:
    """The request body as a JSON object, and its size."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "The request body is too large.", code="request_too_large",
                       error_type="payload_too_large") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return body, len(raw)


def check_fields(op: Operation, body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("Missing required parameter: 'model'.", code="missing_required_parameter", param="model")
    for name, kind in REQUIRED[op]:
        if not isinstance(body.get(name), kind):
            raise bad_request(f"Missing or invalid required parameter: '{name}'.", code="missing_required_parameter",
                              param=name)
    return model


async def recorded(request: web.Request, serve: Serve) -> web.StreamResponse:
    """One request's record around `serve`: begun, failed in OpenAI's error
    format, marked 499 when the client goes away, and always finished."""
    gateway = request.app[GATEWAY]
    try:
        record = gateway.begin(request)
    except ApiError as error:
        return error.response(request_id_of(request))
    try:
        return await serve(gateway, record)
    except ApiError as error:
        record.fail(error)
        return error.response(record.request_id)
    except asyncio.CancelledError:  # the client went away
        if not record.error_type:
            record.status, record.error_type = 499, "client_closed"
        raise
    finally:
        gateway.finish(record)


def openai_handler(op: Operation):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.StreamResponse:
        return await recorded(request, lambda gateway, record: _serve(gateway, request, record, op))

    return handle


async def _serve(gateway: Gateway, request: web.Request, record: RequestRecord, op: Operation) -> web.StreamResponse:
    snapshot = record.snapshot
    record.entry = gateway.authenticate(snapshot, request.headers)
    view = snapshot.host_view(request.host)
    if view is None or view.openai is None:
        raise path_not_found(request.path)
    body, size = await read_json(request)
    record.model = check_fields(op, body)
    targets = gateway.plan(record, view.openai, record.model)
    stream = bool(body.get("stream")) and op != "embeddings"
    record.stream = stream
    outcome = await forward(gateway, record, op, body, targets, stream=stream, estimate=estimate_tokens(body, size),
                            timeout=view.openai.timeout)
    if outcome.response is None:
        await outcome.close(outcome.status < 400)
        record.status = outcome.status
        if outcome.status >= 400:
            record.error_type = "bad_request" if outcome.status < 500 else "upstream_error"
        return web.Response(status=outcome.status, body=outcome.body, content_type="application/json",
                            headers=_headers(record, outcome))
    return await stream_out(request, record, outcome)


def _headers(record: RequestRecord, outcome: Outcome) -> dict[str, str]:
    headers = {"x-request-id": record.request_id}
    if outcome.reservation is not None and outcome.reservation.headers:
        headers.update(outcome.reservation.headers)
    return headers


async def stream_out(request: web.Request, record: RequestRecord, outcome: Outcome) -> web.StreamResponse:
    """Forward a stream event by event. Mid-stream failures end it with an error event."""
    response = EventStreamResponse(status=200, headers={**SSE_HEADERS, **_headers(record, outcome)})
    ok = False
    record.status = 200
    try:
        await response.prepare(request)
        try:
            async for event in outcome.events():
                await response.write(event)
            ok = True
        except (*CONNECT_ERRORS, TimeoutError, UpstreamStreamError) as exc:
            if isinstance(exc, ConnectionResetError) and request.transport is None:
                raise  # the client went away
            record.error_type = "timeout" if isinstance(exc, TimeoutError) else "upstream_error"
            body = exc.body if isinstance(exc, UpstreamStreamError) else {
                "error": {"message": "The upstream stream failed.", "type": "api_error", "param": None,
                          "code": "upstream_timeout" if isinstance(exc, TimeoutError) else "upstream_error"}}
            await response.write(sse(orjson.dumps(body)))
        await response.write_eof()
    except (asyncio.CancelledError, ConnectionResetError):
        record.status, record.error_type = 499, "client_closed"
        raise
    finally:
        await outcome.close(ok)
    return response


async def list_models(request: web.Request) -> web.StreamResponse:
    return await recorded(request, lambda gateway, record: _models(gateway, request, record))


async def _models(gateway: Gateway, request: web.Request, record: RequestRecord) -> web.Response:
    snapshot = record.snapshot
    entry = record.entry = gateway.authenticate(snapshot, request.headers)
    view = snapshot.host_view(request.host)
    if view is None or view.openai is None:
        raise path_not_found(request.path)
    names = [m for m in snapshot.served_models if view.openai.shows(m)] + sorted(view.openai.aliases)
    created = int(snapshot.loaded_at.timestamp())
    data = [{"id": name, "object": "model", "created": created, "owned_by": "lockgate"}
            for name in dict.fromkeys(names) if may_use_model(entry, name)]
    record.status = 200
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json",
                        headers={"x-request-id": record.request_id})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", openai_handler("chat"))
    app.router.add_post("/v1/completions", openai_handler("completions"))
    app.router.add_post("/v1/embeddings", openai_handler("embeddings"))
    app.router.add_post("/v1/responses", openai_handler("responses"))
    app.router.add_post("/v1/messages", openai_handler("messages"))
    app.router.add_get("/v1/models", list_models)


async def serve_template(gateway: Gateway, request: web.Request, record: RequestRecord, route: Route) -> web.Response:
    """A chatTemplate Route: variables in, the model's answer (text or JSON) out."""
    template = route.chat_template
    assert template is not None
    entry = record.entry = gateway.authenticate(record.snapshot, request.headers)
    check_route(entry, route.id)
    posted, _ = await read_json(request)
    messages = render_messages(template, validate_variables(template, posted))
    body = {**template.params, "model": template.model, "messages": messages, "stream": False}
    record.model = template.model
    view = record.snapshot.host_view(request.host)
    targets = gateway.plan(record, None, template.model, aliases=view.openai.aliases if view and view.openai else None,
                           check_key=False)
    outcome = await forward(gateway, record, "chat", body, targets, stream=False, estimate=estimate_tokens(body),
                            timeout=route.timeout)
    await outcome.close(outcome.status < 400)
    record.status = outcome.status
    if outcome.status >= 400:
        record.error_type = "upstream_error"
        return web.Response(status=outcome.status, body=outcome.body, content_type="application/json",
                            headers=_headers(record, outcome))
    try:
        text = orjson.loads(outcome.body)["choices"][0]["message"]["content"] or ""
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise ApiError(502, "The model's answer has no message.", type="api_error", code="invalid_model_output",
                       error_type="upstream_error") from None
    if template.response == "json":
        value = parse_json_answer(text)
        return web.Response(body=orjson.dumps(value), content_type="application/json", headers=_headers(record, outcome))
    return web.Response(text=text, content_type="text/plain", headers=_headers(record, outcome))


_API_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages",
                        "/v1/models"})


async def fallback(request: web.Request) -> web.StreamResponse:
    """Paths no fixed route serves: chatTemplate Routes, then 404 (405 on the API's own paths)."""
    gateway = request.app[GATEWAY]
    snapshot = gateway.snapshot
    if snapshot is not None and request.method == "POST":
        view = snapshot.host_view(request.host)
        route = view.templates.get(request.path) if view is not None else None
        if route is not None:
            return await recorded(request, lambda gw, record: serve_template(gw, request, record, route))
    request_id = request_id_of(request)
    if request.path in _API_PATHS:
        return ApiError(405, f"Method {request.method} is not allowed on {request.path}.", code="method_not_allowed",
                        error_type="bad_request").response(request_id)
    return path_not_found(request.path).response(request_id)
