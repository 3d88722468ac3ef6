"""One pipelined connection to Redis: the commands of one event-loop turn leave in one write,
and while a reservation awaits its reply, the commands that come meanwhile wait and leave
together when it comes (under load: fewer, larger batches, for Redis and for the proxy).
Lazy batches (settlements: nobody waits for them) ride along with the next write, or
leave on their own after LAZY_DELAY.

Every caller in the process shares the connection. A command is packed
(hiredis) into a buffer and gets a future; at the end of the loop turn the
buffer goes out in one write, and the replies, which Redis sends in order,
resolve the futures in order (hiredis parses them). So concurrent requests
share round trips, and whatever was sent first is applied first (a
settlement queued before a reservation is counted before it).

A `ScriptBatch` goes further: the calls of one script made in one loop turn
leave as one EVALSHA (the script takes a list of calls and answers a list of
replies), so Redis runs one script per turn instead of one per call.

A reply that does not come within `timeout` of its write breaks the
connection (later replies could no longer be matched): every pending command
fails with a timeout, and the next command connects again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import hiredis

Reply = Any
LAZY_DELAY = 0.005  # seconds a lazy batch (settlements) waits for a write to ride along with


class WireError(Exception):
    """The command did not get an answer: the connection failed (`timed_out` False) or was too slow."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ReplyError(Exception):
    """Redis answered the command with an error (e.g. NOSCRIPT)."""


@dataclass(frozen=True)
class Address:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket
    tls: bool = False
    username: str | None = None
    password: str | None = None
    db: int = 0
    timeout: float | None = None  # ?socket_timeout= in the URL
    connect_timeout: float | None = None  # ?socket_connect_timeout=


def parse_address(url: str) -> Address:
    """redis://[user:password@]host[:port][/db], rediss:// (TLS) or unix:///path[?db=N]."""
    parsed = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"not a redis URL: scheme {parsed.scheme!r}")
    db = query.get("db") or (parsed.path.lstrip("/") if parsed.scheme != "unix" else "") or "0"

    def seconds(name: str) -> float | None:
        return float(query[name]) if name in query else None

    return Address(host=parsed.hostname or "127.0.0.1", port=parsed.port or 6379,
                   path=parsed.path if parsed.scheme == "unix" else None, tls=parsed.scheme == "rediss",
                   username=unquote(parsed.username) if parsed.username else None,
                   password=unquote(parsed.password) if parsed.password else None,
                   db=int(db), timeout=seconds("socket_timeout"), connect_timeout=seconds("socket_connect_timeout"))


class _Protocol(asyncio.Protocol):
    def __init__(self, link: PipelinedLink) -> None:
        self.link = link
        self.reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        pending = self.link._pending
        reply = reader.gets()
        while reply is not False:
            if pending:
                future = pending.popleft()
                if not future.done():
                    if isinstance(reply, hiredis.ReplyError):
                        future.set_exception(ReplyError(str(reply)))
                    else:
                        future.set_result(reply)
            reply = reader.gets()
        self.link._answered()

    def connection_lost(self, exc: Exception | None) -> None:
        self.link._lost(self, WireError(f"connection to Redis lost: {exc!r}" if exc else "connection to Redis closed"))


