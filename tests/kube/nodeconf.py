"""Configuration files of the test node, as pure functions of its layout.

The addresses all come from 198.18.0.0/15 (RFC 2544's benchmarking range),
so nothing here can be mistaken for a real network:

    198.18.0.0/24    pods, on the bridge lgbr0 inside the node's network namespace
    198.18.1.0/24    Services (ClusterIPs); 198.18.1.1 is `kubernetes`
    198.18.255.0/30  the link between the host (.1) and the node namespace (.2);
                     kube-apiserver and the tests' upstreams listen on .1,
                     kubelet and the cluster DNS (CoreDNS) on .2
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

POD_CIDR = "198.18.0.0/24"
POD_GATEWAY = "198.18.0.1"
SERVICE_CIDR = "198.18.1.0/24"
LINK_CIDR = "198.18.255.0/30"
HOST_IP = "198.18.255.1"
NODE_IP = "198.18.255.2"
BRIDGE = "lgbr0"
NODE_NAME = "lockgate-node"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"  # kubelet 1.33's default sandbox image
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
CLUSTER_DOMAIN = "cluster.local"
DNS_READY_PORT = 8181  # CoreDNS' `ready` plugin, on NODE_IP
# Volumes the node offers to claims (no provisioner): hostPath folders under its root.
VOLUMES = 4
VOLUME_SIZE = "2Gi"


@dataclass(frozen=True)
class Layout:
    """Where the node keeps its state: all under one folder."""

    root: Path

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def coredns(self) -> Path:
        return self.root / "coredns"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"


def containerd_config(layout: Layout) -> str:
    """containerd 2.x (config version 3): CRI with runc on cgroupfs, no systemd."""
    d = layout.containerd
    return f"""\
version = 3
root = "{d / 'root'}"
state = "{d / 'state'}"

[grpc]
  address = "{layout.containerd_socket}"
[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[plugins.'io.containerd.internal.v1.opt']
  path = "{d / 'opt'}"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.cri.v1.runtime']
  # kubelet asks for oom_score_adj -998 for sandboxes; without CAP_SYS_RESOURCE
  # runc cannot lower it and fails ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "/usr/bin/runc"
        Root = "{d / 'runc'}"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{layout.cni_conf_dir}"

[plugins.'io.containerd.nri.v1.nri']
  disable = true
"""


def cni_conflist(layout: Layout) -> str:
    """A bridge with host-local addresses; no masquerade: nothing leaves the node."""
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": "lockgate-pods",
        "plugins": [
            {
                "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.root / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2)


def kubelet_config(layout: Layout) -> str:
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # No systemd here, and a cgroup v1 hierarchy (1.33 still accepts it).
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        # The API server reaches the kubelet (logs, exec) over the link.
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        # Reachable only from the host's end of the link.
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podCIDR": POD_CIDR,
        "registerNode": True,
        # Images are imported, never pulled: they must never be collected.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "podLogsDir": str(layout.kubelet / "pod-logs"),
        "volumePluginDir": str(layout.kubelet / "volume-plugins"),
        "resolvConf": str(layout.root / "resolv.conf"),
        # CoreDNS runs in the node's namespace and answers on its end of the link.
        "clusterDNS": [NODE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "staticPodPath": "",
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
    }
    return yaml.safe_dump(config, sort_keys=False)


def kube_proxy_config(layout: Layout) -> str:
    config: dict[str, Any] = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(layout.kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # Else kube-proxy sets route_localnet=1 and rewrites conntrack sysctls.
        "iptables": {"localhostNodePorts": False},
        "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return yaml.safe_dump(config, sort_keys=False)


def corefile(layout: Layout) -> str:
    """Cluster DNS: Service (and reverse) names of the node's cluster only.
    Nothing is forwarded: other names fail, as nothing leaves the node."""
    reverse = ".".join(reversed(SERVICE_CIDR.split(".")[:2])) + ".in-addr.arpa"
    return f"""\
.:53 {{
    errors
    ready {NODE_IP}:{DNS_READY_PORT}
    loadbalance
    cache 5
    kubernetes {CLUSTER_DOMAIN} {reverse} {{
        kubeconfig {layout.kubeconfig}
    }}
}}
"""


def persistent_volumes(layout: Layout) -> list[dict[str, Any]]:
    """Static hostPath volumes for claims without a storage class (the
    chart's Redis keeps its data on one). Their folders are made world
    writable first, as a local-path provisioner does: fsGroup does not
    apply to hostPath volumes."""
    return [{
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"{NODE_NAME}-{i}", "labels": {"lockgate.io/test-node": NODE_NAME}},
        "spec": {
            "capacity": {"storage": VOLUME_SIZE},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(layout.volumes / str(i)), "type": "Directory"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}]}]}},
        },
    } for i in range(VOLUMES)]


def write_configs(layout: Layout) -> dict[str, Path]:
    """Every config file of the node, written under its root."""
    files = {
        "containerd": (layout.containerd / "config.toml", containerd_config(layout)),
        "cni": (layout.cni_conf_dir / "10-lockgate.conflist", cni_conflist(layout)),
        "kubelet": (layout.kubelet / "config.yaml", kubelet_config(layout)),
        "kube-proxy": (layout.root / "kube-proxy.yaml", kube_proxy_config(layout)),
        "coredns": (layout.coredns / "Corefile", corefile(layout)),
        # The host's name servers are off the node: pods get only the cluster DNS.
        "resolv": (layout.root / "resolv.conf", "options ndots:1\n"),
    }
    for path, text in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return {name: path for name, (path, _) in files.items()}
