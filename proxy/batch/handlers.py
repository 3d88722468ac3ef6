"""The HTTP endpoints of the Files and Batch API: authenticate, call the service, answer JSON.

Each runs in the same request envelope as the other OpenAI endpoints (errors in OpenAI's
format, metrics, access log). A key is valid here on the hosts of its namespace's Routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import BodyPartReader, web
from redis.exceptions import RedisError

from lockgate.proxy.auth import authenticate, openai_view
from lockgate.proxy.batch.service import BATCH, BatchService, expires_from_form
from lockgate.proxy.errors import ApiError, bad_request
from lockgate.proxy.handlers import envelope
from lockgate.proxy.pipeline import Context
from lockgate.proxy.pipeline.steps.parse import read_json

Action = Callable[[web.Request, BatchService, str], Awaitable[web.StreamResponse | dict[str, Any]]]
FORM_FIELD_BYTES = 1024  # purpose, expires_after[...]


def _endpoint(action: Action) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def deliver(request: web.Request, ctx: Context) -> web.StreamResponse:
        service = request.app.get(BATCH)
        if service is None:
            raise ApiError(404, "The Files and Batch API is not enabled on this gateway.", code="unknown_url",
                           error_type="not_found")
        entry = ctx.entry = authenticate(ctx.snapshot, request.headers)
        openai_view(ctx.snapshot, entry, request.host, request.path)  # 401 off its namespace's hosts
        try:
            answer = await action(request, service, entry.key.id)
        except (RedisError, OSError) as e:
            raise ApiError(503, "The batch store is unavailable; please retry.", type="api_error",
                           code="store_unavailable", error_type="no_upstream") from e
        ctx.status = answer.status if isinstance(answer, web.StreamResponse) else 200
        if isinstance(answer, web.StreamResponse):
            return answer
        return web.Response(body=orjson.dumps(answer), content_type="application/json",
                            headers={"x-request-id": ctx.request_id})

    async def handle(request: web.Request) -> web.StreamResponse:
        return await envelope(request, "openai", deliver)

    return handle


def _limit(request: web.Request, default: int, most: int) -> int:
    raw = request.query.get("limit")
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise bad_request(f"'limit' must be between 1 and {most}.", "invalid_value", "limit")
    return value


async def upload(request: web.Request, service: BatchService, owner: str) -> dict[str, Any]:
    if not request.content_type.startswith("multipart/"):
        raise bad_request("Upload the file as multipart/form-data with fields 'file' and 'purpose'.",
                          "invalid_request", "file")
    reader = await request.multipart()
    form: dict[str, str] = {}
    stored: tuple[str, int, str] | None = None
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file" and stored is None:
                file_id, size = await service.receive(owner, _chunks(part))
                stored = (file_id, size, part.filename or "")
            elif part.name:
                raw = await part.read_chunk(FORM_FIELD_BYTES + 1)
                if len(raw) > FORM_FIELD_BYTES:
                    raise bad_request(f"The form field '{part.name[:40]}' is too long.", "invalid_value", part.name)
                form[part.name] = raw.decode("utf-8", "replace")
        if stored is None:
            raise bad_request("Missing required parameter: 'file'.", "missing_required_parameter", "file")
        expires = expires_from_form(form.get("expires_after[anchor]"), form.get("expires_after[seconds]"))
    except BaseException:
        if stored is not None:
            service.files.remove(stored[0])
        raise
    return await service.register(owner, stored[0], stored[1], stored[2], form.get("purpose"), expires)


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(256 * 1024):
        yield chunk


async def list_files(request: web.Request, service: BatchService, owner: str) -> dict[str, Any]:
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("'order' is 'asc' or 'desc'.", "invalid_value", "order")
    return await service.list_files(owner, request.query.get("purpose"), _limit(request, 10_000, 10_000), order,
                                    request.query.get("after"))


async def get_file(request: web.Request, service: BatchService, owner: str) -> dict[str, Any]:
    return (await service.file(owner, request.match_info["file_id"])).to_openai()


async def delete_file(request: web.Request, service: BatchService, owner: str) -> dict[str, Any]:
    return await service.delete_file(owner, request.match_info["file_id"])


async def file_content(request: web.Request, service: BatchService, owner: str) -> web.StreamResponse:
    path = await service.content(owner, request.match_info["file_id"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


async def create_batch(request: web.Request, service: BatchService, owner: str) -> dict[str, Any]:
    body, _ = await read_json(request)
    return await service.create_batch(owner, request.host, body)


async def get_batch(request: web.Request, service: BatchService, owner: str) -> dict[str, Any]:
    return await service.batch(owner, request.match_info["batch_id"])


async def cancel_batch(request: web.Request, service: BatchService, owner: str) -> dict[str, Any]:
    return await service.cancel(owner, request.match_info["batch_id"])


async def list_batches(request: web.Request, service: BatchService, owner: str) -> dict[str, Any]:
    return await service.list_batches(owner, request.query.get("after"), _limit(request, 20, 100))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/files", _endpoint(upload))
    app.router.add_get("/v1/files", _endpoint(list_files))
    app.router.add_get("/v1/files/{file_id}", _endpoint(get_file))
    app.router.add_delete("/v1/files/{file_id}", _endpoint(delete_file))
    app.router.add_get("/v1/files/{file_id}/content", _endpoint(file_content))
    app.router.add_post("/v1/batches", _endpoint(create_batch))
    app.router.add_get("/v1/batches", _endpoint(list_batches))
    app.router.add_get("/v1/batches/{batch_id}", _endpoint(get_batch))
    app.router.add_post("/v1/batches/{batch_id}/cancel", _endpoint(cancel_batch))
