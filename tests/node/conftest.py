"""Session fixture for the node tests: one real single-node cluster
(tests/kube/node.py) with the project's image, started once per test session
and used only by the tests under tests/node/ (marker `node`; run just them
with `pytest -m node`).

    def test_something(node: Node) -> None:
        node.kubectl("apply", "-f", "-", input=manifest)

The node needs root and the Debian packages of hack/setup.d/15-node-debian.sh.
Without them the tests skip locally; under CI=true they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kube.binaries import NodeBinaries, locate_node_binaries
from tests.kube.images import build_images
from tests.kube.node import Node
from tests.node.release import Release, apply_quickstart, install

_HERE = Path(__file__).parent
# What the node runs beyond the Go binaries it builds itself.
TOOLS = ("nsenter", "ip", "iptables", "ip6tables", "sysctl", "umount", "runc", "ctr",
         "buildah", "debootstrap", "cc", "go")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.node)
            # The first test also waits for the node to start (and maybe the
            # project image to build).
            item.add_marker(pytest.mark.timeout(900))
    # The killed-run test starts (and kills) a node of its own: before the session's.
    first = [i for i in items if Path(str(i.fspath)) == _HERE / "test_cleanup.py"]
    items[:] = first + [i for i in items if i not in first]


def missing_prerequisites() -> list[str]:
    missing = [] if os.geteuid() == 0 else ["root (the node makes namespaces, mounts and cgroups)"]
    missing += [t for t in TOOLS if shutil.which(t) is None]
    missing += [f"/usr/lib/cni/{p}" for p in CNI_PLUGINS if not Path("/usr/lib/cni", p).exists()]
    return missing


@pytest.fixture(scope="session")
def node_binaries() -> NodeBinaries:
    """What a node runs, built if missing; skips (fails under CI=true) when
    this machine cannot run a node."""
    missing = missing_prerequisites()
    if missing:
        message = "the node tests need " + ", ".join(missing) + " (make deps installs the packages)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return locate_node_binaries()


@pytest.fixture(scope="session")
def node(node_binaries: NodeBinaries) -> Iterator[Node]:
    cluster = Node(node_binaries, build_images())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()  # raises when anything of the node is left behind


@pytest.fixture(scope="session")
def release(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """The chart installed as README.md shows it (tests/node/release.py)."""
    yield from install(node, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="session")
def quickstart(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Release:
    """examples/in-cluster/ applied in the watched namespace: its Route
    serves every model of that namespace, the tests' own included."""
    apply_quickstart(release, tmp_path_factory.mktemp("quickstart"))
    return release
