"""An MCPServer's own gateway key: a generated key the server's Deployment mounts to call the
gateway's model API (the path the 2026-07-28 revision advises in place of sampling), scoped to
chosen models and limits like an ApiKey, and kept the same way (generated once into a Secret
the MCPServer owns, rotated with the lockgate.io/rotate annotation on the MCPServer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from lockgate.api.apikey import KeyLimits
from lockgate.api.meta import DNS_SUBDOMAIN, ApiModel


class GatewayKey(ApiModel):
    """A key of the server's own for the gateway's model API."""

    secret_name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253,
                             description="Secret the operator generates the key into (key \"api-key\"), owned by this "
                                         "MCPServer; mount it in the server's Deployment.")
    consumer: str | None = Field(default=None, min_length=1, max_length=128,
                                 description="The consumer dimension in metrics and usage; default: mcp-<name>.")
    models: list[str] | None = Field(default=None, description="Model name globs the key may use; omitted = all.")
    limits: KeyLimits | None = Field(default=None, description="Limits across all models of this key.")
    model_limits: dict[str, KeyLimits] = Field(default_factory=dict, description="Per-model limits, on top of limits.")
    rotation_grace: str = Field(default="1h", pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
                                description="How long the previous key keeps working after a rotation.")


def gateway_key_id(namespace: str, server_name: str) -> str:
    """The consumer key id of an MCPServer's gateway key (never an ApiKey's: those have no ':')."""
    return f"{namespace}/mcpserver:{server_name}"


def gateway_apikey(server: Mapping[str, Any]) -> dict[str, Any] | None:
    """The MCPServer's gateway key as an ApiKey-shaped object (kind MCPServer, so the Secret made for
    it is owned by the server), or None when the server asks for none."""
    spec = server.get("spec") or {}
    wanted = spec.get("gatewayKey")
    if not isinstance(wanted, Mapping):
        return None
    meta = server.get("metadata") or {}
    key_spec = {k: v for k, v in wanted.items() if k != "consumer"}
    key_spec["consumer"] = wanted.get("consumer") or f"mcp-{meta.get('name', '')}"
    return {"apiVersion": server.get("apiVersion", "lockgate.io/v1alpha1"), "kind": "MCPServer",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "generation", "annotations") if k in meta},
            "spec": key_spec}
