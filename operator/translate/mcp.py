"""MCPServer -> ir.McpServer: proxied upstreams, HTTP tools, aggregates and
model tools."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.api import ir
from lockgate.api.duration import parse_duration
from lockgate.api.grants import AllowedNamespaces
from lockgate.api.mcp_sampling import SamplingPolicy
from lockgate.api.mcpserver import HttpTool, McpUpstream
from lockgate.api.resources import MCPServer
from lockgate.operator.translate.bundle import Bundle
from lockgate.operator.translate.conditions import NotReady, Rejected
from lockgate.operator.translate.discovery import ready_endpoints
from lockgate.operator.translate.routes import preferences_of
from lockgate.operator.translate.secrets import secret_value
from lockgate.operator.translate.templates import check_template
from lockgate.operator.translate.tenancy import ModelPools, permitted_server, server_ref

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def credential_id(namespace: str, name: str) -> str:
    return f"mcp/{namespace}/{name}"


def header_credential_id(namespace: str, name: str, tool: str, header: str) -> str:
    return f"{credential_id(namespace, name)}/tools/{tool}/headers/{header.lower()}"


@dataclass
class McpOutcome:
    server: ir.McpServer
    credentials: dict[str, str] = field(default_factory=dict)
    not_ready: NotReady | None = None
    fields: dict[str, object] = field(default_factory=dict)

    @property
    def tool_count(self) -> int | None:
        """None when only the upstream knows its tools."""
        count = self.fields.get("toolCount")
        return count if isinstance(count, int) else None


def translate_mcp(
    obj: MCPServer,
    bundle: Bundle,
    pools: ModelPools,
    aliases: Collection[str],
    accepted: Mapping[str, ir.McpServer],
    tool_counts: Mapping[str, int | None],
    grants: Mapping[str, AllowedNamespaces],
) -> McpOutcome:
    """`pools`: the models each namespace may use; `aliases`: the virtual
    models of the server's namespace; `accepted`: servers accepted so far by
    id (aggregates come last), with their known tool counts (None when only
    the upstream knows) and their grants."""
    spec, ns, name = obj.spec, obj.metadata.namespace, obj.metadata.name

    sampling = _sampling(spec.sampling, spec.kind, pools, ns)

    def make_server(**kind_fields: Any) -> ir.McpServer:
        return ir.McpServer(id=f"{ns}/{name}", name=name, path=spec.path, description=spec.description,
                            hosts=tuple(spec.hosts) if spec.hosts is not None else None, kind=spec.kind,
                            sampling=sampling, **kind_fields)

    fields: dict[str, object] = {"url": f"{spec.path}/mcp", "toolCount": None}
    if spec.upstream is not None:
        upstream, credentials, not_ready = _upstream(spec.upstream, bundle, ns, name)
        return McpOutcome(make_server(upstream=upstream), credentials, not_ready, fields)
    if spec.tools is not None:
        header_values: dict[str, str] = {}
        tools: list[ir.HttpTool] = []
        for i, http_tool in enumerate(spec.tools):
            built, tool_credentials = _http_tool(http_tool, i, bundle, ns, name)
            tools.append(built)
            header_values.update(tool_credentials)
        fields["toolCount"] = len(tools)
        return McpOutcome(make_server(tools=tuple(tools)), header_values, fields=fields)
    if spec.aggregate is not None:
        members = []
        counts: list[int | None] = []
        for i, member in enumerate(spec.aggregate.servers):
            member_id = server_ref(ns, member)
            server = accepted.get(member_id)
            if server is None:
                raise Rejected(
                    "UnknownServer",
                    f"spec.aggregate.servers[{i}]: no accepted MCPServer {member_id} to aggregate"
                    " (aggregates combine proxied, tool and model-tool servers)",
                )
            if not permitted_server(ns, member_id, grants):
                raise Rejected(
                    "RefNotPermitted",
                    f"spec.aggregate.servers[{i}]: MCPServer {member_id} does not allow namespace {ns}"
                    " (its spec.allowedNamespaces)",
                )
            members.append(ir.AggregateMember(server=member_id, prefix=server.name))
            counts.append(tool_counts.get(member_id))
        twice = sorted({m.prefix for m in members if sum(o.prefix == m.prefix for o in members) > 1})
        if twice:
            raise Rejected("InvalidSpec", f"spec.aggregate.servers: members share the name (tool prefix) {', '.join(twice)}")
        fields["toolCount"] = None if any(c is None for c in counts) else sum(c or 0 for c in counts)
        return McpOutcome(make_server(members=tuple(members)), fields=fields)
    model_tools = []
    for i, tool in enumerate(spec.model_tools or []):
        pools.require(ns, [tool.model], f"spec.modelTools[{i}].model (a provider model or an alias)", also=aliases)
        model_tools.append(ir.ModelTool.model_validate(tool.model_dump()))
    fields["toolCount"] = len(model_tools)
    return McpOutcome(make_server(model_tools=tuple(model_tools)), fields=fields)


def _sampling(policy: SamplingPolicy | None, kind: str, pools: ModelPools, ns: str) -> ir.SamplingPolicy | None:
    if policy is None:
        return None
    if kind != "upstream":
        raise Rejected("InvalidSpec", "spec.sampling: only a proxied server (spec.upstream) asks for sampling")
    pools.require(ns, policy.models, "spec.sampling.models (provider models)")
    return ir.SamplingPolicy(answer=policy.answer, models=tuple(policy.models), max_tokens=policy.max_tokens,
                             requests_per_minute=policy.requests_per_minute,
                             model_preferences=preferences_of(policy.model_preferences))


def _upstream(up: McpUpstream, bundle: Bundle, ns: str, name: str) -> tuple[ir.McpUpstream, dict[str, str], NotReady | None]:
    credentials: dict[str, str] = {}
    auth: ir.UpstreamAuth | None = None
    if up.auth is not None:
        cred = credential_id(ns, name)
        credentials[cred] = secret_value(bundle, ns, up.auth.secret_ref, "spec.upstream.auth.secretRef")
        auth = ir.UpstreamAuth(credential=cred, header=up.auth.header, scheme=up.auth.scheme)
    not_ready: NotReady | None = None
    if up.url is not None:
        urls: tuple[str, ...] = (up.url,)
    else:
        assert up.service is not None
        endpoints = ready_endpoints(bundle, ns, up.service)
        urls = tuple(f"http://{_host(e.address)}:{e.port}{up.path}" for e in endpoints)
        if not urls:
            not_ready = NotReady(
                "NoEndpoints", f"Service {ns}/{up.service.name} has no ready endpoints on port {up.service.port!r}"
            )
    upstream = ir.McpUpstream(urls=urls, transport=up.transport, auth=auth, timeout=parse_duration(up.timeout))
    return upstream, credentials, not_ready


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _http_tool(tool: HttpTool, index: int, bundle: Bundle, ns: str, name: str) -> tuple[ir.HttpTool, dict[str, str]]:
    """The IR tool, and the values of its secret headers (for the credentials Secret only)."""
    where = f"spec.tools[{index}] ({tool.name})"
    path_args = {a.name for a in tool.args if a.position == "path"}
    placeholders = set(PLACEHOLDER.findall(tool.request.url))
    stray = sorted(placeholders - path_args)
    if stray:
        raise Rejected(
            "InvalidTool", f"{where}: request.url placeholders {', '.join('{' + s + '}' for s in stray)} need args with position: path"
        )
    unused = sorted(path_args - placeholders)
    if unused:
        raise Rejected("InvalidTool", f"{where}: path args {', '.join(unused)} have no {{name}} placeholder in request.url")
    if tool.request.body is not None:
        check_template(tool.request.body, f"{where}.request.body")
    check_template(tool.response.template, f"{where}.response.template")
    credentials: dict[str, str] = {}
    secret_headers = []
    for j, header in enumerate(tool.request.headers_from):
        cred = header_credential_id(ns, name, tool.name, header.name)
        value = secret_value(bundle, ns, header.value_from.secret_key_ref,
                             f"spec.tools[{index}].request.headersFrom[{j}] ({header.name})")
        if any(c in value for c in "\r\n\0"):
            raise Rejected("InvalidSecret", f"{where}: the value of header {header.name} has a line break"
                           " (a trailing newline? store the value with printf or --from-literal)")
        credentials[cred] = value
        secret_headers.append(ir.SecretHeader(name=header.name, credential=cred, prefix=header.prefix))
    return ir.HttpTool(
        name=tool.name,
        description=tool.description,
        args=tuple(ir.ToolArg.model_validate(a.model_dump()) for a in tool.args),
        method=tool.request.method,
        url=tool.request.url,
        headers=dict(tool.request.headers),
        secret_headers=tuple(secret_headers),
        body_template=tool.request.body,
        response_template=tool.response.template,
        timeout=parse_duration(tool.request.timeout),
    ), credentials
