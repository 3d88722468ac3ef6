"""Starting `lockgate` as a real subprocess on free loopback ports, for tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.loopback import free_port


@dataclass
class Gateway:
    port: int
    admin_port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(check: Callable[[], bool], what: str, gateway: Gateway, timeout: float = 20.0) -> None:
    """Polls `check` until true; fails with the gateway's log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise AssertionError(f"gateway exited ({gateway.process.returncode}) waiting for {what}:\n{gateway.logs()}")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{gateway.logs()}")


@contextmanager
def gateway_process(args: list[str], tmp: Path) -> Iterator[Gateway]:
    port, admin_port = free_port(), free_port()
    log = tmp / "gateway.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "lockgate.cli.main", *args, "--port", str(port), "--admin-port", str(admin_port),
             "--state-dir", str(tmp / "state")],
            stdout=sink, stderr=subprocess.STDOUT, env=env,
        )
    gateway = Gateway(port, admin_port, log, process)
    try:
        wait_for(lambda: httpx.get(f"{gateway.admin}/readyz", timeout=1).status_code == 200, "readiness", gateway)
        yield gateway
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def quickstart_process(tmp: Path) -> Iterator[Gateway]:
    """`lockgate dev run-quickstart` on a copy of examples/quickstart with a free upstream port."""
    upstream_port = free_port()
    quickstart = tmp / "quickstart"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "quickstart", quickstart)
    provider = quickstart / "10-provider.yaml"
    provider.write_text(provider.read_text().replace("127.0.0.1:8181", f"127.0.0.1:{upstream_port}"))
    with gateway_process(["dev", "run-quickstart", "-f", str(quickstart), "--upstream-port", str(upstream_port)],
                         tmp) as gateway:
        yield gateway
