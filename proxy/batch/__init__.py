"""The OpenAI-compatible Files and Batch API, run by the gateway itself.

A key uploads a JSONL file of requests (`/v1/files`), creates a batch over it
(`/v1/batches`) and downloads the output and error files when it is done. The
lines run through the same request pipeline as live requests (quotas, budgets,
routing, failover), on whichever replica holds their chunk's lease.

- `records`, `lines`: the object shapes and the line format (pure).
- `files`: file contents in a directory shared by replicas.
- `state`: job state in Redis: files, batches, the chunk queue with leases, results.
- `runner`: one line through the pipeline; `worker`: the chunks this replica runs.
- `service`: what the endpoints do, per key; `handlers`: the thin HTTP layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lockgate.proxy.batch.service import BATCH, BatchService

__all__ = ["BATCH", "BatchService"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (e.g. for `disabled`) must not load the Redis client.
    if name in __all__:
        from lockgate.proxy.batch import service
        return getattr(service, name)
    raise AttributeError(name)
