"""The README's "In a cluster" section, replayed command by command on the real
kube-apiserver, as a new user would type it.

Everything runs as written (kubectl, helm, the shell's `export` and `curl`)
except what needs a kubelet: the pods. They are started as processes the
moment the kubelet would start them, with the command lines and environment
the chart and the example give them (the operator and the proxy under tokens
of the chart's ServiceAccounts, the chart's Redis, the example's stand-in
model), and the EndpointSlices the endpoint controller would publish for them.
`kubectl port-forward` needs a kubelet too, so `curl` goes to the proxy
process's loopback port instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.chart_release import Release, adopt_existing_crds, run_as, with_flags
from tests.e2e.lockgate_env import Lockgate, Proxy, endpoint_slice, wait_for
from tests.integration.quota.redis_server import RedisServer
from tests.kube.controlplane import ControlPlane, free_port

REPO = Path(__file__).resolve().parents[2]
RELEASE_NS, WATCHED = "lockgate-system", "ai-gateway"
OPERATOR, PROXY, REDIS = "lockgate-operator", "lockgate-proxy", "lockgate-redis"
EXAMPLE = REPO / "examples" / "in-cluster"


def readme_commands() -> list[str]:
    """The commands of the section's shell block, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## In a cluster\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the section has no shell block"
    commands = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        command = re.split(r"\s{2,}#\s", line, maxsplit=1)[0].strip()
        if command:
            commands.append(re.sub(r"\s+", " ", command))
    return commands


def test_the_section_is_what_this_test_replays() -> None:
    steps = [c.split()[0:2] for c in readme_commands()]
    assert steps == [["kubectl", "create"], ["helm", "install"], ["kubectl", "apply"], ["kubectl", "-n"],
                     ["kubectl", "get"], ["export", "LOCKGATE_KEY=$(kubectl"], ["kubectl", "-n"], ["curl", "-s"]]


class Shell:
    """The user's shell: kubectl and helm on PATH, the test cluster's kubeconfig, the repository as cwd."""

    def __init__(self, kube: ControlPlane, home: Path) -> None:
        assert kube.binaries.helm is not None
        bins = home / "bin"
        bins.mkdir(parents=True)
        for tool in (kube.binaries.kubectl, kube.binaries.helm):
            (bins / tool.name).symlink_to(tool)
        self.env = {**kube.env, "PATH": f"{bins}{os.pathsep}{os.environ['PATH']}",
                    **{f"HELM_{k}_HOME": str(home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}}

    def run(self, script: str, timeout: float = 180) -> str:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        assert proc.returncode == 0, f"{script}\nfailed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout


@pytest.fixture
def pods(kube: ControlPlane, tmp_path: Path) -> Iterator[Lockgate]:
    """What the kubelet runs, as processes (stopped at the end)."""
    env = Lockgate(kube, RELEASE_NS, tmp_path)
    try:
        yield env
    finally:
        env.close()
        for process in env.processes:
            sys.stdout.write(f"----- {process.name} log (tail) -----\n"
                             + "\n".join(process.output().splitlines()[-30:]) + "\n")


def test_the_readme_cluster_section_works_from_zero(kube: ControlPlane, pods: Lockgate, tmp_path: Path) -> None:
    if kube.binaries.helm is None or not shutil.which("curl"):
        pytest.skip("helm and curl are needed to replay the README")
    create_ns, install, apply, wait, get_all, export_key, port_forward, curl = readme_commands()
    shell = Shell(kube, tmp_path / "user")
    release = Release(kube, RELEASE_NS, tmp_path / "user")

    shell.run(create_ns)
    adopt_existing_crds(kube, RELEASE_NS)  # CRDs other tests of this session applied: handed to this release
    shell.run(install)
    redis = RedisServer()
    try:
        proxy = start_release_pods(release, pods, redis, tmp_path)
        shell.run(apply)
        start_example_pods(kube, pods)

        shell.run(wait)
        listed = shell.run(get_all)
        for name in ("apikey.lockgate.io/demo", "modelprovider.lockgate.io/dev-upstream", "route.lockgate.io/openai"):
            assert name in listed, listed
        assert "port-forward" in port_forward  # needs a kubelet: curl goes to the proxy process directly
        # A Service sends traffic to a pod once its readiness probe passes.
        wait_for(lambda: proxy.admin("/readyz")[0] == 200, 60, "the proxy's readiness probe")
        answer = json.loads(shell.run(f"{export_key}\n{curl.replace('localhost:8080', f'127.0.0.1:{proxy.port}')}"))
        assert answer["choices"][0]["message"]["content"] == "echo: hello", answer
        # The request was counted in the chart's Redis: exact quotas across replicas by default.
        def usage() -> dict[str, Any] | None:
            demo = json.loads(kube.kubectl("get", "apikey", "demo", "-n", WATCHED, "-o", "json").stdout)
            found: dict[str, Any] | None = (demo.get("status") or {}).get("usage")
            return found if found and found.get("requests") else None

        assert wait_for(usage, 30, "the ApiKey's usage, read back from the proxies")["requests"] >= 1
        for process in pods.processes:
            assert process.alive(), process.output()
    finally:
        redis.kill()


def start_release_pods(release: Release, pods: Lockgate, redis: RedisServer, tmp_path: Path) -> Proxy:
    """The chart's pods: the operator first (it generates the Secrets the others mount), then Redis
    and a proxy; the admin Service's EndpointSlice for the proxy."""
    operator = with_flags(release.container_args(OPERATOR), {"--liveness": f"http://127.0.0.1:{free_port()}/healthz"})
    run_as(pods, "operator", operator, OPERATOR)
    for secret, key in ((REDIS, "password"), ("lockgate-mcp-session", "session-key")):
        wait_for(lambda: pods.secret_value(secret, key), 60, f"the operator to generate {secret}")

    redis_env = release.container_env(REDIS)
    args = [a.replace("$(REDIS_PASSWORD)", redis_env["REDIS_PASSWORD"]) for a in release.container_args(REDIS)]
    args[args.index("--port") + 1], args[args.index("--dir") + 1] = str(redis.port), str(tmp_path)
    redis.extra = args
    redis.start()

    env = release.container_env(PROXY)
    env["LOCKGATE_QUOTA_STORE_URL"] = env["LOCKGATE_QUOTA_STORE_URL"].replace(
        f"{REDIS}.{RELEASE_NS}.svc:6379", f"127.0.0.1:{redis.port}")
    port, admin_port = free_port(), free_port()
    args = with_flags(release.container_args(PROXY), {"--host": "127.0.0.1", "--port": str(port),
                                                      "--admin-port": str(admin_port)})
    run_as(pods, "proxy", args, PROXY, env=env)
    pods.apply_objects([endpoint_slice(f"{PROXY}-admin-pod", f"{PROXY}-admin", "admin", admin_port)])
    return Proxy(pods.processes[-1], port, admin_port)


def start_example_pods(kube: ControlPlane, pods: Lockgate) -> None:
    """The example's stand-in model, as its Deployment runs it, and its Service's EndpointSlice."""
    deployment = next(d for d in yaml.safe_load_all((EXAMPLE / "10-dev-upstream.yaml").read_text(encoding="utf-8"))
                      if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args: list[Any] = list(container["args"])
    port = free_port()
    args[args.index("--host") + 1], args[args.index("--port") + 1] = "127.0.0.1", str(port)
    pods._spawn("dev-upstream", *args)
    slice_ = endpoint_slice("dev-upstream-pod", "dev-upstream", "http", port)
    kube.kubectl("apply", "-n", WATCHED, "-f", "-", input=yaml.safe_dump(slice_))
