"""ApiKey: a consumer's key, its allowlists and its limits."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.meta import DNS_SUBDOMAIN, ApiModel, ResourceStatus, SecretKeyRef

GENERATED_KEY_FIELD = "api-key"
ROTATE_ANNOTATION = "lockgate.io/rotate"
# During a rotation the key Secret also holds the previous key, honoured until
# the RFC 3339 instant in this annotation of the Secret.
PREVIOUS_KEY_FIELD = "previous-api-key"
PREVIOUS_KEY_EXPIRES_ANNOTATION = "lockgate.io/previous-key-expires"


class KeyLimits(ApiModel):
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens (input + output) per minute.")
    monthly_tokens: int | None = Field(default=None, ge=1, description="Tokens per calendar month, UTC.")


class ApiKeySpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.secretName) != has(self.existingSecret)",
                    "message": "set exactly one of secretName and existingSecret",
                }
            ]
        }
    )

    consumer: str = Field(min_length=1, max_length=128, description="The consumer dimension in metrics and usage.")
    secret_name: str | None = Field(
        default=None, pattern=DNS_SUBDOMAIN, max_length=253,
        description="Secret the operator generates the key into (key \"api-key\").",
    )
    existing_secret: SecretKeyRef | None = Field(default=None, description="Bring your own key instead of a generated one.")
    expires_at: datetime | None = Field(default=None, description="After this instant every call gets 401; omitted = never.")
    models: list[str] | None = Field(default=None, description="Model name globs this key may use; omitted = all models.")
    limits: KeyLimits | None = Field(default=None, description="Limits across all models of this key.")
    model_limits: dict[str, KeyLimits] = Field(default_factory=dict, description="Per-model limits, on top of limits.")
    routes: list[str] | None = Field(default=None, description="Template Routes this key may call; omitted = all.")
    mcp_servers: list[str] | None = Field(
        default=None, description="MCPServers this key may use: a name in this namespace, or namespace/name of a server that"
        " allows this namespace; omitted = none.",
    )
    mcp_tools: dict[str, list[str]] = Field(
        default_factory=dict, description="Per MCPServer, the tool name globs this key may call; a server not listed allows all its tools."
    )
    rotation_grace: str = Field(
        default="1h", pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
        description="How long the previous key keeps working after a rotation.",
    )

    @model_validator(mode="after")
    def _check(self) -> ApiKeySpec:
        if (self.secret_name is None) == (self.existing_secret is None):
            raise ValueError("set exactly one of secretName and existingSecret")
        return self


class KeyUsage(ApiModel):
    month: str = Field(description="Calendar month, UTC, as YYYY-MM.")
    tokens: int = Field(ge=0, description="Tokens used this month.")
    remaining: int | None = Field(default=None, description="Tokens left this month, if the key has a budget.")
    requests: int = Field(default=0, ge=0)


class ApiKeyStatus(ResourceStatus):
    secret_name: str | None = Field(default=None, description="The Secret holding the key.")
    key_hash_prefix: str | None = Field(default=None, description="First characters of the key's SHA-256, to tell keys apart.")
    rotated_at: datetime | None = None
    usage: KeyUsage | None = None
