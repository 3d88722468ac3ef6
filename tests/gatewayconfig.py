"""Small builders of gateway config IR for tests (what the translator would produce)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lockgate.api import ir
from lockgate.proxy.source import Snapshot

KEY = "lg-test-key-0000000000000001"
OTHER_KEY = "lg-test-key-0000000000000002"


def provider(pid: str, ptype: str, base_url: str | None, models: list[tuple[str, str]] | None = None, *,
             endpoints: list[tuple[str, int]] = (), credential: str | None = "cred", retries: int = 0,
             backoff: float = 0.01, **fields: Any) -> ir.Provider:
    models = models or [("gpt-4o", "gpt-4o-up")]
    extra: dict[str, Any] = {}
    if endpoints:
        extra["endpoints"] = tuple(ir.Endpoint(address=a, port=p) for a, p in endpoints)
        extra["base_path"] = "/v1"
    return ir.Provider(id=pid, type=ptype, base_url=base_url, credential=f"{pid}/{credential}" if credential else None,
                       models=tuple(ir.ProviderModel(name=n, upstream_model=u) for n, u in models),
                       retries=ir.Retries(attempts=retries, backoff=backoff), **extra, **fields)


def key(kid: str, clear: str = KEY, consumer: str = "team-a", *, not_after: datetime | None = None,
        **fields: Any) -> ir.ConsumerKey:
    return ir.ConsumerKey(id=kid, consumer=consumer, hashes=(ir.ApiKeyHash(sha256=ir.hash_key(clear),
                                                                           not_after=not_after),), **fields)


def snapshot(providers: list[ir.Provider], keys: list[ir.ConsumerKey] | None = None,
             routes: list[ir.Route] = ()) -> Snapshot:
    keys = keys if keys is not None else [key("ns/team-a")]
    config = ir.GatewayConfig(providers=tuple(providers), keys=tuple(keys), routes=tuple(routes)).with_hash()
    creds = {p.credential: f"secret-of-{p.id}" for p in providers if p.credential}
    return Snapshot(config, ir.Credentials(values=creds))
