"""``kubeadm``: init, join, reset, token, certs certificate-key, init phase upload-certs, config print init-defaults,
upgrade plan/apply/node (upgrade.py), version — on the paths the product takes (kubeadm_contract.md), with kubeadm's texts (kubeadm_facts.md)."""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import shutil
import socket
import string
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import addons, host, hostnet, klog, manifests, pki, preflight, versions
from . import etcd as etcdc
from .client import Api, ApiError
from .config import (
    CONTROL_PLANE_TAINT,
    TOKEN_PATTERN,
    TOKEN_RE,
    Config,
    ConfigError,
    Token,
    load,
    _cluster_doc,
    mixed_arguments,
    parse_duration,
)

Json = dict[str, Any]
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"
K8S = "/etc/kubernetes"
PKI_DIR = "/etc/kubernetes/pki"
MANIFESTS = "/etc/kubernetes/manifests"
CERTS_SECRET = "kubeadm-certs"
_BOOL = {"upload-certs", "skip-token-print", "skip-certificate-key-print", "print-join-command", "force", "f",
         "control-plane", "dry-run", "discovery-token-unsafe-skip-ca-verification", "cleanup-tmp-dir", "help", "h",
         "experimental-upload-certs", "usages-none", "yes"}
_SHORT = {"o": "output", "f": "force", "v": "v", "h": "help", "y": "yes"}
WAIT_SECONDS = 240.0


class Fail(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Flags:
    positional: list[str] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, [default])[-1]

    def has(self, name: str) -> bool:
        return name in self.values

    def on(self, name: str) -> bool:
        return self.get(name, "false") not in ("false", "0", "")


def parse(argv: list[str]) -> Flags:
    flags = Flags()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            flags.positional.append(arg)
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("--"):
            name = _SHORT.get(name[:1], name)
            if len(arg) > 2 and not eq and arg[2] != "=":
                value, eq = arg[2:], "="
        if not eq:
            if name in _BOOL:
                value = "true"
            elif i < len(argv):
                value = argv[i]
                i += 1
        flags.values.setdefault(name, []).append(value)
    return flags


def out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# ---- small helpers --------------------------------------------------------------------------------------------


def new_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(6)) + "." + "".join(
        secrets.choice(alphabet) for _ in range(16))


def default_address() -> str:
    """The IPv4 address of the interface with the default route (no packet is sent: a UDP socket is only
    connected to learn the source address the kernel would use)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(("192.0.2.1", 9))
        return str(sock.getsockname()[0])
    except OSError as exc:
        raise Fail("unable to select an IP from default routes.") from exc
    finally:
        sock.close()


def short_duration(seconds: float) -> str:
    """apimachinery's ShortHumanDuration: 23h, 59m, 3d."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    if s < 86400 * 365 * 2:
        return f"{s // 86400}d"
    return f"{s // (86400 * 365)}y"


def go_duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60}m{s % 60}s"


def _admin_api(path: str = f"{K8S}/admin.conf", timeout: float = 10.0) -> Api:
    p = host.path(path)
    if not p.exists():
        raise Fail(f"failed to load admin kubeconfig: open {path}: no such file or directory")
    return Api.from_kubeconfig(p, timeout)


def token_secret(token: Token, extra: Json | None = None) -> Json:
    data = {"token-id": token.id, "token-secret": token.secret}
    if token.ttl:
        data["expiration"] = pki_time(time.time() + token.ttl)
    for usage in token.usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if token.groups:
        data["auth-extra-groups"] = ",".join(token.groups)
    if token.description:
        data["description"] = token.description
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{token.id}", "namespace": "kube-system", **(extra or {})},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def pki_time(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def join_command(endpoint: str, token: str, ca_hash: str, control_plane: bool, key: str, one_line: bool) -> str:
    """The join command as kubeadm's template prints it (continuation lines start with a TAB; the hash line ends
    with a space); ``one_line`` is ``token create --print-join-command``'s form."""
    text = f"kubeadm join {endpoint} --token {token} \\\n\t--discovery-token-ca-cert-hash {ca_hash} "
    if control_plane:
        text += "\\\n\t--control-plane " + (f"--certificate-key {key}" if key else "")
    if one_line:
        text = text.replace("\\\n", "").replace("\t", "")
    return text


# ---- version / config / certs ----------------------------------------------------------------------------------


def cmd_version(flags: Flags) -> int:
    output = flags.get("output")
    if output == "short":
        out(versions.version())
    elif output == "json":
        out(json.dumps({"clientVersion": versions.info()}, indent=2))
    elif output == "yaml":
        sys.stdout.write(yaml.safe_dump({"clientVersion": versions.info()}, sort_keys=False))
    elif output:
        raise Fail(f'invalid output format: {output}')
    else:
        out(f"kubeadm version: {versions.info_go()}")
    return 0


def init_defaults() -> str:
    v1beta4 = versions.minor() >= 31
    api = versions.config_api()
    init = (f"apiVersion: {api}\nbootstrapTokens:\n- groups:\n  - system:bootstrappers:kubeadm:default-node-token\n"
            "  token: abcdef.0123456789abcdef\n  ttl: 24h0m0s\n  usages:\n  - signing\n  - authentication\n"
            "kind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 1.2.3.4\n  bindPort: 6443\n"
            "nodeRegistration:\n  criSocket: unix:///var/run/containerd/containerd.sock\n"
            "  imagePullPolicy: IfNotPresent\n" + ("  imagePullSerial: true\n" if v1beta4 else "") +
            "  name: node\n  taints: null\n")
    if v1beta4:
        init += ("timeouts:\n  controlPlaneComponentHealthCheck: 4m0s\n  discovery: 5m0s\n  etcdAPICall: 2m0s\n"
                 "  kubeletHealthCheck: 4m0s\n  kubernetesAPICall: 1m0s\n  tlsBootstrap: 5m0s\n"
                 "  upgradeManifests: 5m0s\n")
    cluster = ("apiServer: {}\n" if v1beta4 else "apiServer:\n  timeoutForControlPlane: 4m0s\n") + f"apiVersion: {api}\n"
    if v1beta4:
        cluster += "caCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\n"
    cluster += "certificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrollerManager: {}\ndns: {}\n"
    if v1beta4:
        cluster += "encryptionAlgorithm: RSA-2048\n"
    cluster += ("etcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\n"
                f"kind: ClusterConfiguration\nkubernetesVersion: 1.{versions.minor()}.0\n"
                "networking:\n  dnsDomain: cluster.local\n  serviceSubnet: 10.96.0.0/12\n" +
                ("proxy: {}\n" if v1beta4 else "") + "scheduler: {}\n")
    return init + "---\n" + cluster


def cmd_config(flags: Flags) -> int:
    if flags.positional[1:3] == ["print", "init-defaults"]:
        sys.stdout.write(init_defaults())
        return 0
    if flags.positional[1:3] == ["print", "join-defaults"]:
        api = versions.config_api()
        sys.stdout.write(f"apiVersion: {api}\ncaCertPath: /etc/kubernetes/pki/ca.crt\ndiscovery:\n"
                         "  bootstrapToken:\n    apiServerEndpoint: kube-apiserver:6443\n    token: abcdef.0123456789abcdef\n"
                         "    unsafeSkipCAVerification: true\n" + ("  timeout: 5m0s\n" if versions.minor() < 31 else "") +
                         "  tlsBootstrapToken: abcdef.0123456789abcdef\nkind: JoinConfiguration\nnodeRegistration:\n"
                         "  criSocket: unix:///var/run/containerd/containerd.sock\n  imagePullPolicy: IfNotPresent\n"
                         "  name: node\n  taints: null\n")
        return 0
    raise Fail(f"the stand-in kubeadm does not model 'kubeadm {' '.join(flags.positional)}'")


