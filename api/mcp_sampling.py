"""MCPServer sampling policy: when the gateway answers an upstream's `sampling/createMessage`
with one of its own models, and within which bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lockgate.api.meta import ApiModel
from lockgate.api.route import ModelPreferences

SamplingAnswer = Literal["ifClientCannot", "always", "never"]


class SamplingPolicy(ApiModel):
    """The gateway answers the server's sampling requests with a gateway model, charged to the calling key."""

    answer: SamplingAnswer = Field(
        default="ifClientCannot",
        description="ifClientCannot: when the client did not declare the sampling capability (else the client is "
                    "asked, as without a policy); always: the gateway answers every one; never: it answers none.")
    models: list[str] = Field(min_length=1, max_length=64,
                              description="The models answers may come from, chosen by the request's "
                                          "modelPreferences (hints first, then the priorities).")
    max_tokens: int | None = Field(default=None, ge=1, description="Cap on an answer's tokens, over the request's "
                                                                   "own maxTokens.")
    requests_per_minute: int = Field(default=10, ge=1, le=100000,
                                     description="Sampling requests answered per minute for each calling key.")
    model_preferences: ModelPreferences | None = Field(
        default=None, description="Defaults for what a request's modelPreferences leave unsaid.")
