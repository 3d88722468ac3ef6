"""The gateway config IR: what the operator publishes and every proxy loads.

Plain, versioned data with no Kubernetes objects in it. Durations are seconds,
references are resolved, consumer keys are SHA-256 hex digests. Provider and
upstream credentials are not here: they are named by `credential` ids whose
values live in the one credentials Secret (`Credentials`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from collections.abc import Callable
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from lockgate.api.ir_hash import canonical_json as canonical_json, hash_key as hash_key, part_hash as part_hash

IR_VERSION: Final = "lockgate.io/ir/v1"
Priority = Literal["interactive", "batch"]  # a request's class in the queues for capacity


class IRModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(IRModel):
    """One ready address of a Service (or the host of a fixed URL)."""

    address: str
    port: int
    zone: str | None = None
    name: str | None = Field(default=None, description="Pod or host name, when the EndpointSlice has one.")


class RateLimits(IRModel):
    rpm: int | None = None
    tpm: int | None = None
    monthly_tokens: int | None = None
    monthly_cost: int | None = Field(default=None, description="Money per calendar month, in micro-units (1e-6).")


class Pricing(IRModel):
    """Prices per million tokens, resolved (the spec's, else the default table's, else 0)."""

    currency: str = "USD"
    input: float = 0.0
    output: float = 0.0
    cached_input: float = 0.0


class ProviderModel(IRModel):
    name: str
    upstream_model: str
    kind: Literal["chat", "embedding", "completion"] = "chat"
    limits: RateLimits = RateLimits()
    pricing: Pricing | None = Field(default=None, description="None: no price known, requests cost nothing.")
    context_window: int | None = None
    intelligence: float | None = Field(default=None, description="Declared quality score, 0 to 1.")


class Timeouts(IRModel):
    connect: float = 5.0
    first_token: float = 60.0
    request: float = 300.0


class Retries(IRModel):
    attempts: int = 1
    backoff: float = 0.2


class OutlierDetection(IRModel):
    consecutive_failures: int = 3
    base_ejection_time: float = 5.0
    max_ejection_time: float = 300.0


class EngineMetrics(IRModel):
    interval: float = 1.0
    path: str = "/metrics"
    waiting_metric: str
    running_metric: str
    cache_metric: str
    cache_metric_alternatives: tuple[str, ...] = Field(
        default=(), description="Names to try when cache_metric is absent (older engine releases)."
    )
    stale_after: float = 5.0


class ExternalPicker(IRModel):
    url: str
    timeout: float = 0.05


class LoadBalancing(IRModel):
    strategy: str = "least-request"
    max_concurrency: int | None = None
    prefix_length: int = 2048
    epsilon: float = 0.25
    metrics: EngineMetrics | None = None
    external: ExternalPicker | None = None


class Compat(IRModel):
    reasoning: Literal["keep", "strip", "separate"] = "keep"
    reasoning_tags: tuple[str, str] = ("<think>", "</think>")
    drop_params: tuple[str, ...] = ()
    default_params: dict[str, Any] = Field(default_factory=dict)
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


class Provider(IRModel):
    id: str = Field(description="namespace/name of the ModelProvider")
    type: Literal["openai", "azure-openai", "anthropic", "openai-compatible"]
    base_url: str | None = Field(default=None, description="Fixed endpoint URL; None for service providers.")
    endpoints: tuple[Endpoint, ...] = Field(default=(), description="Ready endpoints of the Service (service providers).")
    scheme: Literal["http", "https"] = "http"
    base_path: str = ""
    api_version: str | None = None
    engine: str = "generic"
    credential: str | None = Field(default=None, description="Id of the value in Credentials.")
    ca_bundle: str | None = Field(default=None, description="Id of the CA bundle (PEM) in Credentials.")
    client_certificate: str | None = Field(
        default=None, description="Id of the client certificate chain (PEM) in Credentials; its key is under the "
                                  "same id with '.key' appended.")
    proxy: str | None = Field(default=None, description="HTTP CONNECT proxy URL, 'direct', or None: the environment's.")
    priority: int = 0
    weight: int = 100
    timeouts: Timeouts = Timeouts()
    retries: Retries = Retries()
    outlier_detection: OutlierDetection = OutlierDetection()
    load_balancing: LoadBalancing = LoadBalancing()
    queue_max_wait: float = 0.0
    queue_max_depth: int = 1000
    queue_max_batch_delay: float = 30.0
    compat: Compat = Compat()
    models: tuple[ProviderModel, ...]
    shared_with: tuple[str, ...] = Field(
        default=(), description="Other namespaces whose Routes and MCPServers may use these models; ('*',) = every one."
    )

    @property
    def namespace(self) -> str:
        return namespace_of(self.id)

    def serves(self, namespace: str) -> bool:
        """Whether Routes and MCPServers of `namespace` may use this provider's models."""
        return namespace == self.namespace or "*" in self.shared_with or namespace in self.shared_with

    def endpoint_urls(self) -> list[str]:
        """Base URLs to send requests to, one per endpoint (or the fixed one)."""
        if self.base_url is not None:
            return [self.base_url.rstrip("/")]
        return [f"{self.scheme}://{_host(e.address)}:{e.port}{self.base_path}".rstrip("/") for e in self.endpoints]


