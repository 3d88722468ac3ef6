"""ModelProvider: where models are served."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.duration import Duration
from lockgate.api.grants import AllowedNamespaces
from lockgate.api.meta import DNS_SUBDOMAIN, ApiModel, CredentialsRef, ResourceStatus, SecretKeyRef, ServiceRef, list_map

ProviderType = Literal["openai", "azure-openai", "anthropic", "openai-compatible"]
Engine = Literal["vllm", "sglang", "tgi", "llamacpp", "generic"]
ModelKind = Literal["chat", "embedding", "completion"]
Strategy = Literal["round-robin", "least-request", "least-tokens", "prefix-affinity", "engine-metrics", "external"]
ReasoningMode = Literal["keep", "strip", "separate"]
MaxTokensParam = Literal["auto", "max_tokens", "max_completion_tokens"]

URL_PATTERN = r"^https?://[^\s/?#]+([/?#][^\s]*)?$"
PROXY_PATTERN = r"^(direct|http://[^\s/?#@]+/?)$"
# Hosted APIs that always want a key.
CREDENTIAL_TYPES = ("openai", "azure-openai", "anthropic")
EXTERNAL_NEEDS_BLOCK = "strategy external needs the external block (external.url, the picker service)"


class ModelLimits(ApiModel):
    """Caps on one model of a provider, shared by every consumer."""

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute across all consumers.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens (input + output) per minute across all consumers.")


class ModelPricing(ApiModel):
    """What a model costs, per million tokens. A price left out comes from the default table of
    well-known models (USD list prices, see docs/quotas.md), else it is 0."""

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of the prices.")
    input: float | None = Field(default=None, ge=0, le=1_000_000, description="Per million input tokens.")
    output: float | None = Field(default=None, ge=0, le=1_000_000, description="Per million output tokens.")
    cached_input: float | None = Field(
        default=None, ge=0, le=1_000_000,
        description="Per million input tokens read from the provider's prompt cache; defaults to the input price.")


class ProviderModel(ApiModel):
    """A model the provider serves, under the name clients use."""

    name: str = Field(min_length=1, max_length=253, description="The model name clients ask for.")
    upstream_model: str | None = Field(
        default=None, min_length=1, description="The name sent upstream (an Azure deployment name); defaults to name."
    )
    kind: ModelKind = Field(default="chat", description="chat, embedding or completion.")
    limits: ModelLimits | None = Field(default=None, description="Caps protecting the upstream, across all consumers.")
    pricing: ModelPricing | None = Field(
        default=None, description="Prices per million tokens; well-known models have defaults, these win.")
    context_window: int | None = Field(
        default=None, ge=1, description="Tokens the model takes (prompt and output); well-known models have defaults.")
    intelligence: float | None = Field(
        default=None, ge=0, le=1, description="A declared quality score from 0 to 1, for choosing among models.")


class Timeouts(ApiModel):
    """Deadlines of one upstream request."""

    connect: Duration = Field(default="5s", description="Establishing the connection.")
    first_token: Duration = Field(default="60s", description="Until the first byte of the answer.")
    request: Duration = Field(default="300s", description="The whole request, streams included.")


class Retries(ApiModel):
    """Retries of a failed upstream request on this provider."""

    attempts: int = Field(default=1, ge=0, le=10, description="Retries on connect failure, 429 and 5xx, before any byte reached the client.")
    backoff: Duration = Field(default="200ms", description="Base of the exponential backoff between attempts.")


class OutlierDetection(ApiModel):
    """Taking a failing provider or endpoint out of rotation for a while."""

    consecutive_failures: int = Field(default=3, ge=1, le=100, description="Failures in a row that eject a provider or endpoint.")
    base_ejection_time: Duration = Field(default="5s", description="First ejection; doubles on each new ejection.")
    max_ejection_time: Duration = Field(default="300s", description="Longest ejection.")


class EngineMetrics(ApiModel):
    """Scraping of the inference engines' Prometheus metrics (strategy engine-metrics)."""

    interval: Duration = Field(default="1s", description="How often each endpoint's metrics are scraped.")
    path: str = Field(default="/metrics", pattern=r"^/", description="Prometheus metrics path on each endpoint.")
    waiting_metric: str | None = Field(default=None, description="Queue depth gauge; defaults per engine (vllm:num_requests_waiting).")
    running_metric: str | None = Field(default=None, description="Running requests gauge; defaults per engine.")
    cache_metric: str | None = Field(default=None, description="KV cache usage (0..1) gauge; defaults per engine.")
    stale_after: Duration = Field(default="5s", description="Older metrics fall back to least-tokens.")


