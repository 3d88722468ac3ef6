"""The leading prompt text of a request body, for prefix-affinity and pickers.

System prompt first, then the conversation in order: exactly what an
engine's prefix cache can reuse. Works on OpenAI chat/completions/responses
and Anthropic messages bodies; anything else has no prefix.
"""

from __future__ import annotations

from typing import Any

MAX_PREFIX_CHARS = 1_000_000  # the largest loadBalancing.prefixLength


def _text(content: Any) -> str:
    """Text of a content field: a string, or the text parts of a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(part.get("text")) for part in content if isinstance(part, dict))
    return ""


def prompt_prefix(body: dict[str, Any], limit: int = MAX_PREFIX_CHARS) -> str:
    parts: list[str] = []
    size = 0

    def add(role: str, text: str) -> bool:
        nonlocal size
        piece = f"{role}\n{text}\n"
        parts.append(piece)
        size += len(piece)
        return size < limit

    system = body.get("system") if "system" in body else body.get("instructions")
    if system is not None and not add("system", _text(system)):
        return "".join(parts)[:limit]
    turns = body.get("messages")
    if not isinstance(turns, list):
        turns = body.get("input") if isinstance(body.get("input"), list) else None
    if isinstance(turns, list):
        for message in turns:
            if isinstance(message, dict) and not add(str(message.get("role", "")), _text(message.get("content"))):
                break
    else:
        for key in ("prompt", "input"):
            if isinstance(body.get(key), str):
                add("user", body[key])
                break
    return "".join(parts)[:limit]