def namespace_of(object_id: str) -> str:
    """The namespace part of a `namespace/name` id."""
    return object_id.partition("/")[0]


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


class SemanticCache(IRModel):
    embedding_model: str
    threshold: float = 0.95
    input: Literal["lastUserMessage", "conversation"] = "lastUserMessage"
    max_entries: int = 10000


class CachePolicy(IRModel):
    """A Route's response cache (seconds for durations)."""

    mode: Literal["exact", "semantic"] = "exact"
    ttl: float = 300.0
    max_entry_bytes: int = 1_048_576
    endpoints: tuple[str, ...] = ("chat", "completions", "embeddings", "responses")
    cache_sampled: bool = False
    scope: Literal["namespace", "consumer"] = "namespace"
    hits_spend_tokens: bool = False
    semantic: SemanticCache | None = None


class KeyCache(IRModel):
    """An ApiKey's override of its Routes' cache policy."""

    enabled: bool = True
    scope: Literal["namespace", "consumer"] | None = None


class ApiKeyHash(IRModel):
    sha256: str = Field(description="Hex SHA-256 of the key.")
    not_after: datetime | None = Field(default=None, description="A rotated-out key stops working then.")


class ConsumerKey(IRModel):
    id: str = Field(description="namespace/name of the ApiKey")
    consumer: str
    hashes: tuple[ApiKeyHash, ...]
    expires_at: datetime | None = None
    models: tuple[str, ...] | None = Field(default=None, description="Globs; None = every model.")
    limits: RateLimits = RateLimits()
    model_limits: dict[str, RateLimits] = Field(default_factory=dict)
    routes: tuple[str, ...] | None = Field(default=None, description="Route ids; None = every route.")
    mcp_servers: tuple[str, ...] = Field(default=(), description="MCPServer ids this key may use.")
    mcp_tools: dict[str, tuple[str, ...]] = Field(default_factory=dict, description="Server id -> tool globs.")
    cache: KeyCache | None = Field(default=None, description="Override of the Routes' cache policy.")
    priority: Priority = "interactive"
    queue_weight: int = 1
    currency: str = Field(default="USD", description="Currency of the key's cost limits and spend.")
    budgets: tuple[str, ...] = Field(default=(), description="Ids of the Budgets (team budgets) the key spends from.")


class Budget(IRModel):
    """A monthly budget shared by the keys that name it (a team's)."""

    id: str = Field(description="namespace/name of the Budget")
    monthly_tokens: int | None = None
    monthly_cost: int | None = Field(default=None, description="Money per calendar month, in micro-units (1e-6).")
    currency: str = "USD"


class AliasTarget(IRModel):
    model: str
    weight: int = 1


class ModelPreferences(IRModel):
    hints: tuple[str, ...] = ()
    cost_priority: float | None = None
    speed_priority: float | None = None
    intelligence_priority: float | None = None


class Alias(IRModel):
    name: str
    targets: tuple[AliasTarget, ...]
    fallbacks: tuple[str, ...] = ()
    strategy: Literal["weighted", "preferences"] = "weighted"
    preferences: ModelPreferences | None = None


class TemplateVariable(IRModel):
    type: str = "string"
    description: str = ""
    required: bool = False
    default: Any = None
    enum: tuple[Any, ...] | None = None
    items: TemplateVariable | None = None


class ChatTemplate(IRModel):
    model: str
    variables: dict[str, TemplateVariable] = Field(default_factory=dict)
    system_prompt: str | None = None
    prompt_template: str
    response: Literal["text", "json"] = "text"
    params: dict[str, Any] = Field(default_factory=dict)


