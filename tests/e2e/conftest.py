"""Session fixtures for end-to-end tests against a real kube-apiserver.

`kube` starts etcd + kube-apiserver once per test session (building them with
Go on first use, cached outside the repository) and yields a ControlPlane:

    def test_something(kube: ControlPlane, namespace: str) -> None:
        kube.kubectl("create", "configmap", "c", "-n", namespace)
        sa = kube.service_account_kubeconfig(namespace, "proxy", create=True)
        subprocess.run([str(kube.binaries.helm), "install", ...], env=kube.env, check=True)

Every test under tests/e2e/ gets the `e2e` marker (`pytest -m "not e2e"`).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube.controlplane import ControlPlane, GoMissing, locate_binaries

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def kube() -> Iterator[ControlPlane]:
    """A running control plane: .server, .kubeconfig, .kubectl(...), .env, .binaries."""
    try:
        binaries = locate_binaries()
    except GoMissing as e:
        if shutil.which("go") is None:
            pytest.skip(f"Go is not installed, so kube-apiserver cannot be built: {e}")
        raise
    cp = ControlPlane(binaries)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(kube: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A fresh namespace per test. Never deleted: with no namespace controller
    running, a deleted namespace would only sit in Terminating."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"{slug}-{uuid.uuid4().hex[:6]}"
    kube.kubectl("create", "namespace", name)
    return name
