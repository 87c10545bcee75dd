"""Inventories for lab clusters: the same file format users write, pointing at lab hosts and the lab mirror.

``lab_inventory(lab, servers, agents)`` makes a K3s inventory; ``flavor="kubeadm"`` a kubeadm one (control planes
are the ``server`` group, workers ``agent``). Environment variables point the same tests at real upstream servers by
configuration only (tests/lab/README.md):

========================================  ==============================================  =========================
variable                                  replaces (lab mirror)                           upstream
========================================  ==============================================  =========================
PROVISION_LAB_RELEASE_URL                 ``<mirror>``                                    github.com/k3s-io/k3s/...
PROVISION_LAB_CHANNEL_URL                 ``<mirror>/v1-release/channels``                update.k3s.io/...
PROVISION_LAB_K3S_VERSION                 ``v1.28.4+k3s2``
PROVISION_LAB_KUBEADM_RELEASE_URL         ``<mirror>/dl.k8s.io/release``                  https://dl.k8s.io/release
PROVISION_LAB_KUBEADM_APT_URL             ``<mirror>/pkgs.k8s.io/core:/stable:``          https://pkgs.k8s.io/core:/stable:
PROVISION_LAB_KUBEADM_GITHUB_URL             ``<mirror>/github.com``                         https://github.com
PROVISION_LAB_KUBEADM_VERSION             ``v1.30.2``
PROVISION_LAB_KUBEADM_PACKAGE_SOURCE      ``binaries``                                    (or ``apt``)
========================================  ==============================================  =========================
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.lab.kube_mirror import APT_PREFIX, GITHUB_PREFIX, RELEASE_PREFIX
from tests.lab.lab import HostSpec, Lab

DEFAULT_K3S_VERSION = "v1.28.4+k3s2"
DEFAULT_KUBEADM_VERSION = "v1.30.2"

#: What a kubeadm control-plane node needs to pass kubeadm's preflight (NumCPU >= 2, Mem >= 1700 MB) and the product's
#: hardware advice (>= 2048 MB). The limits are visible inside only while lxcfs runs (scripts/setup starts it).
KUBEADM_CONTROL_PLANE_CPUS = 2
KUBEADM_CONTROL_PLANE_MEMORY_MB = 2048


def kubeadm_specs(servers: int, agents: int = 0) -> list[HostSpec]:
    """server1..S (control planes: 2 CPUs, 2048 MB) and agent1..A, each with /var/lib/containerd on its own volume."""
    control_planes = [
        HostSpec(
            f"server{i}",
            cpus=KUBEADM_CONTROL_PLANE_CPUS,
            memory_mb=KUBEADM_CONTROL_PLANE_MEMORY_MB,
            containerd_volume=True,
        )
        for i in range(1, servers + 1)
    ]
    workers = [HostSpec(f"agent{i}", containerd_volume=True) for i in range(1, agents + 1)]
    return control_planes + workers


def lab_inventory(
    lab: Lab,
    servers: Sequence[str],
    agents: Sequence[str],
    *,
    cluster_name: str = "lab",
    flavor: str = "k3s",
    version: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    host_vars: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """An inventory for `provision up` (and plain ansible-playbook) on lab hosts, downloading from the lab mirror.

    ``flavor`` is ``k3s`` or ``kubeadm``; ``version`` defaults to the flavor's lab default (environment wins).
    """
    if flavor == "k3s":
        flavor_vars = _k3s_vars(lab, version, extra_vars or {})
    elif flavor == "kubeadm":
        flavor_vars = _kubeadm_vars(lab, version, extra_vars or {})
    else:
        raise ValueError(f"unknown flavor {flavor!r} (k3s or kubeadm)")
    cluster_vars: dict[str, Any] = {
        "provision_cluster_name": cluster_name,
        "provision_flavor": flavor,
        **flavor_vars,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(lab.key_path.resolve()),
        # Host-key checking stays on: the lab's known_hosts holds every host's scanned keys.
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={lab.known_hosts.resolve()}",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    cluster_vars.update(extra_vars or {})

    def host_entry(name: str) -> dict[str, Any]:
        info = lab.hosts[name]
        entry: dict[str, Any] = {"ansible_host": info.ip, "provision_hardware": {"arch": _k3s_arch(info.arch)}}
        entry.update((host_vars or {}).get(name, {}))
        return entry

    children: dict[str, Any] = {"server": {"hosts": {name: host_entry(name) for name in servers}}}
    if agents:
        children["agent"] = {"hosts": {name: host_entry(name) for name in agents}}
    return {"all": {"vars": cluster_vars, "children": children}}


def _k3s_vars(lab: Lab, version: str | None, extra_vars: Mapping[str, Any]) -> dict[str, Any]:
    """k3s_version and the release/channel URLs (none for an air-gapped lab: extra_vars with k3s_artifact_dir, made
    with mirror=False, takes everything from that directory on the control machine)."""
    sources: dict[str, Any] = {}
    if not extra_vars.get("k3s_artifact_dir"):
        release_url = os.environ.get("PROVISION_LAB_RELEASE_URL") or lab.mirror_url
        if release_url is None:
            raise ValueError("the lab has no release mirror; create it with mirror=True or give k3s_artifact_dir")
        channel_url = os.environ.get("PROVISION_LAB_CHANNEL_URL") or f"{lab.mirror_url}/v1-release/channels"
        sources = {"k3s_release_url": release_url, "k3s_channel_url": channel_url}
    return {"k3s_version": os.environ.get("PROVISION_LAB_K3S_VERSION") or version or DEFAULT_K3S_VERSION, **sources}


def _kubeadm_vars(lab: Lab, version: str | None, extra_vars: Mapping[str, Any]) -> dict[str, Any]:
    """kubeadm_version, the package source (binaries from dl.k8s.io by default) and the lab mirror's URLs."""
    source = os.environ.get("PROVISION_LAB_KUBEADM_PACKAGE_SOURCE") or extra_vars.get("kubeadm_package_source")
    result: dict[str, Any] = {
        "kubeadm_version": os.environ.get("PROVISION_LAB_KUBEADM_VERSION") or version or DEFAULT_KUBEADM_VERSION,
        "kubeadm_package_source": source or "binaries",
    }
    overrides = {
        "kubeadm_release_url": ("PROVISION_LAB_KUBEADM_RELEASE_URL", RELEASE_PREFIX),
        "kubeadm_apt_url": ("PROVISION_LAB_KUBEADM_APT_URL", APT_PREFIX),
        "kubeadm_github_url": ("PROVISION_LAB_KUBEADM_GITHUB_URL", GITHUB_PREFIX),
    }
    for name, (variable, prefix) in overrides.items():
        if extra_vars.get("kubeadm_artifact_dir"):
            continue  # air-gapped: everything comes from the folder on the control machine
        url = os.environ.get(variable) or (f"{lab.mirror_url}/{prefix}" if lab.mirror_url else None)
        if url is None:
            raise ValueError(f"the lab has no release mirror for {name}; create it with mirror=True or set {variable}")
        result[name] = url
    return result


def write_lab_inventory(path: Path, inventory: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated for a provision lab (hosts run stand-ins from tests/standin). Not for production.\n"
    path.write_text(header + yaml.safe_dump(dict(inventory), sort_keys=False), encoding="utf-8")
    return path


def _k3s_arch(arch: str) -> str:
    return {"amd64": "amd64", "arm64": "arm64", "armhf": "armhf"}.get(arch, arch)
