"""What a running k3s node leaves on its host besides its own files, so that a reset can be tested honestly.

Real k3s (through containerd, flannel, the CNI plugins, kube-proxy and the kubelet) creates, on every node:

* network interfaces: the VXLAN device ``flannel.1``, the pod bridge ``cni0`` with the node's pod subnet
  gateway, one ``vethXXXXXXXX`` per pod attached to ``cni0`` whose peer lives in a pod network namespace
  (``/run/netns/cni-<uuid>``, an nsfs mount);
* iptables chains ``KUBE-*`` (kube-proxy, kubelet), ``FLANNEL-*`` (flannel) and ``CNI-*`` (CNI plugins) in the
  filter and nat tables, with rules in the built-in chains jumping to them, for IPv4 and IPv6;
* mounts: a tmpfs per projected service-account volume under ``/var/lib/kubelet/pods/`` and a shm tmpfs per
  sandbox under ``/run/k3s/containerd/``;
* files outside the data dir: ``/etc/rancher/node/password`` (written at registration, ``nodeinfo``),
  ``/run/flannel/subnet.env``, ``/var/lib/cni/``;
* processes that outlive ``systemctl stop`` (the unit has ``KillMode=process``): containerd shims started from
  ``<data-dir>/data/<hash>/bin/``, and under each shim the pod's processes, whose executables lie in the
  container's rootfs (a mount under ``/run/k3s/containerd/``) and whose cgroup is the pod's, not K3s's.

Stopping k3s removes none of these (upstream ships ``k3s-killall.sh`` for that). The stand-in runs no pods, so it
creates one "pod" worth of each when it is ready, idempotently.

Only on a lab host: as root, under systemd (``INVOCATION_ID`` set), with the default data dir, and unless
``K3S_STANDIN_HOST_EFFECTS=0``. Local tests (temporary ``--data-dir``, not under systemd) never touch the machine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from . import log

DEFAULT_DATA_DIR = Path("/var/lib/rancher/k3s")
POD_CIDR_PREFIX = "10.42"
POD_PROCESSES = ("pause", "standin-app")  # a pod's sandbox and its one container, children of the shim

# (table, chain created, built-in chain that jumps to it, extra match before the jump)
CHAINS: list[tuple[str, str, str, list[str]]] = [
    ("filter", "KUBE-FIREWALL", "INPUT", []),
    ("filter", "KUBE-EXTERNAL-SERVICES", "INPUT", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment",
                                                   "--comment", "kubernetes externally-visible service portals"]),
    ("filter", "KUBE-NODEPORTS", "INPUT", ["-m", "comment", "--comment", "kubernetes health check service ports"]),
    ("filter", "KUBE-FORWARD", "FORWARD", ["-m", "comment", "--comment", "kubernetes forwarding rules"]),
    ("filter", "KUBE-SERVICES", "OUTPUT", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment",
                                           "--comment", "kubernetes service portals"]),
    ("filter", "FLANNEL-FWD", "FORWARD", ["-m", "comment", "--comment", "flanneld forward"]),
    ("filter", "CNI-FORWARD", "FORWARD", ["-m", "comment", "--comment", "CNI firewall plugin rules"]),
    ("nat", "KUBE-SERVICES", "PREROUTING", ["-m", "comment", "--comment", "kubernetes service portals"]),
    ("nat", "KUBE-SERVICES", "OUTPUT", ["-m", "comment", "--comment", "kubernetes service portals"]),
    ("nat", "KUBE-POSTROUTING", "POSTROUTING", ["-m", "comment", "--comment", "kubernetes postrouting rules"]),
    ("nat", "FLANNEL-POSTRTG", "POSTROUTING", ["-m", "comment", "--comment", "flanneld masq"]),
    ("nat", "CNI-HOSTPORT-DNAT", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL"]),
]
# Chains that only other K3s chains reference (kube-proxy's helpers).
INNER_CHAINS: list[tuple[str, str, str]] = [
    ("nat", "KUBE-MARK-MASQ", "KUBE-POSTROUTING"),
    ("filter", "KUBE-PROXY-FIREWALL", "KUBE-FORWARD"),
]


def enabled(data_dir: Path) -> bool:
    if os.environ.get("K3S_STANDIN_HOST_EFFECTS", "1") == "0":
        return False
    return os.geteuid() == 0 and bool(os.environ.get("INVOCATION_ID")) and Path(data_dir) == DEFAULT_DATA_DIR


def apply(data_dir: Path, node_name: str, node_ip: str) -> None:
    """Leave on the host what a k3s node running one pod leaves; never fails the node (logs instead)."""
    if not enabled(data_dir):
        return
    subnet = int(hashlib.sha256(node_name.encode()).hexdigest(), 16) % 250 + 1
    for step in (_files, _mounts, _interfaces, _firewall, _shim):
        try:
            step(data_dir, node_name, node_ip, subnet)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warn(f"stand-in host effects: {step.__name__.strip('_')}: {exc}")


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=20, check=False)


def _files(data_dir: Path, node_name: str, node_ip: str, subnet: int) -> None:
    flannel = Path("/run/flannel/subnet.env")
    flannel.parent.mkdir(parents=True, exist_ok=True)
    flannel.write_text(f"FLANNEL_NETWORK={POD_CIDR_PREFIX}.0.0/16\nFLANNEL_SUBNET={POD_CIDR_PREFIX}.{subnet}.1/24\n"
                       "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")
    ipam = Path("/var/lib/cni/networks/cbr0")
    ipam.mkdir(parents=True, exist_ok=True)
    (ipam / f"{POD_CIDR_PREFIX}.{subnet}.2").write_text("standin-pod\neth0")
    cni_conf = data_dir / "agent" / "etc" / "cni" / "net.d"
    cni_conf.mkdir(parents=True, exist_ok=True)
    (cni_conf / "10-flannel.conflist").write_text('{"name":"cbr0","cniVersion":"1.0.0","plugins":[]}\n')


def _mounted(path: Path) -> bool:
    wanted = str(path)
    lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    return any(line.split()[4] == wanted for line in lines)


def _mounts(data_dir: Path, node_name: str, node_ip: str, subnet: int) -> None:
    pod = hashlib.sha256(f"pod-{node_name}".encode()).hexdigest()
    targets = [
        Path(f"/var/lib/kubelet/pods/{pod[:8]}-{pod[8:12]}-{pod[12:16]}-{pod[16:20]}-{pod[20:32]}/volumes/"
             "kubernetes.io~projected/kube-api-access-standin"),
        Path(f"/run/k3s/containerd/io.containerd.grpc.v1.cri/sandboxes/{pod}/shm"),
    ]
    for target in targets:
        problem = mount_tmpfs(target)
        if problem:
            log.warn(f"stand-in host effects: mount {target}: {problem}")


def mount_tmpfs(target: Path) -> str:
    """A small tmpfs at target (a pod volume, a sandbox's shm) unless one is there; the error text or ''."""
    target.mkdir(parents=True, exist_ok=True)
    if _mounted(target):
        return ""
    result = run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target))
    return result.stderr.strip() if result.returncode != 0 else ""


