"""A Lockgate installation on the test control plane, for end-to-end tests:
the operator and proxies as real processes, loopback upstreams in a thread,
objects applied with kubectl.

Usage (fixtures are imported into the test module):

    def test_x(lockgate: Lockgate) -> None:
        lockgate.start_operator()
        proxy = lockgate.start_proxy()
        lockgate.apply(provider_yaml)
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import openai
import pytest
import yaml

from tests.kube.controlplane import ControlPlane
from tests.kube.processes import die_with_parent, free_port
from tests.upstreams import FakeUpstream

REPO = Path(__file__).resolve().parents[2]
PROXY_SERVICE = "lockgate-proxy"
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll until `check` returns something truthy; that value, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Process:
    """A lockgate subprocess with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=die_with_parent)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if not self.alive():
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class Proxy:
    process: Process
    port: int
    admin_port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def admin(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=2) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None
        except OSError:
            return 0, None

    def loaded_hash(self) -> str | None:
        status, body = self.admin("/config")
        return body.get("hash") if status == 200 and body else None


class Upstreams:
    """FakeUpstreams served from one background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="upstreams")
        self.thread.start()
        self.started: list[FakeUpstream] = []

    def _run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(10)

    def start(self, text: str, kind: str = "openai", bind: str = "127.0.0.1") -> FakeUpstream:
        async def make() -> FakeUpstream:
            return await FakeUpstream(kind=kind, text=text, name=text, bind=bind).start()  # type: ignore[arg-type]

        fake: FakeUpstream = self._run(make())
        self.started.append(fake)
        return fake

    def forwarder(self, target: tuple[str, int]) -> Forwarder:
        forwarder = Forwarder(self, target)
        forwarder.restore()
        return forwarder

    def close(self) -> None:
        for fake in self.started:
            self._run(fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Forwarder:
    """A TCP relay (to the API server) that a test can cut and restore."""

    def __init__(self, upstreams: Upstreams, target: tuple[str, int]) -> None:
        self.upstreams, self.target, self.port = upstreams, target, free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def restore(self) -> None:
        async def listen() -> asyncio.Server:
            return await asyncio.start_server(self._relay, "127.0.0.1", self.port, reuse_address=True)

        self._server = self.upstreams._run(listen())

    def cut(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in self._writers:
                writer.close()
            self._writers.clear()

        self.upstreams._run(close())


@dataclass
class Lockgate:
    kube: ControlPlane
    namespace: str
    workdir: Path
    upstreams: Upstreams = field(default_factory=Upstreams)
    processes: list[Process] = field(default_factory=list)

    # -- processes ---------------------------------------------------------

    def _spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Process:
        env = {**self.kube.env, "PYTHONUNBUFFERED": "1", **(env or {})}
        log = self.workdir / f"{name}.log"
        process = Process(name, [sys.executable, "-m", "lockgate.cli.main", *args], env, log)
        self.processes.append(process)
        return process

    def start_operator(self, *extra: str, standalone: bool = True) -> Process:
        name = f"operator-{sum(p.name.startswith('operator') for p in self.processes) + 1}"
        return self._spawn(
            name, "operator", "--namespace", self.namespace, "--publish-namespace", self.namespace,
            "--proxy-service", PROXY_SERVICE, *(("--standalone",) if standalone else ()), *extra,
        )

    def start_proxy(self, name: str = "proxy", ports: tuple[int, int] | None = None, register: bool = True,
                    wait_ready: bool = True, kubeconfig: Path | None = None,
                    config_map: str = "lockgate-config") -> Proxy:
        port, admin_port = ports or (free_port(), free_port())
        if register:
            self.register_proxy(name, admin_port)
        process = self._spawn(
            name, "proxy", "--config-map", f"{self.namespace}/{config_map}",
            "--port", str(port), "--admin-port", str(admin_port), "--log-level", "INFO",
            "--state-dir", str(self.workdir / f"{name}-state"),
            *(("--kubeconfig", str(kubeconfig)) if kubeconfig else ()),
        )
        proxy = Proxy(process, port, admin_port)
        if wait_ready:
            wait_for(lambda: proxy.admin("/readyz")[0] == 200 or not process.alive(), 30, f"{name} ready")
            assert process.alive(), process.output()
        return proxy

    def register_proxy(self, name: str, admin_port: int) -> None:
        """The proxy Service's EndpointSlice, one per replica (ports differ on loopback)."""
        self.apply_objects([
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": PROXY_SERVICE},
             "spec": {"ports": [{"name": "admin", "port": 9090}]}},
            endpoint_slice(f"{PROXY_SERVICE}-{name}", PROXY_SERVICE, "admin", admin_port),
        ])

    def kubeconfig_via(self, forwarder: Forwarder) -> Path:
        """The admin kubeconfig, reaching the API server through `forwarder`."""
        config = yaml.safe_load(self.kube.kubeconfig.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{forwarder.port}"
        path = self.workdir / "via-forwarder.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    # -- objects -----------------------------------------------------------

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.kube.kubectl(*args, "-n", self.namespace, check=check, input=input)

    def apply(self, manifest: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", input=manifest, check=check)

    def apply_objects(self, objects: list[dict[str, Any]]) -> None:
        self.apply(yaml.safe_dump_all(objects))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        out = self.kubectl("get", kind, name, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def obj(self, kind: str, name: str) -> dict[str, Any]:
        """The object, which must exist."""
        found = self.get(kind, name)
        assert found is not None, f"{kind}/{name} does not exist"
        return found

    def condition(self, kind: str, name: str, type_: str) -> dict[str, Any] | None:
        obj = self.get(kind, name) or {}
        return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)

    def condition_is(self, kind: str, name: str, type_: str, status: str) -> dict[str, Any] | None:
        c = self.condition(kind, name, type_)
        return c if c is not None and c["status"] == status else None

    def secret_value(self, name: str, key: str = "api-key") -> str | None:
        secret = self.get("secret", name)
        raw = ((secret or {}).get("data") or {}).get(key)
        return base64.b64decode(raw).decode() if raw else None

    def published_hash(self) -> str | None:
        cm = self.get("configmap", "lockgate-config")
        return ((cm or {}).get("metadata", {}).get("annotations") or {}).get("lockgate.io/config-hash")

    # -- traffic -----------------------------------------------------------

    def client(self, proxy: Proxy, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=proxy.base_url, api_key=key, max_retries=0, timeout=5)

    def works(self, proxy: Proxy, key: str, expect: str | None = None, timeout: float = 15) -> str:
        """Wait until a request with `key` succeeds (with answer `expect`); the answer."""
        def ok() -> str | None:
            answer = self.status_of(proxy, key)
            return answer if isinstance(answer, str) and (expect is None or answer == expect) else None
        return wait_for(ok, timeout, f"a request answered {expect or ''}")

    def chat(self, proxy: Proxy, key: str, model: str = "m1") -> str:
        reply = self.client(proxy, key).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}])
        return reply.choices[0].message.content or ""

    def status_of(self, proxy: Proxy, key: str, model: str = "m1") -> int | str:
        """HTTP status of a chat request, or the answer text when it succeeded."""
        try:
            return self.chat(proxy, key, model)
        except openai.APIStatusError as e:
            return e.status_code
        except openai.APIConnectionError:
            return 0

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.upstreams.close()


