"""The internal entry points: a chat completion asked for by another part of the proxy (an MCP
model tool, an MCP server's sampling request), or an embedding (the response cache's), run through the
same pipeline as the OpenAI endpoints as a request of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson

from lockgate.api.ir import ConsumerKey
from lockgate.proxy.completion import Completion
from lockgate.proxy.errors import ApiError, upstream_error
from lockgate.proxy.edge import new_request_id
from lockgate.proxy.gateway import Gateway
from lockgate.proxy.pipeline.context import Context
from lockgate.proxy.pipeline.stream import events
from lockgate.proxy.preferences import Preferences
from lockgate.proxy.providers.base import UpstreamStreamError
from lockgate.proxy.providers.base import chat_deltas as deltas_of
from lockgate.proxy.snapshot import KeyEntry


async def chat_deltas(gateway: Gateway, entry: KeyEntry, body: dict[str, Any],
                      namespace: str | None = None) -> AsyncIterator[str]:
    """Text deltas of a streamed chat completion, accounted as its own request (metrics, access
    log). The model is chosen among `namespace`'s models and aliases (default: the key's
    namespace). Raises ApiError before the first delta on any refusal."""
    ctx = gateway.begin(new_request_id(), "POST", "(internal)/chat", "", kind="internal")
    ctx.entry, ctx.body, ctx.namespace = entry, body, namespace
    async with _answered(gateway, ctx):
        ctx.status = 200
        try:
            async for block in events(ctx):
                for text in deltas_of(block):
                    yield text
        except (ConnectionError, TimeoutError, UpstreamStreamError) as exc:  # mid-stream: the upstream failed
            raise upstream_error(f"The upstream stream failed: {type(exc).__name__}.") from None
        ctx.ok = True


async def complete(gateway: Gateway, entry: KeyEntry, body: dict[str, Any], candidates: Sequence[str],
                   preferences: Preferences | None, namespace: str | None = None, label: str = "sampling",
                   ) -> Completion:
    """A whole (unstreamed) chat completion by a model chosen among `candidates` by `preferences`,
    accounted as its own request under the model label `label`; raises ApiError on any refusal."""
    ctx = gateway.begin(new_request_id(), "POST", f"(internal)/{label}", "", kind="internal")
    ctx.entry, ctx.namespace = entry, namespace
    ctx.body = {**body, "model": label, "stream": False}
    ctx.candidates, ctx.preferences = tuple(candidates), preferences
    async with _answered(gateway, ctx):
        try:
            choice = orjson.loads(ctx.answer)["choices"][0]
            message = dict(choice["message"])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise upstream_error("The upstream's answer has no message.") from None
        assert ctx.target is not None
        ctx.ok = True
        return Completion(message, str(choice.get("finish_reason") or "stop"), ctx.target.model.name,
                          ctx.usage.input_tokens, ctx.usage.output_tokens)
    raise AssertionError("unreachable")  # pragma: no cover  (the context manager re-raises)


@asynccontextmanager
async def _answered(gateway: Gateway, ctx: Context) -> AsyncIterator[None]:
    """The pipeline run up to an answer (ApiError when refused), then the caller's reading of it;
    whatever happens, the request's end is accounted."""
    try:
        assert ctx.pipeline is not None
        await ctx.pipeline.run(ctx)
        if ctx.status >= 400:
            raise ApiError(ctx.status, _error_message(ctx.answer), type="api_error", code="upstream_error",
                           error_type="upstream_error")
        yield
    except ApiError as error:
        ctx.fail(error)
        raise
    finally:
        if not ctx.ok and not ctx.error_type:
            ctx.status, ctx.error_type = 499, "client_closed"
        await gateway.finish(ctx)


async def _run(ctx: Context) -> None:
    """Through the pipeline; an upstream's refusal raised as ApiError."""
    assert ctx.pipeline is not None
    await ctx.pipeline.run(ctx)
    if ctx.status >= 400:
        raise ApiError(ctx.status, _error_message(ctx.answer), type="api_error", code="upstream_error",
                       error_type="upstream_error")


def _error_message(body: bytes) -> str:
    try:
        return str(orjson.loads(body)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "The upstream refused the request."


CACHE_CONSUMER = "lockgate-cache"  # the consumer the response cache's own embedding requests are accounted to


def cache_key(namespace: str) -> KeyEntry:
    """The gateway's own key in a namespace: no limits, its own consumer in metrics and the access log."""
    return KeyEntry(ConsumerKey(id=f"{namespace}/{CACHE_CONSUMER}", consumer=CACHE_CONSUMER, hashes=()),
                    None, None, None, None, namespace)


async def embedding(gateway: Gateway, namespace: str, model: str, text: str) -> list[float]:
    """The embedding of `text` by one of `namespace`'s models, asked for by the gateway itself (the response
    cache) as a request of its own: accounted to the gateway's key, not to the consumer it serves."""
    ctx = gateway.begin(new_request_id(), "POST", "(internal)/embeddings", "", kind="internal")
    ctx.op, ctx.entry, ctx.namespace = "embeddings", cache_key(namespace), namespace
    ctx.body = {"model": model, "input": text}
    try:
        await _run(ctx)
        try:
            vector = orjson.loads(ctx.answer)["data"][0]["embedding"]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise upstream_error("The embedding answer has no vector.") from None
        if not isinstance(vector, list):
            raise upstream_error("The embedding answer has no vector.")
        return [float(v) for v in vector]
    except ApiError as error:
        ctx.fail(error)
        raise
    finally:
        await gateway.finish(ctx)
