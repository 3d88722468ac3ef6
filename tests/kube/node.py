"""A single-node Kubernetes cluster for tests, without Docker.

The control plane of tests/kube/controlplane.py (etcd + kube-apiserver), with
kube-controller-manager and kube-scheduler, and one node: containerd 2 with
runc on cgroupfs, the CNI bridge, host-local, loopback and portmap plugins,
kubelet, kube-proxy in iptables mode and CoreDNS as the cluster DNS. The
node offers a few static hostPath PersistentVolumes. The node runs in its own network
namespace (tests/kube/nodenet.py); pods get addresses from 198.18.0.0/24 and
Services from 198.18.1.0/24, both routed from the host through the node, and
kube-apiserver listens on the host's end of the link (198.18.255.1), where
pods reach it through the `kubernetes` Service with their mounted tokens.
Images come from OCI archives (tests/kube/images.py): nothing is pulled.

    with Node(locate_node_binaries(), build_images()) as node:
        node.kubectl("run", ...)

One node per machine at a time (a lock); it needs root. Starting cleans up
whatever a killed run left behind; stopping removes every process, mount,
cgroup, namespace and file the node made, and puts back the kernel settings
kubelet changed.

`python -m tests.kube.node` runs one in the foreground until Ctrl-C, and
`python -m tests.kube.node --clean-up` only removes a dead run's leftovers.
"""

from __future__ import annotations

import fcntl
import os
import urllib.error
import urllib.request
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tests.kube import nodenet
from tests.kube.binaries import ControlPlaneError, NodeBinaries, locate_node_binaries
from tests.kube.controlplane import ControlPlane
from tests.kube.images import NodeImages, build_images
from tests.kube.nodeconf import (
    DNS_READY_PORT, HOST_IP, NODE_IP, NODE_NAME, SERVICE_CIDR, Layout, persistent_volumes, write_configs,
)
from tests.kube.processes import LoggedProcess, free_port, serve_until_stopped, wait_until

ROOT = Path(os.environ.get("LOCKGATE_NODE_DIR", "/var/tmp/lockgate-node"))
LOCK = Path("/run/lock/lockgate-node.lock")
CTR = "ctr"  # Debian's containerd package: imports archives into the 2.x daemon too


