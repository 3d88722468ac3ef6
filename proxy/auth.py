"""Authentication: the request's key, looked up by its SHA-256 in the snapshot.

Keys come in `Authorization: Bearer`, `x-api-key` (Anthropic SDK) or
`api-key` (Azure SDK). Missing or unknown keys are refused with 401
`invalid_api_key`; an expired key with 401 `expired_api_key`; a rotated-out
hash past its `not_after` counts as unknown. Authorization of hosts, models
and routes is checked here too so every handler uses the same codes.

A key belongs to its namespace: it is valid only on hosts where a Route of
its namespace is served (401 elsewhere), it sees only its namespace's models
and Routes there (404 for another namespace's), and its own allowlists say
403 within them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

from lockgate.api.ir import Route, namespace_of
from lockgate.proxy.errors import ApiError, forbidden, path_not_found, unauthorized
from lockgate.proxy.snapshot import CompiledSnapshot, HostView, KeyEntry, OpenAIView


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key the client sent, from whichever header carries it."""
    value = headers.get("Authorization")
    if value:
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for name in ("x-api-key", "api-key"):
        value = headers.get(name)
        if value:
            return value.strip()
    return None


def lookup(snapshot: CompiledSnapshot, key: str | None, now: float | None = None) -> KeyEntry:
    if not key:
        raise unauthorized("Missing API key: send it as 'Authorization: Bearer <key>'.")
    # surrogateescape: the header's own bytes, also when they are not UTF-8 (such a key is simply unknown).
    entry = snapshot.keys_by_hash.get(hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest())
    if entry is None:
        raise unauthorized("Incorrect API key provided.")
    if entry.not_after is None and entry.expires_at is None:  # most keys: no clock to read
        return entry
    now = time.time() if now is None else now
    if entry.not_after is not None and now >= entry.not_after:
        raise unauthorized("Incorrect API key provided.")
    if entry.expires_at is not None and now >= entry.expires_at:
        raise unauthorized("This API key has expired.", code="expired_api_key")
    return entry


def authenticate(snapshot: CompiledSnapshot, headers: Mapping[str, str], now: float | None = None) -> KeyEntry:
    """The key entry of a request, or an ApiError (401)."""
    return lookup(snapshot, presented_key(headers), now)


def check_model(entry: KeyEntry, model: str) -> None:
    if entry.models is not None and entry.models.match(model) is None:
        raise forbidden(f"This API key may not use the model '{model}'.", code="model_not_allowed")


def may_use_model(entry: KeyEntry, model: str) -> bool:
    return entry.models is None or entry.models.match(model) is not None


def check_route(entry: KeyEntry, route_id: str) -> None:
    if entry.routes is not None and route_id not in entry.routes and route_id.rsplit("/", 1)[-1] not in entry.routes:
        raise forbidden("This API key may not call this route.", code="route_not_allowed")


def openai_view(snapshot: CompiledSnapshot, entry: KeyEntry, host: str, path: str) -> OpenAIView:
    """The OpenAI API as the key's namespace sees it on this host (its Routes there and its pool)."""
    return openai_view_of(snapshot.host_view(host), entry, path)


def openai_view_of(view: HostView | None, entry: KeyEntry, path: str) -> OpenAIView:
    """`openai_view` for a host view already looked up (the pipeline's route step does)."""
    if view is None:
        raise path_not_found(path)
    if not view.admits(entry.namespace):
        raise _not_on_host()
    openai = view.openai_for(entry.namespace)
    if openai is None:  # only chatTemplate Routes of the key's namespace here
        raise path_not_found(path)
    return openai


def template_view(snapshot: CompiledSnapshot, entry: KeyEntry, host: str, route: Route) -> OpenAIView:
    """The models a chatTemplate Route may call, once the key may call the route
    (its namespace's, and listed in the key's routes)."""
    namespace = namespace_of(route.id)
    if entry.namespace != namespace:
        view = snapshot.host_view(host)
        if view is None or not view.admits(entry.namespace):
            raise _not_on_host()
        raise path_not_found(route.path or "")  # another tenant's route: not there for this key
    check_route(entry, route.id)
    return snapshot.namespace_view(namespace)


def _not_on_host() -> ApiError:
    return unauthorized("This API key is not valid on this host.")


__all__ = ["ApiError", "authenticate", "check_model", "check_route", "lookup", "may_use_model", "openai_view",
           "openai_view_of", "presented_key", "template_view"]
