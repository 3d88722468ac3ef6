"""Spans as the proxy records them: a few slots per span, one `getrandbits` per
id, one clock read per start and end, handed to the exporter when they end.
The official SDK's spans cost about ten times as much per request (locks,
bounded attribute containers, processor fan-out), more than a gateway's whole
own work per request; these carry only what OTLP needs.

A span's attributes are two parts: `fixed`, a `Fixed` set shared by every
span of the same kind of request (the provider, model, route, consumer: made
once, then looked up, and encoded once by the exporter), and `attributes`, a
small dict of what is this request's own (its id, tokens, status).

W3C trace context (`traceparent`, `tracestate`) is parsed and written here:
an invalid header is ignored (a new trace starts), as the specification says.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Literal

AttributeValue = str | bool | int | float | list[str]
Kind = Literal[1, 2, 3]  # OTLP's SpanKind: INTERNAL, SERVER, CLIENT
INTERNAL: Kind = 1
SERVER: Kind = 2
CLIENT: Kind = 3
STATUS_ERROR = 2

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_getrandbits = random.getrandbits
_time_ns = time.time_ns

# The span requests made now belong to (MCP upstream calls look it up).
CURRENT: ContextVar[Span | None] = ContextVar("lockgate_current_span", default=None)


class Parent:
    """A remote parent: the client's `traceparent`."""

    __slots__ = ("trace_id", "span_id", "sampled", "tracestate")

    def __init__(self, trace_id: int, span_id: int, sampled: bool, tracestate: str) -> None:
        self.trace_id, self.span_id, self.sampled, self.tracestate = trace_id, span_id, sampled, tracestate


def parse_traceparent(headers: Mapping[str, str]) -> Parent | None:
    value = headers.get("traceparent")
    if not value:
        return None
    found = _TRACEPARENT.match(value.strip())
    if found is None:
        return None
    version, trace_hex, span_hex, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_hex) == {"0"} or set(span_hex) == {"0"}:
        return None
    return Parent(int(trace_hex, 16), int(span_hex, 16), bool(int(flags, 16) & 1), headers.get("tracestate", ""))


class Fixed:
    """Attributes shared by many spans, never changed once made (their OTLP encoding is kept in `encoded`)."""

    __slots__ = ("attributes", "encoded")

    def __init__(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.attributes = attributes
        self.encoded: bytes | None = None  # filled by the exporter on first use


class FixedCache:
    """`Fixed` sets by a key naming what they are made of; bounded (cleared when full)."""

    __slots__ = ("_sets", "_max")

    def __init__(self, max_size: int = 4096) -> None:
        self._sets: dict[object, Fixed] = {}
        self._max = max_size

    def get(self, key: object) -> Fixed | None:
        return self._sets.get(key)

    def put(self, key: object, attributes: Mapping[str, AttributeValue]) -> Fixed:
        if len(self._sets) >= self._max:
            self._sets.clear()
        fixed = self._sets[key] = Fixed(attributes)
        return fixed


class Span:
    __slots__ = ("trace_id", "span_id", "parent_id", "name", "kind", "start", "finish", "attributes", "fixed",
                 "status", "description", "sampled", "tracestate", "_done")

    def __init__(self, trace_id: int, parent_id: int, name: str, kind: Kind, attributes: dict[str, AttributeValue],
                 sampled: bool, tracestate: str, done: Callable[[Span], None], fixed: Fixed | None = None) -> None:
        self.trace_id, self.span_id, self.parent_id = trace_id, _getrandbits(64) or 1, parent_id
        self.name, self.kind, self.attributes, self.fixed = name, kind, attributes, fixed
        self.sampled, self.tracestate, self._done = sampled, tracestate, done
        self.start = _time_ns()
        self.finish = 0
        self.status, self.description = 0, ""

    def is_recording(self) -> bool:
        return self.sampled and not self.finish

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self.sampled:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self.sampled:
            self.attributes.update(attributes)

    def all_attributes(self) -> dict[str, AttributeValue]:
        """The fixed and the span's own attributes together (its own win)."""
        fixed = self.fixed
        return {**fixed.attributes, **self.attributes} if fixed is not None else self.attributes

    def update_name(self, name: str) -> None:
        self.name = name

    def fail(self, error_type: str, description: str | None = None) -> None:
        """Failed as the conventions say: `error.type` and an ERROR status."""
        if self.sampled:
            self.attributes["error.type"] = error_type or "_OTHER"
            self.status, self.description = STATUS_ERROR, description or ""

    def end(self) -> None:
        if not self.finish:
            self.finish = _time_ns()
            if self.sampled:
                self._done(self)

    @property
    def trace_hex(self) -> str:
        return f"{self.trace_id:032x}"

    @property
    def span_hex(self) -> str:
        return f"{self.span_id:016x}"

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """`traceparent` (and the client's `tracestate`) naming this span as the parent upstream."""
        headers["traceparent"] = f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"
        if self.tracestate:
            headers["tracestate"] = self.tracestate


def new_trace_id() -> int:
    return _getrandbits(128) or 1
