"""The operator's one loop: on any change (debounced), re-render the whole IR
from the indexed objects with the pure translator, make sure key Secrets
exist, publish, follow the rollout on the proxies, and write statuses.

Kopf handlers only index objects and `poke()` this loop; nothing here reads
the Kubernetes API to learn about objects (the proxy Service's EndpointSlices
are read from the API only when that namespace is not watched).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from lockgate.operator.generated_secrets import ensure_generated
from lockgate.operator.key_secrets import KeySecrets
from lockgate.operator.object_watch import ObjectWatch
from lockgate.operator.metrics import OperatorMetrics, condition_counts
from lockgate.operator.peering import PeeringGate
from lockgate.operator.programmed import ProxyFleet, Rollout, fingerprints, replica_urls, rollout
from lockgate.operator.publish import Publisher
from lockgate.operator.secret_refs import secret_references
from lockgate.operator.secret_store import SecretStore
from lockgate.operator.settings import OperatorSettings
from lockgate.operator.status_writer import StatusWriter
from lockgate.operator.translate import ObjectRef, Translation, translate
from lockgate.operator.translate.cache import TranslationCache
from lockgate.operator.usage import budget_usage_id, merge_usage
from lockgate.api.gateway_key import gateway_apikey
from lockgate.api.meta import Condition
from lockgate.common.kube_client import KubeApi, resource_path

log = logging.getLogger("lockgate.operator")

LOCKGATE_GROUP = "lockgate.io/"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Inventory:
    """The indexed objects, sorted out for one reconcile."""

    objects: list[dict[str, Any]]
    lockgate: dict[ObjectRef, dict[str, Any]]
    secrets: dict[tuple[str, str], dict[str, Any]]
    slices: list[dict[str, Any]]

    @classmethod
    def of(cls, objects: Iterable[Mapping[str, Any]]) -> Inventory:
        everything = [o if isinstance(o, dict) else dict(o) for o in objects]  # the indexes' own dicts: never changed
        lockgate, secrets, slices = {}, {}, []
        for obj in everything:
            meta = obj.get("metadata") or {}
            if str(obj.get("apiVersion", "")).startswith(LOCKGATE_GROUP):
                lockgate[ObjectRef(obj["kind"], meta["namespace"], meta["name"])] = obj
            elif obj.get("kind") == "Secret":
                secrets[(meta["namespace"], meta["name"])] = obj
            elif obj.get("kind") == "EndpointSlice":
                slices.append(obj)
        return cls(everything, lockgate, secrets, slices)

    def apikeys(self) -> list[dict[str, Any]]:
        """ApiKeys, and the gateway keys of MCPServers (ApiKey-shaped, owned by their server)."""
        keys = [body for ref, body in sorted(self.lockgate.items()) if ref.kind == "ApiKey"]
        servers = (gateway_apikey(body) for ref, body in sorted(self.lockgate.items()) if ref.kind == "MCPServer")
        return keys + [key for key in servers if key is not None]


class Reconciler:
    def __init__(self, settings: OperatorSettings, api: KubeApi, objects: Callable[[], Iterable[Mapping[str, Any]]],
                 publisher: Publisher | None = None, fleet: ProxyFleet | None = None,
                 peering: PeeringGate | None = None, clock: Callable[[], datetime] = utcnow,
                 secrets: SecretStore | None = None, watched: ObjectWatch | None = None) -> None:
        self.settings, self.api, self._objects, self._clock = settings, api, objects, clock
        self.secrets = secrets  # None: Secrets come with `objects`
        self.watched = watched  # kinds watched without Kopf (ApiKeys); None: they come with `objects`
        self.publisher = publisher or Publisher(api, settings.publish_namespace, settings.config_map,
                                                settings.credentials_secret)
        self.fleet = fleet or ProxyFleet()
        self.keys = KeySecrets(api)
        self.statuses = StatusWriter(api)
        self.peering = peering
        self.started = asyncio.Event()
        self.translation: Translation | None = None
        self.rollout: Rollout | None = None
        self._wake = asyncio.Event()
        self._dirty = True
        self._inventory: Inventory | None = None
        self._usage: dict[str, dict[str, Any]] = {}
        self._next_usage = 0.0
        self._next_resync = 0.0
        self._listed: list[str] = []  # replicas listed from the API (proxy namespace not watched)
        self._listed_until = 0.0
        self._rendered = False
        self._rendered_at = 0.0  # monotonic time the last render ended
        self._statuses_checked = False  # a first status pass since the start was logged
        self._parts: dict[tuple[str, str], str] = {}
        self._fingerprints: dict[tuple[str, str], tuple[Any, str]] = {}  # memo of fingerprints()
        self._translations = TranslationCache()  # what did not change is not translated again
        self.metrics = OperatorMetrics(self._condition_counts,
                                       lambda: None if self.rollout is None else self.rollout.complete,
                                       lambda: self._usage)

    def poke(self) -> None:
        """Something changed: re-render soon. The first poke also means every
        index is populated (Kopf runs event handlers only after that)."""
        self.metrics.changed()
        self.nudge()
        self.started.set()

    def changed(self) -> None:
        """An object watched without Kopf changed: re-render soon, once the indexes are populated."""
        self.metrics.changed()
        self.nudge()

    def nudge(self) -> None:
        """A Secret changed: re-render soon, once the indexes are populated."""
        self._dirty = True
        self._wake.set()

    async def run(self) -> None:
        await self.started.wait()
        failures = 0
        while True:
            if self._dirty:  # a lone change goes out at once; a burst gathers while the last render runs
                quiet = time.monotonic() - self._rendered_at
                if quiet < self.settings.debounce:
                    await asyncio.sleep(self.settings.debounce - quiet)
            self._wake.clear()
            if self.peering is not None and not await self.peering.active():
                await self._standby()
                continue
            started = time.perf_counter()
            try:
                await self.reconcile()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.reconcile_errors.inc()
                failures += 1
                log.exception("reconcile failed (attempt %d); retrying", failures)
                self._dirty = True
                await asyncio.sleep(min(10.0, 0.2 * 2 ** min(failures, 6)))
                continue
            finally:
                self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
            pending = self.rollout is not None and not self.rollout.complete
            wait = self.settings.rollout_poll if pending else min(self.settings.settle_poll, self.settings.usage_interval)
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def _standby(self) -> None:
        """Another replica is active: write nothing. When this one takes over,
        Kopf re-lists everything and its events start a fresh render."""
        self.started.clear()
        self.publisher.forget()
        self.translation = None
        self._rendered = False
        await asyncio.sleep(self.settings.rollout_poll)
        await self.started.wait()

    async def reconcile(self) -> None:
        now, tick = self._clock(), time.monotonic()
        if tick >= self._next_resync:
            self._next_resync = tick + self.settings.resync
            self.publisher.forget()
            self._dirty = True
            await ensure_generated(self.api, self.settings.publish_namespace, self.settings.generated_secrets)
        if self._dirty or self.translation is None or self._inventory is None:
            inventory, translation = await self._render(now)
        else:
            inventory, translation = self._inventory, self.translation
        urls = await self._replica_urls(inventory)
        self.rollout = await self._check_rollout(translation, urls)
        self.metrics.rolled_out(self.rollout.complete)
        if tick >= self._next_usage and urls:
            self._next_usage = tick + self.settings.usage_interval
            self._usage = merge_usage((await self.fleet.collect(urls, "/usage")).values())
            budgets = merge_usage((await self.fleet.collect(urls, "/budgets")).values())
            self._usage.update({budget_usage_id(b): usage for b, usage in budgets.items()})
        written = await self.statuses.write(inventory.lockgate, translation.statuses, self.rollout, inventory.secrets,
                                            self._usage, now, self._parts, preempt=lambda: self._dirty)
        if written or not self._statuses_checked:
            log.info("statuses: %d of %d objects written%s", written, len(inventory.lockgate),
                     f", {self.statuses.left} left for the next pass" if self.statuses.left else "")
            self._statuses_checked = True

    async def _render(self, now: datetime) -> tuple[Inventory, Translation]:
        """Translate the indexes, make sure key Secrets exist, publish."""
        self._dirty = False
        begun = time.perf_counter()
        objects = list(self._objects())
        if self.watched is not None:
            await self.watched.synced()
            objects += self.watched.objects()
        if self.secrets is not None:  # only the Secrets the resources name, and Lockgate's own
            objects += (await self.secrets.resolve(secret_references(objects))).values()
        inventory = Inventory.of(objects)
        collected = time.perf_counter()
        translation = translate(inventory.objects, now, self._translations)
        translated = time.perf_counter()
        if await self.keys.ensure(inventory.apikeys(), inventory.secrets, now):
            self._dirty = True  # the new Secrets come back through the watch
        started = time.perf_counter()
        try:
            wrote = await self.publisher.publish(translation.config, translation.credentials)
        except Exception:
            self.metrics.publish_errors.inc()
            raise
        finally:
            self.metrics.publish_seconds.observe(time.perf_counter() - started)
        self.metrics.published(wrote)
        self.translation, self._inventory = translation, inventory
        self._parts = fingerprints(translation.config, self._fingerprints)
        # The first render after a start, and every publication, are news.
        level = logging.INFO if wrote or not self._rendered else logging.DEBUG
        log.log(level, "rendered %d objects: configuration %s %s (%.0f ms: collect %.0f, translate %.0f, publish %.0f)",
                len(inventory.lockgate), translation.config.hash[:12], "published" if wrote else "unchanged",
                *(1000 * t for t in (time.perf_counter() - begun, collected - begun, translated - collected,
                                     time.perf_counter() - started)))
        self._rendered = True
        self._rendered_at = time.monotonic()
        return inventory, translation

    async def _check_rollout(self, translation: Translation, urls: list[str]) -> Rollout:
        config_hash, credentials_hash = translation.config.hash, translation.credentials.content_hash()
        if not self.settings.proxy_service:
            return Rollout(config_hash, credentials_hash, 0, 0, discovery=False)
        return rollout(config_hash, credentials_hash, await self.fleet.collect(urls, "/config"))

    async def _replica_urls(self, inventory: Inventory) -> list[str]:
        """Admin URLs of the proxy replicas: from the EndpointSlice index when
        the proxy's namespace is watched, else listed (at most every settle_poll)."""
        if not self.settings.proxy_service:
            return []
        ns, name = self._proxy_service()
        if self.settings.watches(ns):
            slices = [s for s in inventory.slices if s["metadata"]["namespace"] == ns
                      and (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name]
            return replica_urls(slices, self.settings.proxy_admin_port)
        tick = time.monotonic()
        if tick >= self._listed_until:
            listing = await self.api.request("GET", resource_path("discovery.k8s.io/v1", "endpointslices", ns),
                                             params={"labelSelector": f"{SERVICE_NAME_LABEL}={name}"})
            self._listed = replica_urls(listing.get("items", []), self.settings.proxy_admin_port)
            self._listed_until = tick + self.settings.settle_poll
        return self._listed

    def _condition_counts(self) -> list[tuple[tuple[str, str, str], int]]:
        """Conditions of the last render, Programmed as the status writer would set it."""
        if self.translation is None:
            return []
        complete = self.rollout is not None and self.rollout.complete
        return condition_counts(
            (ref.kind, [*status.conditions, Condition(type="Programmed", status="True" if complete and status.accepted
                                                      else "False", reason="Metric")])
            for ref, status in self.translation.statuses.items())

    def _proxy_service(self) -> tuple[str, str]:
        value = self.settings.proxy_service or ""
        ns, _, name = value.rpartition("/")
        return ns or self.settings.publish_namespace, name

    async def close(self) -> None:
        await self.statuses.close()
        await self.fleet.close()
