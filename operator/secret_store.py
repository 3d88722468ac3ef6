"""The Secrets the operator holds: its own, and those Lockgate resources name.

Two watches per watched namespace (one for the whole cluster with
--all-namespaces), neither of which brings a Secret's data that Lockgate does
not use:

- Lockgate's own Secrets, selected by the label
  app.kubernetes.io/managed-by=lockgate (generated keys, Secrets handed over to
  Lockgate), are listed and watched whole.
- Every other Secret is watched as metadata only (PartialObjectMetadata: name,
  labels, resourceVersion), starting from the current version, so nothing is
  listed at start. An event about a Secret no resource names is dropped; one
  about a named Secret drops its cached copy and pokes the reconciler.

`resolve` then reads by name (GET) each named Secret it holds no copy of, and
forgets the copies no resource names any more; when many are missing in one
namespace (a first start among thousands of ApiKeys) it lists that
namespace's Secrets by pages instead and keeps only the named ones. Memory is bounded by what the
Lockgate resources reference, not by the Secrets of the cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lockgate.api.apikey import MANAGED_LABEL, MANAGED_VALUE
from lockgate.common.kube_client import METADATA, METADATA_LIST, ApiError, KubeApi, resource_path, sleep_backoff
from lockgate.operator.secret_refs import SecretKey

log = logging.getLogger("lockgate.operator.secrets")

OWN_SELECTOR = f"{MANAGED_LABEL}={MANAGED_VALUE}"
OTHERS_SELECTOR = f"{MANAGED_LABEL}!={MANAGED_VALUE}"
# Secret types that never hold a provider credential or consumer key (Helm
# release Secrets in particular are large and many): the API server leaves
# them out of the metadata watch.
IGNORED_TYPES = ("helm.sh/release.v1", "kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token")
OTHERS_FIELDS = ",".join(f"type!={t}" for t in IGNORED_TYPES)
READ_CONCURRENCY = 8
LIST_ABOVE = 32  # Secrets missing in one namespace past which they are listed, not read by name
LIST_PAGE = 500


def key_of(obj: Mapping[str, Any]) -> SecretKey:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def slim_secret(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What the operator keeps of a Secret: no managedFields, no last-applied copy."""
    meta = {k: v for k, v in dict(obj.get("metadata") or {}).items() if k != "managedFields"}
    notes = {k: v for k, v in (meta.get("annotations") or {}).items()
             if k != "kubectl.kubernetes.io/last-applied-configuration"}
    meta["annotations"] = notes
    return {**obj, "apiVersion": "v1", "kind": "Secret", "metadata": meta}


