"""Job state in Redis, shared by replicas: files' metadata, batches, the chunk queue and results.

Every key shares one hash tag, so the few multi-key scripts also run on a Redis Cluster.
Work is a queue of tasks (`<batch>:validate`, `<batch>:<chunk>`, `<batch>:final`); a replica
claims one with a lease it renews while working; a lease that runs out (its replica died)
makes the task claimable again. A line's result is recorded once (HSETNX), so a chunk run
twice records each line once and counts it once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as redis

from lockgate.proxy.batch.records import FileRecord

P = "lockgate:b:{batch}"
QUEUE, LEASES, OWNERS = f"{P}:queue", f"{P}:leases", f"{P}:owners"

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

CLAIM = _NOW + """
local task = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1)[1]
if not task then task = redis.call('RPOP', KEYS[1]) end
if not task then return false end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), task)
redis.call('HSET', KEYS[3], task, ARGV[2])
return task
"""

RENEW = _NOW + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return 1
"""

# ARGV[3] "1": put the task back at the head of the queue (a replica stopping), else it is done.
RELEASE = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[3] == '1' then redis.call('RPUSH', KEYS[3], ARGV[1]) end
return 1
"""

TRANSITION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
for from in string.gmatch(ARGV[1], '[^,]+') do
  if from == status then
    redis.call('HSET', KEYS[1], 'status', ARGV[2], unpack(ARGV, 3))
    return 1
  end
end
return 0
"""

START = """
if redis.call('HGET', KEYS[1], 'status') ~= 'validating' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'in_progress', 'in_progress_at', ARGV[1], 'total', ARGV[2], 'chunks', ARGV[3],
           'offsets', ARGV[4], 'model', ARGV[6])
for i = 0, tonumber(ARGV[3]) - 1 do redis.call('LPUSH', KEYS[2], ARGV[5] .. ':' .. i) end
return 1
"""

RECORD = """
local status = redis.call('HGET', KEYS[2], 'status')
if status ~= 'in_progress' and status ~= 'cancelling' then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('HINCRBY', KEYS[2], 'input_tokens', ARGV[4])
redis.call('HINCRBY', KEYS[2], 'output_tokens', ARGV[5])
return 1
"""

