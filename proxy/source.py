"""Where a proxy's configuration comes from.

A `ConfigSource` yields a new `Snapshot` each time a valid configuration
appears (files edited, ConfigMap changed). A source that meets an invalid
configuration logs why and yields nothing, so the proxy keeps its last good
snapshot. Sources: files (standalone `lockgate run`), Kubernetes ConfigMaps
(`lockgate proxy`), and a static one for tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from lockgate.api.ir import Credentials, GatewayConfig


@dataclass(frozen=True)
class Snapshot:
    config: GatewayConfig
    credentials: Credentials


class ConfigSource(Protocol):
    def updates(self) -> AsyncIterator[Snapshot]: ...


class StaticSource:
    """Yields given snapshots; `push` adds more later (tests swap configs with it)."""

    def __init__(self, *snapshots: Snapshot) -> None:
        self._queue: asyncio.Queue[Snapshot] = asyncio.Queue()
        for snapshot in snapshots:
            self._queue.put_nowait(snapshot)

    def push(self, snapshot: Snapshot) -> None:
        self._queue.put_nowait(snapshot)

    async def updates(self) -> AsyncIterator[Snapshot]:
        while True:
            yield await self._queue.get()
