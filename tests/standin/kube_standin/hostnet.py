"""What a kubeadm node's pods leave on its host besides files, so that `provision reset` is tested honestly.

On a real node kube-proxy (a DaemonSet kubeadm installs) writes its ``KUBE-*`` iptables chains, and the CNI's
agent and plugins create interfaces, chains and one network namespace per pod (``/run/netns/cni-<uuid>``, with a
veth pair); every pod has a projected service-account volume, a tmpfs under ``/var/lib/kubelet/pods/``. None of it
goes with ``kubeadm reset``, which says so itself ("does not clean CNI configuration ... iptables rules or IPVS
tables"). The stand-in runs no pods, so the kubelet leaves one pod's worth of each, per CNI, idempotently:

* kube-proxy: the filter/nat ``KUBE-*`` chains with their jumps from the built-in chains (IPv4 and IPv6);
* flannel: ``flannel.1`` (VXLAN), the ``cni0`` bridge with the pod subnet's gateway, a pod veth on ``cni0``,
  ``FLANNEL-*`` and ``CNI-*`` chains, ``/var/lib/cni/networks/cbr0/<ip>`` (host-local IPAM);
* Calico: ``vxlan.calico``, a ``cali<hex>`` pod veth (routed, no bridge) and the ``cali-*`` chains whose rules carry
  ``cali:`` comments;
* Cilium: the ``cilium_host``/``cilium_net`` pair, ``cilium_vxlan``, an ``lxc<hex>`` pod veth and the ``CILIUM_*``
  chains fed by ``cilium-feeder:`` rules.

Not modelled: IPVS tables, Calico's tunl0 (the ipip fallback device cannot be deleted, real resets leave it too),
Cilium's BPF maps and its bpffs/cgroup2 mounts, containerd's sandboxes (kubeadm reset removes those through CRI).

Only on a lab host: as root, under systemd (``INVOCATION_ID`` set), with no fake root (``KUBE_STANDIN_ROOT``) and
unless ``KUBE_STANDIN_HOST_EFFECTS=0``. The iptables and ip helpers are the K3s stand-in's (k3s_standin.hostnet).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import uuid
from pathlib import Path

from k3s_standin import hostnet as k3s_hostnet

from . import host, klog

_KUBE_PROXY_CHAINS = [c for c in k3s_hostnet.CHAINS if c[1].startswith("KUBE-")]
_KUBE_PROXY_INNER = [c for c in k3s_hostnet.INNER_CHAINS if c[1].startswith("KUBE-")]
_FLANNEL_CHAINS = [c for c in k3s_hostnet.CHAINS if c[1].startswith(("FLANNEL-", "CNI-"))]
_CALICO_CHAINS: list[tuple[str, str, str, list[str]]] = [
    ("filter", "cali-INPUT", "INPUT", ["-m", "comment", "--comment", "cali:Cz_u1IQiXIMmKD4c"]),
    ("filter", "cali-FORWARD", "FORWARD", ["-m", "comment", "--comment", "cali:wUHhoiAYhphO9Mso"]),
    ("filter", "cali-OUTPUT", "OUTPUT", ["-m", "comment", "--comment", "cali:tVnHkvAo15HuiPy0"]),
    ("nat", "cali-PREROUTING", "PREROUTING", ["-m", "comment", "--comment", "cali:6gwbT8clXdHdC1b1"]),
    ("nat", "cali-POSTROUTING", "POSTROUTING", ["-m", "comment", "--comment", "cali:O3lYWMrLQYEMJtB5"]),
]
_CILIUM_CHAINS: list[tuple[str, str, str, list[str]]] = [
    ("filter", "CILIUM_INPUT", "INPUT", ["-m", "comment", "--comment", "cilium-feeder: CILIUM_INPUT"]),
    ("filter", "CILIUM_FORWARD", "FORWARD", ["-m", "comment", "--comment", "cilium-feeder: CILIUM_FORWARD"]),
    ("filter", "CILIUM_OUTPUT", "OUTPUT", ["-m", "comment", "--comment", "cilium-feeder: CILIUM_OUTPUT"]),
    ("nat", "CILIUM_PRE_nat", "PREROUTING", ["-m", "comment", "--comment", "cilium-feeder: CILIUM_PRE_nat"]),
    ("nat", "CILIUM_POST_nat", "POSTROUTING", ["-m", "comment", "--comment", "cilium-feeder: CILIUM_POST_nat"]),
]


def enabled() -> bool:
    return (
        os.environ.get("KUBE_STANDIN_HOST_EFFECTS", "1") != "0"
        and not os.environ.get(host.ROOT_ENV)
        and os.geteuid() == 0
        and bool(os.environ.get("INVOCATION_ID"))
    )


def _ip(*argv: str) -> bool:
    result = k3s_hostnet.run("ip", *argv)
    if result.returncode != 0:
        klog.warning("hostnet.go", f"stand-in host effects: ip {' '.join(argv)}: {result.stderr.strip()}")
    return result.returncode == 0


def _link_exists(name: str) -> bool:
    return k3s_hostnet.run("ip", "link", "show", name).returncode == 0


def _pod_addresses(pod_cidr: str) -> tuple[str, str, int]:
    """Gateway and first pod address of the node's pod subnet, and its prefix length."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    return str(net.network_address + 1), str(net.network_address + 2), net.prefixlen


