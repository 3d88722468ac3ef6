"""Ready endpoints of a Service, from its EndpointSlices."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lockgate.api import ir
from lockgate.api.meta import ServiceRef
from lockgate.operator.translate.bundle import Bundle


def ready_endpoints(bundle: Bundle, namespace: str, ref: ServiceRef) -> tuple[ir.Endpoint, ...]:
    """Ready addresses with the slice port matching the reference (by name,
    or by number directly or through the Service's port of that number).
    An endpoint without a ready condition counts as ready, as in Kubernetes."""
    found: dict[tuple[str, int], ir.Endpoint] = {}
    for slice_ in bundle.slices.get((namespace, ref.name), []):
        port = _slice_port(slice_, _port_name(bundle, namespace, ref), ref.port)
        if port is None:
            continue
        for endpoint in slice_.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True) is False:
                continue
            for address in endpoint.get("addresses") or []:
                found.setdefault(
                    (str(address), port),
                    ir.Endpoint(address=str(address), port=port, zone=endpoint.get("zone"), name=_endpoint_name(endpoint)),
                )
    return tuple(found[k] for k in sorted(found))


def _port_name(bundle: Bundle, namespace: str, ref: ServiceRef) -> str | None:
    if isinstance(ref.port, str) and not ref.port.isdigit():
        return ref.port
    service = bundle.services.get((namespace, ref.name))
    number = int(ref.port)
    for port in ((service or {}).get("spec") or {}).get("ports") or []:
        if port.get("port") == number:
            return str(port.get("name") or "")
    return None


def _slice_port(slice_: Mapping[str, Any], name: str | None, wanted: int | str) -> int | None:
    ports = slice_.get("ports") or []
    if isinstance(wanted, int) or str(wanted).isdigit():
        number = int(wanted)
        if any(p.get("port") == number for p in ports):
            return number
    for port in ports:
        if name is not None and (port.get("name") or "") == name and port.get("port") is not None:
            return int(port["port"])
    return None


def _endpoint_name(endpoint: Mapping[str, Any]) -> str | None:
    target = endpoint.get("targetRef") or {}
    name = target.get("name") or endpoint.get("hostname")
    return str(name) if name else None
