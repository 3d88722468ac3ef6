"""Small helpers for the node tests: pods and objects on the test node."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from tests.e2e.lockgate_env import wait_for
from tests.kube.node import Node


def apply(node: Node, *objects: dict[str, Any]) -> None:
    node.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))


def get(node: Node, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    res = node.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def pods(node: Node, namespace: str, selector: str) -> list[dict[str, Any]]:
    out = node.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def is_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") != "Running":
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def wait_ready(node: Node, namespace: str, selector: str, count: int, timeout: float = 180) -> list[dict[str, Any]]:
    """Exactly `count` pods match and all are Running and Ready."""
    def ready() -> list[dict[str, Any]] | None:
        found = [p for p in pods(node, namespace, selector) if not p["metadata"].get("deletionTimestamp")]
        return found if len(found) == count and all(is_ready(p) for p in found) else None
    try:
        return wait_for(ready, timeout, f"{count} ready pods {selector} in {namespace}", interval=0.5)
    except AssertionError:
        print(node.kubectl("get", "pods,events", "-n", namespace, "-o", "wide", check=False).stdout)
        raise


def run_to_completion(node: Node, namespace: str, name: str, image: str, script: str,
                      timeout: float = 120, **spec: Any) -> tuple[str, str]:
    """Run `python3 -c script` in a pod; its phase (Succeeded/Failed) and log."""
    apply(node, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-c", script]}], **spec},
    })

    def done() -> str | None:
        pod = get(node, "pod", name, namespace) or {}
        phase = (pod.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(done, timeout, f"pod {namespace}/{name} to finish", interval=0.5)
    log = node.kubectl("logs", "-n", namespace, name).stdout
    return phase, log


def wait_gone(node: Node, kind: str, name: str, namespace: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while get(node, kind, name, namespace) is not None:
        assert time.monotonic() < deadline, f"{kind}/{name} still there after {timeout}s"
        time.sleep(0.5)
