"""The kube-apiserver, etcd, kubectl and helm binaries the control plane runs,
built and cached by hack/k8s-binaries.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "k8s-binaries.sh"


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


def locate_binaries(build: bool = True) -> Binaries:
    """Build (if needed) and find the binaries via hack/k8s-binaries.sh.

    The script owns the version pins and the cache layout; this only reads
    its `--print-env` output. Build logs go to our stderr. With build=False
    the paths come from the same LOCKGATE_* variables in our environment.
    """
    if not build:
        env = {k: v for k, v in os.environ.items() if k.startswith("LOCKGATE_")}
    else:
        out = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--print-env"],
            stdout=subprocess.PIPE, text=True, check=False, timeout=3600,
        )
        if out.returncode == 3:  # the script's code for "no Go"
            raise GoMissing(f"{BUILD_SCRIPT} needs Go to build the missing binaries")
        if out.returncode != 0:
            raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {out.returncode}")
        env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
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
