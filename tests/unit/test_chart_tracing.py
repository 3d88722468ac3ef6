"""The chart's proxy.tracing values become the OTEL_* variables the proxy reads (off by default)."""

from __future__ import annotations

from typing import Any

from lockgate.proxy.tracing import tracing_from_environment
from tests.unit.chart_support import render


def proxy_env(sets: list[str]) -> list[dict[str, Any]]:
    [workload] = [o for o in render(sets=sets) if o["kind"] in ("Deployment", "StatefulSet")
                  and "proxy" in o["metadata"]["name"]]
    [container] = [c for c in workload["spec"]["template"]["spec"]["containers"]]
    return container.get("env") or []


def test_tracing_is_off_by_default() -> None:
    env = proxy_env([])
    assert not [e for e in env if e["name"].startswith("OTEL_")]
    assert not tracing_from_environment({e["name"]: e.get("value", "") for e in env}).enabled


def test_tracing_values_configure_the_proxy() -> None:
    env = proxy_env(["proxy.tracing.endpoint=http://otel-collector.observability:4318", "proxy.tracing.captureContent=true",
                     "proxy.tracing.headersSecret.name=otel-auth"])
    plain = {e["name"]: e["value"] for e in env if "value" in e}
    settings = tracing_from_environment(plain)
    assert settings.enabled and settings.endpoint == "http://otel-collector.observability:4318/v1/traces"
    assert (settings.protocol, settings.sampler, settings.sample_ratio) == ("http/json", "parentbased_traceidratio", 1.0)
    assert settings.service_name == "lockgate-proxy" and settings.capture_content
    assert plain["OTEL_RESOURCE_ATTRIBUTES"] == "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME)"
    [headers] = [e for e in env if e["name"] == "OTEL_EXPORTER_OTLP_HEADERS"]
    assert headers["valueFrom"]["secretKeyRef"] == {"name": "otel-auth", "key": "headers"}
