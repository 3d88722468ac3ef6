from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lockgate.proxy.settings import BatchSettings
from tests.integration.batch.echo_upstream import EchoUpstream
from tests.integration.quota.conftest import redis_server  # noqa: F401  (the fixture)
from tests.integration.quota.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
async def echo() -> AsyncIterator[EchoUpstream]:
    upstream = await EchoUpstream().start()
    yield upstream
    await upstream.stop()


@pytest.fixture
def batch_settings(redis_server: RedisServer, tmp_path: Path) -> BatchSettings:
    return BatchSettings(store=redis_server.url, files_dir=str(tmp_path / "files"), chunk_lines=10,
                         lease_seconds=3.0, completion_windows=("24h", "2s"))
