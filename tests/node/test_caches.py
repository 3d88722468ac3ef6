"""A second run builds nothing: every binary and image the node runs comes
out of the cache (${LOCKGATE_CACHE:-~/.cache/lockgate}) the first run filled.
The setup steps `make deps` runs for the node, and the project image's
script, are run again here; each would say "building ..." (or apt would
install) if it had to make anything, and none of them may say anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.kube.binaries import REPO, NodeBinaries
from tests.kube.images import SCRIPT as IMAGES_SCRIPT
from tests.kube.images import build_images

SETUP = REPO / "hack" / "setup.d"
# What the node tests need from `make deps`.
NODE_STEPS = ("15-node-debian.sh", "30-k8s-binaries.sh", "32-node-binaries.sh", "34-coredns.sh",
              "35-helm.sh", "38-node-images.sh")


@pytest.mark.parametrize("step", NODE_STEPS)
def test_a_second_setup_run_builds_nothing(node_binaries: NodeBinaries, step: str) -> None:
    build_images()  # the first run: whatever was missing is made now
    res = subprocess.run(["bash", str(SETUP / step)], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert (res.stdout + res.stderr).strip() == ""


def test_the_project_image_is_reused_while_its_sources_stay(node_binaries: NodeBinaries) -> None:
    first = build_images()
    res = subprocess.run(["bash", str(IMAGES_SCRIPT), "project"], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr
    archives = {line.split("=", 1)[0]: line.split(" ", 1)[1] for line in res.stdout.splitlines()}
    assert archives["LOCKGATE"] == str(first.lockgate.archive)
    assert all(Path(a).stat().st_size > 0 for a in archives.values())
    # And the binaries: the paths the fixtures use, all present.
    for binary in (node_binaries.kubelet, node_binaries.kube_proxy, node_binaries.kube_scheduler,
                   node_binaries.kube_controller_manager, node_binaries.containerd, node_binaries.coredns,
                   node_binaries.control_plane.kube_apiserver, node_binaries.control_plane.etcd):
        assert binary.is_file() and binary.stat().st_mode & 0o111, binary