class Route(IRModel):
    id: str = Field(description="namespace/name of the Route")
    type: Literal["openai", "chatTemplate"]
    hosts: tuple[str, ...]
    models: tuple[str, ...] = ("*",)
    aliases: tuple[Alias, ...] = ()
    path: str | None = None
    timeout: float | None = None
    chat_template: ChatTemplate | None = None
    cache: CachePolicy | None = None
    priority: Priority | None = Field(default=None, description="None: the key's class.")
    queue_max_wait: float | None = Field(default=None, description="None: the provider's queue.maxWait.")


class UpstreamAuth(IRModel):
    credential: str = Field(description="Id of the value in Credentials.")
    header: str = "Authorization"
    scheme: str = "Bearer"


class McpUpstream(IRModel):
    urls: tuple[str, ...] = Field(description="Full MCP endpoint URLs, one per ready endpoint.")
    transport: Literal["streamable-http", "sse"] = "streamable-http"
    auth: UpstreamAuth | None = None
    timeout: float = 60.0


class ToolArg(IRModel):
    name: str
    description: str = ""
    type: str = "string"
    required: bool = False
    default: Any = None
    enum: tuple[Any, ...] | None = None
    position: Literal["query", "path", "header", "body"] = "query"


class SecretHeader(IRModel):
    """A request header whose value is a credential (kept in Credentials)."""

    name: str
    credential: str = Field(description="Id of the value in Credentials.")
    prefix: str = ""


class HttpTool(IRModel):
    name: str
    description: str = ""
    args: tuple[ToolArg, ...] = ()
    method: str = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: tuple[SecretHeader, ...] = ()
    body_template: str | None = None
    response_template: str = "{{ body }}"
    timeout: float = 30.0


class ModelTool(IRModel):
    model: str
    tool_name: str
    description: str = ""
    max_tokens: int | None = None
    system_prompt: str | None = None


class AggregateMember(IRModel):
    server: str = Field(description="MCPServer id of the member")
    prefix: str = Field(description="Prefix of the member's tool, prompt and resource names")


class SamplingPolicy(IRModel):
    answer: Literal["ifClientCannot", "always", "never"] = "ifClientCannot"
    models: tuple[str, ...]
    max_tokens: int | None = None
    requests_per_minute: int = 10
    model_preferences: ModelPreferences | None = None


class McpServer(IRModel):
    id: str = Field(description="namespace/name of the MCPServer")
    name: str
    path: str
    description: str = ""
    hosts: tuple[str, ...] | None = None
    kind: Literal["upstream", "tools", "aggregate", "modelTools"]
    upstream: McpUpstream | None = None
    tools: tuple[HttpTool, ...] = ()
    members: tuple[AggregateMember, ...] = ()
    model_tools: tuple[ModelTool, ...] = ()
    sampling: SamplingPolicy | None = None


class GatewayConfig(IRModel):
    """Everything a proxy needs but credentials. `hash` covers all other fields."""

    version: Literal["lockgate.io/ir/v1"] = IR_VERSION
    hash: str = ""
    providers: tuple[Provider, ...] = ()
    keys: tuple[ConsumerKey, ...] = ()
    routes: tuple[Route, ...] = ()
    mcp_servers: tuple[McpServer, ...] = ()
    budgets: tuple[Budget, ...] = ()

    def content_hash(self, hash_of: Callable[[IRModel], str] | None = None) -> str:
        """SHA-256 over each part's own hash (a provider, a key, a route, ...) in order, field by field,
        so that a caller who remembers the parts' hashes (`hash_of`) re-hashes only the parts that changed."""
        hash_of = hash_of or part_hash
        digest = hashlib.sha256()
        for name in type(self).model_fields:
            if name == "hash":
                continue
            value = getattr(self, name)
            if isinstance(value, tuple) and all(isinstance(part, IRModel) for part in value):
                digest.update(f"{name}[{len(value)}]".encode())
                for part in value:
                    digest.update(hash_of(part).encode())
            else:
                digest.update(f"{name}={canonical_json(self.model_dump(mode='json', include={name})[name])}".encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def with_hash(self, hash_of: Callable[[IRModel], str] | None = None) -> GatewayConfig:
        return self.model_copy(update={"hash": self.content_hash(hash_of)})


class Credentials(IRModel):
    """Credential id -> value. Published only as the one credentials Secret."""

    values: dict[str, str] = Field(default_factory=dict)

    def content_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.values).encode()).hexdigest()
