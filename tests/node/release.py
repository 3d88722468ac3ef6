"""The chart's release on the test node, installed as README.md's "In a
cluster" does it: the namespace the operator watches first, then `helm
install` with the default values but for that namespace and the images (the
project's, built from its Dockerfile, and Debian's redis-server), so the
quotas are counted in the chart's bundled Redis on a PersistentVolumeClaim,
reached by its Service name through the cluster DNS. Then `kubectl apply -k
examples/in-cluster/` with the image set to the project's.

One release per test session (fixtures in tests/node/conftest.py): the tests
that upgrade and delete its pods leave it with every pod Ready again.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import yaml

from tests.e2e.lockgate_env import Upstreams
from tests.kube.node import Node
from tests.node.pods import get, pods

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "lockgate"
QUICKSTART = REPO / "examples" / "in-cluster"
NS = "lockgate-system"  # the release's: operator, proxies, Redis
APPS = "ai-gateway"  # the watched one: the Lockgate resources and their Secrets
RELEASE = "lockgate"
OPERATOR = "app.kubernetes.io/component=operator"
PROXY = "app.kubernetes.io/component=proxy"
REDIS = "app.kubernetes.io/component=redis"


@dataclass
class Release:
    node: Node
    home: Path
    upstreams: Upstreams = field(default_factory=Upstreams)

    def helm(self, *args: str, timeout: float = 300) -> str:
        cp = self.node.control_plane
        assert cp.binaries.helm is not None
        env = {**cp.env, **{f"HELM_{k}_HOME": str(self.home / k.lower()) for k in ("CACHE", "CONFIG", "DATA")}}
        proc = subprocess.run([str(cp.binaries.helm), *args, "--namespace", NS], env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def kubectl(self, *args: str, check: bool = True, namespace: str = NS) -> str:
        return self.node.kubectl("-n", namespace, *args, check=check).stdout

    def obj(self, kind: str, name: str, namespace: str = APPS) -> dict[str, Any]:
        found = get(self.node, kind, name, namespace)
        assert found is not None, f"{kind}/{name} does not exist in {namespace}"
        return found

    def condition(self, kind: str, name: str, type_: str) -> dict[str, Any] | None:
        conditions = (get(self.node, kind, name, APPS) or {}).get("status", {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)

    def secret_value(self, name: str, key: str = "api-key") -> str | None:
        data = (get(self.node, "secret", name, APPS) or {}).get("data") or {}
        return base64.b64decode(data[key]).decode() if key in data else None

    def service_url(self) -> str:
        svc = self.obj("service", "lockgate-proxy", NS)
        return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/v1"

    def client(self, base_url: str | None = None, key: str = "") -> openai.OpenAI:
        # A new client (so a new connection) per use: these tests are about
        # where each request lands, not about a client's keep-alive pool.
        return openai.OpenAI(base_url=base_url or self.service_url(), api_key=key, max_retries=0, timeout=20)

    def chat(self, key: str, base_url: str | None = None, model: str = "m1", content: str = "hi") -> str:
        reply = self.client(base_url, key).chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}])
        return reply.choices[0].message.content or ""

    def dump(self) -> None:
        """What went on, printed for a failing test's report."""
        for ns in (NS, APPS):
            print(self.kubectl("get", "pods,pvc,events", "-o", "wide", check=False, namespace=ns))
        for pod in [*pods(self.node, NS, f"app.kubernetes.io/instance={RELEASE}"), *pods(self.node, APPS, "")]:
            name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
            print(f"----- {name} -----\n" + self.kubectl("logs", name, "--tail=40", check=False, namespace=ns))


def install(node: Node, home: Path) -> Iterator[Release]:
    rel = Release(node, home)
    images = node.images
    node.kubectl("create", "namespace", APPS)
    rel.helm("install", RELEASE, str(CHART), "--create-namespace",
             "--set", f"operator.watchNamespaces={{{APPS}}}",
             "--set", f"image.repository={images.lockgate.repository}", "--set", f"image.tag={images.lockgate.tag}",
             "--set", f"redis.image.repository={images.redis.repository}", "--set", f"redis.image.tag={images.redis.tag}")
    try:
        yield rel
    finally:
        rel.upstreams.close()
        rel.dump()


def apply_quickstart(rel: Release, workdir: Path) -> None:
    """`kubectl apply -k examples/in-cluster/`, through an overlay that sets
    its image to the project's (what `kustomize edit set image` would)."""
    image = rel.node.images.lockgate
    # kustomize takes bases by relative path only.
    shutil.copytree(QUICKSTART, workdir / QUICKSTART.name)
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [QUICKSTART.name],
        "images": [{"name": "lockgate", "newName": image.repository, "newTag": image.tag}],
    }))
    rel.node.kubectl("apply", "-k", str(workdir))
