"""MCPServer: an MCP server published on the gateway at <path>/mcp."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.duration import Duration
from lockgate.api.grants import AllowedNamespaces
from lockgate.api.gateway_key import GatewayKey
from lockgate.api.mcp_sampling import SamplingPolicy
from lockgate.api.meta import MAX_HOSTS, ApiModel, Host, ResourceStatus, SecretKeyRef, ServiceRef, list_map, repeated
from lockgate.api.provider import URL_PATTERN

ArgType = Literal["string", "number", "integer", "boolean", "array", "object"]
ArgPosition = Literal["query", "path", "header", "body"]
Transport = Literal["streamable-http", "sse"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
TOOL_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"  # an HTTP token
MAX_TOOL_HEADERS = 32
MAX_TOOLS = 256  # bounds the API server's cost estimate of the per-tool CEL rule


class UpstreamAuth(ApiModel):
    """The gateway's own credential for a proxied MCP server."""

    secret_ref: SecretKeyRef = Field(description="The credential the gateway sends upstream (never the client's).")
    header: str = Field(default="Authorization", description="Header that carries it.")
    scheme: str = Field(default="Bearer", description="Prefix before the value; empty for none.")


class McpUpstream(ApiModel):
    """An MCP server the gateway proxies."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.url) != has(self.service)", "message": "set exactly one of url and service"}
            ]
        }
    )

    url: str | None = Field(default=None, pattern=URL_PATTERN, description="Full URL of the upstream MCP endpoint.")
    service: ServiceRef | None = Field(default=None, description="A Service whose ready endpoints serve MCP.")
    path: str = Field(default="/mcp", pattern=r"^/", description="Path on service endpoints.")
    transport: Transport = Field(default="streamable-http", description="streamable-http or sse (the older HTTP+SSE transport).")
    auth: UpstreamAuth | None = Field(default=None, description="A credential from a Secret, sent upstream.")
    timeout: Duration = Field(default="60s", description="Per upstream request.")

    @model_validator(mode="after")
    def _check(self) -> McpUpstream:
        if (self.url is None) == (self.service is None):
            raise ValueError("set exactly one of url and service")
        return self


class ToolArg(ApiModel):
    """An argument of a generated tool, in the tool's input schema."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=128, description="Argument name.")
    description: str = Field(default="", description="Shown to the model in the tool's input schema.")
    type: ArgType = Field(default="string", description="string, number, integer, boolean, array or object.")
    required: bool = Field(default=False, description="Calls without it are refused.")
    default: Any = Field(default=None, description="Value used when the call omits it.")
    enum: list[Any] | None = Field(default=None, description="The only values allowed.")
    position: ArgPosition = Field(default="query", description="Where the value goes: query, path, header or body.")


class SecretValue(ApiModel):
    """A value kept in a Secret."""

    secret_key_ref: SecretKeyRef = Field(description="The Secret key holding the value.")


class HeaderFromSecret(ApiModel):
    """A request header whose value comes from a Secret, so no credential sits in the spec."""

    name: str = Field(pattern=HEADER_NAME, max_length=128, description="Header name, for example X-Api-Key.")
    value_from: SecretValue = Field(description="Where the value is kept.")
    prefix: str = Field(default="", max_length=64, pattern=r"^[^\r\n]*$",
                        description="Text sent before the value, for example \"Bearer \".")