def cmd_certs(flags: Flags) -> int:
    if flags.positional[1:2] == ["certificate-key"]:
        out(secrets.token_hex(32))
        return 0
    raise Fail(f"the stand-in kubeadm does not model 'kubeadm {' '.join(flags.positional)}'")


# ---- tokens -----------------------------------------------------------------------------------------------------


def cmd_token(flags: Flags) -> int:
    sub = flags.positional[1] if len(flags.positional) > 1 else ""
    if sub == "create":
        return _token_create(flags)
    if sub == "list":
        return _token_list(flags)
    if sub == "delete":
        return _token_delete(flags)
    if sub == "generate":
        out(new_token())
        return 0
    raise Fail(f"the stand-in kubeadm does not model 'kubeadm {' '.join(flags.positional)}'")


def _token_create(flags: Flags) -> int:
    if flags.has("config") and (bad := mixed_arguments(["config", *[f for f in flags.values if f != "config"]])):
        raise Fail(bad)
    text = flags.positional[2] if len(flags.positional) > 2 else new_token()
    if not TOKEN_RE.match(text):
        raise Fail(f'the bootstrap token "{text}" was not of the form "{TOKEN_PATTERN}"'.replace("\\", "\\\\"), 3)
    try:
        ttl = parse_duration(flags.get("ttl", "24h0m0s"))
    except ValueError as exc:
        raise Fail(f'invalid argument "{flags.get("ttl")}" for "--ttl" flag: {exc}') from exc
    token = Token(text, None if not ttl else ttl, flags.get("description"))
    if flags.has("usages"):
        token.usages = [u for u in flags.get("usages").split(",") if u]
    if flags.has("groups"):
        token.groups = [g for g in flags.get("groups").split(",") if g]
    api = _admin_api(flags.get("kubeconfig", f"{K8S}/admin.conf"))
    try:
        api.request("POST", "/api/v1/namespaces/kube-system/secrets", token_secret(token))
    except ApiError as exc:
        if exc.code == 409:
            raise Fail(f'failed to create bootstrap token with name "bootstrap-token-{token.id}": secrets '
                       f'"bootstrap-token-{token.id}" already exists') from exc
        raise Fail(f"failed to create or update bootstrap token with name bootstrap-token-{token.id}: {exc}") from exc
    if flags.on("print-join-command"):
        kc = pki.read_kubeconfig(host.path(flags.get("kubeconfig", f"{K8S}/admin.conf")))
        endpoint = kc["server"].split("://", 1)[-1]
        key = flags.get("certificate-key")
        out(join_command(endpoint, text, pki.ca_hash(kc["ca"]), bool(key), key, one_line=True))
    else:
        out(text)
    return 0


def _token_list(flags: Flags) -> int:
    api = _admin_api(flags.get("kubeconfig", f"{K8S}/admin.conf"))
    listing = api.get("/api/v1/namespaces/kube-system/secrets")
    rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
    for item in listing.get("items", []):
        if item.get("type") != "bootstrap.kubernetes.io/token":
            continue
        data = {k: base64.b64decode(v).decode() for k, v in (item.get("data") or {}).items()}
        expiration = data.get("expiration", "")
        if expiration:
            left = datetime.datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.UTC).timestamp() - time.time()
            ttl = short_duration(left) if left > 0 else "<invalid>"
        else:
            ttl, expiration = "<forever>", "<never>"
        usages = ",".join(sorted(k[len("usage-bootstrap-"):] for k, v in data.items()
                                 if k.startswith("usage-bootstrap-") and v == "true")) or "<none>"
        rows.append([f"{data.get('token-id', '')}.{data.get('token-secret', '')}", ttl, expiration, usages,
                     data.get("description") or "<none>", data.get("auth-extra-groups") or ""])
    if len(rows) == 1:
        return 0
    widths = [max(max(len(r[i]) for r in rows) + 3, 10) for i in range(len(rows[0]))]
    for row in rows:
        out("".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)))
    return 0


def _token_delete(flags: Flags) -> int:
    api = _admin_api(flags.get("kubeconfig", f"{K8S}/admin.conf"))
    for text in flags.positional[2:]:
        token_id = text.split(".")[0]
        try:
            api.request("DELETE", f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{token_id}")
        except ApiError as exc:
            raise Fail(f'failed to delete bootstrap token "{token_id}": {exc}') from exc
        out(f'bootstrap token "{token_id}" deleted')
    return 0


# ---- init ---------------------------------------------------------------------------------------------------------


def _config_path(flags: Flags) -> Path:
    text = flags.get("config")
    return host.path(text) if text.startswith("/") else Path(text)


def _init_config(flags: Flags) -> Config:
    if flags.has("config"):
        bad = mixed_arguments(list(flags.values))
        if bad:
            raise Fail(bad)
        try:
            cfg = load(_config_path(flags), "init")
        except ConfigError as exc:
            raise Fail(str(exc), exc.code) from exc
    else:
        cfg = Config()
        try:
            cfg.pod_subnet = flags.get("pod-network-cidr")
            cfg.service_subnet = flags.get("service-cidr", "10.96.0.0/12")
            cfg.control_plane_endpoint = flags.get("control-plane-endpoint")
            cfg.kubernetes_version = flags.get("kubernetes-version")
            cfg.advertise_address = flags.get("apiserver-advertise-address")
            cfg.bind_port = int(flags.get("apiserver-bind-port", "6443"))
            cfg.certificate_key = flags.get("certificate-key")
            if flags.has("token"):
                cfg.tokens = [Token(flags.get("token"))]
            if flags.has("cri-socket"):
                cfg.node.cri_socket = flags.get("cri-socket")
        except ValueError as exc:
            raise Fail(str(exc)) from exc
        cfg.cluster = {"apiVersion": versions.config_api(), "kind": "ClusterConfiguration"}
    if flags.has("node-name"):
        cfg.node.name = flags.get("node-name")
    return cfg


def _kubernetes_version(cfg: Config) -> str:
    wanted = cfg.kubernetes_version
    if not wanted or wanted.startswith(("stable", "latest")):
        klog.warning("version.go", 'could not fetch a Kubernetes version from the internet: unable to get URL '
                     '"https://dl.k8s.io/release/stable-1.txt": Get "https://dl.k8s.io/release/stable-1.txt": dial '
                     "tcp: lookup dl.k8s.io on 127.0.0.53:53: no such host")
        klog.warning("version.go", f"falling back to the local client version: {versions.version()}")
        return versions.version()
    text = wanted if wanted.startswith("v") else "v" + wanted
    try:
        minor = int(text.lstrip("v").split(".")[1])
    except (IndexError, ValueError) as exc:
        raise Fail(f'kubernetesVersion: Invalid value: "{wanted}": invalid version', 3) from exc
    if minor < versions.minor() - 1:
        raise Fail(f"this version of kubeadm only supports deploying clusters with the control plane version >= "
                   f"1.{versions.minor() - 1}.0. Current version: {text}")
    return text


def _ignored(flags: Flags, cfg: Config) -> set[str]:
    return preflight.ignore_set(flags.values.get("ignore-preflight-errors", []) + cfg.node.ignore_preflight_errors)


def _init_preflight(cfg: Config, ignored: set[str]) -> None:
    out("[preflight] Running pre-flight checks")
    result = preflight.Result()
    preflight.check_root(result)
    if result.errors:  # kubeadm stops at the root check
        preflight.report(result, ignored)
    preflight.check_cpu_mem(result)
    preflight.check_ports(result, [cfg.bind_port, 10259, 10257])
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", *([] if cfg.external_etcd else
                                                                                    ["etcd"])):
        preflight.check_file_available(result, f"{MANIFESTS}/{name}.yaml")
    preflight.common_checks(result, cfg.node.cri_socket)
    preflight.network_checks(result)
    if not cfg.external_etcd:
        preflight.check_ports(result, [2379, 2380])
        preflight.check_dir_available(result, cfg.etcd_data_dir)
    preflight.report(result, ignored)


