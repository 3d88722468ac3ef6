"""The operator's settings: one typed tree, filled from the command line."""

from __future__ import annotations

from dataclasses import dataclass

from lockgate.operator.generated_secrets import GeneratedSecret


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()  # watched namespaces; empty with all_namespaces
    all_namespaces: bool = False
    publish_namespace: str = "default"  # where the ConfigMap(s), Secret and proxy Service live
    config_map: str = "lockgate-config"
    credentials_secret: str = "lockgate-credentials"
    proxy_service: str | None = None  # Service in front of the proxies; None: Programmed = published
    proxy_admin_port: int = 9090  # when the proxy Service's slices name no admin port
    debounce: float = 0.1  # seconds at least between two renders: a lone change renders at once, a burst gathers
    resync: float = 60.0  # full re-render and re-check of stored objects
    rollout_poll: float = 0.2  # how often proxies are asked while a rollout is pending
    settle_poll: float = 5.0  # ... and once it completed (replicas come and go)
    usage_interval: float = 10.0  # ApiKey usage mirrored from the proxies
    peering: str | None = None  # Kopf peering object; None: standalone, always active
    priority: int = 0  # this replica's peering priority (the highest live one is active)
    identity: str = ""  # this replica's id in the peering object
    peering_lifetime: int = 60  # seconds a silent peer is still taken as alive
    metrics_address: str | None = None  # HOST:PORT of GET /metrics; None: not served
    generated_secrets: tuple[GeneratedSecret, ...] = ()  # created in the publish namespace when absent

    def watches(self, namespace: str) -> bool:
        return self.all_namespaces or namespace in self.namespaces
