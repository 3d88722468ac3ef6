"""What the proxy tells the balancer about a request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PickRequest:
    model: str
    prefix: str = ""  # leading prompt text (system prompt, history) for prefix-affinity
    prompt_tokens: int = 0  # estimated
    max_tokens: int = 0
    excluded: frozenset[str] = frozenset()  # endpoint URLs not to choose (ejected, already tried)
