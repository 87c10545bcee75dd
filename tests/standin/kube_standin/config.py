"""kubeadm configuration files: InitConfiguration, ClusterConfiguration, JoinConfiguration (+ component configs).

Decoded per API version as kubeadm does (kubeadm_facts.md §6): ``kubeadm.k8s.io/v1beta3`` is the only version
before 1.31; 1.31 prefers ``v1beta4`` and accepts ``v1beta3`` with a deprecation warning per document; ``v1beta4``
on an older kubeadm is not registered; ``v1beta2`` and older are refused. ``extraArgs``/``kubeletExtraArgs`` are
maps in ``v1beta3`` and ``- name/value`` lists in ``v1beta4``; the other form fails to decode.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import klog, versions

Json = dict[str, Any]
GROUP = "kubeadm.k8s.io"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_PATTERN = r"\A([a-z0-9]{6})\.([a-z0-9]{16})\z"
DEFAULT_CRI = "unix:///var/run/containerd/containerd.sock"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
DEFAULT_TOKEN_GROUPS = ["system:bootstrappers:kubeadm:default-node-token"]
# Flags that may accompany --config (ValidateMixedArguments): these and every flag starting with "skip-".
MIXABLE = {"config", "ignore-preflight-errors", "dry-run", "kubeconfig", "node-name", "kubeconfig-dir",
           "upload-certs", "print-join-command", "rootfs", "v", "log-file"}
_OLD = ("v1alpha1", "v1alpha2", "v1alpha3", "v1beta1", "v1beta2")
# Go struct field paths kubeadm's decoder names when extraArgs has the other form.
_ARG_FIELDS = {
    ("apiServer",): "APIServer.apiServer.ControlPlaneComponent.extraArgs",
    ("controllerManager",): "ClusterConfiguration.controllerManager.extraArgs",
    ("scheduler",): "ClusterConfiguration.scheduler.extraArgs",
    ("etcd", "local"): "LocalEtcd.etcd.local.extraArgs",
}


class ConfigError(Exception):
    """A config that kubeadm refuses; str() is its message."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Token:
    token: str
    ttl: float | None = 86400.0  # seconds; None never expires
    description: str = ""
    usages: list[str] = field(default_factory=lambda: ["signing", "authentication"])
    groups: list[str] = field(default_factory=lambda: list(DEFAULT_TOKEN_GROUPS))

    @property
    def id(self) -> str:
        return self.token.split(".")[0]

    @property
    def secret(self) -> str:
        return self.token.split(".")[1]


@dataclass
class NodeRegistration:
    name: str = ""
    cri_socket: str = DEFAULT_CRI
    kubelet_extra_args: list[tuple[str, str]] = field(default_factory=list)
    taints: list[Json] | None = None  # None: the default (control-plane taint on control planes)
    ignore_preflight_errors: list[str] = field(default_factory=list)


@dataclass
class Config:
    """What init/join need, normalised across API versions."""

    kinds: set[str] = field(default_factory=set)
    api_version: str = ""
    # init
    tokens: list[Token] = field(default_factory=list)
    advertise_address: str = ""
    bind_port: int = 6443
    certificate_key: str = ""
    skip_phases: list[str] = field(default_factory=list)
    node: NodeRegistration = field(default_factory=NodeRegistration)
    # cluster
    cluster: Json = field(default_factory=dict)  # the ClusterConfiguration as stored in kubeadm-config
    kubernetes_version: str = ""
    control_plane_endpoint: str = ""
    pod_subnet: str = ""
    service_subnet: str = "10.96.0.0/12"
    dns_domain: str = "cluster.local"
    cluster_name: str = "kubernetes"
    image_repository: str = "registry.k8s.io"
    cert_sans: list[str] = field(default_factory=list)
    external_etcd: Json | None = None
    etcd_data_dir: str = "/var/lib/etcd"
    extra_args: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # join
    discovery: Json = field(default_factory=dict)
    discovery_timeout: float = 300.0
    join_control_plane: Json | None = None
    # component configs
    kubelet: Json = field(default_factory=dict)
    kube_proxy: Json = field(default_factory=dict)


def parse_duration(text: Any) -> float | None:
    """Go duration (``24h0m0s``, ``30m``, ``0``) in seconds; 0 means never for tokens."""
    if text is None:
        return None
    text = str(text).strip()
    if text in ("0", "0s"):
        return 0.0
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    i = 0
    matched = False
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else ch
        if unit not in units or not number:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(number) * units[unit]
        number, matched = "", True
        i += len(unit)
    if number or not matched:
        raise ValueError(f'time: missing unit in duration "{text}"')
    return total


