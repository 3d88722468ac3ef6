"""The `aggregate` kind: one server over several, names prefixed per member.

Tool and prompt names become `<prefix>__<name>` (or `<prefix><name>` when the
prefix already ends in a separator), cut to 64 characters with a short hash
when longer. Calls go to the member that owns the name; resources keep their
URIs and reads go to the member that lists the URI.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.backend import Backend, CallContext

log = logging.getLogger(__name__)
MAX_NAME = 64
SEPARATOR = "__"
LISTING_TTL = 10.0
MAX_PAGES = 20


def prefixed(prefix: str, name: str) -> str:
    joined = f"{prefix}{name}" if prefix.endswith(("_", "-", ".")) else f"{prefix}{SEPARATOR}{name}"
    if len(joined) <= MAX_NAME:
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:8]
    return f"{joined[:MAX_NAME - 9]}_{digest}"


@dataclass
class Member:
    prefix: str
    backend: Backend


@dataclass
class _Listing:
    items: list[dict[str, Any]]
    owners: dict[str, tuple[Member, str]]  # exposed name (or URI) -> (member, member's own name)
    at: float


class AggregateBackend:
    def __init__(self, members: list[Member]) -> None:
        self._members = members
        self._listings: dict[str, _Listing] = {}

    def capabilities(self) -> dict[str, Any]:
        return {"tools": {"listChanged": False}, "prompts": {"listChanged": False},
                "resources": {"listChanged": False}}

    async def request(self, ctx: CallContext, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "tools/list":
            return {"tools": (await self._listing(ctx, "tools")).items}
        if method == "prompts/list":
            return {"prompts": (await self._listing(ctx, "prompts")).items}
        if method == "resources/list":
            return {"resources": (await self._listing(ctx, "resources")).items}
        if method == "resources/templates/list":
            return {"resourceTemplates": (await self._listing(ctx, "resourceTemplates")).items}
        if method in ("tools/call", "prompts/get"):
            kind = "tools" if method == "tools/call" else "prompts"
            member, own = await self._owner(ctx, kind, str(params.get("name")))
            return await member.backend.request(ctx, method, {**params, "name": own})
        if method == "resources/read":
            member, own = await self._owner(ctx, "resources", str(params.get("uri")))
            return await member.backend.request(ctx, method, params)
        if method == "ping":
            return {}
        raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"method not found: {method}", status=404)

    async def _owner(self, ctx: CallContext, kind: str, name: str) -> tuple[Member, str]:
        for fresh in (False, True):
            owner = (await self._listing(ctx, kind, fresh)).owners.get(name)
            if owner is not None:
                return owner
        noun = {"tools": "tool", "prompts": "prompt"}.get(kind, "resource")
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"unknown {noun} {name!r}")

    async def _listing(self, ctx: CallContext, kind: str, fresh: bool = False) -> _Listing:
        cached = self._listings.get(kind)
        if cached is not None and not fresh and time.monotonic() - cached.at < LISTING_TTL:
            return cached
        method = {"tools": "tools/list", "prompts": "prompts/list", "resources": "resources/list",
                  "resourceTemplates": "resources/templates/list"}[kind]
        pages = await asyncio.gather(*(self._list_member(ctx, m, method, kind) for m in self._members))
        items: list[dict[str, Any]] = []
        owners: dict[str, tuple[Member, str]] = {}
        for member, entries in zip(self._members, pages):
            for entry in entries:
                if kind in ("resources", "resourceTemplates"):
                    key = str(entry.get("uri") or entry.get("uriTemplate"))
                    owners.setdefault(key, (member, key))
                    items.append(entry)
                    continue
                own = str(entry.get("name"))
                exposed = prefixed(member.prefix, own)
                if exposed in owners:
                    continue
                owners[exposed] = (member, own)
                items.append({**entry, "name": exposed})
        listing = _Listing(items, owners, time.monotonic())
        self._listings[kind] = listing
        return listing

    async def _list_member(self, ctx: CallContext, member: Member, method: str, kind: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        quiet = CallContext(ctx.key, ctx.server, ctx.era)
        try:
            for _ in range(MAX_PAGES):
                params = {"cursor": cursor} if cursor else {}
                result = await member.backend.request(quiet, method, params)
                entries.extend(e for e in result.get(kind, []) if isinstance(e, dict))
                cursor = result.get("nextCursor")
                if not cursor:
                    break
        except rpc.RpcError as exc:
            if exc.code != rpc.METHOD_NOT_FOUND:
                log.warning("aggregate %s: member %s: %s failed: %s", ctx.server.id, member.prefix, method, exc.message)
        return entries