class PipelinedLink:
    """Commands to one Redis over one connection, pipelined per event-loop turn."""

    def __init__(self, address: Address, timeout: float = 0.05, connect_timeout: float = 0.1,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.address = address
        self.timeout = address.timeout if address.timeout is not None else timeout
        self.connect_timeout = address.connect_timeout if address.connect_timeout is not None else connect_timeout
        self.ssl_context = ssl_context if ssl_context is not None or not address.tls else ssl.create_default_context()
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._pending: deque[asyncio.Future[Reply]] = deque()  # sent, awaiting their replies in order
        # The last future of each write in flight that holds later calls back: while one awaits its
        # reply, new calls wait and leave together when it comes (fewer, larger batches under load).
        self._urgent: deque[asyncio.Future[Reply]] = deque()
        self._buffer: list[bytes] = []  # packed, not yet written
        self._queued: list[asyncio.Future[Reply]] = []  # their futures
        self._flush_scheduled = False
        self._lazy: asyncio.TimerHandle | None = None  # sends lazy batches (holds=False) nothing else took along
        self._batches: list[ScriptBatch] = []  # in the order their calls leave at the end of a turn
        self.writes = 0  # writes to the socket (round trips started), for tests and benchmarks

    def batch(self, sha: str, per_call: int, fixed: Sequence[bytes | int] = (), holds: bool = True) -> ScriptBatch:
        """A batch of calls of the script `sha` sent on this link (ScriptBatch); `fixed`: the arguments
        every batch starts with. `holds`: while it awaits its reply, later calls wait for it; without,
        the batch is lazy: it waits for a write to ride along with (LAZY_DELAY at most)."""
        batch = ScriptBatch(self, sha, fixed, per_call, holds)
        self._batches.append(batch)
        return batch

    def call(self, *args: Any) -> asyncio.Future[Reply]:
        """Queue a command; it leaves with the others of this loop turn. The future fails with
        WireError (no answer) or ReplyError (Redis refused it)."""
        return self.call_packed(hiredis.pack_command(args))

    def call_packed(self, command: bytes) -> asyncio.Future[Reply]:
        """As call, for a command already packed in RESP (after the batched calls made before it)."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        for batch in self._batches:
            if batch.futures:
                batch.emit()
        self._enqueue(command, future)
        return future

    def _enqueue(self, command: bytes, future: asyncio.Future[Reply]) -> None:
        self._buffer.append(command)
        self._queued.append(future)
        self.wake()

    def wake(self) -> None:
        """Send what is queued at the end of this loop turn."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def wake_lazily(self) -> None:
        """Send what is queued with the next write, or within LAZY_DELAY if none comes sooner."""
        if self._lazy is None:
            self._lazy = asyncio.get_running_loop().call_later(LAZY_DELAY, self._lazy_due)

    def _lazy_due(self) -> None:
        self._lazy = None
        self.wake()

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._awaited() and self._transport is not None:
            return  # what comes while a reservation is in flight leaves with its reply (see _answered)
        if self._lazy is not None:  # lazy batches leave now, with the rest
            self._lazy.cancel()
            self._lazy = None
        urgent = bool(self._buffer)
        for batch in self._batches:
            if batch.futures:
                urgent = urgent or batch.holds
                batch.emit()
        if not self._buffer:
            return
        if self._transport is None or self._transport.is_closing():
            if self._connecting is None:
                self._connecting = asyncio.ensure_future(self._connect())
                self._connecting.add_done_callback(self._connected)
            return
        data, futures = b"".join(self._buffer), self._queued
        self._buffer, self._queued = [], []
        self._pending.extend(futures)
        self._transport.write(data)
        self.writes += 1
        last = futures[-1]
        if urgent:
            self._urgent.append(last)
        handle = asyncio.get_running_loop().call_later(self.timeout, self._check, last, self._protocol)
        last.add_done_callback(lambda _: handle.cancel())

    def _awaited(self) -> bool:
        """Whether a write that holds others back (see ScriptBatch.holds) awaits its replies."""
        urgent = self._urgent
        while urgent and urgent[0].done():
            urgent.popleft()
        return bool(urgent)

    def _answered(self) -> None:
        """Replies came: if no write holding others back is left in flight, what was held back leaves
        (at the end of this turn, with what the replies' callers add; lazy batches wait on)."""
        lazy_due = self._lazy is None  # (a lazy batch's timer that went off while a write was held back)
        if not self._awaited() and (self._buffer or any(b.futures and (b.holds or lazy_due) for b in self._batches)):
            self.wake()

    def _check(self, last: asyncio.Future[Reply], protocol: _Protocol | None) -> None:
        if not last.done() and protocol is self._protocol:
            self._break(WireError(f"Redis did not answer within {self.timeout * 1000:.0f} ms", timed_out=True))

    def _connected(self, attempt: asyncio.Future[None]) -> None:
        self._connecting = None
        error = attempt.exception() if not attempt.cancelled() else WireError("connecting to Redis was cancelled")
        if error is None:
            self._flush()
            return
        failure = error if isinstance(error, WireError) else WireError(f"cannot connect to Redis: {error!r}",
                                                                       isinstance(error, TimeoutError))
        queued, self._buffer, self._queued = self._queued, [], []
        for future in queued:
            if not future.done():
                future.set_exception(failure)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        a = self.address
        try:
            async with asyncio.timeout(self.connect_timeout):
                if a.path is not None:
                    transport, protocol = await loop.create_unix_connection(lambda: _Protocol(self), a.path)
                else:
                    transport, protocol = await loop.create_connection(
                        lambda: _Protocol(self), a.host, a.port, ssl=self.ssl_context,
                        server_hostname=a.host if self.ssl_context is not None else None)
                self._transport, self._protocol = transport, protocol  # type: ignore[assignment]
                hello: list[asyncio.Future[Reply]] = []
                if a.password is not None:
                    auth = ("AUTH", a.username, a.password) if a.username else ("AUTH", a.password)
                    hello.append(self._send_now(*auth))
                if a.db:
                    hello.append(self._send_now("SELECT", a.db))
                for reply in hello:
                    await reply
        except ReplyError as e:
            self._break(WireError(f"Redis refused the connection: {e}"))
            raise WireError(f"Redis refused the connection: {e}") from None
        except TimeoutError:
            self._break(WireError("connecting to Redis timed out", timed_out=True))
            raise WireError(f"connecting to Redis timed out after {self.connect_timeout * 1000:.0f} ms",
                            timed_out=True) from None
        except OSError as e:
            raise WireError(f"cannot connect to Redis: {e}") from None

    def _send_now(self, *args: Any) -> asyncio.Future[Reply]:
        assert self._transport is not None
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        self._transport.write(hiredis.pack_command(args))
        return future

    def _break(self, error: WireError) -> None:
        transport, self._transport, self._protocol = self._transport, None, None
        if transport is not None:
            transport.abort()
        self._fail_pending(error)

    def _lost(self, protocol: _Protocol, error: WireError) -> None:
        if protocol is self._protocol:
            self._transport = self._protocol = None
            self._fail_pending(error)

    def _fail_pending(self, error: WireError) -> None:
        pending, self._pending = self._pending, deque()
        self._urgent.clear()
        for future in pending:
            if not future.done():
                future.set_exception(error)
        self._answered()  # what was held back tries the next connection

    @property
    def in_flight(self) -> int:
        return len(self._pending) + len(self._queued)

    async def close(self) -> None:
        if self._lazy is not None:
            self._lazy.cancel()
            self._lazy = None
        for batch in self._batches:
            if batch.futures:
                batch.emit()
        if self._connecting is not None:
            self._connecting.cancel()
        self._break(WireError("the Redis link was closed"))
        for future in self._queued:
            if not future.done():
                future.set_exception(WireError("the Redis link was closed"))
        self._buffer, self._queued = [], []


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


@dataclass(frozen=True, slots=True)
class Plan:
    """What calls of a batched script share: keys and arguments, packed (bulk strings)."""

    keys: bytes
    nkeys: int
    args: bytes
    nargs: int


_NUMBERS = tuple(bulk(b"%d" % i) for i in range(1000))


class ScriptBatch:
    """Calls of one script made in one loop turn, sent as one EVALSHA: the keys of the plans they
    use, the batch's fixed arguments, the number of plans and each plan's arguments, then per call
    its plan's number (from 1) and its `per_call` own arguments. The script's reply is a list with
    one reply per call (or one reply for all, given to each), in order."""

    def __init__(self, link: PipelinedLink, sha: str, fixed: Sequence[bytes | int], per_call: int,
                 holds: bool = True) -> None:
        self.link = link
        self.sha = bulk(sha.encode())
        self.fixed = b"".join(bulk(v if isinstance(v, bytes) else b"%d" % v) for v in fixed)
        self.nfixed = len(fixed)
        self.per_call = per_call
        self.plans: list[Plan] = []
        self._numbers: dict[int, bytes] = {}  # id(plan) -> its number, packed
        self.args: list[bytes] = []
        self.futures: list[asyncio.Future[Reply]] = []
        self.holds = holds
        self.orphans: list[Any] = []  # per call: what `orphaned` is given if its caller stops waiting
        # Called with a call's `orphan` and its reply when its future was cancelled before the reply came.
        self.orphaned: Callable[[Any, Reply], None] | None = None
        self.calls = 0  # script calls sent, for tests and benchmarks

    def add(self, plan: Plan, own: bytes, orphan: Any = None) -> asyncio.Future[Reply]:
        """One call over `plan` with its own arguments. Its future is resolved with its reply; if it
        is cancelled first, the reply goes to `orphaned` with `orphan`."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if not self.futures:
            if self.holds:
                self.link.wake()
            else:
                self.link.wake_lazily()
        number = self._numbers.get(id(plan))
        if number is None:
            self.plans.append(plan)  # held until sent: its id is not reused meanwhile
            n = len(self.plans)
            number = self._numbers[id(plan)] = _NUMBERS[n] if n < len(_NUMBERS) else bulk(b"%d" % n)
        self.futures.append(future)
        self.orphans.append(orphan)
        self.args.append(number)
        self.args.append(own)
        return future

    def emit(self) -> None:
        """Queue the batch on the link as one command."""
        futures, plans, args, orphans = self.futures, self.plans, self.args, self.orphans
        self.futures, self.plans, self.args, self.orphans = [], [], [], []
        self._numbers = {}
        nkeys = sum(p.nkeys for p in plans)
        count = 4 + nkeys + self.nfixed + sum(p.nargs for p in plans) + len(futures) * (1 + self.per_call)
        command = b"".join((b"*%d\r\n$7\r\nEVALSHA\r\n%b%b" % (count, self.sha, bulk(b"%d" % nkeys)),
                            *(p.keys for p in plans), self.fixed, bulk(b"%d" % len(plans)),
                            *(p.args for p in plans), *args))
        self.calls += 1
        sent: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        sent.add_done_callback(lambda done: self._fan_out(done, futures, orphans))
        self.link._enqueue(command, sent)

    def _fan_out(self, done: asyncio.Future[Reply], futures: list[asyncio.Future[Reply]], orphans: list[Any]) -> None:
        """The batch's reply (or failure) to each call's future."""
        error = done.exception() if not done.cancelled() else WireError("the batch was cancelled")
        if error is not None:
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        reply = done.result()
        replies = reply if isinstance(reply, list) else [reply] * len(futures)
        for future, one, orphan in zip(futures, replies, orphans):
            if not future.done():
                future.set_result(one)
            elif orphan is not None and future.cancelled() and self.orphaned is not None:
                self.orphaned(orphan, one)
