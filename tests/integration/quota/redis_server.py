"""A real redis-server on a free loopback port, killable and restartable mid-test."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from tests.loopback import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class RedisServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []  # more redis-server arguments

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, deadline: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "no", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith((b"+PONG", b"-NOAUTH")):  # answering (with a password set)
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise TimeoutError("redis-server did not answer")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


class RedisCluster:
    """Three primaries of a real Redis Cluster on loopback, no replicas, no persistence."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        self.nodes = [RedisServer() for _ in range(size)]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self, deadline: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            node.extra = ["--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                          "--cluster-config-file", str(self.workdir / f"nodes-{node.port}.conf"),
                          "--dir", str(self.workdir)]
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run([REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=deadline)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            infos = [subprocess.run([REDIS_CLI, "-p", str(n.port), "cluster", "info"], capture_output=True,
                                    text=True, timeout=5).stdout for n in self.nodes]
            if all("cluster_state:ok" in i for i in infos):
                return
            time.sleep(0.05)
        raise TimeoutError("the Redis Cluster did not become ready")

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()
