"""The kube-apiserver, etcd, kubectl and helm binaries the control plane runs,
built and cached by hack/k8s-binaries.sh; for the node tests also kubelet,
kube-proxy, kube-scheduler, kube-controller-manager (the same script with
--node), containerd (hack/containerd-binaries.sh) and CoreDNS
(hack/coredns-binaries.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "k8s-binaries.sh"
CONTAINERD_SCRIPT = REPO / "hack" / "containerd-binaries.sh"
COREDNS_SCRIPT = REPO / "hack" / "coredns-binaries.sh"


class ControlPlaneError(RuntimeError):
    pass


class GoMissing(ControlPlaneError):
    """The binaries are not cached and there is no Go to build them."""


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    kubectl: Path
    helm: Path | None = None
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeBinaries:
    control_plane: Binaries
    kubelet: Path
    kube_proxy: Path
    kube_scheduler: Path
    kube_controller_manager: Path
    containerd: Path  # its runc shim sits beside it
    coredns: Path


def _script_env(script: Path, *args: str) -> dict[str, str]:
    """Run a build script with --print-env and read its KEY=value lines."""
    out = subprocess.run(
        ["bash", str(script), *args, "--print-env"],
        stdout=subprocess.PIPE, text=True, check=False, timeout=3600,
    )
    if out.returncode == 3:  # the scripts' code for "no Go"
        raise GoMissing(f"{script} needs Go to build the missing binaries")
    if out.returncode != 0:
        raise ControlPlaneError(f"{script} failed with exit code {out.returncode}")
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def locate_node_binaries() -> NodeBinaries:
    """Build (if needed) and find everything a single-node cluster runs."""
    env = _script_env(BUILD_SCRIPT, "--node") | _script_env(CONTAINERD_SCRIPT) | _script_env(COREDNS_SCRIPT)
    try:
        return NodeBinaries(
            control_plane=_binaries(env),
            kubelet=Path(env["LOCKGATE_KUBELET"]),
            kube_proxy=Path(env["LOCKGATE_KUBE_PROXY"]),
            kube_scheduler=Path(env["LOCKGATE_KUBE_SCHEDULER"]),
            kube_controller_manager=Path(env["LOCKGATE_KUBE_CONTROLLER_MANAGER"]),
            containerd=Path(env["LOCKGATE_CONTAINERD"]),
            coredns=Path(env["LOCKGATE_COREDNS"]),
        )
    except KeyError as e:
        raise ControlPlaneError(f"binary path {e} not provided") from None


def locate_binaries(build: bool = True) -> Binaries:
    """Build (if needed) and find the binaries via hack/k8s-binaries.sh.

    The script owns the version pins and the cache layout; this only reads
    its `--print-env` output. Build logs go to our stderr. With build=False
    the paths come from the same LOCKGATE_* variables in our environment.
    """
    if not build:
        env = {k: v for k, v in os.environ.items() if k.startswith("LOCKGATE_")}
    else:
        env = _script_env(BUILD_SCRIPT)
    return _binaries(env)


def _binaries(env: dict[str, str]) -> Binaries:
    try:
        helm = Path(env["LOCKGATE_HELM"]) if env.get("LOCKGATE_HELM") else None
        return Binaries(
            kube_apiserver=Path(env["LOCKGATE_KUBE_APISERVER"]),
            etcd=Path(env["LOCKGATE_ETCD"]),
            kubectl=Path(env.get("LOCKGATE_KUBECTL") or shutil.which("kubectl") or "kubectl"),
            helm=helm,
            versions={k.removeprefix("LOCKGATE_").removesuffix("_VERSION").lower(): v
                      for k, v in env.items() if k.endswith("_VERSION")},
        )
    except KeyError as e:
        raise ControlPlaneError(f"binary path {e} not provided") from None
