"""A whole chat answer an internal caller gets back, and the gateway model that gave it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Completion:
    message: dict[str, Any]  # the OpenAI-shaped assistant message
    finish_reason: str  # stop, length, ...
    model: str  # the gateway model chosen
    input_tokens: int
    output_tokens: int