class ToolRequest(ApiModel):
    """The HTTP request a tool call makes."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [{
        "rule": "!has(self.headersFrom) || !has(self.headers) || self.headersFrom.all(h, !(h.name in self.headers))",
        "message": "a header is set either in headers or in headersFrom, not in both",
    }]})

    method: HttpMethod = Field(default="GET", description="GET, POST, PUT, PATCH or DELETE.")
    url: str = Field(pattern=URL_PATTERN, description="URL with {arg} placeholders in its path.")
    headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_TOOL_HEADERS,
                                    description="Fixed request headers; take credentials from a Secret with headersFrom.")
    headers_from: list[HeaderFromSecret] = Field(
        default_factory=list, max_length=MAX_TOOL_HEADERS, json_schema_extra=list_map("name"),
        description="Request headers whose values come from Secrets of this namespace; names are unique.",
    )
    body: str | None = Field(default=None, description="Jinja2 template of the body; default: body args as JSON.")
    timeout: Duration = Field(default="30s", description="Deadline of the HTTP request.")

    @model_validator(mode="after")
    def _check(self) -> ToolRequest:
        fixed = {h.lower() for h in self.headers}
        twice = repeated(h.name.lower() for h in self.headers_from)
        both = sorted(h.name for h in self.headers_from if h.name.lower() in fixed)
        if twice:
            raise ValueError(f"headersFrom names must be unique; repeated: {', '.join(map(repr, twice))}")
        if both:
            raise ValueError(f"a header is set either in headers or in headersFrom, not in both: {', '.join(both)}")
        return self


class ToolResponse(ApiModel):
    """What the model gets back from a tool call."""

    template: str = Field(default="{{ body }}", description="Jinja2 template of the tool result; body is the response text, json the parsed JSON.")


class HttpTool(ApiModel):
    """An MCP tool generated from one HTTP API call."""

    name: str = Field(pattern=TOOL_NAME, description="Tool name, unique in the server.")
    description: str = Field(default="", description="What the tool does, shown to the model.")
    args: list[ToolArg] = Field(default_factory=list, max_length=64, json_schema_extra=list_map("name"),
                                description="The tool's arguments; names are unique.")
    request: ToolRequest = Field(description="The HTTP request a call makes.")
    response: ToolResponse = Field(default_factory=ToolResponse, description="How the answer is rendered.")

    @model_validator(mode="after")
    def _check(self) -> HttpTool:
        names = [a.name for a in self.args]
        if len(names) != len(set(names)):
            raise ValueError(f"tool {self.name}: argument names must be unique")
        return self


class Aggregate(ApiModel):
    """Several MCPServers published as one."""

    servers: list[str] = Field(
        min_length=1,
        description="MCPServers to combine: a name in this namespace, or namespace/name of a server that allows this"
        " namespace; tools get the server's name as prefix.",
    )


class ModelTool(ApiModel):
    """A gateway model offered as an MCP tool (a prompt in, the answer out)."""

    model: str = Field(min_length=1, description="A gateway model or alias.")
    tool_name: str = Field(pattern=TOOL_NAME, description="Tool name, unique in the server.")
    description: str = Field(default="", description="What the tool is for, shown to the calling model.")
    max_tokens: int | None = Field(default=None, ge=1, description="Default cap on the answer.")
    system_prompt: str | None = Field(default=None, description="System message sent with every call.")


class MCPServerSpec(ApiModel):
    """Where the MCP server is published and where its tools come from (exactly one kind)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.upstream), has(self.tools), has(self.aggregate), has(self.modelTools)]"
                    ".filter(x, x).size() == 1",
                    "message": "set exactly one of upstream, tools, aggregate and modelTools",
                }
            ]
        }
    )

    path: str = Field(pattern=r"^/[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$", description="Published at <path>/mcp, <path>/sse and <path>/message.")
    description: str = Field(default="", description="What the server offers, for people and models.")
    hosts: list[Host] | None = Field(default=None, max_length=MAX_HOSTS,
                                     description="Allowed Host/Origin names; default: the gateway's hosts.")
    upstream: McpUpstream | None = Field(default=None, description="Proxy an MCP server (one of four kinds).")
    tools: list[HttpTool] | None = Field(
        default=None, max_length=MAX_TOOLS, json_schema_extra=list_map("name"),
        description="Tools generated from HTTP API calls (one of four kinds); names are unique.",
    )
    aggregate: Aggregate | None = Field(default=None, description="Combine MCPServers into one (one of four kinds).")
    model_tools: list[ModelTool] | None = Field(default=None, description="Gateway models as tools (one of four kinds).")
    allowed_namespaces: AllowedNamespaces = Field(
        default_factory=AllowedNamespaces,
        description="Namespaces whose ApiKeys and aggregates may use this server; default: only this namespace.",
    )
    sampling: SamplingPolicy | None = Field(
        default=None, description="Answer the upstream's sampling requests with gateway models (upstream kind); "
                                  "without it they go to the client.")
    gateway_key: GatewayKey | None = Field(
        default=None, description="A generated key of the server's own for the gateway's model API (any kind).")

    @model_validator(mode="after")
    def _check(self) -> MCPServerSpec:
        kinds = [self.upstream, self.tools, self.aggregate, self.model_tools]
        if sum(k is not None for k in kinds) != 1:
            raise ValueError("set exactly one of upstream, tools, aggregate and modelTools")
        twice = repeated(t.name for t in self.tools or [])
        if twice:
            raise ValueError(f"tool names must be unique; repeated: {', '.join(map(repr, twice))}")
        return self

    @property
    def kind(self) -> Literal["upstream", "tools", "aggregate", "modelTools"]:
        if self.upstream is not None:
            return "upstream"
        if self.tools is not None:
            return "tools"
        if self.aggregate is not None:
            return "aggregate"
        return "modelTools"


class MCPServerStatus(ResourceStatus):
    """What the operator reports on an MCPServer."""

    url: str | None = Field(default=None, description="Path the server is published at.")
    tool_count: int | None = Field(default=None, description="Tools known to the gateway.")
    gateway_key_secret: str | None = Field(default=None, description="The Secret holding the server's gateway key.")
    key_hash_prefix: str | None = Field(default=None, description="First characters of the gateway key's SHA-256.")


