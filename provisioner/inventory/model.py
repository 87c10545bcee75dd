"""The typed model of one inventory file.

Everything below the CLI works on these frozen objects, never on raw Ansible variables, so a field that was
validated once cannot drift afterwards. Secrets are not part of the model: the cluster token is only recorded as
"given or not", so no repr, log line or report can leak it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from provisioner.errors import Problem

Role = Literal["server", "agent"]
Datastore = Literal["sqlite", "embedded-etcd", "external"]

FLAVORS = ("k3s", "kubeadm")
DEFAULT_FLAVOR = "k3s"
DEFAULT_RELEASE_URL = "https://github.com/k3s-io/k3s/releases/download"
# Image the system-upgrade-controller runs to upgrade a node (`upgrade --strategy plan`); it adds the version as tag.
DEFAULT_UPGRADE_IMAGE = "rancher/k3s-upgrade"
# provision_hardware.arch takes the names in provisioner/arch.py (the k3s role's architecture table).
BOARDS = ("generic", "vm", "rpi3", "rpi4", "rpi5", "jetson-nano", "jetson-orin", "jetson-xavier", "other-arm")
# Which architectures a board can run; boards missing here run anything.
BOARD_ARCHES: dict[str, tuple[str, ...]] = {
    "rpi3": ("arm64", "armhf"),
    "rpi4": ("arm64", "armhf"),
    "rpi5": ("arm64",),
    "jetson-nano": ("arm64",),
    "jetson-orin": ("arm64",),
    "jetson-xavier": ("arm64",),
    "other-arm": ("arm64", "armhf"),
}
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# kubeadm: where the packages come from, the CNIs provision can install, and the etcd topologies.
KUBEADM_PACKAGE_SOURCES = ("apt", "binaries", "artifacts")
KUBEADM_CNIS = ("flannel", "calico", "cilium", "none")
KUBEADM_ETCD = ("stacked", "external")
DEFAULT_KUBEADM_APT_URL = "https://pkgs.k8s.io/core:/stable:"
DEFAULT_KUBEADM_RELEASE_URL = "https://dl.k8s.io/release"
DEFAULT_KUBEADM_GITHUB_URL = "https://github.com"
DEFAULT_POD_SUBNET = "10.244.0.0/16"
DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"


@dataclass(frozen=True)
class Hardware:
    """What the inventory says about a host's hardware; None means "probe it"."""

    arch: str | None = None
    board: str | None = None
    memory_mb: int | None = None


@dataclass(frozen=True)
class Host:
    """One machine of the cluster with everything needed to reach it over SSH."""

    name: str
    address: str  # ansible_host, or the inventory name when that is absent
    port: int
    user: str | None
    role: Role
    hardware: Hardware = field(default_factory=Hardware)
    node_labels: dict[str, str] = field(default_factory=dict)
    node_taints: tuple[str, ...] = ()
    k3s_config: dict[str, object] = field(default_factory=dict)  # k3s_server_config or k3s_agent_config for this host
    ssh_key: Path | None = None
    become: bool = False
    ssh_common_args: str | None = None
    ssh_extra_args: str | None = None
    known_hosts_file: Path | None = None  # from -o UserKnownHostsFile=... in the SSH args
    host_key_checking: bool = True  # off only when the inventory says so explicitly
    port_given: bool = False  # ansible_port set: then it wins over ~/.ssh/config's Port, as on Ansible's ssh line


@dataclass(frozen=True)
class K3sSettings:
    """Cluster-wide k3s settings. Exactly one of version/channel is set for a valid k3s cluster."""

    version: str | None
    channel: str | None
    release_url: str
    artifact_dir: Path | None
    registries: dict[str, object] | None
    server_config: dict[str, object]
    agent_config: dict[str, object]  # the first agent's; agents may differ, see Host.k3s_config
    token_given: bool
    token_vaulted: bool = False
    datastore_endpoint: str | None = field(default=None, repr=False)  # holds no password (refused when it does)
    datastore_password_file: Path | None = None
    upgrade_image: str = DEFAULT_UPGRADE_IMAGE  # k3s_upgrade_image: repository only, for a private registry
    airgap_images: str | None = None  # k3s_airgap_images: the image archive's format (tar.zst, ...), None: not placed


@dataclass(frozen=True)
class ExternalEtcd:
    """kubeadm with external etcd: its client URLs and the client certificate files on the control machine."""

    endpoints: tuple[str, ...]
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class KubeadmSettings:
    """Cluster-wide kubeadm settings (kubeadm_* in the inventory). Control planes are the `server` group, workers
    the `agent` group."""

    version: str
    package_source: str  # apt (pkgs.k8s.io-style, one repository per minor) | binaries (dl.k8s.io-style) | artifacts
    apt_url: str
    release_url: str
    artifact_dir: Path | None
    cni: str
    pod_subnet: str
    service_subnet: str
    etcd: ExternalEtcd | None = None  # None: stacked etcd on the control-plane nodes
    # github.com or a mirror laid out like it (CNI release manifests, cri-tools)
    github_url: str = DEFAULT_KUBEADM_GITHUB_URL