def _interfaces(data_dir: Path, node_name: str, node_ip: str, subnet: int) -> None:
    if run("ip", "link", "show", "flannel.1").returncode != 0:
        run("ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", node_ip, "dstport", "8472",
             "nolearning")
        run("ip", "link", "set", "flannel.1", "up")
    if run("ip", "link", "show", "cni0").returncode != 0:
        run("ip", "link", "add", "cni0", "type", "bridge")
        run("ip", "addr", "add", f"{POD_CIDR_PREFIX}.{subnet}.1/24", "dev", "cni0")
        run("ip", "link", "set", "cni0", "up")
    names = run("ip", "netns", "list").stdout
    if "cni-" in names:
        return
    netns = f"cni-{uuid.uuid4()}"
    veth = f"veth{uuid.uuid4().hex[:8]}"
    for argv in (
        ["ip", "netns", "add", netns],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns],
        ["ip", "link", "set", veth, "master", "cni0", "up"],
        ["ip", "-n", netns, "addr", "add", f"{POD_CIDR_PREFIX}.{subnet}.2/24", "dev", "eth0"],
        ["ip", "-n", netns, "link", "set", "eth0", "up"],
    ):
        result = run(*argv)
        if result.returncode != 0:
            log.warn(f"stand-in host effects: {' '.join(argv)}: {result.stderr.strip()}")
            return


