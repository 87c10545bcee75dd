"""What the probe checks on hosts of a kubeadm cluster, in kubeadm's own terms, before anything changes.

kubeadm's preflight refuses a control-plane node with fewer than 2 CPUs ([ERROR NumCPU]) or less than 1700 MB of
memory ([ERROR Mem]); finding that here names every such host at once instead of failing half way through init or a
join. The comparison this project started from advises 2-4 GB and 2-4 vCPU for a control plane: below that is a
warning. Swap is turned off by the prepare phase (the kubelet refuses to run with it); inside a container it cannot
be, so there it is an error.
"""

from __future__ import annotations

from provisioner.inventory.kubeadm_checks import ADVISED_CONTROL_PLANE_MB, MIN_CONTROL_PLANE_MB
from provisioner.probe import COMMON_CHECKS, Check, Finding, HostFacts, HostLike, check_memory_declared

MIN_CONTROL_PLANE_CPUS = 2  # kubeadm preflight NumCPU


def check_control_plane_size(host: HostLike, facts: HostFacts) -> list[Finding]:
    findings = check_memory_declared(host, facts)
    if host.role != "server":
        return findings
    move = "or make this host a worker (agent group)"
    if facts.cpus is not None and facts.cpus < MIN_CONTROL_PLANE_CPUS:
        findings.append(Finding(
            host.name, "cpus", "error",
            f"kubeadm refuses a control-plane node with fewer than {MIN_CONTROL_PLANE_CPUS} CPUs ([ERROR NumCPU]); "
            f"this host has {facts.cpus}",
            f"give it {MIN_CONTROL_PLANE_CPUS} or more CPUs, {move}",
        ))
    if facts.memory_mb is not None and facts.memory_mb < MIN_CONTROL_PLANE_MB:
        findings.append(Finding(
            host.name, "memory", "error",
            f"kubeadm refuses a control-plane node with less than {MIN_CONTROL_PLANE_MB} MB of memory ([ERROR Mem]); "
            f"this host has {facts.memory_mb} MB",
            f"give it 2048 MB or more, {move}",
        ))
    elif facts.memory_mb is not None and facts.memory_mb < ADVISED_CONTROL_PLANE_MB:
        findings.append(Finding(
            host.name, "memory", "warning",
            f"a kubeadm control plane wants 2-4 GB; this host has {facts.memory_mb} MB (API server, etcd, controllers "
            "and scheduler share it)",
            "expect slow responses under load, or give it more memory",
        ))
    return findings


def check_swap(host: HostLike, facts: HostFacts) -> list[Finding]:
    if not facts.swap_mb:
        return []
    if facts.container:
        return [Finding(
            host.name, "swap", "error",
            f"swap is on ({facts.swap_mb} MB) and this host is a {facts.container} container, which cannot turn it "
            "off; the kubelet refuses to run with swap on",
            "turn swap off on the machine running the container (swapoff -a)",
        )]
    return [Finding(
        host.name, "swap", "warning",
        f"swap is on ({facts.swap_mb} MB); the prepare phase turns it off and comments it out of /etc/fstab, "
        "because the kubelet refuses to run with swap on",
        "nothing to do, or turn it off yourself first",
    )]


CHECKS: tuple[Check, ...] = (*COMMON_CHECKS, check_control_plane_size, check_swap)