def _pull_lines() -> None:
    out("[preflight] Pulling images required for setting up a Kubernetes cluster")
    out("[preflight] This might take a minute or two, depending on the speed of your internet connection")
    word = "beforehand" if versions.minor() >= 31 else "in beforehand"
    out(f"[preflight] You can also perform this action {word} using 'kubeadm config images pull'")


@dataclass
class Node:
    name: str
    address: str
    port: int

    @property
    def local_endpoint(self) -> str:
        return f"https://{self.address}:{self.port}"


def _endpoint(cfg: Config, node: Node) -> str:
    if cfg.control_plane_endpoint:
        ep = cfg.control_plane_endpoint
        return f"https://{ep}" if ":" in ep.rsplit("]", 1)[-1] else f"https://{ep}:{node.port}"
    return node.local_endpoint


def _certs(cfg: Config, node: Node) -> None:
    d = host.path(PKI_DIR)
    out(f'[certs] Using certificateDir folder "{PKI_DIR}"')
    admin_group = "kubeadm:cluster-admins" if versions.minor() >= 29 else "system:masters"

    def have(stem: str) -> bool:
        return (d / f"{stem}.crt").exists() and (d / f"{stem}.key").exists()

    def ca(stem: str, cn: str) -> pki.Pair:
        if have(stem):
            out(f'[certs] Using existing {stem} certificate authority')
            return pki.load(d, stem)
        out(f'[certs] Generating "{stem}" certificate and key')
        pair = pki.new_ca(cn)
        pki.save(d, stem, pair)
        return pair

    def leaf(stem: str, ca_pair: pki.Pair, cn: str, **kw: Any) -> None:
        if have(stem):
            out(f'[certs] Using existing {stem} certificate and key on disk')
            return
        out(f'[certs] Generating "{stem}" certificate and key')
        if kw.get("dns") or kw.get("ips"):
            out(f"[certs] {stem} serving cert is signed for DNS names [{' '.join(kw.get('dns', ()))}] and IPs "
                f"[{' '.join(kw.get('ips', ()))}]")
        pki.save(d, stem, pki.issue(ca_pair, cn, **kw))

    ca_pair = ca("ca", "kubernetes")
    import ipaddress as ipa

    service_ip = str(ipa.ip_network(cfg.service_subnet.split(",")[0], strict=False)[1])
    dns = [node.name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{cfg.dns_domain}"]
    ips = [service_ip, node.address]
    for extra in cfg.cert_sans + ([cfg.control_plane_endpoint.rsplit(":", 1)[0]] if cfg.control_plane_endpoint else []):
        try:
            ipa.ip_address(extra)
            if extra not in ips:
                ips.append(extra)
        except ValueError:
            if extra not in dns:
                dns.append(extra)
    leaf("apiserver", ca_pair, "kube-apiserver", dns=tuple(dns), ips=tuple(ips), server=True)
    leaf("apiserver-kubelet-client", ca_pair, "kube-apiserver-kubelet-client", organizations=(admin_group,),
         client=True)
    fp = ca("front-proxy-ca", "front-proxy-ca")
    leaf("front-proxy-client", fp, "front-proxy-client", client=True)
    if cfg.external_etcd:
        for what in ("etcd/ca certificate authority", "etcd/server certificate", "etcd/peer certificate",
                     "etcd/healthcheck-client certificate", "apiserver-etcd-client certificate"):
            out(f"[certs] External etcd mode: Skipping {what} generation")
    else:
        etcd_ca = ca("etcd/ca", "etcd-ca")
        etcd_names = (node.name, "localhost")
        etcd_ips = (node.address, "127.0.0.1", "::1")
        leaf("etcd/server", etcd_ca, node.name, dns=etcd_names, ips=etcd_ips, server=True, client=True)
        leaf("etcd/peer", etcd_ca, node.name, dns=etcd_names, ips=etcd_ips, server=True, client=True)
        leaf("etcd/healthcheck-client", etcd_ca, "kube-etcd-healthcheck-client", client=True)
        leaf("apiserver-etcd-client", etcd_ca, "kube-apiserver-etcd-client", client=True)
    if (d / "sa.key").exists():
        out("[certs] Using the existing \"sa\" key")
    else:
        out('[certs] Generating "sa" key and public key')
        pki.new_sa_keys(d)


def _kubeconfigs(cfg: Config, node: Node, join: bool = False) -> None:
    d = host.path(K8S)
    ca_pair = pki.load(host.path(PKI_DIR), "ca")
    endpoint = _endpoint(cfg, node)
    out(f'[kubeconfig] Using kubeconfig folder "{K8S}"')
    admin_group = "kubeadm:cluster-admins" if versions.minor() >= 29 else "system:masters"
    files: list[tuple[str, str, str, tuple[str, ...], str]] = [
        ("admin.conf", "kubernetes-admin", "kubernetes-admin", (admin_group,), endpoint)]
    if versions.minor() >= 29 and not join:
        files.append(("super-admin.conf", "kubernetes-super-admin", "kubernetes-super-admin", ("system:masters",),
                      endpoint))
    if not join:
        files.append(("kubelet.conf", f"system:node:{node.name}", f"system:node:{node.name}", ("system:nodes",),
                      endpoint))
    files += [("controller-manager.conf", "system:kube-controller-manager", "system:kube-controller-manager", (),
               node.local_endpoint),
              ("scheduler.conf", "system:kube-scheduler", "system:kube-scheduler", (), node.local_endpoint)]
    for name, user, cn, groups, server in files:
        out(f'[kubeconfig] Writing "{name}" kubeconfig file')
        leaf = pki.issue(ca_pair, cn, organizations=groups, client=True)
        host.write(d / name, pki.kubeconfig(server, ca_pair.cert, user, leaf.cert, leaf.key, cluster=cfg.cluster_name),
                   0o600)


def _manifests(cfg: Config, node: Node) -> None:
    d = host.path(MANIFESTS)
    d.mkdir(parents=True, exist_ok=True)
    if not cfg.external_etcd:
        out(f'[etcd] Creating static Pod manifest for local etcd in "{MANIFESTS}"')
        host.write(d / "etcd.yaml", manifests.dump(manifests.etcd(cfg, node.name, node.address)), 0o600)
    out(f'[control-plane] Using manifest folder "{MANIFESTS}"')
    for name, pod in (("kube-apiserver", manifests.apiserver(cfg, node.address, node.port)),
                      ("kube-controller-manager", manifests.controller_manager(cfg)),
                      ("kube-scheduler", manifests.scheduler(cfg))):
        out(f'[control-plane] Creating static Pod manifest for "{name}"')
        host.write(d / f"{name}.yaml", manifests.dump(pod), 0o600)


def _kubelet_start(cfg: Config, node: Node, kubelet_config: str, join: bool = False) -> None:
    flags_file = host.path("/var/lib/kubelet/kubeadm-flags.env")
    config_file = host.path("/var/lib/kubelet/config.yaml")
    if join:
        out('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
        host.write(config_file, kubelet_config)
    host.systemctl("stop", "kubelet")
    out('[kubelet-start] Writing kubelet environment file with flags to file "/var/lib/kubelet/kubeadm-flags.env"')
    host.write(flags_file, manifests.kubeadm_flags(cfg, node.name, host.hostname()))
    if not join:
        out('[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"')
        host.write(config_file, kubelet_config)
    out("[kubelet-start] Starting the kubelet")
    result = host.systemctl("restart", "kubelet")
    if result.returncode != 0:
        sys.stderr.write("\t[WARNING] The kubelet service could not be started: "
                         f"{(result.stderr or result.stdout).strip()}\n")


def _poll(what: Callable[[], bool], timeout: float, interval: float = 0.5) -> float | None:
    """Seconds until ``what()`` is true, or None after ``timeout``."""
    start = time.monotonic()
    while True:
        try:
            if what():
                return time.monotonic() - start
        except Exception:  # noqa: S110 - polling: any failure means "not yet"
            pass
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)


def _kubelet_healthy() -> bool:
    with urllib.request.urlopen("http://127.0.0.1:10248/healthz", timeout=2) as resp:
        return bool(resp.status == 200)


def _wait_kubelet(phase: str) -> None:
    out("[kubelet-check] Waiting for a healthy kubelet. This can take up to 4m0s")
    took = _poll(_kubelet_healthy, WAIT_SECONDS)
    if took is None:
        out(f"[kubelet-check] The kubelet is not healthy after {go_duration(WAIT_SECONDS)}")
        out("\nUnfortunately, an error has occurred:\n\tThe HTTP call equal to 'curl -sSL http://127.0.0.1:10248/healthz' "
            "returned error: Get \"http://127.0.0.1:10248/healthz\": context deadline exceeded\n\n"
            "This error is likely caused by:\n\t- The kubelet is not running\n\t- The kubelet is unhealthy due to a "
            "misconfiguration of the node in some way (required cgroups disabled)\n\nIf you are on a systemd-powered "
            "system, you can try to troubleshoot the error with the following commands:\n\t- 'systemctl status "
            "kubelet'\n\t- 'journalctl -xeu kubelet'\n")
        raise Fail(f"error execution phase {phase}: {'could not initialize a Kubernetes cluster' if phase.startswith('wait') else 'The kubelet is not healthy'}")
    out(f"[kubelet-check] The kubelet is healthy after {took * 1000:.6f}ms")


def _init_wait(api: Api) -> None:
    out(f'[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory '
        f'"{MANIFESTS}"')
    _wait_kubelet("wait-control-plane")
    out("[api-check] Waiting for a healthy API server. This can take up to 4m0s")
    took = _poll(lambda: api.get("/healthz") == "ok", WAIT_SECONDS)
    if took is None:
        out(f"[api-check] The API server is not healthy after {go_duration(WAIT_SECONDS)}")
        raise Fail("error execution phase wait-control-plane: could not initialize a Kubernetes cluster")
    out(f"[api-check] The API server is healthy after {took:.9f}s")


def _put_configmap(api: Api, namespace: str, name: str, data: dict[str, str]) -> None:
    api.create_or_update(f"/api/v1/namespaces/{namespace}/configmaps",
                         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
                          "data": data})