@dataclass(frozen=True)
class Cluster:
    """One cluster as described by one inventory file; `settings` are its flavor's (K3sSettings, KubeadmSettings)."""

    name: str
    flavor: str
    source_file: Path
    api_endpoint: str  # provision_api_endpoint, or the first server's address
    settings: K3sSettings | KubeadmSettings
    hosts: tuple[Host, ...]  # servers in inventory order, then agents in inventory order
    accept_even_servers: bool = False
    warnings: tuple[Problem, ...] = ()

    @property
    def k3s(self) -> K3sSettings:
        """The K3s settings; only K3s code asks, and a kubeadm cluster has none."""
        if not isinstance(self.settings, K3sSettings):
            raise TypeError(f"cluster {self.name!r} is a {self.flavor} cluster, it has no K3s settings")
        return self.settings

    @property
    def kubeadm(self) -> KubeadmSettings:
        if not isinstance(self.settings, KubeadmSettings):
            raise TypeError(f"cluster {self.name!r} is a {self.flavor} cluster, it has no kubeadm settings")
        return self.settings

    @property
    def target_version(self) -> str | None:
        """The version the inventory asks for (None: a K3s channel decides it)."""
        return self.settings.version or None

    @property
    def servers(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.role == "server")

    @property
    def agents(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.role == "agent")

    @property
    def first_server(self) -> Host:
        """The server that initialises the cluster (Ansible's ``groups['server'][0]``)."""
        return self.servers[0]

    @property
    def datastore(self) -> Datastore:
        """Which datastore the servers use. K3s: decided by the server count and k3s_datastore_endpoint; kubeadm:
        etcd on the control planes (embedded-etcd, whatever their number) or external etcd."""
        if isinstance(self.settings, KubeadmSettings):
            return "external" if self.settings.etcd is not None else "embedded-etcd"
        endpoint = self.k3s.datastore_endpoint
        if endpoint and not endpoint.startswith("sqlite://"):
            return "external"
        if len(self.servers) > 1:
            return "embedded-etcd"
        return "sqlite"

    def host(self, name: str) -> Host:
        """The host with inventory name ``name``; KeyError when absent."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def host_to_dict(host: Host) -> dict[str, object]:
    """A JSON-ready view of a host (for `provision validate --json` and the data-driven tests)."""
    return {
        "name": host.name,
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "role": host.role,
        "hardware": {"arch": host.hardware.arch, "board": host.hardware.board, "memory_mb": host.hardware.memory_mb},
        "node_labels": dict(host.node_labels),
        "node_taints": list(host.node_taints),
        "k3s_config": dict(host.k3s_config),
        "ssh_key": _path_text(host.ssh_key),
        "become": host.become,
        "ssh_common_args": host.ssh_common_args,
        "known_hosts_file": _path_text(host.known_hosts_file),
        "host_key_checking": host.host_key_checking,
    }


def cluster_to_dict(cluster: Cluster) -> dict[str, object]:
    """A JSON-ready view of the whole model. Holds no secret: the token is only "given" or not."""
    return {
        "name": cluster.name,
        "flavor": cluster.flavor,
        "api_endpoint": cluster.api_endpoint,
        "datastore": cluster.datastore,
        "first_server": cluster.first_server.name,
        "servers": [h.name for h in cluster.servers],
        "agents": [h.name for h in cluster.agents],
        "accept_even_servers": cluster.accept_even_servers,
        cluster.flavor: _settings_to_dict(cluster.settings),
        "hosts": [host_to_dict(h) for h in cluster.hosts],
        "warnings": [w.render() for w in cluster.warnings],
    }


def _settings_to_dict(settings: K3sSettings | KubeadmSettings) -> dict[str, object]:
    if isinstance(settings, KubeadmSettings):
        etcd = settings.etcd
        return {
            "version": settings.version,
            "package_source": settings.package_source,
            "apt_url": settings.apt_url,
            "release_url": settings.release_url,
            "artifact_dir": _path_text(settings.artifact_dir),
            "cni": settings.cni,
            "pod_subnet": settings.pod_subnet,
            "service_subnet": settings.service_subnet,
            "etcd": None if etcd is None else {
                "endpoints": list(etcd.endpoints), "ca_file": str(etcd.ca_file), "cert_file": str(etcd.cert_file),
                "key_file": str(etcd.key_file),
            },
        }
    return {
        "version": settings.version,
        "channel": settings.channel,
        "release_url": settings.release_url,
        "artifact_dir": _path_text(settings.artifact_dir),
        "registries": settings.registries,
        "server_config": settings.server_config,
        "agent_config": settings.agent_config,
        "token_given": settings.token_given,
        "token_vaulted": settings.token_vaulted,
        "datastore_endpoint": settings.datastore_endpoint,
        "datastore_password_file": _path_text(settings.datastore_password_file),
        "upgrade_image": settings.upgrade_image,
        "airgap_images": settings.airgap_images,
    }