class SecretStore:
    def __init__(self, api: KubeApi, namespaces: Iterable[str | None], changed: Callable[[], None],
                 skip: Callable[[SecretKey], bool] = lambda _: False) -> None:
        self.api, self.changed, self.skip = api, changed, skip
        self.namespaces = tuple(namespaces)
        self.own: dict[SecretKey, dict[str, Any]] = {}  # labelled: watched whole
        self.named: dict[SecretKey, dict[str, Any] | None] = {}  # read by name; None: it does not exist
        self.wanted: set[SecretKey] = set()
        self._changes: dict[SecretKey, int] = {}  # events seen per named Secret, to spot a read overtaken
        self._started: set[tuple[str | None, bool]] = set()  # (namespace, own) watches that have begun
        self.synced = asyncio.Event()

    # -- what the reconciler calls --------------------------------------------------------

    async def resolve(self, wanted: set[SecretKey]) -> dict[SecretKey, dict[str, Any]]:
        """The Secrets among `wanted` that exist, plus Lockgate's own; reads
        the missing ones by name and forgets those no longer wanted."""
        await self.synced.wait()
        self.wanted = {k for k in wanted if not self.skip(k)}
        for key in set(self.named) - self.wanted:
            del self.named[key]
        self._changes = {k: v for k, v in self._changes.items() if k in self.wanted}
        missing = [k for k in self.wanted if k not in self.own and k not in self.named]
        limit = asyncio.Semaphore(READ_CONCURRENCY)

        async def read(key: SecretKey) -> None:
            async with limit:
                seen = self._changes.get(key, 0)
                try:
                    body = await self.api.get(resource_path("v1", "secrets", key[0], key[1]))
                except ApiError as e:  # not readable (RBAC) or not now: absent this time, read again next time
                    log.warning("Secret %s/%s not read: %s", key[0], key[1], e)
                    return
                if self._changes.get(key, 0) == seen and key not in self.own:  # else an event overtook the read
                    self.named[key] = slim_secret(body) if body is not None else None

        by_namespace: dict[str, list[SecretKey]] = {}
        for key in missing:
            by_namespace.setdefault(key[0], []).append(key)
        singles = [k for keys in by_namespace.values() if len(keys) <= LIST_ABOVE for k in keys]
        await asyncio.gather(*(read(k) for k in singles),
                             *(self._read_listed(ns, keys) for ns, keys in by_namespace.items() if len(keys) > LIST_ABOVE))
        found = {k: v for k, v in self.named.items() if v is not None}
        return {**found, **self.own}

    async def _read_listed(self, namespace: str, keys: list[SecretKey]) -> None:
        """Many Secrets of one namespace (a first start): listed by pages rather than read one by one."""
        seen = {k: self._changes.get(k, 0) for k in keys}
        listed: dict[SecretKey, dict[str, Any]] = {}
        params = {"labelSelector": OTHERS_SELECTOR, "fieldSelector": OTHERS_FIELDS, "limit": str(LIST_PAGE)}
        try:
            while True:
                page = await self.api.request("GET", resource_path("v1", "secrets", namespace), params=params)
                listed.update((key_of(o), o) for o in page.get("items", []) if key_of(o) in seen)
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
                params = {**params, "continue": token}
        except ApiError as e:  # not listable (RBAC) or not now: read them one by one next time
            log.warning("Secrets in %s not listed: %s", namespace, e)
            return
        for key, before in seen.items():
            if self._changes.get(key, 0) == before and key not in self.own:  # else an event overtook the list
                body = listed.get(key)
                self.named[key] = slim_secret(body) if body is not None else None

    # -- watches ---------------------------------------------------------------------------

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._keep(ns, own), name=f"secrets {'own' if own else 'named'} {ns or '*'}")
                 for ns in self.namespaces for own in (True, False)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _keep(self, namespace: str | None, own: bool) -> None:
        path = resource_path("v1", "secrets", namespace)
        failures = 0
        while True:
            try:
                version = await (self._list_own(path, namespace) if own else self._version(path))
                self._begun(namespace, own)
                failures = 0
                resume: str | None = version
                while resume is not None:
                    resume = await self._watch(path, resume, own)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # API down, RBAC, timeouts: keep what we have and retry
                log.warning("watch of Secrets in %s failed (%s); retrying", namespace or "all namespaces", e)
                await sleep_backoff(failures)
                failures += 1

    async def _list_own(self, path: str, namespace: str | None) -> str:
        body = await self.api.request("GET", path, params={"labelSelector": OWN_SELECTOR})
        listed = {key_of(o): slim_secret(o) for o in body.get("items", [])}
        for key in [k for k in self.own if namespace is None or k[0] == namespace]:
            if key not in listed:
                del self.own[key]
        self.own.update({k: v for k, v in listed.items() if not self.skip(k)})
        self.changed()
        return str(body.get("metadata", {}).get("resourceVersion", ""))

    async def _version(self, path: str) -> str:
        """The collection's current version, without listing its Secrets."""
        body = await self.api.request("GET", path, params={"labelSelector": OTHERS_SELECTOR, "limit": "1",
                                                           "fieldSelector": OTHERS_FIELDS}, accept=METADATA_LIST)
        for key in [k for k in self.named if k not in self.own]:  # changes while not watching: read again
            self._forget(key)
        return str(body.get("metadata", {}).get("resourceVersion", ""))

    async def _watch(self, path: str, version: str, own: bool) -> str | None:
        """The version to resume from, or None to start over (410 Gone)."""
        params = {"labelSelector": OWN_SELECTOR} if own else {"labelSelector": OTHERS_SELECTOR,
                                                               "fieldSelector": OTHERS_FIELDS}
        async for event in self.api.watch(path, version, params, accept="application/json" if own else METADATA):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    return None
                raise ApiError(int(obj.get("code", 500)), obj, f"WATCH {path}")
            version = (obj.get("metadata") or {}).get("resourceVersion", version)
            if kind == "BOOKMARK":
                continue
            key = key_of(obj)
            if self.skip(key):
                continue
            if own:
                if kind == "DELETED":
                    self.own.pop(key, None)
                else:
                    self.own[key] = slim_secret(obj)
                self.changed()
            elif key in self.wanted:
                self._forget(key)
                if kind == "DELETED":
                    self.named[key] = None
                self.changed()
        return version

    def _begun(self, namespace: str | None, own: bool) -> None:
        """Both watches of every namespace have begun: reads by name from now
        on are followed by the events that change them."""
        self._started.add((namespace, own))
        if len(self._started) == 2 * len(self.namespaces):
            self.synced.set()

    def _forget(self, key: SecretKey) -> None:
        self.named.pop(key, None)
        self._changes[key] = self._changes.get(key, 0) + 1
