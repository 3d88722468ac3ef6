"""A development aid, not a model: a tiny OpenAI-compatible server that
answers deterministically (it echoes the last user message), so the
quickstart and local experiments work offline. Never point real traffic at it.

Serves /v1/models, /v1/chat/completions (plain and streamed, with usage),
/v1/completions and /v1/embeddings. Tokens are counted as words.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from aiohttp import web

DEFAULT_MODELS = ("dev-small", "dev-large", "dev-embed")
EMBEDDING_SIZE = 8
MODELS = web.AppKey("models", tuple)


def _error(status: int, message: str, type_: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": type_, "param": None, "code": None}}, status=status)


def _text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _tokens(text: str) -> int:
    return len(text.split())


def _reply(prompt: str, limit: int | None) -> tuple[str, str]:
    words = f"echo: {prompt}".split()
    if limit is not None and len(words) > limit:
        return " ".join(words[:limit]), "length"
    return " ".join(words), "stop"


def _limit(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return int(value) if isinstance(value, int) and value > 0 else None


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "the body is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(400, "the body needs a model")
    return body


async def models(request: web.Request) -> web.Response:
    names = request.app[MODELS]
    return web.json_response(
        {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "lockgate-dev"} for n in names]}
    )


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "messages must be a non-empty list")
    last_user = next((_text(m.get("content")) for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), "")
    text, finish = _reply(last_user, _limit(body))
    usage = {
        "prompt_tokens": sum(_tokens(_text(m.get("content"))) for m in messages if isinstance(m, dict)),
        "completion_tokens": _tokens(text),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    ident = "chatcmpl-dev-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    base = {"id": ident, "created": int(time.time()), "model": body["model"]}
    if not body.get("stream"):
        return web.json_response({
            **base, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": usage,
        })
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)

    async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for i, word in enumerate(text.split()):
        await send([{"index": 0, "delta": {"content": word if i == 0 else " " + word}, "finish_reason": None}])
    await send([{"index": 0, "delta": {}, "finish_reason": finish}])
    if (body.get("stream_options") or {}).get("include_usage"):
        await send([], usage=usage)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def completions(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    prompt = body.get("prompt", "")
    prompt = " ".join(prompt) if isinstance(prompt, list) else str(prompt)
    text, finish = _reply(prompt, _limit(body))
    usage = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(text)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return web.json_response({
        "id": "cmpl-dev", "object": "text_completion", "created": int(time.time()), "model": body["model"],
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}], "usage": usage,
    })


def embedding(text: str) -> list[float]:
    """A deterministic unit-free vector: equal inputs give equal vectors."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 6) for b in digest[:EMBEDDING_SIZE]]


async def embeddings(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs] if isinstance(inputs, list) else None
    if not texts:
        return _error(400, "input must be a string or a list of strings")
    tokens = sum(_tokens(t) for t in texts)
    return web.json_response({
        "object": "list", "model": body["model"],
        "data": [{"object": "embedding", "index": i, "embedding": embedding(t)} for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


def make_app(model_names: tuple[str, ...] = DEFAULT_MODELS) -> web.Application:
    app = web.Application()
    app[MODELS] = model_names
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    return app


async def start(host: str, port: int, model_names: tuple[str, ...] = DEFAULT_MODELS) -> web.AppRunner:
    """Starts the server; the caller cleans up the returned runner."""
    runner = web.AppRunner(make_app(model_names), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