def add_chains(
    tool: str, chains: list[tuple[str, str, str, list[str]]], inner: list[tuple[str, str, str]]
) -> bool:
    """Create the chains with their jumps from the built-in (or parent) chains, idempotently; False without the tool.
    Also used by the kube stand-in's kubelet (kube-proxy's and the CNIs' chains)."""
    if shutil.which(tool) is None:
        return False
    for table, chain, parent, match in chains:
        run(tool, "-w", "-t", table, "-N", chain)  # exists already: harmless failure
        rule = [*match, "-j", chain]
        if run(tool, "-w", "-t", table, "-C", parent, *rule).returncode != 0:
            run(tool, "-w", "-t", table, "-I", parent, "1", *rule)
    for table, chain, parent in inner:
        run(tool, "-w", "-t", table, "-N", chain)
        if run(tool, "-w", "-t", table, "-C", parent, "-j", chain).returncode != 0:
            run(tool, "-w", "-t", table, "-A", parent, "-j", chain)
    return True


def _firewall(data_dir: Path, node_name: str, node_ip: str, subnet: int) -> None:
    for tool, cidr in (("iptables", f"{POD_CIDR_PREFIX}.0.0/16"), ("ip6tables", "2001:cafe:42::/56")):
        if not add_chains(tool, CHAINS, INNER_CHAINS):
            continue
        for table, chain, rule in (
            ("filter", "FLANNEL-FWD", ["-s", cidr, "-m", "comment", "--comment", "flanneld forward", "-j", "ACCEPT"]),
            ("nat", "FLANNEL-POSTRTG", ["-s", cidr, "-d", cidr, "-m", "comment", "--comment", "flanneld masq",
                                        "-j", "RETURN"]),
        ):
            if run(tool, "-w", "-t", table, "-C", chain, *rule).returncode != 0:
                run(tool, "-w", "-t", table, "-A", chain, *rule)


def _shim(data_dir: Path, node_name: str, node_ip: str, subnet: int) -> None:
    """A containerd shim stand-in with one pod under it, as containerd leaves them: the shim (a copy of bash under
    ``<data-dir>/data/``) survives `systemctl stop` (KillMode=process); its children are the pod's processes,
    ``pause`` and ``standin-app``, run from the container's rootfs (a tmpfs mounted at
    ``/run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/rootfs``, exec allowed) in a scope of their own,
    so neither their executables nor their cgroup point at K3s: only the shim's process tree leads to them."""
    bin_dir = data_dir / "data" / "standin" / "bin"
    shim = bin_dir / "containerd-shim-runc-v2"
    if not shim.exists():
        bin_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shutil.which("bash") or "/bin/bash", shim)
        (data_dir / "data" / "current").unlink(missing_ok=True)
        (data_dir / "data" / "current").symlink_to("standin")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str((entry / "exe").readlink()) == str(shim):
                    return
            except OSError:
                continue
    container = hashlib.sha256(f"container-{node_name}".encode()).hexdigest()
    rootfs = Path(f"/run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/{container}/rootfs")
    rootfs.mkdir(parents=True, exist_ok=True)
    if not _mounted(rootfs):
        run("mount", "-t", "tmpfs", "-o", "size=4m,exec", "tmpfs", str(rootfs))
    sleep = shutil.which("sleep") or "/bin/sleep"
    for name in POD_PROCESSES:
        shutil.copy2(sleep, rootfs / name)
    scope = shutil.which("systemd-run")
    pods = " ".join(
        f"{scope} --scope --quiet --unit=standin-pod-{container[:12]}-{name} -- {rootfs / name} infinity &"
        if scope else f"{rootfs / name} infinity &"
        for name in POD_PROCESSES
    )
    subprocess.Popen([str(shim), "-c", f"{pods} wait"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)