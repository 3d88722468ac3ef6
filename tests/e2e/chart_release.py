"""The chart installed with helm on the test control plane, and its pods' processes.

No kubelet runs here: a pod's container is started as a process with the
command line and environment the chart gives it (Secrets read, `$(VAR)`
expanded, loopback ports instead of the pod's), under a token of the chart's
own ServiceAccount, as the kubelet would.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lockgate.api.resources import KINDS
from tests.e2e.lockgate_env import Lockgate
from tests.kube.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lockgate"
LOCKGATE_CRDS = tuple(kind.crd_name for kind in KINDS)


@dataclass
class Release:
    kube: ControlPlane
    namespace: str
    home: Path  # helm's cache, config and data: nothing of the user's is touched
    name: str = "lockgate"

    @property
    def env(self) -> dict[str, str]:
        return {**self.kube.env, **{f"HELM_{k}_HOME": str(self.home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}}

    def helm(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        assert self.kube.binaries.helm is not None
        proc = subprocess.run([str(self.kube.binaries.helm), *args, "--namespace", self.namespace],
                              env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def manifest(self) -> list[dict[str, Any]]:
        return [o for o in yaml.safe_load_all(self.helm("get", "manifest", self.name).stdout) if o]

    def workload(self, name: str) -> dict[str, Any]:
        for obj in self.manifest():
            if obj["kind"] in ("Deployment", "StatefulSet") and obj["metadata"]["name"] == name:
                return obj
        raise AssertionError(f"the release has no workload {name}")

    def container(self, workload: str) -> dict[str, Any]:
        """The first container the chart gives a workload, as installed."""
        container: dict[str, Any] = self.workload(workload)["spec"]["template"]["spec"]["containers"][0]
        return container

    def container_args(self, workload: str) -> list[str]:
        return [str(a) for a in self.container(workload)["args"]]

    def container_env(self, workload: str, namespace: str | None = None) -> dict[str, str]:
        """The container's environment as the kubelet would set it (downward-API fields left out)."""
        return resolve_env(self.kube, namespace or self.namespace, self.container(workload).get("env") or [])


def resolve_env(kube: ControlPlane, namespace: str, env: list[dict[str, Any]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in env:
        if "value" in item:
            values[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)),
                                          str(item["value"]))
            continue
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None:
            status, secret = kube.api("GET", f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
            assert status == 200, f"Secret {ref['name']} for {item['name']}: {status}"
            values[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    return values


def with_flags(args: list[str], replaced: Mapping[str, str]) -> list[str]:
    """`args` with the values of some --flag=value arguments replaced (each must be there)."""
    missing = [f for f in replaced if not any(a.startswith(f + "=") for a in args)]
    assert not missing, f"the chart no longer passes {missing}: {args}"
    return [next((f"{f}={v}" for f, v in replaced.items() if a.startswith(f + "=")), a) for a in args]


def adopt_existing_crds(kube: ControlPlane, namespace: str, release: str = "lockgate") -> None:
    """CRDs that another test applied earlier in this session are handed to
    the release, as an admin adopting a kubectl-installed Lockgate would."""
    for crd in LOCKGATE_CRDS:
        if kube.kubectl("get", "crd", crd, check=False).returncode == 0:
            kube.kubectl("label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")
            kube.kubectl("annotate", "--overwrite", "crd", crd, f"meta.helm.sh/release-name={release}",
                         f"meta.helm.sh/release-namespace={namespace}")


def token_of(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


def run_as(lockgate: Lockgate, name: str, args: list[str], service_account: str,
           env: Mapping[str, str] | None = None) -> Path:
    """Start `lockgate <args>` acting as the chart's ServiceAccount, as its pod
    would (POD_NAMESPACE from the downward API); its kubeconfig."""
    kubeconfig = lockgate.kube.service_account_kubeconfig(lockgate.namespace, service_account)
    # KUBECONFIG too, so nothing in the process can fall back to the admin's.
    lockgate._spawn(name, *args, "--kubeconfig", str(kubeconfig),
                    env={**(env or {}), "POD_NAMESPACE": lockgate.namespace, "KUBECONFIG": str(kubeconfig)})
    return kubeconfig


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A plain matchLabels selector (no expressions) matches these labels."""
    return dict(selector.get("matchLabels") or {}).items() <= dict(labels).items() \
        and not selector.get("matchExpressions")
