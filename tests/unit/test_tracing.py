"""Tracing settings from the standard OTEL_* variables, and the GenAI names (pure)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lockgate.proxy.tracing import TracingSettings, TracingSettingsError, tracing_from_environment
from lockgate.proxy.accesslog import AccessLog
from lockgate.proxy.metrics import make_metrics
from lockgate.proxy.pipeline import Deps, build_pipeline
from lockgate.proxy.quota import make_quota_service
from lockgate.proxy.tracing.genai import finish_reasons, operation_name, provider_name
from lockgate.proxy.tracing.spans import SERVER, parse_traceparent
from lockgate.proxy.tracing.tracer import Tracing
from lockgate.proxy.upstream import UpstreamPool, UpstreamSettings


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
    assert base.endpoint == "http://collector:4318/v1/traces" and base.protocol == "http/json"
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
    ("OTEL_TRACES_SAMPLER", "sometimes"), ("OTEL_TRACES_SAMPLER_ARG", "1.5"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml"),
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


def test_traceparent_is_continued_only_when_valid() -> None:
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    parent = parse_traceparent({"traceparent": f"00-{trace}-{span}-01", "tracestate": "vendor=1"})
    assert parent is not None and (parent.trace_id, parent.span_id, parent.sampled) == (int(trace, 16), int(span, 16), True)
    assert parent.tracestate == "vendor=1"
    for bad in (f"00-{'0' * 32}-{span}-01", f"00-{trace}-{'0' * 16}-01", f"ff-{trace}-{span}-01",
                f"00-{trace.upper()}-{span}-01", f"00-{trace}-{span}-01-extra", "garbage"):
        assert parse_traceparent({"traceparent": bad}) is None, bad
    assert parse_traceparent({"traceparent": f"01-{trace}-{span}-00-future"}) is not None  # a later version's extra field


def test_the_sampler_follows_the_client_or_the_ratio() -> None:
    sampled, unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", \
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    never = Tracing(TracingSettings(enabled=True, sampler="parentbased_always_off"), send=lambda spans: True)
    always = Tracing(TracingSettings(enabled=True, sampler="always_on"), send=lambda spans: True)
    try:
        assert never.root("r", {"traceparent": sampled}, SERVER, {}).sampled  # the client's decision
        assert not never.root("r", {}, SERVER, {}).sampled
        assert always.root("r", {"traceparent": unsampled}, SERVER, {}).sampled  # not parent-based
        span = never.root("r", {"traceparent": unsampled}, SERVER, {})
        headers: dict[str, str] = {}
        never.child(span, "c").inject(headers)
        assert headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-") and headers["traceparent"].endswith("-00")
    finally:
        never.shutdown()
        always.shutdown()


def test_tracing_off_adds_no_step_and_loads_no_sdk() -> None:
    code = ("import sys; from lockgate.proxy.server import ProxyServer, ProxySettings; "
            "from lockgate.proxy.source import StaticSource; import lockgate.cli.main; "
            "print(any(m.startswith(('opentelemetry', 'lockgate.proxy.tracing.tracer')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    deps = Deps(quota=make_quota_service(), metrics=make_metrics("test"), access_log=AccessLog(None),
                upstreams=UpstreamPool(UpstreamSettings()))
    assert "trace" not in build_pipeline(deps).names
    deps.tracing = Tracing(TracingSettings(enabled=True), send=lambda spans: True)
    try:
        assert build_pipeline(deps).names[0] == "trace"
    finally:
        deps.tracing.shutdown()



def test_a_collector_away_costs_bounded_memory_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    from lockgate.proxy.tracing.export import BatchExporter
    from lockgate.proxy.tracing.spans import Span

    def refuse(spans: object) -> bool:
        raise ConnectionRefusedError()

    exporter = BatchExporter(refuse, delay=60, max_batch=100, max_queue=6)  # only flush sends
    try:
        for _ in range(10):
            exporter.add(Span(1, 0, "s", SERVER, {}, True, "", lambda s: None))
        assert exporter.dropped == 4  # the queue holds at most 6
        assert exporter.flush(5) and exporter.failed == 6
        exporter.add(Span(1, 0, "s", SERVER, {}, True, "", lambda s: None))
        assert exporter.flush(5) and exporter.failed == 7
    finally:
        exporter.shutdown()
    assert len([r for r in caplog.records if "not exported" in r.message]) == 1


def test_fixed_and_own_attributes_encode_as_one_list() -> None:
    import orjson

    from lockgate.proxy.tracing.otlp_json import encode_json
    from lockgate.proxy.tracing.spans import Fixed, Span

    shared = Fixed({"gen_ai.provider.name": "openai", "server.port": 443})
    spans = [Span(7, 9, "chat m", SERVER, {"lockgate.attempt": 2, "gen_ai.response.finish_reasons": ["stop"]}, True,
                  "", lambda s: None, shared),
             Span(7, 9, "chat m", SERVER, {}, True, "", lambda s: None, shared),  # the set alone
             Span(7, 9, "x", SERVER, {"server.port": 8443}, True, "", lambda s: None, shared)]  # its own wins
    for _ in range(2):  # the second time from the kept encodings
        body = orjson.loads(encode_json(spans, {"service.name": "gw"}, "scope"))
        got = [{a["key"]: a["value"] for a in s["attributes"]} for s in body["resourceSpans"][0]["scopeSpans"][0]["spans"]]
        assert got[0] == {"gen_ai.provider.name": {"stringValue": "openai"}, "server.port": {"intValue": 443},
                          "lockgate.attempt": {"intValue": 2},
                          "gen_ai.response.finish_reasons": {"arrayValue": {"values": [{"stringValue": "stop"}]}}}
        assert got[1] == {"gen_ai.provider.name": {"stringValue": "openai"}, "server.port": {"intValue": 443}}
        assert got[2] == {"gen_ai.provider.name": {"stringValue": "openai"}, "server.port": {"intValue": 8443}}
    assert spans[2].all_attributes() == {"gen_ai.provider.name": "openai", "server.port": 8443}


def test_shared_attribute_sets_are_bounded_and_looked_up() -> None:
    from lockgate.proxy.tracing.spans import FixedCache

    cache = FixedCache(max_size=3)
    first = cache.put(("a",), {"k": "v"})
    assert cache.get(("a",)) is first
    for n in range(3):
        cache.put(("b", n), {"k": n})
    assert cache.get(("a",)) is None  # cleared when full: at most 3 sets
    assert cache.get(("b", 2)) is not None
