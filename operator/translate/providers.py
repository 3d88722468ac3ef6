"""ModelProvider -> ir.Provider (+ its credential)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lockgate.api import ir
from lockgate.api.duration import parse_duration
from lockgate.api.meta import SecretKeyRef
from lockgate.api.provider import EngineMetrics, LoadBalancing, ModelProviderSpec
from lockgate.api.resources import ModelProvider
from lockgate.operator.translate.bundle import Bundle
from lockgate.operator.translate.conditions import NotReady, Rejected
from lockgate.operator.translate.discovery import ready_endpoints
from lockgate.operator.translate.models import provider_model
from lockgate.operator.translate.secrets import secret_value

# Gauges each engine exports: (waiting, running, KV cache usage 0..1).
ENGINE_METRICS: dict[str, tuple[str, str, str]] = {
    "vllm": ("vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"),
    "sglang": ("sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage"),
}
# Older releases name the cache gauge differently; the scraper tries these next.
CACHE_METRIC_ALTERNATIVES: dict[str, tuple[str, ...]] = {"vllm": ("vllm:gpu_cache_usage_perc",)}


def credential_id(namespace: str, name: str) -> str:
    return f"provider/{namespace}/{name}"


@dataclass
class ProviderOutcome:
    provider: ir.Provider
    credentials: dict[str, str] = field(default_factory=dict)
    not_ready: NotReady | None = None
    fields: dict[str, object] = field(default_factory=dict)


def unsupported_compat(spec: ModelProviderSpec) -> str | None:
    """Why a `compat` field cannot hold for this provider type, or None. Parameters (drop,
    default, the token cap's name) apply to every type; the reasoning split reads tags in
    OpenAI-shaped text, which Anthropic's typed thinking blocks are not."""
    if spec.type == "anthropic":
        if spec.compat.reasoning != "keep":
            return ("spec.compat.reasoning: an anthropic provider answers with typed thinking blocks, not tags "
                    "in its text; only keep is supported")
        if spec.compat.max_tokens_param == "max_completion_tokens":
            return "spec.compat.maxTokensParam: the Messages API takes max_tokens; use auto or max_tokens"
    return None


def translate_provider(obj: ModelProvider, bundle: Bundle) -> ProviderOutcome:
    spec, ns, name = obj.spec, obj.metadata.namespace, obj.metadata.name
    problem = unsupported_compat(spec)
    if problem is not None:
        raise Rejected("UnsupportedField", problem)
    credentials: dict[str, str] = {}
    credential: str | None = None
    if spec.credentials is not None:
        credential = credential_id(ns, name)
        credentials[credential] = secret_value(bundle, ns, spec.credentials.secret_ref, "spec.credentials.secretRef")
    ca_bundle, client_certificate = _tls_material(spec, bundle, ns, name, credentials)
    endpoints: tuple[ir.Endpoint, ...] = ()
    not_ready: NotReady | None = None
    fields: dict[str, object] = {"models": [m.name for m in spec.models]}
    if spec.service is not None:
        endpoints = ready_endpoints(bundle, ns, spec.service)
        fields["readyEndpoints"] = len(endpoints)
        if not endpoints:
            not_ready = NotReady(
                "NoEndpoints",
                f"Service {ns}/{spec.service.name} has no ready endpoints on port {spec.service.port!r} "
                "(check its EndpointSlices and the port name)",
            )
    provider = ir.Provider(
        id=f"{ns}/{name}",
        type=spec.type,
        base_url=spec.endpoint,
        endpoints=endpoints,
        scheme=spec.scheme,
        base_path=spec.base_path.rstrip("/"),
        api_version=spec.api_version,
        engine=spec.engine,
        credential=credential,
        ca_bundle=ca_bundle,
        client_certificate=client_certificate,
        proxy=spec.proxy,
        priority=spec.priority,
        weight=spec.weight,
        timeouts=ir.Timeouts(
            connect=parse_duration(spec.timeouts.connect),
            first_token=parse_duration(spec.timeouts.first_token),
            request=parse_duration(spec.timeouts.request),
        ),
        retries=ir.Retries(attempts=spec.retries.attempts, backoff=parse_duration(spec.retries.backoff)),
        outlier_detection=ir.OutlierDetection(
            consecutive_failures=spec.outlier_detection.consecutive_failures,
            base_ejection_time=parse_duration(spec.outlier_detection.base_ejection_time),
            max_ejection_time=parse_duration(spec.outlier_detection.max_ejection_time),
        ),
        load_balancing=_load_balancing(spec.load_balancing, spec.engine),
        queue_max_wait=parse_duration(spec.queue.max_wait),
        queue_max_depth=spec.queue.max_depth,
        queue_max_batch_delay=parse_duration(spec.queue.max_batch_delay),
        compat=ir.Compat(
            reasoning=spec.compat.reasoning,
            reasoning_tags=spec.compat.reasoning_tags,
            drop_params=tuple(spec.compat.drop_params),
            default_params=spec.compat.default_params,
            max_tokens_param=max_tokens_param(spec),
        ),
        models=tuple(provider_model(m) for m in spec.models),
        shared_with=spec.allowed_namespaces.shared_with(),
    )
    return ProviderOutcome(provider, credentials, not_ready, fields)


def _tls_material(spec: ModelProviderSpec, bundle: Bundle, ns: str, name: str,
                  credentials: dict[str, str]) -> tuple[str | None, str | None]:
    """The ids of the provider's CA bundle and client certificate, their PEM added to `credentials` (the one
    credentials Secret: never the configuration)."""
    tls = spec.tls
    if tls is None:
        return None, None
    ca_bundle = client_certificate = None
    if tls.ca_bundle is not None:
        ca_bundle = f"{credential_id(ns, name)}/ca"
        credentials[ca_bundle] = secret_value(bundle, ns, tls.ca_bundle, "spec.tls.caBundle")
    if tls.client_certificate is not None:
        client_certificate = f"{credential_id(ns, name)}/client"
        what = "spec.tls.clientCertificate"
        for key, suffix in (("tls.crt", ""), ("tls.key", ".key")):
            ref = SecretKeyRef(name=tls.client_certificate.name, key=key)
            credentials[client_certificate + suffix] = secret_value(bundle, ns, ref, what)
    return ca_bundle, client_certificate


def max_tokens_param(spec: ModelProviderSpec) -> Literal["max_tokens", "max_completion_tokens"]:
    """OpenAI's own APIs take max_completion_tokens (reasoning models refuse
    max_tokens); Anthropic is translated anyway; other engines know max_tokens."""
    if spec.compat.max_tokens_param != "auto":
        return spec.compat.max_tokens_param
    return "max_completion_tokens" if spec.type in ("openai", "azure-openai") else "max_tokens"


def _load_balancing(lb: LoadBalancing, engine: str) -> ir.LoadBalancing:
    metrics: ir.EngineMetrics | None = None
    if lb.strategy == "engine-metrics" or lb.metrics is not None:
        metrics = _engine_metrics(lb.metrics or EngineMetrics(), engine)
    external: ir.ExternalPicker | None = None
    if lb.strategy == "external":
        assert lb.external is not None  # the model refuses strategy external without it
        external = ir.ExternalPicker(url=lb.external.url, timeout=parse_duration(lb.external.timeout))
    return ir.LoadBalancing(
        strategy=lb.strategy,
        max_concurrency=lb.max_concurrency,
        prefix_length=lb.prefix_length,
        epsilon=lb.epsilon,
        metrics=metrics,
        external=external,
    )


def _engine_metrics(m: EngineMetrics, engine: str) -> ir.EngineMetrics:
    defaults = ENGINE_METRICS.get(engine)
    waiting = m.waiting_metric or (defaults[0] if defaults else None)
    running = m.running_metric or (defaults[1] if defaults else None)
    cache = m.cache_metric or (defaults[2] if defaults else None)
    if waiting is None or running is None or cache is None:
        raise Rejected(
            "InvalidSpec",
            f"spec.loadBalancing.metrics: engine {engine!r} has no default metric names; "
            "set waitingMetric, runningMetric and cacheMetric (or engine: vllm | sglang)",
        )
    return ir.EngineMetrics(
        interval=parse_duration(m.interval),
        path=m.path,
        waiting_metric=waiting,
        running_metric=running,
        cache_metric=cache,
        cache_metric_alternatives=() if m.cache_metric else CACHE_METRIC_ALTERNATIVES.get(engine, ()),
        stale_after=parse_duration(m.stale_after),
    )
