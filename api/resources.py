"""The four custom resources and what the CRDs say about each kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from lockgate.api.apikey import ApiKeySpec, ApiKeyStatus
from lockgate.api.budget import BudgetSpec, BudgetStatus
from lockgate.api.mcpserver import MCPServerSpec, MCPServerStatus
from lockgate.api.meta import API_VERSION, ObjectMeta, ResourceStatus
from lockgate.api.provider import ModelProviderSpec, ModelProviderStatus
from lockgate.api.route import RouteSpec, RouteStatus

SpecT = TypeVar("SpecT", bound=BaseModel)
StatusT = TypeVar("StatusT", bound=ResourceStatus)


class Resource(BaseModel, Generic[SpecT, StatusT]):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["lockgate.io/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: str
    metadata: ObjectMeta
    spec: SpecT
    status: StatusT | None = None

    @property
    def ref(self) -> str:
        """`namespace/name`, the id used throughout the IR and statuses."""
        return f"{self.metadata.namespace}/{self.metadata.name}"


class ModelProvider(Resource[ModelProviderSpec, ModelProviderStatus]):
    kind: Literal["ModelProvider"] = "ModelProvider"


class ApiKey(Resource[ApiKeySpec, ApiKeyStatus]):
    kind: Literal["ApiKey"] = "ApiKey"


class Route(Resource[RouteSpec, RouteStatus]):
    kind: Literal["Route"] = "Route"


class MCPServer(Resource[MCPServerSpec, MCPServerStatus]):
    kind: Literal["MCPServer"] = "MCPServer"


class Budget(Resource[BudgetSpec, BudgetStatus]):
    kind: Literal["Budget"] = "Budget"


READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class KindInfo:
    """What the CRD of a kind declares besides its schema."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    model: type[Resource[Any, Any]]
    spec: type[BaseModel]
    status: type[ResourceStatus]
    description: str
    printer_columns: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.lockgate.io"


def _col(name: str, path: str, type_: str = "string", priority: int = 0, description: str = "") -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    if description:
        col["description"] = description
    return col


_AGE = _col("Age", ".metadata.creationTimestamp", "date")
_READY = _col("Ready", READY, description="Ready condition")

KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        "ModelProvider", "modelproviders", "modelprovider", ("mp", "mprov"), ModelProvider,
        ModelProviderSpec, ModelProviderStatus,
        "An upstream that serves models: OpenAI, Azure OpenAI, Anthropic, or self-hosted endpoints of a Service.",
        (_col("Type", ".spec.type"), _col("Models", ".status.models"), _col("Endpoints", ".status.readyEndpoints", "integer"),
         _col("Priority", ".spec.priority", "integer", 1), _READY, _AGE),
    ),
    KindInfo(
        "ApiKey", "apikeys", "apikey", ("ak", "lgkey"), ApiKey, ApiKeySpec, ApiKeyStatus,
        "A consumer's key with model allowlists, expiry, rate limits and a monthly token budget.",
        (_col("Consumer", ".spec.consumer"), _col("Secret", ".status.secretName"), _col("Expires", ".spec.expiresAt"),
         _col("Tokens", ".status.usage.tokens", "integer", 1), _READY, _AGE),
    ),
    KindInfo(
        "Route", "routes", "route", ("lgr", "lgroute"), Route, RouteSpec, RouteStatus,
        "What a host exposes: the OpenAI API, virtual models, or a prompt template published as an API.",
        (_col("Type", ".spec.type"), _col("Hosts", ".spec.hosts"), _col("Path", ".spec.path"), _READY, _AGE),
    ),
    KindInfo(
        "MCPServer", "mcpservers", "mcpserver", ("mcp", "mcps"), MCPServer, MCPServerSpec, MCPServerStatus,
        "An MCP server published on the gateway: proxied, aggregated, generated from an HTTP API, or over gateway models.",
        (_col("Path", ".spec.path"), _col("Tools", ".status.toolCount", "integer"), _READY, _AGE),
    ),
    KindInfo(
        "Budget", "budgets", "budget", ("lgb", "lgbudget"), Budget, BudgetSpec, BudgetStatus,
        "A team's monthly budget in tokens and money, shared by the ApiKeys that name it.",
        (_col("Tokens", ".status.usage.tokens", "integer"), _col("Cost", ".status.usage.cost"),
         _col("Remaining", ".status.usage.remainingCost"), _col("Currency", ".spec.currency", priority=1), _READY, _AGE),
    ),
)

KIND_BY_NAME: dict[str, KindInfo] = {k.kind: k for k in KINDS}
AnyResource = ModelProvider | ApiKey | Route | MCPServer | Budget
