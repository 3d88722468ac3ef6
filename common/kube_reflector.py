"""A local copy of what one list+watch of the Kubernetes API sees.

`Reflector` lists (by pages), then watches from the list's resourceVersion,
keeps the objects by a key (their name unless told otherwise), and calls
`changed` after the list and after every change (but those `significant`
says nobody needs to hear of). It runs until cancelled; a
watch that ends resumes from the last version seen, a 410 Gone lists again,
and any other failure (API down, TLS, timeouts) keeps what it has and retries
with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from lockgate.common.kube_client import ApiError, KubeApi, sleep_backoff

log = logging.getLogger("lockgate.kube.reflector")

LIST_PAGE = 500  # objects per page of the first list


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


class Reflector:
    def __init__(self, api: KubeApi, path: str, params: dict[str, str], keep: Callable[[str], bool],
                 changed: Callable[[], None], *, key: Callable[[Mapping[str, Any]], Any] = name_of,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] = lambda obj: obj,
                 significant: Callable[[dict[str, Any] | None, dict[str, Any]], bool] = lambda old, new: True) -> None:
        self.api, self.path, self.params, self.keep, self.changed = api, path, params, keep, changed
        self.key, self.transform, self.significant = key, transform, significant
        self.objects: dict[Any, dict[str, Any]] = {}
        self.synced = False
        self.listed = asyncio.Event()  # set once the first list is in

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                version: str | None = await self._list()
                failures = 0
                while version is not None:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # API down, TLS, timeouts: keep what we have and retry
                log.warning("watch of %s failed (%s); retrying", self.path, e)
                await sleep_backoff(failures)
                failures += 1

    async def _list(self) -> str:
        objects: dict[Any, dict[str, Any]] = {}
        params = {**self.params, "limit": str(LIST_PAGE)}
        while True:
            body = await self.api.request("GET", self.path, params=params)
            for obj in body.get("items", []):
                if self.keep(name_of(obj)):
                    objects[self.key(obj)] = self.transform(obj)
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
            params = {**params, "continue": token}
        self.objects = objects
        self.synced = True
        self.listed.set()
        self.changed()
        return str(body.get("metadata", {}).get("resourceVersion", ""))

    async def _watch(self, version: str) -> str | None:
        """Returns the version to resume from, or None to list again."""
        async for event in self.api.watch(self.path, version, self.params):
            kind, obj = event.get("type"), event.get("object", {})
            if kind == "ERROR":
                if obj.get("code") == 410:  # resourceVersion too old
                    return None
                raise ApiError(int(obj.get("code", 500)), obj, f"WATCH {self.path}")
            version = obj.get("metadata", {}).get("resourceVersion", version)
            if kind == "BOOKMARK":
                continue
            if not self.keep(name_of(obj)):
                continue
            if kind == "DELETED":
                self.objects.pop(self.key(obj), None)
            else:
                new = self.transform(obj)
                old = self.objects.get(self.key(obj))
                self.objects[self.key(obj)] = new
                if not self.significant(old, new):  # kept, but nobody needs to hear of it
                    continue
            self.changed()
        return version
