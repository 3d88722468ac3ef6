"""Route: what a host exposes (the OpenAI API, virtual models, prompt templates)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from lockgate.api.cache import RouteCache
from lockgate.api.duration import Duration
from lockgate.api.meta import MAX_HOSTS, ApiModel, Host, ResourceStatus, list_map, repeated

RouteType = Literal["openai", "chatTemplate"]
VariableType = Literal["string", "number", "integer", "boolean", "array", "object"]


class AliasTarget(ApiModel):
    """One model an alias may send a request to."""

    model: str = Field(min_length=1, description="A model name served by a ModelProvider.")
    weight: int = Field(default=1, ge=0, le=10000, description="Share of the alias' requests; 0 takes none.")


class ModelHint(ApiModel):
    """A hint at a model: any model whose name contains it (case-insensitive)."""

    name: str = Field(min_length=1, max_length=256, description="A substring of the wanted model's name.")


class ModelPreferences(ApiModel):
    """MCP's `modelPreferences`: hints first, in order, then the priorities (0 to 1, 1 = matters most)."""

    hints: list[ModelHint] = Field(default_factory=list, max_length=16, description="Tried in order; first match wins.")
    cost_priority: float | None = Field(default=None, ge=0, le=1, description="How much a low price matters.")
    speed_priority: float | None = Field(default=None, ge=0, le=1,
                                         description="How much measured speed (first token, tokens/s) matters.")
    intelligence_priority: float | None = Field(default=None, ge=0, le=1,
                                                description="How much the declared intelligence score matters.")


class Alias(ApiModel):
    """A virtual model: one name for several models, by weight (or by preferences), with fallbacks."""

    name: str = Field(min_length=1, description="The virtual model name clients ask for.")
    targets: list[AliasTarget] = Field(min_length=1, description="Models chosen by weight (the candidates, "
                                                                 "for strategy preferences).")
    fallbacks: list[str] = Field(default_factory=list, description="Models tried in order when every target failed.")
    strategy: Literal["weighted", "preferences"] = Field(
        default="weighted", description="weighted: targets drawn by weight; preferences: the candidates scored by "
                                        "the request's modelPreferences (or these defaults), best first.")
    preferences: ModelPreferences | None = Field(
        default=None, description="Defaults for what a request's modelPreferences leave unsaid (strategy preferences).")


class Variable(ApiModel):
    """A field of the JSON a template API takes (JSON Schema, simplified)."""

    type: VariableType = Field(default="string", description="string, number, integer, boolean, array or object.")
    description: str = Field(default="", description="Shown in the API's schema.")
    required: bool = Field(default=False, description="Calls without it get 400.")
    default: Any = Field(default=None, description="Value used when the call omits it.")
    enum: list[Any] | None = Field(default=None, description="The only values allowed.")
    items: Variable | None = Field(default=None, description="Item type of an array.")


class ChatTemplate(ApiModel):
    """A prompt template published as a JSON API: variables in, a model's answer out."""

    model: str = Field(min_length=1, description="Model (or alias) that answers.")
    variables: dict[str, Variable] = Field(default_factory=dict, description="The JSON fields callers post.")
    system_prompt: str | None = Field(default=None, description="Optional system message (a template too).")
    prompt_template: str = Field(min_length=1, description="Jinja2 template of the user message.")
    response: Literal["text", "json"] = Field(default="text", description="text, or json: the answer parsed as JSON.")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra chat parameters (temperature, max_tokens, ...).")


class RouteQueue(ApiModel):
    """How long this Route's requests may wait for capacity."""

    max_wait: Duration = Field(description="Replaces the providers' queue.maxWait for requests through this Route.")


class RouteSpec(ApiModel):
    """What clients of some hosts may call."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.type != 'chatTemplate' || (has(self.chatTemplate) && has(self.path))",
                 "message": "a chatTemplate route needs path and chatTemplate"},
                {"rule": "self.type != 'openai' || !has(self.chatTemplate)",
                 "message": "chatTemplate is only for type chatTemplate"},
                {"rule": "!has(self.cache) || self.type == 'openai'",
                 "message": "cache is only for type openai"},
            ]
        }
    )

    type: RouteType = Field(description="openai or chatTemplate.")
    hosts: list[Host] = Field(default_factory=lambda: ["*"], max_length=MAX_HOSTS, json_schema_extra={"default": ["*"]},
                              description="Host names (or *.suffix, or *) this route serves.")
    models: list[str] = Field(default_factory=lambda: ["*"], json_schema_extra={"default": ["*"]},
                              description="Model name globs visible on these hosts (openai).")
    aliases: list[Alias] = Field(default_factory=list, json_schema_extra=list_map("name"),
                                 description="Virtual models (openai); names are unique.")
    path: str | None = Field(default=None, pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$", description="Path of a chatTemplate API.")
    timeout: Duration | None = Field(default=None, description="Whole-request timeout.")
    chat_template: ChatTemplate | None = Field(default=None, description="The template API (chatTemplate).")
    cache: RouteCache | None = Field(default=None, description="Response caching on this Route (openai); omitted = none.")
    priority: Literal["interactive", "batch"] | None = Field(
        default=None, description="Class of its requests in the queues for capacity: batch makes every request "
                                  "through it batch; omitted or interactive: the key's class.")
    queue: RouteQueue | None = Field(default=None, description="Waiting for capacity, over the providers' queue.")

    @model_validator(mode="after")
    def _check(self) -> RouteSpec:
        if self.type == "chatTemplate" and (self.chat_template is None or self.path is None):
            raise ValueError("a chatTemplate route needs path and chatTemplate")
        if self.type == "openai" and self.chat_template is not None:
            raise ValueError("chatTemplate is only for type chatTemplate")
        if self.cache is not None and self.type != "openai":
            raise ValueError("cache is only for type openai")
        twice = repeated(a.name for a in self.aliases)
        if twice:
            raise ValueError(f"alias names must be unique; repeated: {', '.join(map(repr, twice))}")
        return self


class RouteStatus(ResourceStatus):
    """What the operator reports on a Route."""