def _args(value: Any, version: str, field_path: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if version == "v1beta4":
        if isinstance(value, dict):
            raise ConfigError(f"json: cannot unmarshal object into Go struct field {field_path} of type []v1beta4.Arg")
        return [(str(a.get("name", "")), str(a.get("value", ""))) for a in value]
    if isinstance(value, list):
        raise ConfigError(f"json: cannot unmarshal array into Go struct field {field_path} of type map[string]string")
    return [(str(k), str(v)) for k, v in value.items()]


def _node_registration(doc: Json, version: str) -> NodeRegistration:
    raw = doc.get("nodeRegistration") or {}
    cri = str(raw.get("criSocket") or DEFAULT_CRI)
    if "://" not in cri:
        klog.warning("initconfiguration.go", f'Usage of CRI endpoints without URL scheme is deprecated and can cause '
                     f'kubelet errors in the future. Automatically prepending scheme "unix" to the "criSocket" with '
                     f'value "{cri}". Please update your configuration!')
        cri = "unix://" + cri
    return NodeRegistration(
        name=str(raw.get("name") or ""), cri_socket=cri,
        kubelet_extra_args=_args(raw.get("kubeletExtraArgs"), version,
                                 "NodeRegistrationOptions.nodeRegistration.kubeletExtraArgs"),
        taints=raw.get("taints") if "taints" in raw else None,
        ignore_preflight_errors=[str(x) for x in raw.get("ignorePreflightErrors") or []])


def _tokens(doc: Json) -> list[Token]:
    tokens = []
    for raw in doc.get("bootstrapTokens") or []:
        text = str(raw.get("token") or "")
        if not TOKEN_RE.match(text):
            raise ConfigError(f'the bootstrap token "{text}" was not of the form "{TOKEN_PATTERN}"'.replace(
                "\\", "\\\\"), 1)
        ttl = parse_duration(raw["ttl"]) if "ttl" in raw else 86400.0
        tokens.append(Token(text, None if ttl == 0 else ttl, str(raw.get("description") or ""),
                            list(raw.get("usages") or ["signing", "authentication"]),
                            list(raw.get("groups") or DEFAULT_TOKEN_GROUPS)))
    return tokens


def _check_version(doc: Json) -> str:
    api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
    group, _, version = api_version.partition("/")
    if group != GROUP:
        return version
    if version in _OLD:
        raise ConfigError(f'your configuration file uses an old API spec: "{api_version}" (kind: "{kind}"). Please use '
                          "kubeadm v1.22 instead and run 'kubeadm config migrate --old-config old.yaml --new-config "
                          "new.yaml', which will write the new, similar spec using a newer API version.")
    known = ("v1beta3", "v1beta4") if versions.minor() >= 31 else ("v1beta3",)
    if version not in known:
        klog.warning("strict.go", f'unknown configuration schema.GroupVersionKind{{Group:"{GROUP}", Version:"{version}", '
                     f'Kind:"{kind}"}} for scheme definitions in "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/'
                     'scheme.go:31" and "k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs/scheme.go:28"')
        raise ConfigError(f'no kind "{kind}" is registered for version "{api_version}" in scheme '
                          '"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"')
    if version == "v1beta3" and versions.minor() >= 31:
        klog.warning("common.go", f'your configuration file uses a deprecated API spec: "{api_version}" (kind: '
                     f"\"{kind}\"). Please use 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', "
                     "which will write the new, similar spec using a newer API version.")
    return version


def load(path: Path, want: str) -> Config:
    """Read ``path`` for ``init`` (Init+Cluster configuration) or ``join`` (JoinConfiguration)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"unable to read config from \"{path}\" : open {path}: "
                          f"{(exc.strerror or str(exc)).lower()}") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(f"error converting YAML to JSON: yaml: {exc}") from exc
    cfg = Config()
    for doc in docs:
        if not isinstance(doc, dict) or not doc.get("kind") or not doc.get("apiVersion"):
            raise ConfigError("Object 'Kind' is missing in '" + yaml.safe_dump(doc).strip() + "'")
        version = _check_version(doc)
        kind = doc["kind"]
        cfg.kinds.add(kind)
        if str(doc["apiVersion"]).startswith(GROUP + "/"):
            cfg.api_version = str(doc["apiVersion"])
        if kind == "InitConfiguration":
            _init_doc(cfg, doc, version)
        elif kind == "ClusterConfiguration":
            _cluster_doc(cfg, doc, version)
        elif kind == "JoinConfiguration":
            _join_doc(cfg, doc, version)
        elif kind == "KubeletConfiguration":
            cfg.kubelet = doc
        elif kind == "KubeProxyConfiguration":
            cfg.kube_proxy = doc
        elif kind in ("ResetConfiguration", "UpgradeConfiguration") and version == "v1beta4":
            continue
        else:
            klog.warning("strict.go", f'unknown configuration schema.GroupVersionKind{{Group:"{doc["apiVersion"].split("/")[0]}", '
                         f'Version:"{version}", Kind:"{kind}"}}')
    if want == "join" and "JoinConfiguration" not in cfg.kinds:
        raise ConfigError("no JoinConfiguration kind was found in the YAML file")
    if want == "init" and "JoinConfiguration" in cfg.kinds and "InitConfiguration" not in cfg.kinds \
            and "ClusterConfiguration" not in cfg.kinds:
        raise ConfigError("no InitConfiguration or ClusterConfiguration kind was found in the YAML file")
    if want == "init" and not cfg.cluster:
        _cluster_doc(cfg, {"apiVersion": versions.config_api(), "kind": "ClusterConfiguration"},
                     versions.config_api().split("/")[1])
    return cfg


def _init_doc(cfg: Config, doc: Json, version: str) -> None:
    cfg.tokens = _tokens(doc)
    endpoint = doc.get("localAPIEndpoint") or {}
    cfg.advertise_address = str(endpoint.get("advertiseAddress") or "")
    cfg.bind_port = int(endpoint.get("bindPort") or 6443)
    cfg.certificate_key = str(doc.get("certificateKey") or "")
    if cfg.certificate_key and len(cfg.certificate_key) != 64:
        raise ConfigError(f"invalid certificate key size {len(cfg.certificate_key) // 2}, the key must be an AES key "
                          "of size 32")
    cfg.skip_phases = [str(p) for p in doc.get("skipPhases") or []]
    cfg.node = _node_registration(doc, version)


def _cluster_doc(cfg: Config, doc: Json, version: str) -> None:
    for path, go_field in _ARG_FIELDS.items():
        section: Any = doc
        for part in path:
            section = (section or {}).get(part) if isinstance(section, dict) else None
        cfg.extra_args["-".join(path)] = _args((section or {}).get("extraArgs") if isinstance(section, dict) else None,
                                               version, go_field)
    networking = doc.get("networking") or {}
    cfg.pod_subnet = str(networking.get("podSubnet") or "")
    cfg.service_subnet = str(networking.get("serviceSubnet") or "10.96.0.0/12")
    cfg.dns_domain = str(networking.get("dnsDomain") or "cluster.local")
    for name, value in (("podSubnet", cfg.pod_subnet), ("serviceSubnet", cfg.service_subnet)):
        for part in filter(None, value.split(",")):
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError as exc:
                raise ConfigError(f'networking.{name}: Invalid value: "{value}": couldn\'t parse subnet', 3) from exc
    cfg.kubernetes_version = str(doc.get("kubernetesVersion") or "")
    cfg.control_plane_endpoint = str(doc.get("controlPlaneEndpoint") or "")
    cfg.cluster_name = str(doc.get("clusterName") or "kubernetes")
    cfg.image_repository = str(doc.get("imageRepository") or "registry.k8s.io")
    cfg.cert_sans = [str(s) for s in (doc.get("apiServer") or {}).get("certSANs") or []]
    etcd = doc.get("etcd") or {}
    if etcd.get("external"):
        cfg.external_etcd = etcd["external"]
    cfg.etcd_data_dir = str((etcd.get("local") or {}).get("dataDir") or "/var/lib/etcd")
    cfg.cluster = doc


def _join_doc(cfg: Config, doc: Json, version: str) -> None:
    cfg.node = _node_registration(doc, version)
    discovery = doc.get("discovery") or {}
    cfg.discovery = discovery
    timeout = discovery.get("timeout") if version == "v1beta3" else (doc.get("timeouts") or {}).get("discovery")
    if timeout is not None:
        cfg.discovery_timeout = parse_duration(timeout) or 300.0
    if doc.get("controlPlane") is not None:
        cfg.join_control_plane = doc.get("controlPlane") or {}
        endpoint = cfg.join_control_plane.get("localAPIEndpoint") or {}
        cfg.advertise_address = str(endpoint.get("advertiseAddress") or "")
        cfg.bind_port = int(endpoint.get("bindPort") or 6443)
        key = cfg.join_control_plane.get("certificateKey")
        if key is not None and not isinstance(key, str):  # YAML turned an unquoted all-digit key into a number
            raise ConfigError("json: cannot unmarshal number into Go struct field "
                              "JoinControlPlane.controlPlane.certificateKey of type string")
        cfg.certificate_key = str(key or "")


def mixed_arguments(flags: list[str]) -> str | None:
    """kubeadm's refusal when --config comes with flags that the file should set instead."""
    if "config" not in flags:
        return None
    bad = [f for f in flags if f not in MIXABLE and not f.startswith("skip-")]
    return f"can not mix '--config' with arguments [{' '.join(bad)}]" if bad else None