def cluster_configuration(cfg: Config, version: str, node: Node) -> str:
    doc = dict(cfg.cluster)
    doc.update(apiVersion=versions.config_api(), kind="ClusterConfiguration", kubernetesVersion=version)
    doc.setdefault("certificatesDir", PKI_DIR)
    doc.setdefault("clusterName", cfg.cluster_name)
    doc.setdefault("imageRepository", cfg.image_repository)
    doc.setdefault("controllerManager", {})
    doc.setdefault("scheduler", {})
    doc.setdefault("dns", {})
    doc.setdefault("apiServer", {})
    if not cfg.external_etcd:
        doc.setdefault("etcd", {"local": {"dataDir": cfg.etcd_data_dir}})
    networking = dict(doc.get("networking") or {})
    networking.setdefault("dnsDomain", cfg.dns_domain)
    networking.setdefault("serviceSubnet", cfg.service_subnet)
    doc["networking"] = networking
    return str(yaml.safe_dump(doc, default_flow_style=False, sort_keys=True))


def upload_certs(api: Api, key: str, print_key: bool) -> None:
    out(f'[upload-certs] Storing the certificates in Secret "{CERTS_SECRET}" in the "kube-system" Namespace')
    d = host.path(PKI_DIR)
    owner = Token(new_token(), 7200.0, "Proxy for managing TTL for the kubeadm-certs secret", [], [])
    created = api.request("POST", "/api/v1/namespaces/kube-system/secrets", token_secret(owner))
    data = {}
    for name in ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key",
                 "etcd/ca.crt", "etcd/ca.key"):
        if (d / name).exists():
            data[name.replace("/", "-")] = base64.b64encode(pki.encrypt((d / name).read_bytes(), key)).decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": CERTS_SECRET, "namespace": "kube-system", "ownerReferences": [{
                  "apiVersion": "v1", "kind": "Secret", "name": created["metadata"]["name"],
                  "uid": created["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]},
              "data": data}
    api.create_or_update("/api/v1/namespaces/kube-system/secrets", secret)
    if print_key:
        out("[upload-certs] Using certificate key:")
        out(key)


def _wait_node(api: Api, name: str) -> Json:
    found: list[Json] = []

    def ready() -> bool:
        found[:] = [api.get(f"/api/v1/nodes/{name}")]
        return True

    if _poll(ready, WAIT_SECONDS, 1.0) is None:
        raise Fail(f'error execution phase mark-control-plane: error patching node "{name}" through apiserver: '
                   "timed out waiting for the condition")
    return found[0]


