"""Properties of the public endpoints under random and malformed requests.

`lockgate run` serves the quickstart's manifests (its provider pointed at a
`lockgate dev upstream` on a free loopback port). Hypothesis sends random
methods, paths, headers (raw bytes, so values no client library would
send), keys and bodies (random bytes, random JSON, near-valid requests).
Whatever it sends:

- the gateway itself never answers 5xx (the upstream is healthy);
- every answer carries an `x-request-id` and `Server: lockgate`;
- every refusal has a body in its endpoint's format: OpenAI's error JSON,
  Anthropic's on /v1/messages, JSON-RPC on the MCP endpoints;
- the log holds no traceback, and the metric series stay bounded by the
  configuration.

The example count is bounded and the run derandomized, so it is the same
quick run every time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockgate.proxy.labels import MCP_METHODS
from tests.integration.gateway_process import Gateway, gateway_process, wait_for
from tests.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "lg-quickstart-demo-key"
# Per run (two runs): about 20 s on a busy machine. LOCKGATE_PROPERTY_EXAMPLES=5000 searches further.
EXAMPLES = int(os.environ.get("LOCKGATE_PROPERTY_EXAMPLES", "150"))
OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/models",
                "/v1/summarize", "/v1/mcp/servers", "/", "/v1", "/v1/chat", "/metrics")
MCP_PATHS = ("/models/mcp", "/models/sse", "/models/message")
CONFIGURED_MODELS = {"small", "large", "embed", "chat", "unknown", ""}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("properties")
    manifests = tmp / "manifests"
    shutil.copytree(ROOT / "examples" / "quickstart", manifests)
    upstream_port = free_port()
    provider = manifests / "10-provider.yaml"
    provider.write_text(provider.read_text().replace("127.0.0.1:8181", f"127.0.0.1:{upstream_port}"))
    upstream = subprocess.Popen([sys.executable, "-m", "lockgate.cli.main", "dev", "upstream", "--port",
                                 str(upstream_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with gateway_process(["run", "-f", str(manifests)], tmp) as gateway:
            wait_for(lambda: _ask(gateway), "the upstream to answer", gateway)
            yield gateway
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)


def _ask(gateway: Gateway) -> bool:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "small", "messages": [{"role": "user", "content": "hi"}]}, timeout=2)
    return response.status_code == 200


def exchange(port: int, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    """One request as raw bytes (Connection: close); the answer's head, and its body unless it is a stream."""
    head = [f"{method} {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{port}".encode(), b"Connection: close",
            f"Content-Length: {len(body)}".encode()]
    head += [name + b": " + value for name, value in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed before an answer: {data!r}"
            data += chunk
        raw_head, _, rest = data.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        answer_headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            answer_headers[name.strip().lower()] = value.strip()
        status = int(lines[0].split()[1])
        if method == "HEAD" or answer_headers.get("content-type", "").startswith("text/event-stream"):
            return Answer(status, answer_headers, b"")
        while chunk := sock.recv(65536):
            rest += chunk
    if answer_headers.get("transfer-encoding") == "chunked":
        rest = _dechunk(rest)
    return Answer(status, answer_headers, rest)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


# --- strategies -------------------------------------------------------------

token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
                min_size=1, max_size=20)
# Header values the HTTP parser accepts: visible ASCII, spaces, tabs and obs-text bytes (0x80-0xFF).
value = st.binary(max_size=60).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F or c == 0x09).strip())
json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                          lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                      max_size=4), max_leaves=12)
model = st.sampled_from(["small", "large", "embed", "chat", "nope"]) | st.text(max_size=30) | json_value
messages = st.just([{"role": "user", "content": "hi"}]) | json_value
api_body = st.fixed_dictionaries({"model": model}, optional={
    "messages": messages, "prompt": json_value, "input": json_value, "stream": st.booleans() | json_value,
    "max_tokens": st.integers(min_value=-10, max_value=10**12) | json_value, "text": json_value,
    "stream_options": json_value, "n": json_value, "temperature": json_value})
rpc_body = st.fixed_dictionaries({"jsonrpc": st.sampled_from(["2.0", "1.0"]) | json_value}, optional={
    "id": st.integers() | st.text(max_size=10) | st.none(),
    "method": st.sampled_from(sorted(MCP_METHODS)) | st.text(max_size=30),
    "params": st.fixed_dictionaries({}, optional={"name": st.sampled_from(["ask"]) | st.text(max_size=20),
                                                  "arguments": json_value, "_meta": json_value,
                                                  "protocolVersion": st.text(max_size=12)}) | json_value})
