"""OTLP/JSON encoding of spans (ids in hex, as OTLP/JSON wants them), from kept fragments.

Most attribute values repeat (models, providers, consumers, statuses), so their
encodings are kept, boundedly; a span's shared `Fixed` set is encoded once.
`encode_spans` gives a batch's spans joined, `Envelope` wraps them into an
ExportTraceServiceRequest, so spans can be encoded in slices as they end and
joined later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from lockgate.proxy.tracing.spans import Span

_dumps = orjson.dumps
_KINDS = {str: b"stringValue", bool: b"boolValue", int: b"intValue", float: b"doubleValue"}
_prefixes: dict[tuple[str, type], bytes] = {}
# Most attribute values repeat (models, providers, consumers, statuses): their encodings are kept, boundedly.
_encoded: dict[tuple[str, Any], bytes] = {}
_ENCODED_MAX = 8192


# Values seen once (a request's id) are encoded afresh rather than crowding the others out of `_encoded`.
_UNIQUE = frozenset({"lockgate.request_id", "gen_ai.response.time_to_first_chunk", "gen_ai.input.messages",
                     "gen_ai.output.messages"})


def _attribute(key: str, value: Any) -> bytes:
    if key in _UNIQUE:
        return _fresh(key, value)
    done = _encoded.get((key, tuple(value) if type(value) is list else value))
    if done is None:
        if len(_encoded) >= _ENCODED_MAX:
            _encoded.clear()
        done = _encoded[(key, tuple(value) if type(value) is list else value)] = _fresh(key, value)
    return done


def _fresh(key: str, value: Any) -> bytes:
    kind = type(value)
    prefix = _prefixes.get((key, kind))
    if prefix is None:
        name = b"arrayValue" if kind is list else _KINDS.get(kind, b"stringValue")
        prefix = _prefixes[(key, kind)] = b'{"key":' + _dumps(key) + b',"value":{"' + name + b'":'
    if kind is list:
        return prefix + b'{"values":[' + b",".join([b'{"stringValue":' + _dumps(str(v)) + b"}" for v in value]) + b"]}}}"
    if kind not in _KINDS:
        value = str(value)
    return prefix + _dumps(value) + b"}}"


def _attributes(attributes: Mapping[str, Any]) -> bytes:
    return b",".join([_attribute(k, v) for k, v in attributes.items()])


def _span_attributes(span: Span) -> bytes:
    """The span's own attributes and its fixed set's (encoded once per set); a key in both is the span's own."""
    own, fixed = span.attributes, span.fixed
    if fixed is None:
        return _attributes(own)
    shared = fixed.encoded
    if shared is None:
        shared = fixed.encoded = _attributes(fixed.attributes)
    if not own:
        return shared
    if not own.keys() & fixed.attributes.keys():
        return shared + b"," + _attributes(own) if shared else _attributes(own)
    return _attributes(span.all_attributes())


def encode_spans(spans: Sequence[Span]) -> bytes:
    """The spans' OTLP/JSON objects, comma-separated (a slice of a batch's `spans` array)."""
    parts = []
    for s in spans:
        status = b',"status":{"code":2,"message":' + _dumps(s.description) + b"}" if s.status else b""
        parent = b'"parentSpanId":"%016x",' % s.parent_id if s.parent_id else b""
        parts.append(b'{"traceId":"%032x","spanId":"%016x",%s"name":%s,"kind":%d,"startTimeUnixNano":"%d",'
                     b'"endTimeUnixNano":"%d","attributes":[%s]%s}'
                     % (s.trace_id, s.span_id, parent, _dumps(s.name), s.kind, s.start, s.finish,
                        _span_attributes(s), status))
    return b",".join(parts)


class Envelope:
    """An ExportTraceServiceRequest around encoded spans, for one resource and scope."""

    __slots__ = ("_head",)

    def __init__(self, resource: Mapping[str, Any], scope: str) -> None:
        self._head = (b'{"resourceSpans":[{"resource":{"attributes":[' + _attributes(resource) + b']},"scopeSpans":'
                      b'[{"scope":{"name":' + _dumps(scope) + b'},"spans":[')

    def wrap(self, slices: Sequence[bytes]) -> bytes:
        return b"".join([self._head, b",".join(slices), b"]}]}]}"])


def encode_json(spans: Sequence[Span], resource: Mapping[str, Any], scope: str) -> bytes:
    """An OTLP/JSON ExportTraceServiceRequest of `spans`."""
    return Envelope(resource, scope).wrap([encode_spans(spans)])


