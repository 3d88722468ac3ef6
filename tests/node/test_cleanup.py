"""A node whose test run was killed outright (SIGKILL: no teardown ran)
leaves containerd's shims, the pods' processes, their mounts, cgroups and the
network namespace behind; the clean-up every node start does first removes
all of it. Runs before the session's node (tests/node/conftest.py orders it
first), since there is one node per machine at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import yaml

from tests.kube import nodenet
from tests.kube.binaries import NodeBinaries
from tests.kube.images import build_images
from tests.kube.node import ROOT
from tests.kube.processes import wait_until

REPO = Path(__file__).resolve().parents[2]


def test_a_killed_runs_node_is_cleaned_up_by_the_next(node_binaries: NodeBinaries, tmp_path: Path) -> None:
    sysctls_before = {k: nodenet._sysctl(k) for k in nodenet.KUBELET_SYSCTLS}
    image = build_images().base.ref
    child = subprocess.Popen([sys.executable, "-m", "tests.kube.node"], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=(tmp_path / "node.log").open("wb"), text=True, start_new_session=True)
    kubeconfig: list[str] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("export KUBECONFIG="):
                kubeconfig.append(line.split("=", 1)[1].strip())

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: bool(kubeconfig) or child.poll() is not None, 600, "the node to be Ready")
        assert kubeconfig, (tmp_path / "node.log").read_text()[-3000:]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper", "namespace": "default"},
               "spec": {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "s", "image": image, "command": ["sleep", "3600"]}]}}
        kubectl = [str(node_binaries.control_plane.kubectl), "--kubeconfig", kubeconfig[0]]
        subprocess.run([*kubectl, "apply", "-f", "-"], input=yaml.safe_dump(pod), text=True, check=True,
                       capture_output=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=120s"],
                       check=True, capture_output=True)
    finally:
        os.kill(child.pid, signal.SIGKILL)  # no teardown at all
        child.wait()

    # What the killed run left: the pod's processes, containerd's shim, mounts, the namespace.
    left = nodenet._node_pids(ROOT)
    assert left, "a killed node should leave its pods' processes behind"
    assert Path(f"/run/netns/{nodenet.NETNS}").exists()

    # As docs/testing.md shows it; the next node's start runs the same clean-up.
    cleaned = subprocess.run([sys.executable, "-m", "tests.kube.node", "--clean-up"], cwd=REPO,
                             capture_output=True, text=True, timeout=120, check=False)
    assert (cleaned.returncode, cleaned.stdout.strip()) == (0, "clean"), cleaned.stdout + cleaned.stderr
    assert not nodenet._node_pids(ROOT)
    assert not any(nodenet._exists(p) for p in left)
    assert not Path(f"/run/netns/{nodenet.NETNS}").exists() and not ROOT.exists()
    assert not Path("/sys/class/net", nodenet.HOST_LINK).exists()
    assert not list(Path("/sys/fs/cgroup").glob("*/kubepods"))
    assert str(ROOT) not in Path("/proc/self/mountinfo").read_text()
    assert {k: nodenet._sysctl(k) for k in nodenet.KUBELET_SYSCTLS} == sysctls_before
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert "198.18." not in routes
