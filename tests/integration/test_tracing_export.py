"""The OTLP/JSON sender against loopback peers: one kept-alive connection for many batches, a new one when
the endpoint closed it, and a clear failure (counted, never raised into requests) when it answers nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import orjson
import pytest

from lockgate.proxy.tracing import TracingSettings
from lockgate.proxy.tracing.export import BatchExporter, json_sender
from lockgate.proxy.tracing.spans import SERVER, Span

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class RawEndpoint:
    """A raw-socket HTTP/1.1 peer: `reply(conn, n)` answers the n-th request on each connection
    (it returns False to close the connection instead)."""

    def __init__(self, reply: Callable[[int], bool]) -> None:
        self.reply = reply
        self.connections = 0
        self.bodies: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                buffer, served = b"", 0
                while True:
                    head, sep, rest = buffer.partition(b"\r\n\r\n")
                    if not sep:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buffer += data
                        continue
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    self.bodies.append(rest[:length])
                    buffer = rest[length:]
                    if not self.reply(served):
                        break
                    conn.sendall(OK)
                    served += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def endpoint() -> Iterator[Callable[[Callable[[int], bool]], RawEndpoint]]:
    made: list[RawEndpoint] = []

    def make(reply: Callable[[int], bool]) -> RawEndpoint:
        made.append(RawEndpoint(reply))
        return made[-1]

    yield make
    for e in made:
        e.close()


def spans(n: int) -> list[Span]:
    return [Span(1, 0, f"s{i}", SERVER, {"i": i}, True, "", lambda s: None) for i in range(n)]


def settings(port: int) -> TracingSettings:
    return TracingSettings(enabled=True, endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=5)


def test_batches_share_one_kept_alive_connection(endpoint) -> None:
    peer = endpoint(lambda n: True)
    send = json_sender(settings(peer.port), {"service.name": "gw"}, "scope")
    assert all(send(spans(3)) for _ in range(3))
    assert peer.connections == 1 and len(peer.bodies) == 3
    names = [s["name"] for s in orjson.loads(peer.bodies[0])["resourceSpans"][0]["scopeSpans"][0]["spans"]]
    assert names == ["s0", "s1", "s2"]


def test_a_connection_the_endpoint_closed_is_opened_again(endpoint) -> None:
    peer = endpoint(lambda n: n == 0)  # answers one request per connection, then hangs up on the next
    send = json_sender(settings(peer.port), {}, "scope")
    assert send(spans(1)) and send(spans(1)) and send(spans(1))
    assert peer.connections == 3  # each later batch found its kept connection closed and opened a new one


def test_an_endpoint_that_never_answers_counts_failures(endpoint) -> None:
    peer = endpoint(lambda n: False)  # reads the request, closes without a word
    exporter = BatchExporter(json_sender(settings(peer.port), {}, "scope"), delay=60, max_batch=100)
    try:
        for span in spans(4):
            exporter.add(span)
        assert exporter.flush(10) and exporter.failed == 4
    finally:
        exporter.shutdown()


def names(body: bytes) -> list[str]:
    return [s["name"] for s in orjson.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"]]


async def test_spans_ended_on_the_event_loop_arrive_whole_in_order_and_in_bounded_batches(endpoint) -> None:
    import asyncio

    from lockgate.proxy.tracing.export import JsonBatchExporter, JsonSender

    peer = endpoint(lambda n: True)
    exporter = JsonBatchExporter(JsonSender(settings(peer.port), {"service.name": "gw"}, "scope"), delay=60,
                                 max_batch=100)
    try:
        for span in spans(200):
            exporter.add(span)
            await asyncio.sleep(0)  # the loop runs the slice encodings it scheduled
        assert exporter.flush(10) and exporter.failed == 0 and exporter.dropped == 0
    finally:
        exporter.shutdown()
    sent = [names(body) for body in peer.bodies]
    assert all(len(b) <= 100 for b in sent)  # batches of at most max_batch spans
    assert [n for b in sent for n in b] == [f"s{i}" for i in range(200)]


def test_spans_ended_off_an_event_loop_are_encoded_by_the_thread(endpoint) -> None:
    from lockgate.proxy.tracing.export import JsonBatchExporter, JsonSender

    peer = endpoint(lambda n: True)
    exporter = JsonBatchExporter(JsonSender(settings(peer.port), {}, "scope"), delay=60, max_queue=150)
    try:
        for span in spans(160):
            exporter.add(span)
        assert exporter.dropped == 10
        assert exporter.flush(10) and exporter.failed == 0
    finally:
        exporter.shutdown()
    assert [n for body in peer.bodies for n in names(body)] == [f"s{i}" for i in range(150)]
