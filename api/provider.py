"""ModelProvider: where models are served."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.duration import Duration
from lockgate.api.grants import AllowedNamespaces
from lockgate.api.meta import ApiModel, CredentialsRef, ResourceStatus, ServiceRef

ProviderType = Literal["openai", "azure-openai", "anthropic", "openai-compatible"]
Engine = Literal["vllm", "sglang", "tgi", "llamacpp", "generic"]
ModelKind = Literal["chat", "embedding", "completion"]
Strategy = Literal["round-robin", "least-request", "least-tokens", "prefix-affinity", "engine-metrics", "external"]
ReasoningMode = Literal["keep", "strip", "separate"]
MaxTokensParam = Literal["auto", "max_tokens", "max_completion_tokens"]

URL_PATTERN = r"^https?://[^\s/?#]+([/?#][^\s]*)?$"


class ModelLimits(ApiModel):
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute across all consumers.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens (input + output) per minute across all consumers.")


class ProviderModel(ApiModel):
    name: str = Field(min_length=1, max_length=253, description="The model name clients ask for.")
    upstream_model: str | None = Field(
        default=None, min_length=1, description="The name sent upstream (an Azure deployment name); defaults to name."
    )
    kind: ModelKind = Field(default="chat", description="chat, embedding or completion.")
    limits: ModelLimits | None = Field(default=None, description="Caps protecting the upstream, across all consumers.")


class Timeouts(ApiModel):
    connect: Duration = Field(default="5s", description="Establishing the connection.")
    first_token: Duration = Field(default="60s", description="Until the first byte of the answer.")
    request: Duration = Field(default="300s", description="The whole request, streams included.")


class Retries(ApiModel):
    attempts: int = Field(default=1, ge=0, le=10, description="Retries on connect failure, 429 and 5xx, before any byte reached the client.")
    backoff: Duration = Field(default="200ms", description="Base of the exponential backoff between attempts.")


class OutlierDetection(ApiModel):
    consecutive_failures: int = Field(default=3, ge=1, le=100, description="Failures in a row that eject a provider or endpoint.")
    base_ejection_time: Duration = Field(default="5s", description="First ejection; doubles on each new ejection.")
    max_ejection_time: Duration = Field(default="300s", description="Longest ejection.")


class EngineMetrics(ApiModel):
    interval: Duration = Field(default="1s", description="How often each endpoint's metrics are scraped.")
    path: str = Field(default="/metrics", pattern=r"^/", description="Prometheus metrics path on each endpoint.")
    waiting_metric: str | None = Field(default=None, description="Queue depth gauge; defaults per engine (vllm:num_requests_waiting).")
    running_metric: str | None = Field(default=None, description="Running requests gauge; defaults per engine.")
    cache_metric: str | None = Field(default=None, description="KV cache usage (0..1) gauge; defaults per engine.")
    stale_after: Duration = Field(default="5s", description="Older metrics fall back to least-tokens.")


class ExternalPicker(ApiModel):
    url: str = Field(pattern=URL_PATTERN, description="Endpoint picker service URL (POST).")
    timeout: Duration = Field(default="50ms", description="Deadline; past it the gateway falls back to least-tokens.")


class LoadBalancing(ApiModel):
    strategy: Strategy = Field(default="least-request", description="How an endpoint is picked among the Service's ready endpoints.")
    max_concurrency: int | None = Field(default=None, ge=1, description="Requests in flight per endpoint, at most.")
    prefix_length: int = Field(default=2048, ge=16, le=1_000_000, description="Characters of the prompt hashed for prefix-affinity.")
    epsilon: float = Field(default=0.25, ge=0, le=10, description="Bounded load: an endpoint above (1 + epsilon) x average passes the request on.")
    metrics: EngineMetrics | None = Field(default=None, description="For engine-metrics.")
    external: ExternalPicker | None = Field(default=None, description="For external.")


class Compat(ApiModel):
    reasoning: ReasoningMode = Field(default="keep", description="keep, strip, or separate (<think>...</think> moved to reasoning_content).")
    reasoning_tags: tuple[str, str] = Field(default=("<think>", "</think>"), description="Opening and closing reasoning tags.")
    drop_params: list[str] = Field(default_factory=list, description="Request parameters removed before forwarding.")
    default_params: dict[str, Any] = Field(default_factory=dict, description="Parameters added when the request lacks them.")
    max_tokens_param: MaxTokensParam = Field(default="auto", description="Which name the upstream takes for the output token cap.")


class Queue(ApiModel):
    max_wait: Duration = Field(default="0s", description="How long a request may wait for provider capacity (0s: refuse at once).")


class ModelProviderSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.endpoint) != has(self.service)", "message": "set exactly one of endpoint and service"},
                {"rule": "self.type != 'azure-openai' || has(self.apiVersion)", "message": "azure-openai needs apiVersion"},
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
    credentials: CredentialsRef | None = None
    priority: int = Field(default=0, ge=0, le=100, description="Tier: 0 is tried first, higher tiers are fallbacks.")
    weight: int = Field(default=100, ge=0, le=10000, description="Share of traffic inside a tier.")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retries: Retries = Field(default_factory=Retries)
    outlier_detection: OutlierDetection = Field(default_factory=OutlierDetection)
    load_balancing: LoadBalancing = Field(default_factory=LoadBalancing)
    queue: Queue = Field(default_factory=Queue)
    compat: Compat = Field(default_factory=Compat)
    models: list[ProviderModel] = Field(min_length=1, max_length=1000, description="Models served by this provider.")
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
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique: {', '.join(dupes)}")
        return self


class ModelProviderStatus(ResourceStatus):
    ready_endpoints: int | None = Field(default=None, description="Ready endpoints (service providers).")
    models: list[str] = Field(default_factory=list, description="Model names served.")