def endpoint_slice(name: str, service: str, port_name: str, port: int, address: str | None = None,
                   ready: bool = True) -> dict[str, Any]:
    """The API server refuses loopback IPs in EndpointSlices, so loopback
    servers are named by FQDN under `.localhost` (loopback by RFC 6761)."""
    address = address or f"{name}.localhost"
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service,
                                              "endpointslice.kubernetes.io/managed-by": "tests.lockgate.io"}},
        "addressType": "FQDN",
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [address], "conditions": {"ready": ready}}],
    }


def backend(name: str, port: int, model: str = "m1") -> list[dict[str, Any]]:
    """A selector-less Service with one EndpointSlice, and a ModelProvider on it."""
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"ports": [{"name": "http", "port": 8000}]}},
        endpoint_slice(f"{name}-1", name, "http", port),
        {"apiVersion": "lockgate.io/v1alpha1", "kind": "ModelProvider", "metadata": {"name": name},
         "spec": {"type": "openai-compatible", "service": {"name": name, "port": "http"}, "basePath": "/v1",
                  "models": [{"name": model}]}},
    ]


def route(name: str = "api", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "lockgate.io/v1alpha1", "kind": "Route", "metadata": {"name": name},
            "spec": {"type": "openai", "hosts": ["*"], **spec}}


def apikey(name: str, secret: str | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "lockgate.io/v1alpha1", "kind": "ApiKey", "metadata": {"name": name},
            "spec": {"consumer": name, "secretName": secret or f"{name}-key", **spec}}


@pytest.fixture(scope="session")
def crds(kube: ControlPlane) -> ControlPlane:
    kube.install_crds([REPO / "crds"])
    return kube


@pytest.fixture
def lockgate(crds: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Lockgate]:
    env = Lockgate(crds, namespace, tmp_path)
    try:
        yield env
    finally:
        env.close()
        for process in env.processes:  # shown by pytest when the test failed
            sys.stdout.write(f"----- {process.name} log (tail) -----\n" + "\n".join(process.output().splitlines()[-40:]) + "\n")
