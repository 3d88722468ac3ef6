"""Lockgate's contracts: the v1alpha1 custom resources and the gateway config IR."""

from lockgate.api.apikey import ApiKeySpec
from lockgate.api.mcpserver import MCPServerSpec
from lockgate.api.meta import API_VERSION, GROUP, VERSION, Condition, ObjectMeta, ResourceStatus
from lockgate.api.provider import ModelProviderSpec
from lockgate.api.resources import KIND_BY_NAME, KINDS, AnyResource, ApiKey, KindInfo, MCPServer, ModelProvider, Resource, Route
from lockgate.api.route import RouteSpec

__all__ = [
    "API_VERSION", "GROUP", "VERSION", "KINDS", "KIND_BY_NAME", "AnyResource", "ApiKey", "ApiKeySpec", "Condition",
    "KindInfo", "MCPServer", "MCPServerSpec", "ModelProvider", "ModelProviderSpec", "ObjectMeta", "Resource",
    "ResourceStatus", "Route", "RouteSpec",
]
