"""Kinds with many objects watched without Kopf: ApiKeys.

Kopf gates its event handlers on every object of every indexed kind being
indexed, and at the start each object's readiness flag wakes every other
object's waiting worker: the start grows with the square of the objects
(minutes at 10,000 ApiKeys). ApiKeys are therefore listed (by pages) and
watched here, one list+watch per watched namespace (one for the whole
cluster with --all-namespaces), and kept as the Kopf handlers keep the
other kinds: without managedFields. A change wakes the reconciler, unless
it is one of the status alone (the operator's own writes: waking on them
would re-render after every batch of statuses); the first render waits
until every list is in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from lockgate.common.kube_client import KubeApi, resource_path
from lockgate.common.kube_reflector import Reflector

GROUP, VERSION = "lockgate.io", "v1alpha1"


def slim_object(kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The raw object without managedFields (bulky, never read), with its kind."""
    def slim(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
        return {**obj, "apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": meta}
    return slim


def beyond_status(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """A change the translator can see: not one of the status alone (the operator's own writes)."""
    if old is None:
        return True
    before, after = old.get("metadata") or {}, new.get("metadata") or {}
    return any(before.get(f) != after.get(f) for f in ("generation", "labels", "annotations", "deletionTimestamp",
                                                       "uid", "ownerReferences")) or old.get("spec") != new.get("spec")


def namespaced_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class ObjectWatch:
    """The objects of one kind in the watched namespaces."""

    def __init__(self, api: KubeApi, plural: str, kind: str, namespaces: Iterable[str | None],
                 changed: Callable[[], None]) -> None:
        self.api = api
        self.reflectors = [
            Reflector(api, resource_path(f"{GROUP}/{VERSION}", plural, ns), {}, lambda _: True, changed,
                      key=namespaced_name, transform=slim_object(kind), significant=beyond_status)
            for ns in namespaces
        ]

    def objects(self) -> Iterator[dict[str, Any]]:
        for reflector in self.reflectors:
            yield from reflector.objects.values()

    async def synced(self) -> None:
        """Every namespace's first list is in."""
        await asyncio.gather(*(r.listed.wait() for r in self.reflectors))

    async def run(self) -> None:
        tasks = [asyncio.create_task(r.run(), name=f"watch {r.path}") for r in self.reflectors]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
