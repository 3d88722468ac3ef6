"""Reasoning tags (`<think>...</think>`) split out of answer text, incrementally.

`ReasoningSplitter` is a pure state machine fed text deltas as they stream in;
each `feed` returns the (content, reasoning) it can release now. A tag split
across deltas is held back until it is complete, and only the few characters
that could still start a tag are ever held.
"""

from __future__ import annotations


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of text that is a proper prefix of tag."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ReasoningSplitter:
    def __init__(self, open_tag: str = "<think>", close_tag: str = "</think>") -> None:
        self.open_tag = open_tag
        self.close_tag = close_tag
        self.inside = False
        self._held = ""

    def feed(self, text: str) -> tuple[str, str]:
        text = self._held + text
        self._held = ""
        content: list[str] = []
        reasoning: list[str] = []
        while text:
            tag = self.close_tag if self.inside else self.open_tag
            out = reasoning if self.inside else content
            at = text.find(tag)
            if at >= 0:
                out.append(text[:at])
                text = text[at + len(tag):]
                self.inside = not self.inside
                continue
            hold = _partial_suffix(text, tag)
            out.append(text[: len(text) - hold])
            self._held = text[len(text) - hold:]
            break
        return "".join(content), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        """What is still held when the stream ends (an unfinished tag is plain text)."""
        held, self._held = self._held, ""
        return ("", held) if self.inside else (held, "")


def split_reasoning(text: str, open_tag: str = "<think>", close_tag: str = "</think>") -> tuple[str, str]:
    """(content, reasoning) of a whole answer."""
    splitter = ReasoningSplitter(open_tag, close_tag)
    content, reasoning = splitter.feed(text)
    rest_content, rest_reasoning = splitter.flush()
    return content + rest_content, reasoning + rest_reasoning