def kube_proxy(node_name: str) -> None:
    """kube-proxy's chains and its pod's service-account volume."""
    if not enabled():
        return
    for tool in ("iptables", "ip6tables"):
        k3s_hostnet.add_chains(tool, _KUBE_PROXY_CHAINS, _KUBE_PROXY_INNER)
    pod = hashlib.sha256(f"kube-proxy-{node_name}".encode()).hexdigest()
    uid = f"{pod[:8]}-{pod[8:12]}-{pod[12:16]}-{pod[16:20]}-{pod[20:32]}"
    problem = k3s_hostnet.mount_tmpfs(
        Path(f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~projected/kube-api-access-sa"))
    if problem:
        klog.warning("hostnet.go", f"stand-in host effects: pod volume: {problem}")


def cni(kind: str, pod_cidr: str) -> None:
    """The CNI's interfaces, chains and one pod network namespace, once per node."""
    if not enabled() or not pod_cidr:
        return
    try:
        gateway, pod_ip, prefix = _pod_addresses(pod_cidr)
    except ValueError:
        return
    if kind == "flannel":
        if not _link_exists("flannel.1"):
            _ip("link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472", "nolearning")
            _ip("link", "set", "flannel.1", "up")
        if not _link_exists("cni0"):
            _ip("link", "add", "cni0", "type", "bridge")
            _ip("addr", "add", f"{gateway}/{prefix}", "dev", "cni0")
            _ip("link", "set", "cni0", "up")
        k3s_hostnet.add_chains("iptables", _FLANNEL_CHAINS, [])
        ipam = Path("/var/lib/cni/networks/cbr0")
        ipam.mkdir(parents=True, exist_ok=True)
        (ipam / pod_ip).write_text("standin-pod\neth0")
        _pod_netns("veth", pod_ip, prefix, bridge="cni0")
    elif kind == "calico":
        if not _link_exists("vxlan.calico"):
            _ip("link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "dstport", "4789", "nolearning")
            _ip("link", "set", "vxlan.calico", "up")
        k3s_hostnet.add_chains("iptables", _CALICO_CHAINS, [])
        _pod_netns("cali", pod_ip, prefix, bridge="")
    elif kind == "cilium":
        if not _link_exists("cilium_host"):
            _ip("link", "add", "cilium_host", "type", "veth", "peer", "name", "cilium_net")
            _ip("addr", "add", f"{gateway}/32", "dev", "cilium_host")
            _ip("link", "set", "cilium_host", "up")
        if not _link_exists("cilium_vxlan"):
            _ip("link", "add", "cilium_vxlan", "type", "vxlan", "external", "dstport", "8472")
            _ip("link", "set", "cilium_vxlan", "up")
        k3s_hostnet.add_chains("iptables", _CILIUM_CHAINS, [])
        _pod_netns("lxc", pod_ip, prefix, bridge="")


def _pod_netns(veth_prefix: str, pod_ip: str, prefix: int, bridge: str) -> None:
    if "cni-" in k3s_hostnet.run("ip", "netns", "list").stdout:
        return
    netns = f"cni-{uuid.uuid4()}"
    veth = f"{veth_prefix}{uuid.uuid4().hex[:11 if veth_prefix == 'cali' else 8]}"
    steps = [
        ("netns", "add", netns),
        ("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns),
        ("link", "set", veth, *(("master", bridge) if bridge else ()), "up"),
        ("-n", netns, "addr", "add", f"{pod_ip}/{prefix}", "dev", "eth0"),
        ("-n", netns, "link", "set", "eth0", "up"),
    ]
    for argv in steps:
        if not _ip(*argv):
            return


def unmount_kubelet_dir() -> list[str]:
    """What `kubeadm reset` does before deleting /var/lib/kubelet: unmount everything below it (deepest first)."""
    if not enabled():
        return []
    points = []
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].startswith("/var/lib/kubelet/"):
            points.append(fields[4])
    for point in sorted(set(points), key=lambda p: -p.count("/")):
        k3s_hostnet.run("umount", point)
    return points
