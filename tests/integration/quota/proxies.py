"""`lockgate run` processes serving one folder of manifests, as replicas do."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.loopback import free_port

CONSUMER_KEY = "lg-quota-test-key-0000"

KEY_MANIFESTS = """\
apiVersion: v1
kind: Secret
metadata: {{name: team-key, namespace: demo}}
stringData: {{api-key: {key}}}
---
apiVersion: lockgate.io/v1alpha1
kind: ApiKey
metadata: {{name: team, namespace: demo}}
spec:
  consumer: team
  secretName: team-key
  limits: {{{limits}}}
---
"""

PROVIDER_MANIFEST = """\
apiVersion: lockgate.io/v1alpha1
kind: ModelProvider
metadata: {{name: local, namespace: demo}}
spec:
  type: openai-compatible
  endpoint: {upstream}
  models: [{{name: {model}}}]
---
"""

ROUTE_MANIFEST = """\
apiVersion: lockgate.io/v1alpha1
kind: Route
metadata: {name: api, namespace: demo}
spec:
  type: openai
  hosts: ["127.0.0.1", "localhost"]
"""


def key_manifests(key: str = CONSUMER_KEY, **limits: int | None) -> str:
    """The Secret and ApiKey of consumer `team` in namespace demo; `limits` by their CRD names (rpm, monthlyTokens)."""
    return KEY_MANIFESTS.format(key=key, limits=", ".join(f"{k}: {v}" for k, v in limits.items() if v is not None))


def write_manifests(folder: Path, upstream: str, rpm: int, monthly: int = 10_000_000, *, tpm: int | None = None,
                    model: str = "gpt-4o", key: str = CONSUMER_KEY) -> Path:
    """A key with limits, one OpenAI-compatible provider of `model` at `upstream`, and a Route on loopback."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gateway.yaml").write_text(key_manifests(key, rpm=rpm, tpm=tpm, monthlyTokens=monthly)
                                         + PROVIDER_MANIFEST.format(upstream=upstream, model=model) + ROUTE_MANIFEST)
    return folder


@dataclass
class Proxy:
    manifests: Path
    state_dir: Path
    quota_store: str
    replicas: int = 1
    fail_mode: str = "open"
    workers: int = 1
    port: int = 0
    admin_port: int = 0
    process: asyncio.subprocess.Process | None = None
    extra: tuple[str, ...] = ()  # more `lockgate run` flags

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def start(self, deadline: float = 30.0) -> Proxy:
        self.port, self.admin_port = free_port(), free_port()
        lockgate = Path(sys.executable).parent / "lockgate"
        self.process = await asyncio.create_subprocess_exec(
            str(lockgate), "run", "-f", str(self.manifests), "--port", str(self.port),
            "--admin-port", str(self.admin_port), "--state-dir", str(self.state_dir),
            "--quota-store", self.quota_store, "--replicas-hint", str(self.replicas), "--quota-fail-mode", self.fail_mode,
            "--log-level", "WARNING", "--workers", str(self.workers), *self.extra,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        end = time.monotonic() + deadline
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < end:
                assert self.process.returncode is None, "lockgate run exited"
                try:
                    async with session.get(f"{self.admin_url}/readyz") as r:
                        if r.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError("lockgate run did not become ready")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.process = None

    async def kill(self) -> None:
        """SIGKILL: the replica dies without giving anything back."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None

    async def admin(self, path: str) -> object:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.admin_url}{path}") as r:
                assert r.status == 200
                return await (r.json() if path in ("/usage", "/budgets") else r.text())