CHUNK_DONE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('SCARD', KEYS[1]) < tonumber(redis.call('HGET', KEYS[2], 'chunks') or '0') then return 0 end
redis.call('RPUSH', KEYS[3], ARGV[2] .. ':final')
return 1
"""


P_ = ParamSpec("P_")
T = TypeVar("T")


def shielded(method: Callable[P_, Coroutine[Any, Any, T]]) -> Callable[P_, Awaitable[T]]:
    """The call runs in a task of its own: a caller cancelled meanwhile gets its CancelledError at once.
    (redis-py's asyncio client can swallow a cancellation that arrives mid-command, and a replica
    stopping cancels its batch work.)"""

    @functools.wraps(method)
    async def call(*args: P_.args, **kwargs: P_.kwargs) -> T:
        return await asyncio.shield(method(*args, **kwargs))

    return call


def batch_key(batch_id: str) -> str:
    return f"{P}:batch:{batch_id}"


def _owned(kind: str, owner: str) -> str:
    return f"{P}:{kind}:{owner}"


class BatchState:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.client: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._claim = self.client.register_script(CLAIM)
        self._renew = self.client.register_script(RENEW)
        self._release = self.client.register_script(RELEASE)
        self._transition = self.client.register_script(TRANSITION)
        self._start = self.client.register_script(START)
        self._record = self.client.register_script(RECORD)
        self._chunk_done = self.client.register_script(CHUNK_DONE)

    async def close(self) -> None:
        await self.client.aclose()

    # --- files ---------------------------------------------------------------

    @shielded
    async def put_file(self, record: FileRecord) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(f"{P}:file:{record.id}", record.to_json())
            if record.expires_at is not None:
                pipe.expireat(f"{P}:file:{record.id}", record.expires_at + 86400)
            pipe.zadd(_owned("files", record.owner), {record.id: 0})
            await pipe.execute()

    @shielded
    async def get_file(self, file_id: str) -> FileRecord | None:
        raw = await self.client.get(f"{P}:file:{file_id}")
        return FileRecord.from_json(raw) if raw is not None else None

    @shielded
    async def file_ids(self, owner: str) -> list[str]:
        """The owner's file ids, newest first."""
        return [i.decode() for i in await self.client.zrevrangebylex(_owned("files", owner), "+", "-")]

    @shielded
    async def files(self, ids: list[str]) -> list[FileRecord | None]:
        if not ids:
            return []
        raws = await self.client.mget([f"{P}:file:{i}" for i in ids])
        return [FileRecord.from_json(r) if r is not None else None for r in raws]

    @shielded
    async def forget_file(self, owner: str, file_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(f"{P}:file:{file_id}")
            pipe.zrem(_owned("files", owner), file_id)
            await pipe.execute()

    @shielded
    async def count_files(self, owner: str) -> int:
        return int(await self.client.zcard(_owned("files", owner)))

    # --- batches -------------------------------------------------------------

    @shielded
    async def create_batch(self, fields: dict[str, str], owner: str, keep_seconds: int) -> None:
        batch_id = fields["id"]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(batch_key(batch_id), mapping=fields)
            pipe.expire(batch_key(batch_id), keep_seconds)
            pipe.zadd(_owned("batches", owner), {batch_id: 0})
            pipe.lpush(QUEUE, f"{batch_id}:validate")
            await pipe.execute()

    @shielded
    async def get_batch(self, batch_id: str) -> dict[str, str] | None:
        raw = await self.client.hgetall(batch_key(batch_id))
        return {k.decode(): v.decode() for k, v in raw.items()} if raw else None

    @shielded
    async def get_batch_status(self, batch_id: str) -> str | None:
        raw = await self.client.hget(batch_key(batch_id), "status")
        return raw.decode() if raw is not None else None

    @shielded
    async def claim_field(self, batch_id: str, name: str, value: str) -> str:
        """Sets the field unless it is set; its value either way."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hsetnx(batch_key(batch_id), name, value)
            pipe.hget(batch_key(batch_id), name)
            _, stored = await pipe.execute()
        return str(stored.decode())

    @shielded
    async def batch_ids(self, owner: str, after: str | None, count: int) -> list[str]:
        """Up to `count` of the owner's batch ids, newest first, after the cursor."""
        top = f"({after}" if after else "+"
        ids = await self.client.zrevrangebylex(_owned("batches", owner), top, "-", start=0, num=count)
        return [i.decode() for i in ids]

    @shielded
    async def forget_batch(self, owner: str, batch_id: str) -> None:
        await self.client.zrem(_owned("batches", owner), batch_id)

    @shielded
    async def transition(self, batch_id: str, sources: tuple[str, ...], target: str, **fields: str | int) -> bool:
        """Moves the batch to `target` if its status is one of `sources` (and sets `fields`)."""
        args: list[str | int] = [",".join(sources), target]
        for name, value in fields.items():
            args += [name, value]
        return int(await self._transition(keys=[batch_key(batch_id)], args=args)) == 1

    @shielded
    async def set_fields(self, batch_id: str, **fields: str | int) -> None:
        await self.client.hset(batch_key(batch_id), mapping=fields)

    @shielded
    async def start(self, batch_id: str, now: int, total: int, offsets: str, model: str, chunks: int) -> bool:
        """validating -> in_progress, queueing its chunks (once, whoever validated)."""
        reply = await self._start(keys=[batch_key(batch_id), QUEUE],
                                  args=[now, total, chunks, offsets, batch_id, model])
        return int(reply) == 1

    # --- work ------------------------------------------------------------------

    @shielded
    async def claim(self, worker: str, lease_ms: int) -> str | None:
        task = await self._claim(keys=[QUEUE, LEASES, OWNERS], args=[lease_ms, worker])
        return task.decode() if task is not None else None

    @shielded
    async def renew(self, task: str, worker: str, lease_ms: int) -> bool:
        return int(await self._renew(keys=[LEASES, OWNERS], args=[task, worker, lease_ms])) == 1

    @shielded
    async def release(self, task: str, worker: str, give_back: bool = False) -> None:
        await self._release(keys=[LEASES, OWNERS, QUEUE], args=[task, worker, "1" if give_back else "0"])

    @shielded
    async def recorded(self, batch_id: str, indexes: list[int]) -> set[int]:
        if not indexes:
            return set()
        async with self.client.pipeline(transaction=False) as pipe:
            for index in indexes:
                pipe.hexists(f"{P}:out:{batch_id}", index)
            found = await pipe.execute()
        return {index for index, there in zip(indexes, found) if there}

    @shielded
    async def record(self, batch_id: str, index: int, line: bytes, ok: bool, input_tokens: int,
                     output_tokens: int) -> bool:
        """A line's result, once: False when it was recorded already (or the batch is past running)."""
        reply = await self._record(keys=[f"{P}:out:{batch_id}", batch_key(batch_id)],
                                   args=[index, (b"o" if ok else b"e") + line, "completed" if ok else "failed",
                                         input_tokens, output_tokens])
        return int(reply) == 1

    @shielded
    async def chunk_done(self, batch_id: str, chunk: int) -> bool:
        """Marks a chunk done; True (and the final task queued) when it was the last one."""
        reply = await self._chunk_done(keys=[f"{P}:done:{batch_id}", batch_key(batch_id), QUEUE],
                                       args=[chunk, batch_id])
        return int(reply) == 1

    @shielded
    async def results(self, batch_id: str, start: int, count: int) -> list[tuple[bool, bytes]]:
        """The recorded lines among `count` from `start`, in input order: (answered with 2xx, the line)."""
        raw = await self.client.hmget(f"{P}:out:{batch_id}", list(range(start, start + count)))
        return [(v[:1] == b"o", bytes(v[1:])) for v in raw if v is not None]

    @shielded
    async def drop_work(self, batch_id: str) -> None:
        await self.client.delete(f"{P}:out:{batch_id}", f"{P}:done:{batch_id}")

