"""Kopf wiring: index every watched object and poke the reconciler.

Secrets are not among Kopf's watches: `SecretStore` keeps only those the
resources name, and Lockgate's own. Nor are ApiKeys, of which there can be
thousands: `ObjectWatch` lists and watches them (see object_watch.py).

Handlers are deliberately empty of logic. Indexes hold the current objects
(Kopf keeps them from list+watch and drops deleted ones); every event pokes
the one `Reconciler` loop, which reads the indexes. Kopf runs event handlers
only once all indexes are populated, so the first render after a start sees
everything and publishes exactly what the previous operator published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from aiohttp import web

from lockgate.operator.metrics_server import serve_metrics
from lockgate.operator.object_watch import ObjectWatch
from lockgate.operator.peering import PeeringGate
from lockgate.operator.reconciler import Reconciler
from lockgate.operator.secret_store import SecretStore
from lockgate.operator.settings import OperatorSettings
from lockgate.common.kube_client import KubeApi, resource_path

log = logging.getLogger("lockgate.operator")


@dataclass(frozen=True)
class Watched:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def index_id(self) -> str:
        return f"lockgate_{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


WATCHED: tuple[Watched, ...] = (
    Watched("lockgate.io", "v1alpha1", "modelproviders", "ModelProvider"),
    Watched("lockgate.io", "v1alpha1", "routes", "Route"),
    Watched("lockgate.io", "v1alpha1", "mcpservers", "MCPServer"),
    Watched("lockgate.io", "v1alpha1", "budgets", "Budget"),
    Watched("", "v1", "services", "Service"),
    Watched("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
)
EMPTY_CLUSTER_GRACE = 2.0  # seconds without any event before checking for an empty cluster


@dataclass
class OperatorContext:
    """What `lockgate operator` hands to Kopf's startup (as the memo)."""

    settings: OperatorSettings
    kubeconfig: str | None = None
    reconciler: Reconciler | None = None
    tasks: tuple[asyncio.Task[None], ...] = ()
    metrics_runner: web.AppRunner | None = None


def slim(body: Mapping[str, Any], watched: Watched) -> dict[str, Any]:
    """The raw object without managedFields (bulky, never read)."""
    obj = dict(body)
    obj["metadata"] = {k: v for k, v in dict(body.get("metadata") or {}).items() if k != "managedFields"}
    obj.setdefault("apiVersion", watched.api_version)
    obj.setdefault("kind", watched.kind)
    return obj


def indexed_objects(indices: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for index in indices.values():
        for store in index.values():
            yield from store


def build_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    for watched in WATCHED:
        def index_fn(body: kopf.Body, memo: OperatorContext, _w: Watched = watched, **_: Any) -> dict[Any, Any]:
            meta = body.get("metadata") or {}
            return {(meta.get("namespace"), meta.get("name")): slim(body, _w)}

        def event_fn(memo: OperatorContext, **_: Any) -> None:
            if memo.reconciler is not None:
                memo.reconciler.poke()

        kopf.index(watched.group, watched.version, watched.plural, id=watched.index_id, registry=registry)(index_fn)
        kopf.on.event(watched.group, watched.version, watched.plural, id=f"poke_{watched.plural}",
                      registry=registry)(event_fn)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A private registry has none of Kopf's default login handlers.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, memo: OperatorContext, **kwargs: Any) -> None:
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 270
        settings.watching.client_timeout = 300
        settings.peering.lifetime = memo.settings.peering_lifetime
        indices = {w.index_id: kwargs[w.index_id] for w in WATCHED}
        api = KubeApi.from_kubeconfig(memo.kubeconfig)
        ours: OperatorSettings = memo.settings
        gate = None
        if ours.peering:
            namespace = None if ours.all_namespaces else ours.namespaces[0]
            gate = PeeringGate(api, ours.peering, namespace, ours.identity, ours.priority)
        namespaces: tuple[str | None, ...] = (None,) if ours.all_namespaces else ours.namespaces
        published = (ours.publish_namespace, ours.credentials_secret)
        # Its own client: the Secret watches hold two connections per namespace.
        store = SecretStore(KubeApi(api.connection, connections=2 * len(namespaces) + 8), namespaces,
                            lambda: memo.reconciler.nudge() if memo.reconciler else None, skip=lambda k: k == published)
        # Its own client too: one watch per namespace.
        apikeys = ObjectWatch(KubeApi(api.connection, connections=len(namespaces) + 4), "apikeys", "ApiKey", namespaces,
                              lambda: memo.reconciler.changed() if memo.reconciler else None)
        memo.reconciler = Reconciler(ours, api, lambda: indexed_objects(indices), peering=gate, secrets=store,
                                     watched=apikeys)
        if ours.metrics_address:
            memo.metrics_runner = await serve_metrics(memo.reconciler.metrics.registry, ours.metrics_address)
        memo.tasks = (
            asyncio.create_task(store.run(), name="lockgate secrets"),
            asyncio.create_task(apikeys.run(), name="lockgate apikeys"),
            asyncio.create_task(memo.reconciler.run(), name="lockgate reconciler"),
            asyncio.create_task(_start_if_empty(memo.reconciler, api, memo.settings), name="lockgate empty check"),
        )

    @kopf.on.probe(id="reconciler", registry=registry)
    def reconciler_alive(memo: OperatorContext, **_: Any) -> dict[str, Any]:
        """Liveness fails (and the pod restarts) if the reconciler loop died."""
        for task in memo.tasks:
            if task.done() and not task.cancelled() and task.get_name() == "lockgate reconciler":
                raise RuntimeError(f"the reconciler stopped: {task.exception()!r}")
        translation = memo.reconciler.translation if memo.reconciler is not None else None
        return {"configHash": translation.config.hash if translation is not None else None}

    @kopf.on.cleanup(registry=registry)
    async def stop(memo: OperatorContext, **_: Any) -> None:
        for task in memo.tasks:
            task.cancel()
        await asyncio.gather(*memo.tasks, return_exceptions=True)
        if memo.metrics_runner is not None:
            await memo.metrics_runner.cleanup()
        if memo.reconciler is not None:
            await memo.reconciler.close()
            await memo.reconciler.api.close()
            if memo.reconciler.secrets is not None:
                await memo.reconciler.secrets.api.close()
            if memo.reconciler.watched is not None:
                await memo.reconciler.watched.api.close()

    return registry


async def _start_if_empty(reconciler: Reconciler, api: KubeApi, settings: OperatorSettings) -> None:
    """With nothing to watch, no event ever arrives: publish the empty
    configuration once the watched namespaces are seen to hold nothing.
    (If anything exists, its event starts the reconciler instead.)"""
    try:
        await asyncio.wait_for(reconciler.started.wait(), EMPTY_CLUSTER_GRACE)
        return
    except asyncio.TimeoutError:
        pass
    namespaces: tuple[str | None, ...] = (None,) if settings.all_namespaces else settings.namespaces
    for ns in namespaces:
        for watched in WATCHED:
            path = resource_path(watched.api_version, watched.plural, ns)
            listing = await api.request("GET", path, params={"limit": "2"})
            if listing.get("items"):
                return
    log.info("nothing to watch yet: publishing the empty configuration")
    reconciler.poke()
