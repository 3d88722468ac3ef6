"""Tracing settings, read once from the standard `OTEL_*` environment variables.

Tracing is off unless an OTLP endpoint is named (`OTEL_EXPORTER_OTLP_ENDPOINT`
or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or `OTEL_TRACES_EXPORTER=otlp` asks for
the default one; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it
off whatever else is set. Pure parsing: no OpenTelemetry import here, so a
proxy with tracing off never loads the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

Protocol = Literal["http/json", "http/protobuf", "grpc"]
Sampler = Literal["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
                  "parentbased_traceidratio"]
SAMPLERS: tuple[Sampler, ...] = ("always_on", "always_off", "traceidratio", "parentbased_always_on",
                                 "parentbased_always_off", "parentbased_traceidratio")
DEFAULT_SERVICE_NAME = "lockgate-proxy"
# What the GenAI instrumentations read to capture prompts and answers (off unless set).
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CAPTURE_VALUES = frozenset({"true", "span_only", "span_and_event"})


class TracingSettingsError(ValueError):
    """An OTEL_* variable holds a value the proxy cannot use."""


@dataclass(frozen=True)
class TracingSettings:
    enabled: bool = False
    endpoint: str = "http://localhost:4318/v1/traces"  # http: the traces URL itself; grpc: host:port or URL
    protocol: Protocol = "http/json"  # the lean default (see export.py); http/protobuf and grpc: the official exporters
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0  # seconds
    compression: str | None = None  # gzip | deflate | None
    certificate: str | None = None  # CA bundle of a TLS collector
    sampler: Sampler = "parentbased_always_on"
    sample_ratio: float = 1.0  # for the traceidratio samplers
    service_name: str = DEFAULT_SERVICE_NAME
    resource_attributes: tuple[tuple[str, str], ...] = ()
    capture_content: bool = False  # prompts and answers on spans: only when explicitly allowed


def _pairs(value: str) -> tuple[tuple[str, str], ...]:
    """`k=v,k2=v2` (values URL-encoded), as the OTLP header and resource variables are written."""
    pairs = []
    for item in value.split(","):
        name, sep, val = item.partition("=")
        if sep and name.strip():
            pairs.append((unquote(name.strip()), unquote(val.strip())))
    return tuple(pairs)


def _first(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def tracing_from_environment(environ: Mapping[str, str]) -> TracingSettings:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TracingSettings()
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    signal_endpoint = _first(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base_endpoint = _first(environ, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if exporter == "none" or not (exporter == "otlp" or signal_endpoint or base_endpoint):
        return TracingSettings()
    if exporter not in ("", "otlp"):
        raise TracingSettingsError(f"OTEL_TRACES_EXPORTER={exporter!r}: only 'otlp' and 'none' are supported")
    protocol = _first(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL") or "http/json"
    if protocol not in ("http/json", "http/protobuf", "grpc"):
        raise TracingSettingsError(f"OTLP protocol {protocol!r}: use http/json, http/protobuf or grpc")
    if signal_endpoint:  # used as given
        endpoint = signal_endpoint
    elif protocol == "grpc":
        endpoint = base_endpoint or "http://localhost:4317"
    else:  # a base URL: the signal's path is appended
        endpoint = (base_endpoint or "http://localhost:4318").rstrip("/") + "/v1/traces"
    sampler = (_first(environ, "OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
    if sampler not in SAMPLERS:
        raise TracingSettingsError(f"OTEL_TRACES_SAMPLER={sampler!r}: use one of {', '.join(SAMPLERS)}")
    ratio = 1.0
    if "traceidratio" in sampler:
        arg = _first(environ, "OTEL_TRACES_SAMPLER_ARG") or "1.0"
        try:
            ratio = float(arg)
        except ValueError:
            raise TracingSettingsError(f"OTEL_TRACES_SAMPLER_ARG={arg!r} is not a number") from None
        if not 0.0 <= ratio <= 1.0:
            raise TracingSettingsError(f"OTEL_TRACES_SAMPLER_ARG={arg!r}: a ratio between 0 and 1")
    timeout_ms = _first(environ, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT") or "10000"
    try:
        timeout = float(timeout_ms) / 1000.0  # milliseconds, as the specification says
    except ValueError:
        raise TracingSettingsError(f"OTLP timeout {timeout_ms!r} is not a number of milliseconds") from None
    compression = _first(environ, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
    if compression is not None and compression not in ("gzip", "deflate", "none"):
        raise TracingSettingsError(f"OTLP compression {compression!r}: use gzip, deflate or none")
    return TracingSettings(
        enabled=True, endpoint=endpoint, protocol=protocol,  # type: ignore[arg-type]
        headers=_pairs(_first(environ, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS") or ""),
        timeout=timeout, compression=None if compression == "none" else compression,
        certificate=_first(environ, "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"),
        sampler=sampler,  # type: ignore[arg-type]
        sample_ratio=ratio,
        service_name=_first(environ, "OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME,
        resource_attributes=_pairs(environ.get("OTEL_RESOURCE_ATTRIBUTES", "")),
        capture_content=environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CAPTURE_VALUES,
    )