class ExternalPicker(ApiModel):
    """An endpoint picker service the gateway asks for every request (strategy external)."""

    url: str = Field(pattern=URL_PATTERN, description="Endpoint picker service URL (POST).")
    timeout: Duration = Field(default="50ms", description="Deadline; past it the gateway falls back to least-tokens.")


class LoadBalancing(ApiModel):
    """How requests are spread over the ready endpoints of a Service."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!has(self.strategy) || self.strategy != 'external' || has(self.external)",
         "message": EXTERNAL_NEEDS_BLOCK},
    ]})

    strategy: Strategy = Field(default="least-request", description="How an endpoint is picked among the Service's ready endpoints.")
    max_concurrency: int | None = Field(default=None, ge=1, description="Requests in flight per endpoint, at most.")
    prefix_length: int = Field(default=2048, ge=16, le=1_000_000, description="Characters of the prompt hashed for prefix-affinity.")
    epsilon: float = Field(default=0.25, ge=0, le=10, description="Bounded load: an endpoint above (1 + epsilon) x average passes the request on.")
    metrics: EngineMetrics | None = Field(default=None, description="Settings of strategy engine-metrics.")
    external: ExternalPicker | None = Field(default=None, description="The picker of strategy external (required there).")

    @model_validator(mode="after")
    def _check(self) -> LoadBalancing:
        if self.strategy == "external" and self.external is None:
            raise ValueError(EXTERNAL_NEEDS_BLOCK)
        return self


class Compat(ApiModel):
    """Fixes applied on the way to and from this provider, for engines that differ from OpenAI."""

    reasoning: ReasoningMode = Field(default="keep", description="keep, strip, or separate (<think>...</think> moved to reasoning_content).")
    reasoning_tags: tuple[str, str] = Field(default=("<think>", "</think>"), description="Opening and closing reasoning tags.")
    drop_params: list[str] = Field(default_factory=list, description="Request parameters removed before forwarding.")
    default_params: dict[str, Any] = Field(default_factory=dict, description="Parameters added when the request lacks them.")
    max_tokens_param: MaxTokensParam = Field(default="auto", description="Which name the upstream takes for the output token cap.")


class Queue(ApiModel):
    """Waiting for provider capacity instead of refusing at once."""

    max_wait: Duration = Field(default="0s", description="How long a request may wait for provider capacity: the model's "
                               "rpm/tpm, or a free endpoint under loadBalancing.maxConcurrency (0s: refuse at once).")
    max_depth: int = Field(default=1000, ge=1, le=100_000,
                           description="Requests that may wait at once, per proxy replica; more are refused at once.")
    max_batch_delay: Duration = Field(
        default="30s", description="How long waiting interactive requests may keep a batch request waiting; past it, "
                                   "the batch request is served next.")


class ClientCertificateRef(ApiModel):
    """A Secret of type kubernetes.io/tls in the same namespace: tls.crt (chain) and tls.key."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="Name of the Secret, in the same namespace.")


class UpstreamTLS(ApiModel):
    ca_bundle: SecretKeyRef | None = Field(
        default=None, description="PEM CA certificates trusted for the upstream instead of the system's.")
    client_certificate: ClientCertificateRef | None = Field(
        default=None, description="A kubernetes.io/tls Secret presented to the upstream (mutual TLS).")


