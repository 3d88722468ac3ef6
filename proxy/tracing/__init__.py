"""OpenTelemetry tracing of the proxy (see docs/observability.md).

Only `settings` is imported by default: the SDK parts (`tracer`, `request`)
are loaded when tracing is turned on, so tracing off costs nothing."""

from lockgate.proxy.tracing.settings import TracingSettings, TracingSettingsError, tracing_from_environment

__all__ = ["TracingSettings", "TracingSettingsError", "tracing_from_environment"]
