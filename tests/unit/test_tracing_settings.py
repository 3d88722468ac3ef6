"""Tracing settings from the standard OTEL_* variables, and the GenAI names (pure)."""

from __future__ import annotations

import pytest

from lockgate.proxy.tracing import TracingSettings, TracingSettingsError, tracing_from_environment
from lockgate.proxy.tracing.genai import finish_reasons, operation_name, provider_name


def test_off_unless_an_endpoint_or_the_exporter_is_named() -> None:
    assert tracing_from_environment({}) == TracingSettings()
    assert not tracing_from_environment({"OTEL_SERVICE_NAME": "x"}).enabled
    assert tracing_from_environment({"OTEL_TRACES_EXPORTER": "otlp"}).endpoint == "http://localhost:4318/v1/traces"
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert tracing_from_environment(on).enabled
    assert not tracing_from_environment({**on, "OTEL_SDK_DISABLED": "true"}).enabled
    assert not tracing_from_environment({**on, "OTEL_TRACES_EXPORTER": "none"}).enabled


def test_endpoints_as_the_specification_says() -> None:
    base = tracing_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert base.endpoint == "http://collector:4318/v1/traces" and base.protocol == "http/protobuf"
    signal = tracing_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
                                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:9999/custom"})
    assert signal.endpoint == "http://b:9999/custom"  # used as given
    grpc = tracing_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert (grpc.endpoint, grpc.protocol) == ("http://c:4317", "grpc")


def test_headers_timeout_sampler_resource_and_content() -> None:
    settings = tracing_from_environment({
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": "x-token=a%3Db, other = 2",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25", "OTEL_SERVICE_NAME": "gw", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"})
    assert settings.headers == (("x-token", "a=b"), ("other", "2"))
    assert settings.timeout == 2.5
    assert (settings.sampler, settings.sample_ratio) == ("parentbased_traceidratio", 0.25)
    assert settings.service_name == "gw" and settings.resource_attributes == (("deployment.environment", "prod"),)
    assert settings.capture_content
    assert not tracing_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}).capture_content


@pytest.mark.parametrize(("variable", "value"), [
    ("OTEL_TRACES_SAMPLER", "sometimes"), ("OTEL_TRACES_SAMPLER_ARG", "1.5"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"), ("OTEL_TRACES_EXPORTER", "zipkin"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
])
def test_a_bad_value_is_a_clear_error(variable: str, value: str) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "traceidratio", variable: value}
    with pytest.raises(TracingSettingsError, match=value.replace(".", r"\.")):
        tracing_from_environment(environ)


def test_genai_names() -> None:
    assert operation_name("completions") == "text_completion" and operation_name("messages") == "chat"
    assert provider_name("azure-openai") == "azure.ai.openai" and provider_name("anthropic") == "anthropic"
    assert provider_name("openai-compatible", "vllm") == "vllm"
    assert provider_name("openai-compatible") == "openai-compatible"
    assert finish_reasons(b'{"choices":[{"finish_reason":"length"},{"finish_reason": "stop"}]}') == ["length", "stop"]
    assert finish_reasons(b'{"stop_reason":"end_turn"}') == ["end_turn"]
    assert finish_reasons(b'{"finish_reason":null}') == []