def take_lock() -> IO[str]:
    """The machine's one node: wait while another test run has it. Held
    until the returned file is closed (or its process dies)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    lock = LOCK.open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def clean_up_after_killed_run(root: Path = ROOT) -> list[str]:
    with take_lock():
        return nodenet.clean_up(root)


class Node:
    """Attributes once started: `cp` (the ControlPlane, its admin kubeconfig
    and kubectl), `layout` (where state and logs are), `images`."""

    def __init__(self, binaries: NodeBinaries, images: NodeImages, root: Path = ROOT) -> None:
        self.binaries, self.images = binaries, images
        self.layout = Layout(root)
        self.logs = root / "logs"
        self.cp: ControlPlane | None = None
        self._procs: list[LoggedProcess] = []
        self._lock: IO[str] | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 240) -> None:
        self._lock = take_lock()
        try:
            leftovers = nodenet.clean_up(self.layout.root)  # of a run that was killed
            if leftovers:
                raise ControlPlaneError("cannot clean up an earlier node: " + "; ".join(leftovers))
            nodenet.record_host_state(self.layout.root)
            self.logs.mkdir(parents=True)
            nodenet.create_network()
            write_configs(self.layout)
            self.cp = ControlPlane(self.binaries.control_plane, workdir=self.layout.root / "cp",
                                   address=HOST_IP, service_cidr=SERVICE_CIDR, in_cluster=True)
            self.cp.start()
            shutil.copyfile(self.cp.kubeconfig, self.layout.kubeconfig)
            self._start_containerd(timeout)
            self._import_images()
            self._start_node_components()
            self._wait_ready(timeout)
            self._offer_volumes()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for proc in reversed(self._procs):
            proc.stop(timeout=10)
        pids = [p.proc.pid for p in self._procs]
        self._procs = []
        if self.cp is not None:
            self.cp.stop()
            self.cp = None
        problems = nodenet.clean_up(self.layout.root, pids)
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None
        if problems:
            raise ControlPlaneError("the node left traces behind: " + "; ".join(problems))

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def processes(self) -> list[LoggedProcess]:
        return [*(self.cp.processes() if self.cp else []), *self._procs]

    # -- what tests use ------------------------------------------------------

    @property
    def control_plane(self) -> ControlPlane:
        assert self.cp is not None, "node not started"
        return self.cp

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.control_plane.kubectl(*args, **kwargs)

    def tail_logs(self, lines: int = 20) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in self.processes())

    # -- internals -----------------------------------------------------------

    def _spawn(self, name: str, argv: Sequence[str], netns: bool = False,
               env: dict[str, str] | None = None) -> LoggedProcess:
        proc = LoggedProcess(name, nodenet.in_netns(argv) if netns else argv,
                             self.logs / f"{name}.log", env=env)
        self._procs.append(proc)
        return proc

    def _start_containerd(self, timeout: float) -> None:
        ctrd = self.binaries.containerd
        # Its shim beside it comes first: Debian's 1.6 shim may be on PATH too.
        env = {**os.environ, "PATH": f"{ctrd.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
        proc = self._spawn("containerd", [str(ctrd), "--config", str(self.layout.containerd / "config.toml")],
                           netns=True, env=env)
        sock = self.layout.containerd_socket

        def up() -> bool:
            proc.ensure_alive()
            return sock.exists() and self._ctr("version", check=False).returncode == 0

        wait_until(up, timeout, "containerd")

    def _ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [CTR, "--address", str(self.layout.containerd_socket), "--namespace", "k8s.io", *args]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise ControlPlaneError(f"ctr {' '.join(args)} failed: {res.stderr.strip()}")
        return res

    def _import_images(self) -> None:
        for image in self.images.all:
            self._ctr("images", "import", str(image.archive))
            if image.ref not in self._ctr("images", "ls", "-q").stdout.split():
                raise ControlPlaneError(f"{image.archive} did not import as {image.ref}")

    def _start_node_components(self) -> None:
        b, lay = self.binaries, self.layout
        kc = str(lay.kubeconfig)
        pki = self.control_plane.workdir / "pki"
        self._spawn("kubelet", [
            str(b.kubelet), f"--config={lay.kubelet / 'config.yaml'}", f"--kubeconfig={kc}",
            f"--root-dir={lay.kubelet / 'root'}", f"--cert-dir={lay.kubelet / 'pki'}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}", "--v=1",
        ], netns=True)
        auth = [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
                "--leader-elect=false", "--bind-address=127.0.0.1"]
        self._spawn("kube-scheduler", [str(b.kube_scheduler), *auth, f"--secure-port={free_port()}"])
        self._spawn("kube-controller-manager", [
            str(b.kube_controller_manager), *auth, f"--secure-port={free_port()}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'serving-ca.crt'}",
            "--use-service-account-credentials=false",
            # The node's pod range is in its kubelet config; no IPAM controller.
            "--allocate-node-cidrs=false", "--controllers=*,-nodeipam",
        ])
        self._spawn("kube-proxy", [str(b.kube_proxy), f"--config={lay.root / 'kube-proxy.yaml'}", "--v=1"],
                    netns=True)
        # In the node's namespace, on the address kubelet gives pods as their name server.
        self._spawn("coredns", [str(b.coredns), "-conf", str(lay.coredns / "Corefile")], netns=True)

    def _dns_ready(self) -> bool:
        """CoreDNS' `ready` plugin: 200 once it has listed Services and EndpointSlices."""
        try:
            with urllib.request.urlopen(f"http://{NODE_IP}:{DNS_READY_PORT}/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _offer_volumes(self) -> None:
        for pv in persistent_volumes(self.layout):
            path = Path(pv["spec"]["hostPath"]["path"])
            path.mkdir(parents=True)
            path.chmod(0o777)
            status, body = self.control_plane.api("POST", "/api/v1/persistentvolumes", pv)
            if status != 201:
                raise ControlPlaneError(f"cannot create {pv['metadata']['name']}: {status} {body}")

    def _wait_ready(self, timeout: float) -> None:
        cp = self.control_plane

        def ready() -> bool:
            for proc in self.processes():
                proc.ensure_alive()
            status, node = cp.api("GET", f"/api/v1/nodes/{NODE_NAME}")
            if status != 200:
                return False
            conds = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
            taints = node["spec"].get("taints") or []
            # kube-controller-manager lifts the not-ready taint, and its
            # ServiceAccount controller makes the `default` accounts pods need.
            sa_status, _ = cp.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            return conds.get("Ready") == "True" and not taints and sa_status == 200 and self._dns_ready()

        try:
            wait_until(ready, timeout, f"node {NODE_NAME} Ready", interval=0.5)
        except ControlPlaneError as e:
            raise ControlPlaneError(f"{e}\n{self.tail_logs()}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run a single-node cluster in the foreground until Ctrl-C."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m tests.kube.node", description=main.__doc__)
    p.add_argument("--clean-up", action="store_true",
                   help="only remove what a killed run left behind, then exit")
    args = p.parse_args(argv)
    if args.clean_up:
        problems = clean_up_after_killed_run()
        print("\n".join(problems) or "clean")
        return 1 if problems else 0
    start = time.monotonic()
    with Node(locate_node_binaries(), build_images()) as node:
        print(f"node {NODE_NAME} Ready after {time.monotonic() - start:.0f}s\n"
              f"\nexport KUBECONFIG={node.layout.kubeconfig}\n\nlogs: {node.logs}\n"
              "Ctrl-C stops the cluster and removes everything it made.", flush=True)
        return serve_until_stopped(node.processes)


if __name__ == "__main__":
    sys.exit(main())