# Bodies that break naive parsers: deep nesting, lone surrogates, huge numbers.
nasty = st.sampled_from([b"[" * 100_000, b'{"a":' * 5000, b'"\\ud800"', b'{"jsonrpc":"2.0","id":1,"method":"\\udc80"}',
                         b'{"model":"\\ud800","messages":[]}', b"1" * 5000, b'{"model":"small","messages":' + b"[" * 3000,
                         b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"ping"}', b"\xef\xbb\xbf{}"])
body = (nasty | st.binary(max_size=200) | api_body.map(json.dumps).map(str.encode)
        | rpc_body.map(json.dumps).map(str.encode) | json_value.map(json.dumps).map(str.encode))
authorization = st.sampled_from([f"Bearer {KEY}".encode(), b"Bearer lg-wrong", b"Basic Zm9vOmJhcg==", b"Bearer",
                                 b"bearer " + KEY.encode()]) | value
path = (st.sampled_from([*OPENAI_PATHS, *MCP_PATHS, "/v1/messages"])
        | st.builds(lambda p, tail: p + tail, st.sampled_from([*OPENAI_PATHS, *MCP_PATHS]),
                    st.text(alphabet="abc/%20?=&;.~", max_size=12))
        | st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-._~%", max_size=30).map(lambda p: "/" + p))
# Methods the HTTP parser knows (it answers others itself, before any route: see test_door.py).
method = st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND",
                          "SEARCH", "PURGE", "TRACE"])
extra_headers = st.lists(st.tuples(
    st.sampled_from([b"x-request-id", b"Content-Type", b"Accept", b"MCP-Protocol-Version", b"Mcp-Session-Id",
                     b"Mcp-Method", b"Mcp-Name", b"Origin", b"x-api-key", b"Last-Event-ID", b"mcp-param-q"])
    | token.map(str.encode), value), max_size=5, unique_by=lambda header: header[0].lower())


@dataclass
class Request:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes


requests = st.builds(Request, method, path, st.builds(lambda auth, rest: [(b"Authorization", auth), *rest]
                                                      if auth is not None else rest,
                                                      st.none() | authorization, extra_headers), body)


# --- invariants -------------------------------------------------------------

def check_answer(request: Request, answer: Answer) -> None:
    assert answer.status < 500, (request, answer)
    assert answer.headers.get("server") == "lockgate", answer.headers
    assert answer.headers.get("x-request-id"), answer.headers
    if answer.status < 400 or request.method == "HEAD":
        return
    error = json.loads(answer.body)
    bare = request.path.split("?", 1)[0]
    if _mcp_route(request.method, bare):
        assert error["jsonrpc"] == "2.0" and isinstance(error["error"]["code"], int), (request, error)
        assert isinstance(error["error"]["message"], str)
    elif bare == "/v1/messages":
        assert error["type"] == "error" and {"type", "message"} <= set(error["error"]), (request, error)
    else:
        assert {"message", "type", "code"} <= set(error["error"]), (request, error)


def _mcp_route(method: str, path: str) -> bool:
    """Whether the MCP module answers (else the catch-all's OpenAI 404 does)."""
    return bool(re.fullmatch(r"/.+/mcp", path) or (method == "GET" and re.fullmatch(r"/.+/sse", path))
                or (method == "POST" and re.fullmatch(r"/.+/message", path)))


def metric_labels(text: str, family: str, label: str) -> set[str]:
    return {m.group(1) for line in text.splitlines() if line.startswith(family + "{")
            for m in [re.search(label + r'="([^"]*)"', line)] if m}


# Past the key check: a valid key, a POST to one of the endpoints, random headers and body.
authenticated = st.builds(Request, st.just("POST"), st.sampled_from([*OPENAI_PATHS[:6], "/v1/messages", *MCP_PATHS[::2]]),
                          extra_headers.map(lambda rest: [(b"Authorization", f"Bearer {KEY}".encode()), *rest]), body)
BOUNDED = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_the_public_endpoints_hold_under_random_requests(served: Gateway) -> None:
    def check(request: Request) -> None:
        check_answer(request, exchange(served.port, request.method, request.path, request.headers, request.body))

    for strategy in (requests, authenticated):
        BOUNDED(given(strategy)(lambda request: check(request)))()
    logs = served.logs()
    assert "Traceback" not in logs and "Error handling request" not in logs, logs[-3000:]
    assert KEY not in logs
    metrics = httpx.get(f"{served.admin}/metrics").text
    series = [line for line in metrics.splitlines() if line.startswith("lockgate_requests_total{")]
    assert len(series) < 150, series
    assert metric_labels(metrics, "lockgate_requests_total", "model") <= CONFIGURED_MODELS
    assert metric_labels(metrics, "lockgate_requests_total", "host") == {"*"}
    assert metric_labels(metrics, "lockgate_mcp_requests_total", "method") <= MCP_METHODS | {"other"}
    assert metric_labels(metrics, "lockgate_mcp_requests_total", "tool") <= {"ask", "other", ""}
