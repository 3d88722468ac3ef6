"""Route: what a host exposes (the OpenAI API, virtual models, prompt templates)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.duration import Duration
from lockgate.api.meta import ApiModel, ResourceStatus, repeated

RouteType = Literal["openai", "chatTemplate"]
VariableType = Literal["string", "number", "integer", "boolean", "array", "object"]
HOST_PATTERN = re.compile(r"^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]+)?$|^\*$")


class AliasTarget(ApiModel):
    model: str = Field(min_length=1)
    weight: int = Field(default=1, ge=0, le=10000)


class Alias(ApiModel):
    name: str = Field(min_length=1, description="The virtual model name clients ask for.")
    targets: list[AliasTarget] = Field(min_length=1, description="Models chosen by weight.")
    fallbacks: list[str] = Field(default_factory=list, description="Models tried in order when every target failed.")


class Variable(ApiModel):
    type: VariableType = "string"
    description: str = ""
    required: bool = False
    default: Any = None
    enum: list[Any] | None = None
    items: Variable | None = Field(default=None, description="Item type of an array.")


class ChatTemplate(ApiModel):
    model: str = Field(min_length=1, description="Model (or alias) that answers.")
    variables: dict[str, Variable] = Field(default_factory=dict, description="The JSON fields callers post.")
    system_prompt: str | None = Field(default=None, description="Optional system message (a template too).")
    prompt_template: str = Field(min_length=1, description="Jinja2 template of the user message.")
    response: Literal["text", "json"] = Field(default="text", description="text, or json: the answer parsed as JSON.")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra chat parameters (temperature, max_tokens, ...).")


class RouteSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.type != 'chatTemplate' || (has(self.chatTemplate) && has(self.path))",
                 "message": "a chatTemplate route needs path and chatTemplate"},
                {"rule": "self.type != 'openai' || !has(self.chatTemplate)",
                 "message": "chatTemplate is only for type chatTemplate"},
            ]
        }
    )

    type: RouteType = Field(description="openai or chatTemplate.")
    hosts: list[str] = Field(default_factory=lambda: ["*"], description="Host names (or *.suffix, or *) this route serves.")
    models: list[str] = Field(default_factory=lambda: ["*"], description="Model name globs visible on these hosts (openai).")
    aliases: list[Alias] = Field(default_factory=list, description="Virtual models (openai).")
    path: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$", description="Path of a chatTemplate API.")
    timeout: Duration | None = Field(default=None, description="Whole-request timeout.")
    chat_template: ChatTemplate | None = None

    @model_validator(mode="after")
    def _check(self) -> RouteSpec:
        for host in self.hosts:
            if not HOST_PATTERN.match(host):
                raise ValueError(f"invalid host {host!r}")
        if self.type == "chatTemplate" and (self.chat_template is None or self.path is None):
            raise ValueError("a chatTemplate route needs path and chatTemplate")
        if self.type == "openai" and self.chat_template is not None:
            raise ValueError("chatTemplate is only for type chatTemplate")
        twice = repeated(a.name for a in self.aliases)
        if twice:
            raise ValueError(f"alias names must be unique; repeated: {', '.join(map(repr, twice))}")
        return self


class RouteStatus(ResourceStatus):
    pass
