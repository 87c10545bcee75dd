"""Flag tables for ``k3s server`` / ``k3s agent``, read from the embedded k3s-flags.txt.

The list (names, aliases, repeatable marks) was read from k3s's ``pkg/cli/cmds``; the
stand-in uses it to decide which config.yaml keys a command knows, exactly the check k3s
makes. Boolean-ness is not in that list, so it is kept here.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass, field

BOOL_FLAGS = frozenset(
    {
        "debug", "alsologtostderr", "cluster-init", "cluster-reset", "kine-tls", "tls-san-security",
        "etcd-expose-metrics", "etcd-disable-snapshots", "etcd-snapshot-compress", "etcd-s3",
        "etcd-s3-skip-ssl-verify", "etcd-s3-insecure", "disable-scheduler", "disable-cloud-controller",
        "disable-kube-proxy", "disable-network-policy", "disable-helm-controller", "disable-apiserver",
        "disable-controller-manager", "disable-etcd", "embedded-registry", "supervisor-metrics",
        "with-node-id", "docker", "disable-default-registry-endpoint", "flannel-ipv6-masq",
        "flannel-external-ip", "protect-kernel-defaults", "secrets-encryption", "enable-pprof", "rootless",
        "prefer-bundled-bin", "selinux", "disable-agent", "disable-apiserver-lb", "nonroot-devices",
    }
)

# Environment variables k3s binds to flags (urfave EnvVar), per flag name.
ENV_VARS = {
    "token": "K3S_TOKEN",
    "token-file": "K3S_TOKEN_FILE",
    "agent-token": "K3S_AGENT_TOKEN",
    "agent-token-file": "K3S_AGENT_TOKEN_FILE",
    "server": "K3S_URL",
    "node-name": "K3S_NODE_NAME",
    "datastore-endpoint": "K3S_DATASTORE_ENDPOINT",
    "datastore-cafile": "K3S_DATASTORE_CAFILE",
    "datastore-certfile": "K3S_DATASTORE_CERTFILE",
    "datastore-keyfile": "K3S_DATASTORE_KEYFILE",
    "cluster-init": "K3S_CLUSTER_INIT",
    "cluster-reset": "K3S_CLUSTER_RESET",
    "write-kubeconfig": "K3S_KUBECONFIG_OUTPUT",
    "write-kubeconfig-mode": "K3S_KUBECONFIG_MODE",
    "write-kubeconfig-group": "K3S_KUBECONFIG_GROUP",
    "config": "K3S_CONFIG_FILE",
    "selinux": "K3S_SELINUX",
    "resolv-conf": "K3S_RESOLV_CONF",
    "lb-server-port": "K3S_LB_SERVER_PORT",
    "with-node-id": "K3S_WITH_NODE_ID",
    "disable-apiserver-lb": "K3S_DISABLE_APISERVER_LB",
    "prefer-bundled-bin": "K3S_PREFER_BUNDLED_BIN",
    "rootless": "K3S_ROOTLESS",
    "debug": "K3S_DEBUG",
}


@dataclass(frozen=True)
class FlagSpec:
    """One flag of one command."""

    name: str
    aliases: tuple[str, ...] = ()
    repeatable: bool = False
    hidden: bool = False

    @property
    def is_bool(self) -> bool:
        return self.name in BOOL_FLAGS


@dataclass
class FlagTable:
    """Flags of one command, addressable by name or alias."""

    command: str
    flags: dict[str, FlagSpec] = field(default_factory=dict)
    by_alias: dict[str, str] = field(default_factory=dict)

    def lookup(self, name: str) -> FlagSpec | None:
        """Find a flag by its name or one of its aliases."""
        canonical = self.by_alias.get(name, name)
        return self.flags.get(canonical)


def _parse_flag_list(text: str) -> dict[str, FlagTable]:
    tables: dict[str, FlagTable] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        command, name, marks = parts[0], parts[1], parts[2:]
        aliases: tuple[str, ...] = ()
        for mark in marks:
            if mark.startswith("aliases="):
                aliases = tuple(a for a in mark[len("aliases="):].split(",") if a)
        spec = FlagSpec(name=name, aliases=aliases, repeatable="repeatable" in marks, hidden="hidden" in marks)
        table = tables.setdefault(command, FlagTable(command))
        table.flags[name] = spec
        for alias in aliases:
            table.by_alias[alias] = name
    return tables


def load_tables() -> dict[str, FlagTable]:
    """Flag tables keyed by command (``server``, ``agent``), from the packaged list."""
    data = pkgutil.get_data("k3s_standin", "k3s_flags.txt")
    if data is None:
        raise RuntimeError("k3s_flags.txt missing from the stand-in package")
    return _parse_flag_list(data.decode())


TABLES = load_tables()
