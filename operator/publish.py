"""Publishing the IR: ConfigMap(s) and the credentials Secret, written only
when their content changed.

Each written object carries the hash of what it holds in an annotation
(`lockgate.io/config-hash`, `lockgate.io/credentials-hash`), so an operator
that restarts and renders the same objects writes nothing. The order keeps
readers consistent: the Secret first, then the numbered parts of a split
config, the base ConfigMap (the index) last, then stale parts are deleted.
"""

from __future__ import annotations

import logging
from functools import partial
from collections.abc import Callable, Mapping
from typing import Any

from lockgate.api.ir import Credentials, GatewayConfig
from lockgate.common.kube_client import METADATA_LIST, ApiError, KubeApi, resource_path
from lockgate.api.configmap import belongs_to

log = logging.getLogger("lockgate.operator.publish")

CONFIG_HASH_ANNOTATION = "lockgate.io/config-hash"
CREDENTIALS_HASH_ANNOTATION = "lockgate.io/credentials-hash"
LABELS = {"app.kubernetes.io/managed-by": "lockgate", "app.kubernetes.io/component": "gateway-config"}

Encoder = Callable[..., list[dict[str, Any]]]


def stamp(objects: list[dict[str, Any]], config: GatewayConfig, credentials: Credentials) -> list[dict[str, Any]]:
    """Add the content-hash annotation and labels to the encoded objects (a
    part the encoder annotated with its own content's hash keeps it)."""
    stamped = []
    for obj in objects:
        obj = {**obj, "metadata": dict(obj.get("metadata") or {})}
        meta = obj["metadata"]
        annotation = CREDENTIALS_HASH_ANNOTATION if obj.get("kind") == "Secret" else CONFIG_HASH_ANNOTATION
        value = credentials.content_hash() if obj.get("kind") == "Secret" else config.hash
        meta["annotations"] = {annotation: value, **(meta.get("annotations") or {})}
        meta["labels"] = {**(meta.get("labels") or {}), **LABELS}
        stamped.append(obj)
    return stamped


def write_order(objects: list[dict[str, Any]], base: str) -> list[dict[str, Any]]:
    """Secret, then config parts by name, then the base ConfigMap."""
    def rank(obj: Mapping[str, Any]) -> tuple[int, str]:
        name = obj["metadata"]["name"]
        if obj.get("kind") == "Secret":
            return (0, name)
        return (2, name) if name == base else (1, name)
    return sorted(objects, key=rank)


def content_hash_of(obj: Mapping[str, Any] | None) -> str | None:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(CONFIG_HASH_ANNOTATION if (obj or {}).get("kind") != "Secret" else CREDENTIALS_HASH_ANNOTATION)


class Publisher:
    def __init__(self, api: KubeApi, namespace: str, config_map: str, secret: str,
                 encoder: Encoder | None = None) -> None:
        self.api, self.namespace, self.config_map, self.secret = api, namespace, config_map, secret
        self._encoder = encoder
        self._live: dict[tuple[str, str], str | None] = {}  # (kind, name) -> hash known to be stored
        self.published: tuple[str, str] | None = None  # (config hash, credentials hash) last confirmed
        self._names: frozenset[str] | None = None  # the ConfigMaps of the last publication, stale ones deleted
        self.writes = 0  # objects written (created or replaced) so far

    def forget(self) -> None:
        """Check the stored objects again on the next publish (someone may
        have edited or deleted them)."""
        self._live.clear()
        self.published = None
        self._names = None

    def _encode(self, config: GatewayConfig, credentials: Credentials) -> list[dict[str, Any]]:
        if self._encoder is None:
            from lockgate.api.configmap import ShardMemo, encode

            self._encoder = partial(encode, memo=ShardMemo())
        return self._encoder(config, credentials, self.namespace, config_map=self.config_map, secret=self.secret)

    async def publish(self, config: GatewayConfig, credentials: Credentials) -> bool:
        """Write what changed; True if anything was written."""
        key = (config.hash, credentials.content_hash())
        if self.published == key:
            return False
        objects = write_order(stamp(self._encode(config, credentials), config, credentials), self.config_map)
        wrote = False
        for obj in objects:
            wrote |= await self._write(obj)
        names = frozenset(o["metadata"]["name"] for o in objects if o.get("kind") == "ConfigMap")
        if wrote and names != self._names:  # a publication of the same parts leaves none stale
            await self._delete_stale(names)
            self._names = names
            log.info("published configuration %s (credentials %s)", key[0][:12], key[1][:12])
        self.published = key
        return wrote

    async def _write(self, obj: dict[str, Any]) -> bool:
        kind, name = obj["kind"], obj["metadata"]["name"]
        plural = "secrets" if kind == "Secret" else "configmaps"
        want = content_hash_of(obj)
        if self._live.get((kind, name)) == want:
            return False
        path = resource_path("v1", plural, self.namespace, name)
        live = await self.api.get(path)
        if live is not None and content_hash_of(live) == want:
            self._live[(kind, name)] = want
            return False
        obj = {**obj, "metadata": {**obj["metadata"], "namespace": self.namespace}}
        if live is None:
            try:
                await self.api.create(resource_path("v1", plural, self.namespace), obj)
            except ApiError as e:
                if e.status != 409:
                    raise
                await self.api.replace(path, obj)
        else:
            await self.api.replace(path, obj)
        self._live[(kind, name)] = want
        self.writes += 1
        return True

    async def _delete_stale(self, keep: frozenset[str]) -> None:
        listing = await self.api.request("GET", resource_path("v1", "configmaps", self.namespace),
                                         params={"labelSelector": "app.kubernetes.io/managed-by=lockgate"},
                                         accept=METADATA_LIST)
        for item in listing.get("items", []):
            name = item["metadata"]["name"]
            if belongs_to(name, self.config_map) and name not in keep:
                try:
                    await self.api.delete(resource_path("v1", "configmaps", self.namespace, name))
                except ApiError as e:  # harmless: the head's index no longer names it
                    log.warning("stale config part %s not deleted: %s", name, e)
                self._live.pop(("ConfigMap", name), None)
