"""The test node's own network namespace, and the removal of everything the
node leaves behind, also after a run that was killed outright.

The node (containerd, kubelet, kube-proxy and every pod) lives in the network
namespace `lockgate-node`, joined to the host by one veth pair. Its iptables
rules, its bridge, its conntrack table and its ip_forward setting die with the
namespace; the host only gains the link and two routes to the pod and Service
ranges (all in 198.18.0.0/15, see tests/kube/nodeconf.py). A FORWARD guard in
the namespace drops whatever a pod sends anywhere but another pod or the host's
end of the link, and there is no masquerade and no default route.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.kube.binaries import ControlPlaneError
from tests.kube.nodeconf import (
    BRIDGE, HOST_IP, LINK_CIDR, NODE_IP, POD_CIDR, SERVICE_CIDR,
)

NETNS = "lockgate-node"
HOST_LINK, NODE_LINK = "lgnode-host", "lgnode-node"
GUARD = "LOCKGATE-GUARD"
_PREFIX = LINK_CIDR.split("/")[1]
# kubelet sets these machine-wide (kernel tunables it expects); put back after.
KUBELET_SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
                   "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes")
# Places kubelet and containerd write to whatever their configuration says.
HARD_CODED_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd",
                    "/var/lib/cni", "/usr/libexec/kubernetes", "/opt/containerd", "/var/run/nri")
_MANIFEST = "manifest.json"


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and res.returncode != 0:
        raise ControlPlaneError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def in_netns(argv: Sequence[str]) -> list[str]:
    """argv run in the node's network namespace (and no other new namespace:
    `ip netns exec` would also remount /sys, hiding the cgroup hierarchy)."""
    return ["nsenter", f"--net=/run/netns/{NETNS}", "--", *argv]


# -- bring up ----------------------------------------------------------------

def record_host_state(root: Path) -> None:
    """What the host looked like before: written before anything is changed,
    so a later clean-up (even of a killed run) restores exactly that."""
    sysctls = {k: _sysctl(k) for k in KUBELET_SYSCTLS}
    absent = [p for p in HARD_CODED_PATHS if not os.path.lexists(p)]
    root.mkdir(parents=True, exist_ok=True)
    (root / _MANIFEST).write_text(json.dumps({"sysctls": sysctls, "absent": absent}))


def create_network() -> None:
    run("ip", "netns", "add", NETNS)
    run("ip", "link", "add", HOST_LINK, "type", "veth", "peer", "name", NODE_LINK, "netns", NETNS)
    run("ip", "addr", "add", f"{HOST_IP}/{_PREFIX}", "dev", HOST_LINK)
    run("ip", "link", "set", HOST_LINK, "up")
    ns = ("ip", "-n", NETNS)
    run(*ns, "link", "set", "lo", "up")
    run(*ns, "addr", "add", f"{NODE_IP}/{_PREFIX}", "dev", NODE_LINK)
    run(*ns, "link", "set", NODE_LINK, "up")
    # The host reaches pods and ClusterIPs through the node (kube-proxy's DNAT).
    for cidr in (POD_CIDR, SERVICE_CIDR):
        run("ip", "route", "add", cidr, "via", NODE_IP, "dev", HOST_LINK)
    run(*in_netns(["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
    _install_guard()


def _install_guard() -> None:
    """Pods may talk to pods and to the host's end of the link, nothing else."""
    for tool, rules in (
        ("iptables", ([f"-i {BRIDGE} -o {BRIDGE} -j RETURN"],
                      [f"-i {BRIDGE} -d {HOST_IP}/32 -j RETURN"],
                      [f"-i {BRIDGE} -j DROP"])),
        ("ip6tables", ([f"-i {BRIDGE} -j DROP"],)),
    ):
        ipt = in_netns([tool, "-w"])
        run(*ipt, "-N", GUARD)
        for rule in rules:
            run(*ipt, "-A", GUARD, *rule[0].split())
        run(*ipt, "-I", "FORWARD", "1", "-j", GUARD)


# -- tear down -----------------------------------------------------------------

def clean_up(root: Path, stop_first: Iterable[int] = ()) -> list[str]:
    """Remove every trace of a node kept under `root`: its processes, the
    namespace, its mounts and cgroups, the kernel settings kubelet changed,
    the files it left outside `root`, then `root`. Safe to run when nothing is
    there. Returns what it could not undo (empty when all went)."""
    problems: list[str] = []
    manifest = _read_manifest(root)
    _kill(list(stop_first))
    # Pods, shims and leftovers: nothing of them is worth a graceful stop.
    _kill(_node_pids(root), graceful=False)
    if Path(f"/run/netns/{NETNS}").exists():
        run("ip", "netns", "del", NETNS, check=False)
    if _link_exists(HOST_LINK):  # the peer of a namespace already gone
        run("ip", "link", "del", HOST_LINK, check=False)
    problems += _unmount_under([root, Path(f"/run/netns/{NETNS}")])
    problems += _remove_cgroups("kubepods")
    for key, value in manifest.get("sysctls", {}).items():
        if value is not None and _sysctl(key) != value:
            run("sysctl", "-qw", f"{key}={value}", check=False)
    for path in manifest.get("absent", []):
        if not _unmount_under([Path(path)]):
            _remove(Path(path))
    _remove(root)
    for leftover in (root, Path(f"/run/netns/{NETNS}")):
        if os.path.lexists(leftover):
            problems.append(f"{leftover} is still there")
    if _link_exists(HOST_LINK):
        problems.append(f"link {HOST_LINK} is still there")
    return problems


def _read_manifest(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((root / _MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _node_pids(root: Path) -> list[int]:
    """Processes of a node under `root`: those naming its folder (containerd,
    its shims, kubelet, kube-proxy, the control plane) and every process in
    the pods' cgroups."""
    needle = str(root).encode()
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
    for procs in Path("/sys/fs/cgroup").glob("*/kubepods/**/cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in procs.read_text().split())
    pids.discard(os.getpid())
    return sorted(pids)


def _kill(pids: list[int], timeout: float = 15, graceful: bool = True) -> None:
    """SIGTERM, then SIGKILL what is still there after `timeout` (or only SIGKILL)."""
    steps = ((signal.SIGTERM, timeout),) if graceful else ()
    for sig, wait in (*steps, (signal.SIGKILL, 5.0)):
        alive = [p for p in pids if _signal(p, sig)]
        deadline = time.monotonic() + wait
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _exists(p)]
            if alive:
                time.sleep(0.1)
        if not alive:
            return


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def _exists(pid: int) -> bool:
    with contextlib.suppress(OSError):
        # A zombie child of ours is gone for every purpose here.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


def _unmount_under(paths: Sequence[Path]) -> list[str]:
    """Unmount everything at or below `paths`, deepest first."""
    prefixes = [str(p) for p in paths]
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            mounts.append(point)
    problems = []
    for point in sorted(set(mounts), key=lambda m: m.count("/"), reverse=True):
        res = run("umount", point, check=False)
        if res.returncode != 0 and run("umount", "-l", point, check=False).returncode != 0:
            problems.append(f"cannot unmount {point}: {res.stderr.strip()}")
    return problems


def _remove_cgroups(name: str) -> list[str]:
    """The cgroup `name` in every v1 controller (and below it), leaves first."""
    problems = []
    for top in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        dirs = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True)
        for d in [*dirs, top]:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append(f"cgroup {d}: {e.strerror}")
    return problems


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _sysctl(key: str) -> str | None:
    try:
        return Path("/proc/sys", *key.split(".")).read_text().strip()
    except OSError:
        return None


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()