def mark_control_plane(api: Api, name: str, taints: list[Json] | None) -> None:
    labels = ["node-role.kubernetes.io/control-plane", "node.kubernetes.io/exclude-from-external-load-balancers"]
    out(f"[mark-control-plane] Marking the node {name} as control-plane by adding the labels: [{' '.join(labels)}]")
    wanted = [CONTROL_PLANE_TAINT] if taints is None else taints
    if wanted:
        text = " ".join(f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}" for t in wanted)
        out(f"[mark-control-plane] Marking the node {name} as control-plane by adding the taints [{text}]")
    node = _wait_node(api, name)
    existing = [t for t in node.get("spec", {}).get("taints") or []
                if t.get("key") not in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")]
    for taint in wanted:
        if not any(t["key"] == taint["key"] and t["effect"] == taint["effect"] for t in existing):
            existing.append({k: v for k, v in taint.items() if k in ("key", "value", "effect")})
    patch = {"metadata": {"labels": dict.fromkeys(labels, "")}, "spec": {"taints": existing}}
    api.request("PATCH", f"/api/v1/nodes/{name}", patch, "application/strategic-merge-patch+json")


def _bootstrap_tokens(api: Api, cfg: Config, endpoint: str, print_token: bool) -> None:
    if print_token:
        out(f"[bootstrap-token] Using token: {cfg.tokens[0].token}")
    out("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
    for token in cfg.tokens:
        api.create_or_update("/api/v1/namespaces/kube-system/secrets", token_secret(token))
    for line in ("allow Node Bootstrap tokens to get nodes",
                 "allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate "
                 "credentials",
                 "allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token",
                 "allow certificate rotation for all node client certificates in the cluster"):
        out(f"[bootstrap-token] Configured RBAC rules to {line}")
    addons.bootstrap_rbac(api)
    out('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
    ca = host.path(f"{PKI_DIR}/ca.crt").read_bytes()
    _put_configmap(api, "kube-public", "cluster-info", {"kubeconfig": pki.cluster_info_kubeconfig(endpoint, ca)})


def _kubelet_finalize(cfg: Config, node: Node) -> None:
    current = host.path("/var/lib/kubelet/pki/kubelet-client-current.pem")
    if _poll(current.exists, WAIT_SECONDS) is None:
        raise Fail(f"error execution phase kubelet-finalize/enable-client-cert-rotation: stat {current}: no such file "
                   "or directory")
    out(f'[kubelet-finalize] Updating "{K8S}/kubelet.conf" to point to a rotatable kubelet client certificate and key')
    conf = host.path(f"{K8S}/kubelet.conf")
    kc = pki.read_kubeconfig(conf)
    host.write(conf, pki.kubeconfig(kc["server"], kc["ca"], "default-auth", cluster=cfg.cluster_name,
                                    cert_file="/var/lib/kubelet/pki/kubelet-client-current.pem"), 0o600)


def cmd_init(flags: Flags) -> int:
    if len(flags.positional) > 1 and flags.positional[1] == "phase":
        return _init_phase(flags)
    cfg = _init_config(flags)
    ignored = _ignored(flags, cfg)
    version = _kubernetes_version(cfg)
    out(f"[init] Using Kubernetes version: {version}")
    node = Node((cfg.node.name or host.hostname()).lower(), cfg.advertise_address or default_address(), cfg.bind_port)
    skip = set(cfg.skip_phases + [p for v in flags.values.get("skip-phases", []) for p in v.split(",")])
    try:
        _init_preflight(cfg, ignored)
    except preflight.PreflightError as exc:
        raise Fail(f"error execution phase preflight: {exc}", exc.code) from exc
    _pull_lines()
    if not cfg.tokens:
        cfg.tokens = [Token(new_token(), 86400.0, "The default bootstrap token generated by 'kubeadm init'.")]
    _certs(cfg, node)
    _kubeconfigs(cfg, node)
    _manifests(cfg, node)
    _kubelet_start(cfg, node, manifests.kubelet_config(cfg))
    api = Api.from_kubeconfig(host.path(f"{K8S}/admin.conf"))
    _init_wait(api)
    out('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace')
    _put_configmap(api, "kube-system", "kubeadm-config", {"ClusterConfiguration": cluster_configuration(cfg, version,
                                                                                                        node)})
    out('[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the configuration for the '
        "kubelets in the cluster")
    _put_configmap(api, "kube-system", "kubelet-config", {"kubelet": manifests.kubelet_config(cfg)})
    key = ""
    if flags.on("upload-certs") and "upload-certs" not in skip:
        key = cfg.certificate_key or secrets.token_hex(32)
        upload_certs(api, key, not flags.on("skip-certificate-key-print"))
    else:
        out("[upload-certs] Skipping phase. Please see --upload-certs")
    mark_control_plane(api, node.name, cfg.node.taints)
    endpoint = _endpoint(cfg, node)
    _bootstrap_tokens(api, cfg, endpoint, not flags.on("skip-token-print"))
    _kubelet_finalize(cfg, node)
    if "addon/coredns" not in skip and "addon" not in skip:
        addons.coredns(api, cfg)
        out("[addons] Applied essential addon: CoreDNS")
    if "addon/kube-proxy" not in skip and "addon" not in skip:
        addons.kube_proxy(api, cfg, endpoint)
        out("[addons] Applied essential addon: kube-proxy")
    _show_join(cfg, endpoint, key, flags)
    return 0


def _show_join(cfg: Config, endpoint: str, key: str, flags: Flags) -> None:
    ca_hash = pki.ca_hash(host.path(f"{PKI_DIR}/ca.crt").read_bytes())
    shown = endpoint.split("://", 1)[1]
    text = ("\nYour Kubernetes control-plane has initialized successfully!\n\n"
            "To start using your cluster, you need to run the following as a regular user:\n\n"
            "  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n"
            "  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n\n"
            "Alternatively, if you are the root user, you can run:\n\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n\n"
            "You should now deploy a pod network to the cluster.\n"
            'Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:\n'
            "  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n\n")
    withheld = flags.on("skip-token-print")
    shown_key = "<value withheld>" if flags.on("skip-certificate-key-print") else key
    for token in cfg.tokens:
        tok = "<value withheld>" if withheld else token.token
        if cfg.control_plane_endpoint:
            if key:
                text += ("You can now join any number of the control-plane node running the following command on "
                         "each as root:\n\n  " + join_command(shown, tok, ca_hash, True, shown_key, False) +
                         "\n\nPlease note that the certificate-key gives access to cluster sensitive data, keep it "
                         "secret!\nAs a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can "
                         "use\n\"kubeadm init phase upload-certs --upload-certs\" to reload certs afterward.\n\n")
            else:
                text += ("You can now join any number of control-plane nodes by copying certificate authorities\n"
                         "and service account keys on each node and then running the following as root:\n\n  " +
                         join_command(shown, tok, ca_hash, True, "", False) + "\n\n")
        text += ("Then you can join any number of worker nodes by running the following on each as root:\n\n" +
                 join_command(shown, tok, ca_hash, False, "", False) + "\n")
    sys.stdout.write(text)


def _init_phase(flags: Flags) -> int:
    phase = flags.positional[2] if len(flags.positional) > 2 else ""
    if phase != "upload-certs":
        raise Fail(f"the stand-in kubeadm does not model 'kubeadm init phase {phase}'")
    if flags.has("config") and (bad := mixed_arguments(list(flags.values))):
        raise Fail(bad)
    key = flags.get("certificate-key")
    if flags.has("config"):
        try:
            key = load(_config_path(flags), "init").certificate_key
        except ConfigError as exc:
            raise Fail(str(exc), exc.code) from exc
    if not flags.on("upload-certs"):
        out("[upload-certs] Skipping phase. Please see --upload-certs")
        return 0
    if key and len(key) != 64:
        raise Fail(f"error execution phase upload-certs: invalid certificate key size {len(key) // 2}, the key must "
                   "be an AES key of size 32")
    key = key or secrets.token_hex(32)
    api = _admin_api(flags.get("kubeconfig", f"{K8S}/admin.conf"))
    upload_certs(api, key, not flags.on("skip-certificate-key-print"))
    return 0


# ---- join ----------------------------------------------------------------------------------------------------------


def _join_config(flags: Flags) -> Config:
    if flags.has("config"):
        bad = mixed_arguments(list(flags.values))
        if bad:
            raise Fail(bad)
        try:
            cfg = load(_config_path(flags), "join")
        except ConfigError as exc:
            raise Fail(str(exc), exc.code) from exc
    else:
        cfg = Config()
        cfg.discovery = {"bootstrapToken": {
            "apiServerEndpoint": flags.positional[1] if len(flags.positional) > 1 else "",
            "token": flags.get("discovery-token") or flags.get("token"),
            "caCertHashes": flags.values.get("discovery-token-ca-cert-hash", []),
            "unsafeSkipCAVerification": flags.on("discovery-token-unsafe-skip-ca-verification")}}
        if flags.on("control-plane"):
            cfg.join_control_plane = {"certificateKey": flags.get("certificate-key")}
            cfg.certificate_key = flags.get("certificate-key")
            cfg.advertise_address = flags.get("apiserver-advertise-address")
        if flags.has("cri-socket"):
            cfg.node.cri_socket = flags.get("cri-socket")
    if flags.has("node-name"):
        cfg.node.name = flags.get("node-name")
    bt = cfg.discovery.get("bootstrapToken") or {}
    if not bt and not cfg.discovery.get("file"):
        raise Fail("discovery: Invalid value: \"\": bootstrapToken or file must be set", 3)
    problems = []
    token = str(bt.get("token") or cfg.discovery.get("tlsBootstrapToken") or "")
    if not TOKEN_RE.match(token):
        problems.append(f'discovery.bootstrapToken.token: Invalid value: "{token}": the bootstrap token is invalid')
    if not bt.get("caCertHashes") and not bt.get("unsafeSkipCAVerification"):
        problems.append('discovery.bootstrapToken.caCertHashes: Invalid value: "": using token-based discovery '
                        "without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm "
                        "config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue")
    if not bt.get("apiServerEndpoint"):
        problems.append('discovery.bootstrapToken.apiServerEndpoint: Invalid value: "": the API server endpoint is '
                        "required")
    if problems:
        raise Fail(problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]", 3)
    return cfg


def discover(cfg: Config) -> tuple[str, bytes]:
    """Token discovery: (API server URL, CA PEM) from cluster-info, or Fail with kubeadm's message."""
    bt = cfg.discovery["bootstrapToken"]
    endpoint = str(bt["apiServerEndpoint"])
    token_id, _, token_secret = str(bt.get("token") or cfg.discovery.get("tlsBootstrapToken")).partition(".")
    pins = [str(h) for h in bt.get("caCertHashes") or []]
    insecure = Api(f"https://{endpoint}", None, timeout=5)
    path = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    deadline = time.monotonic() + cfg.discovery_timeout
    prefix = "error execution phase preflight: couldn't validate the identity of the API Server: "
    while True:
        try:
            info = insecure.get(path)
            data = info.get("data") or {}
            signature = data.get(f"jws-kubeconfig-{token_id}")
            if signature:
                break
        except (ApiError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            if "info" in locals():
                raise Fail(prefix + f'could not find a JWS signature in the cluster-info ConfigMap for token ID '
                           f'"{token_id}"')
            raise Fail(prefix + f'failed to request the cluster-info ConfigMap: Get "https://{endpoint}{path}?timeout='
                       '10s": context deadline exceeded')
        time.sleep(5)
    content = data.get("kubeconfig", "")
    if not pki.jws_valid(signature, content, token_id, token_secret):
        raise Fail(prefix + "failed to verify JWS signature of received cluster info object, can't trust this API "
                   "Server")
    kc = yaml.safe_load(content)
    cluster = (kc.get("clusters") or [{}])[0].get("cluster", {})
    ca = base64.b64decode(cluster.get("certificate-authority-data", ""))
    if pins and not bt.get("unsafeSkipCAVerification"):
        actual = pki.ca_hash(ca)
        if actual not in pins:
            raise Fail(prefix + f'cluster CA found in cluster-info ConfigMap is invalid: none of the public keys '
                       f'"{actual}" are pinned')
    secure = Api(f"https://{endpoint}", ca, timeout=5)
    try:
        secure.get(path)
    except (ApiError, OSError) as exc:
        raise Fail(prefix + f"failed to request the cluster-info ConfigMap: {exc}") from exc
    return str(cluster.get("server") or f"https://{endpoint}"), ca


def cmd_join(flags: Flags) -> int:
    cfg = _join_config(flags)
    ignored = _ignored(flags, cfg)
    control_plane = cfg.join_control_plane is not None
    out("[preflight] Running pre-flight checks")
    result = preflight.Result()
    preflight.check_root(result)
    try:
        if result.errors:
            preflight.report(result, ignored)
        for name in ("kubelet.conf", "bootstrap-kubelet.conf"):
            preflight.check_file_available(result, f"{K8S}/{name}")
        preflight.common_checks(result, cfg.node.cri_socket)
        if not control_plane:
            preflight.check_file_available(result, f"{PKI_DIR}/ca.crt")
        preflight.network_checks(result)
        preflight.report(result, ignored)
    except preflight.PreflightError as exc:
        raise Fail(f"error execution phase preflight: {exc}", exc.code) from exc
    server, ca = discover(cfg)
    token = str(cfg.discovery["bootstrapToken"].get("token") or cfg.discovery.get("tlsBootstrapToken"))
    api = Api(server, ca, token=token)
    out("[preflight] Reading configuration from the cluster...")
    out("[preflight] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'")
    try:
        kubeadm_cm = api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        kubelet_cm = api.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
    except (ApiError, OSError) as exc:
        raise Fail(f"error execution phase preflight: unable to fetch the kubeadm-config ConfigMap: {exc}") from exc
    name = (cfg.node.name or host.hostname()).lower()
    try:
        existing = api.get(f"/api/v1/nodes/{name}")
        ready = [c for c in existing.get("status", {}).get("conditions", []) if c.get("type") == "Ready"]
        if ready and ready[0].get("status") == "True":
            raise Fail(f'error execution phase kubelet-start: a Node with name "{name}" and status "Ready" already '
                       "exists in the cluster. You must delete the existing Node or change the name of this new "
                       "joining Node")
    except ApiError:
        pass
    if control_plane:
        return _join_control_plane(cfg, ignored, name, server, ca, token, kubeadm_cm, kubelet_cm)
    host.write(host.path(f"{PKI_DIR}/ca.crt"), ca)
    _join_kubelet_start(cfg, Node(name, "", 0), server, ca, token, kubelet_cm["data"]["kubelet"])
    out("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was "
        "received.\n* The Kubelet was informed of the new secure connection details.\n\n"
        "Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n")
    return 0


def _join_kubelet_start(cfg: Config, node: Node, server: str, ca: bytes, token: str, kubelet_config: str) -> None:
    """kubelet-start of a join: bootstrap kubeconfig, kubelet config + flags, restart, TLS bootstrap."""
    host.write(host.path(f"{K8S}/bootstrap-kubelet.conf"),
               pki.kubeconfig(server, ca, "tls-bootstrap-token-user", token=token, cluster="kubernetes"), 0o600)
    _kubelet_start(cfg, node, kubelet_config, join=True)
    _wait_kubelet("kubelet-start")
    out("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    if _poll(host.path(f"{K8S}/kubelet.conf").exists, WAIT_SECONDS) is None:
        raise Fail("error execution phase kubelet-start: timed out waiting for the condition")
    host.path(f"{K8S}/bootstrap-kubelet.conf").unlink(missing_ok=True)


# ---- join of a control-plane node ------------------------------------------------------------------------------------

CP_NOT_READY = ("\nOne or more conditions for hosting a new control plane instance is not satisfied.\n\n{error}\n\n"
                "Please ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n"
                "* The certificates that must be shared among control plane instances are provided.\n\n")
ETCD_WAIT_SECONDS = 40.0  # kubeadm: 8 retries every 5 s
ETCD_API_SECONDS = 120.0  # kubeadm's etcd API call timeout (promote is retried that long)
_CERT_FILES = ("ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt",
               "etcd/ca.key")


def _cluster_from_configmap(cfg: Config, kubeadm_cm: Json) -> None:
    """The ClusterConfiguration stored by init, decoded into the join's config as kubeadm does."""
    text = (kubeadm_cm.get("data") or {}).get("ClusterConfiguration", "")
    doc = yaml.safe_load(text) or {}
    version = str(doc.get("apiVersion", versions.config_api())).rpartition("/")[2]
    try:
        _cluster_doc(cfg, doc, version)
    except ConfigError as exc:
        raise Fail(f"error execution phase preflight: unable to fetch the kubeadm-config ConfigMap: {exc}") from exc


def _join_cp_preflight(cfg: Config, ignored: set[str]) -> None:
    if not cfg.control_plane_endpoint:
        raise Fail("error execution phase preflight: " + CP_NOT_READY.format(
            error="unable to add a new control plane instance to a cluster that doesn't have a stable "
                  "controlPlaneEndpoint address"))
    out("[preflight] Running pre-flight checks before initializing the new control plane instance")
    result = preflight.Result()
    preflight.check_cpu_mem(result)
    preflight.check_ports(result, [cfg.bind_port, 10259, 10257])
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", *([] if cfg.external_etcd else
                                                                                    ["etcd"])):
        preflight.check_file_available(result, f"{MANIFESTS}/{name}.yaml")
    if not cfg.external_etcd:
        preflight.check_ports(result, [2379, 2380])
        preflight.check_dir_available(result, cfg.etcd_data_dir)
    try:
        preflight.report(result, ignored)
    except preflight.PreflightError as exc:
        raise Fail(f"error execution phase preflight: {exc}", exc.code) from exc


def download_certs(api: Api, key: str) -> None:
    """control-plane-prepare/download-certs: kubeadm-certs decrypted with the certificate key, written to pki."""
    prefix = "error execution phase control-plane-prepare/download-certs: error downloading certs: "
    out(f'[download-certs] Downloading the certificates in Secret "{CERTS_SECRET}" in the "kube-system" Namespace')
    try:
        raw_key = bytes.fromhex(key)
    except ValueError as exc:
        bad = next((c for c in key if c not in string.hexdigits), "")
        raise Fail(prefix + "error decoding certificate key: encoding/hex: " +
                   (f"invalid byte: U+{ord(bad):04X} {bad!r}" if bad else "odd length hex string")) from exc
    if len(raw_key) not in (16, 24, 32):
        raise Fail(prefix + "error decoding secret data with provided key: crypto/aes: invalid key size "
                   f"{len(raw_key)}")
    try:
        secret = api.get(f"/api/v1/namespaces/kube-system/secrets/{CERTS_SECRET}")
    except ApiError as exc:
        if exc.code == 404:
            raise Fail(prefix + f'error downloading the secret: Secret "{CERTS_SECRET}" was not found in the '
                       '"kube-system" Namespace. This Secret might have expired. Please, run `kubeadm init phase '
                       "upload-certs --upload-certs` on a control plane to generate a new one") from exc
        raise Fail(prefix + f"error downloading the secret: {exc}") from exc
    files: dict[str, bytes] = {}
    for name, value in (secret.get("data") or {}).items():
        sealed = base64.b64decode(value)
        if not sealed:
            files[name] = b""
            continue
        if len(sealed) < 12:
            raise Fail(prefix + "error decoding secret data with provided key: size of data is less than the nonce "
                       "size")
        try:
            files[name] = pki.decrypt(sealed, key)
        except Exception as exc:  # cryptography's InvalidTag: Go's gcm.Open error
            raise Fail(prefix + "error decoding secret data with provided key: cipher: message authentication "
                       "failed") from exc
    out(f'[download-certs] Saving the certificates to the folder: "{PKI_DIR}"')
    d = host.path(PKI_DIR)
    for name in _CERT_FILES:
        data = files.get(name.replace("/", "-"))
        if data:
            host.write(d / name, data, 0o600 if name.endswith(".key") else 0o644)


def _etcd_endpoints(api: Api) -> list[str]:
    """The client URLs of the existing etcd members. Real kubeadm reads the etcd mirror pods' annotation
    ``kubeadm.kubernetes.io/etcd.advertise-client-urls``; the stand-in kubelet posts no mirror pods, so the same
    URLs are taken from the control-plane Nodes' InternalIP (every stacked member advertises ``https://<ip>:2379``)."""
    urls = []
    for node in api.get("/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane").get("items", []):
        if "node-role.kubernetes.io/control-plane" not in (node["metadata"].get("labels") or {}):
            continue
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                ip = address["address"]
                urls.append(f"https://[{ip}]:2379" if ":" in ip else f"https://{ip}:2379")
    if not urls:
        raise Fail("error execution phase check-etcd: could not retrieve the list of etcd endpoints: timed out "
                   "waiting for the condition")
    return urls


def _check_etcd(endpoints: list[str]) -> None:
    out("[check-etcd] Checking that the etcd cluster is healthy")
    d = host.path(PKI_DIR)
    for endpoint in endpoints:
        if not etcdc.healthy(d, endpoint):
            raise Fail(f"error execution phase check-etcd: etcd cluster is not healthy: failed to dial endpoint "
                       f"{endpoint} with maintenance client: context deadline exceeded")


def _join_etcd(cfg: Config, node: Node, endpoints: list[str]) -> None:
    """control-plane-join/etcd: MemberAdd (as a learner from 1.29, EtcdLearnerMode), this node's etcd.yaml with the
    whole member list and ``--initial-cluster-state=existing``, MemberPromote, then wait for the cluster."""
    d = host.path(PKI_DIR)
    phase = "error execution phase control-plane-join/etcd: "
    peer = f"https://[{node.address}]:2380" if ":" in node.address else f"https://{node.address}:2380"
    learner = versions.minor() >= 29
    try:
        endpoint, current = etcdc.first_answering(d, endpoints, time.monotonic() + ETCD_API_SECONDS)
        mine = [m for m in current if peer in (m.get("peerURLs") or [])]
        if mine:  # a retried join: the member is there already (kubeadm reuses it)
            new, listed = mine[0], current
        else:
            new, listed = etcdc.add_member(d, endpoint, peer, learner)
    except etcdc.EtcdError as exc:
        raise Fail(phase + f"error adding etcd member {node.name}: {exc}") from exc
    out("[etcd] Announced new etcd member joining to the existing etcd cluster")
    initial = []
    for member in listed:
        urls = member.get("peerURLs") or []
        if not urls:
            continue
        name = node.name if member.get("ID") == new.get("ID") else member.get("name", "")
        if name:
            initial.append(f"{name}={urls[0]}")
    out('[etcd] Creating static Pod manifest for "etcd"')
    host.write(host.path(f"{MANIFESTS}/etcd.yaml"), manifests.dump(manifests.etcd(
        cfg, node.name, node.address, ",".join(initial), existing=True)), 0o600)
    if learner and new.get("isLearner"):
        deadline = time.monotonic() + ETCD_API_SECONDS
        while True:
            try:
                etcdc.promote(d, endpoint, str(new["ID"]))
                break
            except etcdc.EtcdError as exc:
                if time.monotonic() > deadline:
                    raise Fail(phase + f"error promoting member {node.name}: {exc}") from exc
                time.sleep(1)
    out(f"[etcd] Waiting for the new etcd member to join the cluster. This can take up to "
        f"{int(ETCD_WAIT_SECONDS)}s")
    if _poll(lambda: etcdc.healthy(d, etcdc.LOCAL, "healthcheck"), ETCD_WAIT_SECONDS, 1.0) is None:
        raise Fail(phase + "timeout waiting for etcd cluster to be available")


def _join_control_plane(cfg: Config, ignored: set[str], name: str, server: str, ca: bytes, token: str,
                        kubeadm_cm: Json, kubelet_cm: Json) -> int:
    _cluster_from_configmap(cfg, kubeadm_cm)
    _join_cp_preflight(cfg, ignored)
    _pull_lines()
    node = Node(name, cfg.advertise_address or default_address(), cfg.bind_port)
    bootstrap = Api(server, ca, token=token)
    download_certs(bootstrap, cfg.certificate_key)
    _certs(cfg, node)
    out(f'[certs] Valid certificates and keys now exist in "{PKI_DIR}"')
    out("[kubeconfig] Generating kubeconfig files")
    _kubeconfigs(cfg, node, join=True)
    d = host.path(MANIFESTS)
    d.mkdir(parents=True, exist_ok=True)
    out(f'[control-plane] Using manifest folder "{MANIFESTS}"')
    for component, pod in (("kube-apiserver", manifests.apiserver(cfg, node.address, node.port)),
                           ("kube-controller-manager", manifests.controller_manager(cfg)),
                           ("kube-scheduler", manifests.scheduler(cfg))):
        out(f'[control-plane] Creating static Pod manifest for "{component}"')
        host.write(d / f"{component}.yaml", manifests.dump(pod), 0o600)
    admin = Api.from_kubeconfig(host.path(f"{K8S}/admin.conf"))
    endpoints: list[str] = []
    if not cfg.external_etcd:
        endpoints = _etcd_endpoints(admin)
        _check_etcd(endpoints)
    _join_kubelet_start(cfg, node, server, ca, token, kubelet_cm["data"]["kubelet"])
    if not cfg.external_etcd:
        _join_etcd(cfg, node, endpoints)
    mark_control_plane(admin, node.name, cfg.node.taints)
    out("\nThis node has joined the cluster and a new control plane instance was created:\n\n"
        "* Certificate signing request was sent to apiserver and approval was received.\n"
        "* The Kubelet was informed of the new secure connection details.\n"
        "* Control plane label and taint were applied to the new node.\n"
        "* The Kubernetes control plane instances scaled up.\n"
        + ("* A new etcd member was added to the local/stacked etcd cluster.\n" if not cfg.external_etcd else "") +
        "\nTo start administering your cluster from this node, you need to run the following as a regular user:\n\n"
        "\tmkdir -p $HOME/.kube\n\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n"
        "\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n\n"
        "Run 'kubectl get nodes' to see this node join the cluster.\n")
    return 0


# ---- reset ----------------------------------------------------------------------------------------------------------


def _clean_dir(path: Path) -> None:
    if not path.is_dir():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def cmd_reset(flags: Flags) -> int:
    from . import pods

    admin = host.path(f"{K8S}/admin.conf")
    out("[reset] Reading configuration from the cluster...")
    out("[reset] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'")
    if not admin.exists():
        klog.warning("reset.go", "[reset] Unable to fetch the kubeadm-config ConfigMap from cluster: failed to get "
                     f"config map: failed to load admin kubeconfig: open {K8S}/admin.conf: no such file or directory")
    if not flags.on("force"):
        klog.warning("reset.go", "[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will "
                     "be reverted.")
        sys.stdout.write("[reset] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise Fail("aborted reset operation")
    # reset's phases are preflight, remove-etcd-member and cleanup-node; --skip-phases leaves any of them out.
    skip = {p for v in flags.values.get("skip-phases", []) for p in v.split(",") if p}
    unknown = skip - {"preflight", "remove-etcd-member", "cleanup-node"}
    if unknown:
        raise Fail(f'error execution phase: phase "{sorted(unknown)[0]}" does not exist')
    if "preflight" not in skip:
        out("[preflight] Running pre-flight checks")
        result = preflight.Result()
        preflight.check_root(result)
        try:
            preflight.report(result, _ignored(flags, Config()))
        except preflight.PreflightError as exc:
            raise Fail(f"error execution phase preflight: {exc}", exc.code) from exc
    etcd_manifest = host.path(f"{MANIFESTS}/etcd.yaml")
    if "remove-etcd-member" in skip:
        pass
    elif etcd_manifest.exists():
        data_dir = "/var/lib/etcd"
        try:
            pod = yaml.safe_load(etcd_manifest.read_text())
            for arg in pod["spec"]["containers"][0]["command"]:
                if arg.startswith("--data-dir="):
                    data_dir = arg.split("=", 1)[1]
        except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
            pass
        problem = etcdc.remove_self(host.path(PKI_DIR), host.hostname())
        if problem:
            klog.warning("removeetcdmember.go", f"[reset] Failed to remove etcd member: {problem}, please manually "
                         "remove this etcd member using etcdctl")
        _clean_dir(host.path(data_dir))
        out(f"[reset] Deleted contents of the etcd data directory: {data_dir}")
    else:
        out("[reset] No etcd config found. Assuming external etcd")
        out("[reset] Please, manually reset etcd to prevent further issues")
    if "cleanup-node" in skip:
        return 0
    out("[reset] Stopping the kubelet service")
    host.systemctl("stop", "kubelet")
    out('[reset] Unmounting mounted directories in "/var/lib/kubelet"')
    pods.stop_all()
    hostnet.unmount_kubelet_dir()
    dirs = [MANIFESTS, "/var/lib/kubelet", PKI_DIR] + (["/etc/kubernetes/tmp"] if flags.on("cleanup-tmp-dir") else [])
    out(f"[reset] Deleting contents of directories: [{' '.join(dirs)}]")
    for d in dirs:
        _clean_dir(host.path(d))
    files = [f"{K8S}/admin.conf", *([f"{K8S}/super-admin.conf"] if versions.minor() >= 29 else []),
             f"{K8S}/kubelet.conf", f"{K8S}/bootstrap-kubelet.conf", f"{K8S}/controller-manager.conf",
             f"{K8S}/scheduler.conf"]
    out(f"[reset] Deleting files: [{' '.join(files)}]")
    for f in files:
        host.path(f).unlink(missing_ok=True)
    out("\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n\n"
        "The reset process does not reset or clean up iptables rules or IPVS tables.\n"
        'If you wish to reset iptables, you must do so manually by using the "iptables" command.\n\n'
        "If your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)\n"
        "to reset your system's IPVS tables.\n\n"
        "The reset process does not clean your kubeconfig files and you must remove them manually.\n"
        "Please, check the contents of the $HOME/.kube/config file.")
    return 0


# ---- entry ----------------------------------------------------------------------------------------------------------


def cmd_upgrade(flags: Flags) -> int:
    from . import upgrade  # noqa: PLC0415 - upgrade imports this module's helpers

    return upgrade.run(flags.positional, flags.on("yes"), flags.on("force"))


def run(argv: list[str]) -> int:
    flags = parse(argv)
    command = flags.positional[0] if flags.positional else ""
    handlers: dict[str, Callable[[Flags], int]] = {
        "version": cmd_version, "init": cmd_init, "join": cmd_join, "reset": cmd_reset, "token": cmd_token,
        "certs": cmd_certs, "config": cmd_config, "upgrade": cmd_upgrade}
    if not command:
        out("kubeadm: easily bootstrap a secure Kubernetes cluster (stand-in)")
        return 0
    if command not in handlers:
        sys.stderr.write(f'unknown command "{command}" for "kubeadm"\nTo see the stack trace of this error execute '
                         "with --v=5 or higher\n")
        return 1
    try:
        return handlers[command](flags)
    except Fail as exc:
        sys.stdout.flush()
        sys.stderr.write(f"{exc}\n{STACK_HINT}\n")
        return exc.code
    except preflight.PreflightError as exc:
        sys.stderr.write(f"{exc}\n{STACK_HINT}\n")
        return exc.code
    except ApiError as exc:
        sys.stderr.write(f"{exc}\n{STACK_HINT}\n")
        return 1
