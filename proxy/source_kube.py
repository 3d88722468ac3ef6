"""The proxy's configuration from Kubernetes: the operator's ConfigMap(s) and
credentials Secret, watched (list, then watch from the list's resourceVersion).

Every change decodes the set with the shared codec; of a sharded
configuration only the parts whose hash changed are decoded again (a
`PartCache` keeps the others). A set caught between two publications (a
part newer or older than the head's index says) waits for the next event
without a warning. A set that does not decode (a split config caught half-written, a bad edit) is logged and
skipped, so the proxy keeps serving its last good snapshot; so does an API
server that went away, while the watches reconnect with backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from lockgate.api.config_shards import PartsInFlight
from lockgate.api.configmap import INDEX_KEY, PartCache, decode
from lockgate.api.ir import Credentials, GatewayConfig
from lockgate.common.kube_client import KubeApi, resource_path
from lockgate.common.kube_reflector import Reflector
from lockgate.proxy.source import Snapshot

log = logging.getLogger("lockgate.source.kube")

Decoder = Callable[[list[dict[str, Any]], dict[str, Any]], tuple[GatewayConfig, Credentials]]
WATCH_CONNECTIONS = 64  # one per watched object: the head, its parts (up to 32 key shards) and the Secret


def parse_ref(value: str, default_namespace: str | None = None) -> tuple[str, str]:
    """`NAMESPACE/NAME` (or `NAME` with a default namespace) -> (namespace, name)."""
    namespace, sep, name = value.rpartition("/")
    if not sep:
        if default_namespace is None:
            raise ValueError(f"expected NAMESPACE/NAME, got {value!r}")
        namespace = default_namespace
    if not namespace or not name:
        raise ValueError(f"expected NAMESPACE/NAME, got {value!r}")
    return namespace, name


def part_names(head: dict[str, Any] | None) -> list[str]:
    """The numbered ConfigMaps a split configuration's head names in its index."""
    raw = ((head or {}).get("data") or {}).get(INDEX_KEY)
    if not raw:
        return []
    try:
        parts = json.loads(raw).get("parts") or []
    except (ValueError, AttributeError):
        return []
    return [str(p) for p in parts]


class KubeSource:
    """ConfigSource over the Kubernetes API (`lockgate proxy --config-map NS/NAME`).

    Every object is watched by name (a `metadata.name` field selector), which
    RBAC matches against `resourceNames`: the proxy needs no right to list
    other ConfigMaps or Secrets. The parts of a split configuration are
    watched as the head's index names them."""

    def __init__(self, api: KubeApi, config_map: tuple[str, str], credentials_secret: tuple[str, str],
                 decoder: Decoder | None = None) -> None:
        self._given = api
        self.api = KubeApi(api.connection, connections=WATCH_CONNECTIONS)  # each watch holds a connection
        self.config_map = config_map
        self.credentials_secret = credentials_secret
        self._decoder = decoder
        self.parts = PartCache()  # decoded parts of a sharded configuration, by name and hash
        self.load_failures = 0  # configurations that did not decode (a metric)
        self._changed = asyncio.Event()
        self._maps: dict[str, Reflector] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._secret = self._reflector("secrets", *credentials_secret)

    def _reflector(self, plural: str, namespace: str, name: str) -> Reflector:
        return Reflector(self.api, resource_path("v1", plural, namespace), {"fieldSelector": f"metadata.name={name}"},
                         lambda n: n == name, self._changed.set)

    def _start(self, key: str, reflector: Reflector) -> None:
        self._tasks[key] = asyncio.create_task(reflector.run(), name=f"watch {key}")

    def _follow_parts(self) -> None:
        """Watch the parts the head names now; stop watching the others."""
        namespace, base = self.config_map
        head = self._maps[base].objects.get(base)
        wanted = {base, *part_names(head)}
        for name in wanted - set(self._maps):
            self._maps[name] = self._reflector("configmaps", namespace, name)
            self._start(f"configmap {name}", self._maps[name])
        for name in set(self._maps) - wanted:
            self._tasks.pop(f"configmap {name}").cancel()
            del self._maps[name]

    def _decode(self, maps: list[dict[str, Any]], secret: dict[str, Any]) -> tuple[GatewayConfig, Credentials]:
        if self._decoder is None:
            return decode(maps, secret, self.parts)
        return self._decoder(maps, secret)

    def current(self) -> Snapshot | None:
        """The snapshot the watched objects decode to now, or None if they
        are incomplete or invalid (logged)."""
        _, cm_name = self.config_map
        _, secret_name = self.credentials_secret
        if not self._secret.synced or not all(r.synced for r in self._maps.values()):
            return None
        maps = [obj for name in sorted(self._maps) for obj in self._maps[name].objects.values()]
        secret = self._secret.objects.get(secret_name)
        if secret is None or not any(m["metadata"]["name"] == cm_name for m in maps):
            return None
        try:
            config, credentials = self._decode(maps, secret)
        except PartsInFlight as e:  # the rest of the publication is on its way
            log.debug("configuration in %s/%s not complete yet: %s", self.config_map[0], cm_name, e)
            return None
        except Exception as e:  # invalid or half-written: keep the last good one
            self.load_failures += 1
            log.warning("configuration in %s/%s does not load, keeping the last good one: %s",
                        self.config_map[0], cm_name, e)
            return None
        return Snapshot(config, credentials)

    async def updates(self) -> AsyncIterator[Snapshot]:
        namespace, base = self.config_map
        self._maps[base] = self._reflector("configmaps", namespace, base)
        self._start(f"configmap {base}", self._maps[base])
        self._start("secret", self._secret)
        last: tuple[str, str] | None = None
        try:
            while True:
                await self._changed.wait()
                self._changed.clear()
                self._follow_parts()
                snapshot = self.current()
                if snapshot is None:
                    continue
                key = (snapshot.config.hash, snapshot.credentials.content_hash())
                if key != last:
                    last = key
                    log.info("configuration %s loaded from the Kubernetes API", snapshot.config.hash[:12])
                    yield snapshot
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            await self.api.close()
            await self._given.close()