class ModelProviderSpec(ApiModel):
    """Where the models are served, and how the gateway talks to it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.endpoint) != has(self.service)", "message": "set exactly one of endpoint and service"},
                {"rule": "self.type != 'azure-openai' || has(self.apiVersion)", "message": "azure-openai needs apiVersion"},
                {"rule": "!(self.type in " + str(list(CREDENTIAL_TYPES)) + ") || has(self.credentials)",
                 "message": "openai, azure-openai and anthropic providers need credentials (a Secret key holding the API key)"},
            ]
        }
    )

    type: ProviderType = Field(description="openai, azure-openai, anthropic or openai-compatible.")
    endpoint: str | None = Field(default=None, pattern=URL_PATTERN, description="Base URL of the API. Exactly one of endpoint and service.")
    service: ServiceRef | None = Field(default=None, description="A Service whose ready endpoints serve the models (self-hosted).")
    base_path: str = Field(default="", pattern=r"^(/.*)?$", description="Path prefix on service endpoints, for example /v1.")
    scheme: Literal["http", "https"] = Field(default="http", description="Scheme used for service endpoints.")
    api_version: str | None = Field(default=None, description="Azure OpenAI api-version.")
    engine: Engine = Field(default="generic", description="The inference engine behind an openai-compatible provider.")
    credentials: CredentialsRef | None = Field(
        default=None, description="The API key sent upstream, from a Secret; required for openai, azure-openai and anthropic.",
    )
    tls: UpstreamTLS | None = Field(default=None, description="CA bundle and client certificate for https upstreams.")
    proxy: str | None = Field(
        default=None, pattern=PROXY_PATTERN,
        description="http://host:port of an HTTP CONNECT proxy to reach the upstream through, or direct to ignore "
                    "the proxy's HTTPS_PROXY/HTTP_PROXY environment. Default: the environment (with NO_PROXY).")
    priority: int = Field(default=0, ge=0, le=100, description="Tier: 0 is tried first, higher tiers are fallbacks.")
    weight: int = Field(default=100, ge=0, le=10000, description="Share of traffic inside a tier.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Deadlines of upstream requests.")
    retries: Retries = Field(default_factory=Retries, description="Retries before any byte reached the client.")
    outlier_detection: OutlierDetection = Field(
        default_factory=OutlierDetection, description="Ejection of a failing provider or endpoint.")
    load_balancing: LoadBalancing = Field(
        default_factory=LoadBalancing, description="Endpoint choice among a Service's ready endpoints.")
    queue: Queue = Field(default_factory=Queue, description="Waiting for capacity when the model limits are reached.")
    compat: Compat = Field(default_factory=Compat, description="Request and response fixes for this upstream.")
    models: list[ProviderModel] = Field(
        min_length=1, max_length=1000, json_schema_extra=list_map("name"),
        description="Models served by this provider; names are unique.",
    )
    allowed_namespaces: AllowedNamespaces = Field(
        default_factory=AllowedNamespaces,
        description="Namespaces whose Routes and MCPServers may use these models; default: only this namespace.",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelProviderSpec:
        if (self.endpoint is None) == (self.service is None):
            raise ValueError("set exactly one of endpoint and service")
        if self.type == "azure-openai" and not self.api_version:
            raise ValueError("azure-openai needs apiVersion")
        if self.type in CREDENTIAL_TYPES and self.credentials is None:
            raise ValueError(f"type {self.type} needs credentials (a Secret key holding the API key)")
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique: {', '.join(dupes)}")
        return self


class ModelProviderStatus(ResourceStatus):
    """What the operator reports on a ModelProvider."""

    ready_endpoints: int | None = Field(default=None, description="Ready endpoints (service providers).")
    models: list[str] = Field(default_factory=list, description="Model names served.")
