"""Publishing and following a split configuration through the real API server:
the operator's Publisher writes parts then the index, the proxy's KubeSource
follows the parts the index names, stale parts go, equal content is not rewritten."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial

from lockgate.api import ir
from lockgate.api.configmap import encode
from lockgate.operator.publish import Publisher
from lockgate.common.kube_client import KubeApi, resource_path
from lockgate.proxy.source_kube import KubeSource
from tests.kube.controlplane import ControlPlane

SMALL_PARTS = partial(encode, gzip_above=0, part_bytes=300)


def config_with(routes: int) -> ir.GatewayConfig:
    """Random host names: gzip cannot shrink them, so the parts are many."""
    return ir.GatewayConfig(routes=tuple(
        ir.Route(id=f"ns/r{i}", type="openai", hosts=(f"{uuid.uuid4().hex}.example",)) for i in range(routes)
    )).with_hash()


async def config_maps(api: KubeApi, namespace: str) -> list[str]:
    listing = await api.request("GET", resource_path("v1", "configmaps", namespace))
    return sorted(i["metadata"]["name"] for i in listing["items"] if i["metadata"]["name"].startswith("cfg"))


async def test_split_configuration_round_trip(kube: ControlPlane, namespace: str) -> None:
    writer = KubeApi.from_kubeconfig(str(kube.kubeconfig))
    publisher = Publisher(writer, namespace, "cfg", "creds", encoder=SMALL_PARTS)
    source = KubeSource(KubeApi.from_kubeconfig(str(kube.kubeconfig)), (namespace, "cfg"), (namespace, "creds"))
    credentials = ir.Credentials(values={"ns/p": "sk-test"})
    updates = source.updates()
    try:
        big = config_with(40)
        assert await publisher.publish(big, credentials)
        parts = await config_maps(writer, namespace)
        assert len(parts) >= 3 and parts[0] == "cfg"
        snapshot = await asyncio.wait_for(anext(updates), 15)
        assert snapshot.config.hash == big.hash and snapshot.credentials == credentials

        small = config_with(6)
        assert await publisher.publish(small, credentials)
        snapshot = await asyncio.wait_for(anext(updates), 15)
        assert snapshot.config.hash == small.hash
        remaining = await config_maps(writer, namespace)
        assert len(remaining) < len(parts)  # stale parts deleted

        # the same content is never written again, even by a fresh publisher (a restarted operator)
        assert not await publisher.publish(small, credentials)
        restarted = Publisher(writer, namespace, "cfg", "creds", encoder=SMALL_PARTS)
        assert not await restarted.publish(small, credentials)
    finally:
        await updates.aclose()
        await writer.close()
