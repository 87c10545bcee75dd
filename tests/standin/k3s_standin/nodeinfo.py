"""Build the Node object a k3s node registers: labels, taints, addresses, nodeInfo."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from . import _buildinfo, host, hostnet, nodes
from .config import Settings

# What k3s prints when the server refuses a node's password (agent/config: a 403 on the node's certificate request).
PASSWORD_REJECTED = (
    "Node password rejected, duplicate hostname or contents of '{file}' may not match server node-passwd entry, try "
    "enabling a unique node name with the --with-node-id flag"
)
NODE_PASSWORD_FILE = Path("/etc/rancher/node/password")

SECRET_FLAGS = ("token", "agent-token", "datastore-endpoint", "etcd-s3-secret-key", "etcd-s3-access-key",
                "vpn-auth", "t")


def node_name(settings: Settings, data_dir: Path) -> str:
    """``--node-name`` or the hostname, plus a persisted random suffix with ``--with-node-id``."""
    name = settings.text("node-name") or host.hostname()
    if settings.flag("with-node-id"):
        id_file = data_dir / "agent" / "node-id"  # stand-in location; k3s keeps it under /etc/rancher/node
        if id_file.exists():
            suffix = id_file.read_text().strip()
        else:
            suffix = secrets.token_hex(4)
            id_file.parent.mkdir(parents=True, exist_ok=True)
            id_file.write_text(suffix + "\n")
        name = f"{name}-{suffix}"
    return name.lower()


def node_password_file(data_dir: Path) -> Path:
    """k3s's node password file, /etc/rancher/node/password; in local tests (where the stand-in leaves the machine
    alone, ``hostnet.enabled``) a file of the data dir instead."""
    return NODE_PASSWORD_FILE if hostnet.enabled(data_dir) else data_dir / "agent" / "node-password"


def node_password(data_dir: Path) -> str:
    """The node's password: read, or made once (random, 0600) like k3s does on its first start."""
    path = node_password_file(data_dir)
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_hex(16)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def node_ips(settings: Settings) -> list[str]:
    """Configured ``--node-ip`` values, or this host's IPv4 addresses (first one is the node IP)."""
    configured = settings.strings("node-ip")
    return configured or host.ipv4_addresses() or ["127.0.0.1"]


def parse_taint(text: str) -> dict[str, str]:
    """``key=value:Effect`` or ``key:Effect`` into a Taint object."""
    spec, _, effect = text.rpartition(":")
    if not spec:
        raise ValueError(f"invalid taint spec: {text}")
    key, _, value = spec.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


def redacted_args(args: list[str]) -> list[str]:
    """Node args for the ``k3s.io/node-args`` annotation with secrets masked as k3s does."""
    out: list[str] = []
    mask_next = False
    for arg in args:
        if mask_next:
            out.append("********")
            mask_next = False
            continue
        name = arg.lstrip("-").split("=", 1)[0]
        if arg.startswith("-") and name in SECRET_FLAGS:
            if "=" in arg:
                out.append(arg.split("=", 1)[0])
                out.append("********")
            else:
                out.append(arg)
                mask_next = True
            continue
        out.append(arg)
    return out


def build_node(settings: Settings, name: str, *, role_labels: dict[str, str]) -> dict[str, Any]:
    ips = node_ips(settings)
    arch = _buildinfo.ARCH or "amd64"
    labels = {
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
        **role_labels,
    }
    for item in settings.strings("node-label"):
        key, _, value = item.partition("=")
        labels[key.strip()] = value.strip()
    taints = [parse_taint(t) for t in settings.strings("node-taint")]
    addresses = [{"type": "InternalIP", "address": ips[0]}]
    for ext in settings.strings("node-external-ip"):
        addresses.append({"type": "ExternalIP", "address": ext})
    addresses.append({"type": "Hostname", "address": name})
    annotations = {
        "k3s.io/hostname": host.hostname(),
        "k3s.io/internal-ip": ",".join(ips),
        "k3s.io/node-args": json.dumps(redacted_args(settings.args_for_annotation)),
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    node_info = {
        "architecture": arch,
        "bootID": _boot_id(),
        "containerRuntimeVersion": "containerd://1.7.7-k3s1",
        "kernelVersion": host.kernel_version(),
        "kubeProxyVersion": _buildinfo.VERSION,
        "kubeletVersion": _buildinfo.VERSION,
        "machineID": _machine_id(),
        "operatingSystem": "linux",
        "osImage": host.os_image(),
        "systemUUID": _machine_id(),
    }
    return nodes.new_node(name, labels=labels, annotations=annotations, taints=taints, addresses=addresses,
                          node_info=node_info)


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _machine_id() -> str:
    try:
        return Path("/etc/machine-id").read_text().strip()
    except OSError:
        return ""
