"""Inventories for lab clusters: the same file format users write, pointing at lab hosts and the lab mirror."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.lab.lab import Lab


def lab_inventory(
    lab: Lab,
    servers: Sequence[str],
    agents: Sequence[str],
    *,
    cluster_name: str = "lab",
    version: str = "v1.28.4+k3s2",
    extra_vars: Mapping[str, Any] | None = None,
    host_vars: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """An inventory for `provision up` (and plain ansible-playbook) on lab hosts, downloading from the lab mirror."""
    # Where internet is available, point the same tests at the real release server by configuration only:
    # PROVISION_LAB_RELEASE_URL=https://github.com/k3s-io/k3s/releases/download
    # PROVISION_LAB_CHANNEL_URL=https://update.k3s.io/v1-release/channels  (see tests/lab/README.md)
    # An air-gapped lab (extra_vars with k3s_artifact_dir, made with mirror=False) takes everything from that
    # directory on the control machine; the hosts reach no release server at all.
    sources: dict[str, Any] = {}
    if not (extra_vars or {}).get("k3s_artifact_dir"):
        release_url = os.environ.get("PROVISION_LAB_RELEASE_URL") or lab.mirror_url
        if release_url is None:
            raise ValueError("the lab has no release mirror; create it with mirror=True or give k3s_artifact_dir")
        channel_url = os.environ.get("PROVISION_LAB_CHANNEL_URL") or f"{lab.mirror_url}/v1-release/channels"
        sources = {"k3s_release_url": release_url, "k3s_channel_url": channel_url}
    cluster_vars: dict[str, Any] = {
        "provision_cluster_name": cluster_name,
        "provision_flavor": "k3s",
        "k3s_version": os.environ.get("PROVISION_LAB_K3S_VERSION") or version,
        **sources,
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


def write_lab_inventory(path: Path, inventory: Mapping[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated for a provision lab (hosts run the K3s stand-in from tests/standin). Not for production.\n"
    path.write_text(header + yaml.safe_dump(dict(inventory), sort_keys=False), encoding="utf-8")
    return path


def _k3s_arch(arch: str) -> str:
    return {"amd64": "amd64", "arm64": "arm64", "armhf": "armhf"}.get(arch, arch)
