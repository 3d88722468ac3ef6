"""The `aggregate` kind: one server over several, names prefixed per member.

Tool, prompt and resource names become `<prefix>__<name>` (or `<prefix><name>`
when the prefix already ends in a separator), cut to 64 characters with a
short hash when longer. Calls go to the member that owns the name; resources
keep their URIs and reads go to the member that lists the URI.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from lockgate.proxy.mcp import jsonrpc as rpc
from lockgate.proxy.mcp.backend import Backend, CallContext
from lockgate.proxy.mcp.upstream_client import ACKNOWLEDGED

log = logging.getLogger(__name__)
MAX_NAME = 64
SEPARATOR = "__"
LISTING_TTL = 10.0
MAX_PAGES = 20


READY = "ready"  # not a notification: every member's stream is open
LISTEN_READY_WAIT = 5.0
_LISTING_OF = {"notifications/tools/list_changed": "tools", "notifications/prompts/list_changed": "prompts",
               "notifications/resources/list_changed": "resources"}


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
        return {"tools": {"listChanged": True}, "prompts": {"listChanged": True},
                "resources": {"listChanged": True}, "completions": {}}

    async def changes(self) -> AsyncIterator[str]:
        """List-changed notification methods from every member, merged; each drops the cached listing.

        The first item is READY, once every member's stream is live (or after LISTEN_READY_WAIT).
        """
        queue: asyncio.Queue[str] = asyncio.Queue()
        live = 0
        followers = [m for m in self._members if hasattr(m.backend, "notes")]

        async def follow(member: Member) -> None:
            nonlocal live
            async for note in member.backend.notes():  # type: ignore[attr-defined]
                method = str(note.get("method"))
                if method == ACKNOWLEDGED:
                    live += 1
                    if live == len(followers):
                        await queue.put(READY)
                    continue
                self._listings.pop(_LISTING_OF.get(method, ""), None)
                await queue.put(method)

        tasks = [asyncio.ensure_future(follow(m)) for m in followers]
        try:
            if followers:
                try:
                    first = await asyncio.wait_for(queue.get(), LISTEN_READY_WAIT)
                except asyncio.TimeoutError:
                    first = READY
                if first != READY:
                    yield READY
                yield first
            else:
                yield READY
            while True:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()

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
        if method == "completion/complete":
            return await self._complete(ctx, params)
        if method == "ping":
            return {}
        raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"method not found: {method}", status=404)

    async def _complete(self, ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
        """Completions go to the owner of the prompt (by prefixed name) or resource template (by URI)."""
        given = params.get("ref")
        ref: dict[str, Any] = given if isinstance(given, dict) else {}
        if ref.get("type") == "ref/prompt":
            member, own = await self._owner(ctx, "prompts", str(ref.get("name")))
            return await member.backend.request(ctx, "completion/complete", {**params, "ref": {**ref, "name": own}})
        member, _ = await self._owner(ctx, "resourceTemplates", str(ref.get("uri")))
        return await member.backend.request(ctx, "completion/complete", params)

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
                    # URIs stay as they are (reads route by URI); names carry the member's prefix.
                    key = str(entry.get("uri") or entry.get("uriTemplate"))
                    owners.setdefault(key, (member, key))
                    name = entry.get("name")
                    items.append({**entry, "name": prefixed(member.prefix, name)} if isinstance(name, str) else entry)
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
