"""MCPServer: an MCP server published on the gateway at <path>/mcp."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.duration import Duration
from lockgate.api.grants import AllowedNamespaces
from lockgate.api.meta import ApiModel, ResourceStatus, SecretKeyRef, ServiceRef, repeated
from lockgate.api.provider import URL_PATTERN

ArgType = Literal["string", "number", "integer", "boolean", "array", "object"]
ArgPosition = Literal["query", "path", "header", "body"]
Transport = Literal["streamable-http", "sse"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
TOOL_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class UpstreamAuth(ApiModel):
    secret_ref: SecretKeyRef = Field(description="The credential the gateway sends upstream (never the client's).")
    header: str = Field(default="Authorization", description="Header that carries it.")
    scheme: str = Field(default="Bearer", description="Prefix before the value; empty for none.")


class McpUpstream(ApiModel):
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
    auth: UpstreamAuth | None = None
    timeout: Duration = Field(default="60s", description="Per upstream request.")

    @model_validator(mode="after")
    def _check(self) -> McpUpstream:
        if (self.url is None) == (self.service is None):
            raise ValueError("set exactly one of url and service")
        return self


class ToolArg(ApiModel):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    description: str = ""
    type: ArgType = "string"
    required: bool = False
    default: Any = None
    enum: list[Any] | None = None
    position: ArgPosition = Field(default="query", description="Where the value goes: query, path, header or body.")


class ToolRequest(ApiModel):
    method: HttpMethod = "GET"
    url: str = Field(pattern=URL_PATTERN, description="URL with {arg} placeholders in its path.")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="Jinja2 template of the body; default: body args as JSON.")
    timeout: Duration = "30s"


class ToolResponse(ApiModel):
    template: str = Field(default="{{ body }}", description="Jinja2 template of the tool result; body is the response text, json the parsed JSON.")


class HttpTool(ApiModel):
    name: str = Field(pattern=TOOL_NAME)
    description: str = ""
    args: list[ToolArg] = Field(default_factory=list)
    request: ToolRequest
    response: ToolResponse = Field(default_factory=ToolResponse)

    @model_validator(mode="after")
    def _check(self) -> HttpTool:
        names = [a.name for a in self.args]
        if len(names) != len(set(names)):
            raise ValueError(f"tool {self.name}: argument names must be unique")
        return self


class Aggregate(ApiModel):
    servers: list[str] = Field(
        min_length=1,
        description="MCPServers to combine: a name in this namespace, or namespace/name of a server that allows this"
        " namespace; tools get the server's name as prefix.",
    )


class ModelTool(ApiModel):
    model: str = Field(min_length=1, description="A gateway model or alias.")
    tool_name: str = Field(pattern=TOOL_NAME)
    description: str = ""
    max_tokens: int | None = Field(default=None, ge=1, description="Default cap on the answer.")
    system_prompt: str | None = None


class MCPServerSpec(ApiModel):
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
    description: str = ""
    hosts: list[str] | None = Field(default=None, description="Allowed Host/Origin names; default: the gateway's hosts.")
    upstream: McpUpstream | None = None
    tools: list[HttpTool] | None = None
    aggregate: Aggregate | None = None
    model_tools: list[ModelTool] | None = None
    allowed_namespaces: AllowedNamespaces = Field(
        default_factory=AllowedNamespaces,
        description="Namespaces whose ApiKeys and aggregates may use this server; default: only this namespace.",
    )

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
    url: str | None = Field(default=None, description="Path the server is published at.")
    tool_count: int | None = Field(default=None, description="Tools known to the gateway.")


