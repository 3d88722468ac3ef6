"""A real OpenTelemetry Collector for tests: OTLP/HTTP in on a loopback port, spans out to a JSON-lines file.

The binary is the one hack/observability-binaries.sh builds with the collector
builder (`$LOCKGATE_OTELCOL`, else the cache). Under CI=true a missing binary
fails the test instead of skipping it: the setup script builds it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cached_tools import find_cached_tool, stop_process
from tests.loopback import free_port

READY = b"Everything is ready"
KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def find_otelcol() -> str:
    return find_cached_tool("otelcol-lockgate", "otelcol/v*/bin/otelcol-lockgate", "LOCKGATE_OTELCOL",
                            "hack/observability-binaries.sh")


@dataclass
class Span:
    """One exported span, flattened from OTLP JSON."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    status: str
    service: str


def _value(value: dict[str, Any]) -> Any:
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    for field, convert in (("stringValue", str), ("intValue", int), ("boolValue", bool), ("doubleValue", float)):
        if field in value:
            return convert(value[field])
    return None


def parse_spans(text: str) -> list[Span]:
    spans = []
    for line in text.splitlines():
        if not line.strip():
            continue
        for resource in json.loads(line).get("resourceSpans", []):
            res = {a["key"]: _value(a["value"]) for a in resource.get("resource", {}).get("attributes", [])}
            for scope in resource.get("scopeSpans", []):
                for raw in scope.get("spans", []):
                    spans.append(Span(
                        raw["traceId"], raw["spanId"], raw.get("parentSpanId", ""), raw["name"],
                        KINDS.get(raw.get("kind", 0), "UNSPECIFIED"),
                        {a["key"]: _value(a["value"]) for a in raw.get("attributes", [])},
                        STATUS.get((raw.get("status") or {}).get("code", 0), "UNSET"),
                        str(res.get("service.name", ""))))
    return spans


@dataclass
class Collector:
    endpoint: str  # the OTLP/HTTP traces URL
    grpc_endpoint: str  # the OTLP/gRPC address, as a URL
    output: Path

    def spans(self) -> list[Span]:
        return parse_spans(self.output.read_text()) if self.output.exists() else []

    async def wait_for(self, done: Callable[[list[Span]], bool], timeout: float = 15.0) -> list[Span]:
        """The spans written so far, once `done(spans)` holds (the file exporter writes as batches come)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"the collector never wrote the expected spans; it has {[s.name for s in spans]}")
            await asyncio.sleep(0.05)


@asynccontextmanager
async def collector(workdir: Path) -> AsyncIterator[Collector]:
    binary = find_otelcol()
    port, grpc_port = free_port(), free_port()
    output = workdir / "traces.jsonl"
    config = workdir / "otelcol.yaml"
    config.write_text(json.dumps({
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"},
                                             "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"}}}},
        "exporters": {"file": {"path": str(output), "flush_interval": "10ms"}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["file"]}},
                    "telemetry": {"metrics": {"level": "none"}}},
    }))
    process = await asyncio.create_subprocess_exec(binary, f"--config=file:{config}",
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    log: list[bytes] = []
    drain: asyncio.Task[None] | None = None
    try:
        async def ready() -> None:
            while line := await process.stderr.readline():  # type: ignore[union-attr]
                log.append(line)
                if READY in line:
                    return
            raise RuntimeError("the collector exited: " + b"".join(log).decode(errors="replace")[-2000:])

        await asyncio.wait_for(ready(), 30)

        async def discard() -> None:
            while await process.stderr.read(65536):  # type: ignore[union-attr]
                pass

        drain = asyncio.ensure_future(discard())  # a full pipe would stall the collector
        yield Collector(f"http://127.0.0.1:{port}/v1/traces", f"http://127.0.0.1:{grpc_port}", output)
    finally:
        await stop_process(process)
        if drain is not None:
            drain.cancel()
