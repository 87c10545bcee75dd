"""Filters of the kubeadm role: CA pin, secret scrubbing, settings fixed at init, CNI manifests, kubeconfig, readiness.

Plain data in, plain data out (PyYAML and cryptography, both already needed by ansible-core), so the CLI's unit tests
load this file by path and exercise the same code the role runs.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

# The rule, written once (the role checks the hosts' record with it; the CLI checks its own record of the last `up`
# with the same names before any host is contacted): the inventory variables whose ClusterConfiguration field kubeadm
# fixes at init, so that changing them means rebuilding the cluster. kubernetesVersion is not here: `provision
# upgrade` changes it.
FIXED_AT_INIT = (
    ("kubeadm_pod_subnet", ("networking", "podSubnet")),
    ("kubeadm_service_subnet", ("networking", "serviceSubnet")),
    ("kubeadm_dns_domain", ("networking", "dnsDomain")),
    ("provision_api_endpoint", ("controlPlaneEndpoint",)),
    ("provision_cluster_name", ("clusterName",)),
    ("kubeadm_etcd", ("etcd",)),
)
# Fixed once the first `up` applied it, though not by kubeadm: pods' networking cannot be swapped by applying another
# CNI over the running one (the role records the applied CNI on the first control plane).
FIXED_AFTER_FIRST_UP = ("kubeadm_cni",)


def ca_cert_hash(pem: str) -> str:
    """kubeadm's CA pin: sha256 of the CA certificate's SubjectPublicKeyInfo (DER), as `sha256:<hex>`."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every secret (and a bootstrap token's secret half) replaced, for error messages."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "<redacted>")
        if "." in secret:
            text = text.replace(secret.split(".", 1)[1], "<redacted>")
    return text


def _cluster_configuration(text: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "ClusterConfiguration":
            return doc
    return {}


def _dig(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = doc
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def settings_changes(recorded: str, wanted: str) -> list[str]:
    """What differs, in fields kubeadm fixes at init, between the recorded and the wanted ClusterConfiguration."""
    before, after = _cluster_configuration(recorded), _cluster_configuration(wanted)
    changes = []
    for name, path in FIXED_AT_INIT:
        old, new = _dig(before, path), _dig(after, path)
        if old != new:
            shown = ".".join(path)
            changes.append(f"{name} would change {shown} from {json.dumps(old)} to {json.dumps(new)}")
    return changes


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


# Where each CNI keeps its pod network: the kind and name of the object in its release manifest (and in the running
# cluster). flannel: net-conf.json's Network in ConfigMap kube-flannel-cfg; calico: CALICO_IPV4POOL_CIDR of the
# calico-node container; cilium: cluster-pool-ipv4-cidr in ConfigMap cilium-config.
CNI_NETWORK_OBJECTS = {
    "flannel": ("ConfigMap", "kube-flannel-cfg"),
    "calico": ("DaemonSet", "calico-node"),
    "cilium": ("ConfigMap", "cilium-config"),
}


def cni_network_object(cni: str) -> str:
    """kubectl's name of the object where the CNI keeps its pod network, e.g. configmap/kube-flannel-cfg."""
    kind, name = CNI_NETWORK_OBJECTS[str(cni)]
    return f"{kind.lower()}/{name}"


def _pod_network(doc: dict[str, Any], cni: str) -> str | None:
    """The pod network `doc` gives the CNI ("" when the place exists but is empty), None when doc is not its place."""
    kind, name = CNI_NETWORK_OBJECTS[cni]
    if doc.get("kind") != kind or doc.get("metadata", {}).get("name") != name:
        return None
    data = doc.get("data") or {}
    if cni == "flannel":
        return str(json.loads(data.get("net-conf.json") or "{}").get("Network") or "")
    if cni == "cilium":
        return str(data.get("cluster-pool-ipv4-cidr") or "")
    for container in _containers(doc):
        if container.get("name") == "calico-node":
            return next((str(e.get("value") or "") for e in container.get("env") or []
                         if e.get("name") == "CALICO_IPV4POOL_CIDR"), "")
    return None


def _set_pod_network(doc: dict[str, Any], cni: str, pod_subnet: str) -> None:
    if cni == "flannel":
        net = json.loads(doc["data"]["net-conf.json"])
        net["Network"] = pod_subnet
        doc["data"]["net-conf.json"] = json.dumps(net, indent=2) + "\n"
    elif cni == "cilium":
        doc["data"]["cluster-pool-ipv4-cidr"] = pod_subnet
    else:
        for container in _containers(doc):
            if container.get("name") == "calico-node":
                env = [e for e in container.get("env") or [] if e.get("name") != "CALICO_IPV4POOL_CIDR"]
                container["env"] = [*env, {"name": "CALICO_IPV4POOL_CIDR", "value": pod_subnet}]


def cni_manifest(text: str, cni: str, pod_subnet: str) -> str:
    """The CNI's manifest with its pod network set to `pod_subnet` (every CNI must agree with kubeadm's podSubnet).
    A manifest without the place to set it (CNI_NETWORK_OBJECTS) is refused (ValueError), rather than applied with a
    network that would not match."""
    # Ansible hands tagged str subclasses that PyYAML's safe dumper refuses: plain str from here on.
    text, cni, pod_subnet = str(text), str(cni), str(pod_subnet)
    ipaddress.ip_network(pod_subnet)
    docs = [d for d in yaml.safe_load_all(text) if d]
    found = False
    for doc in docs:
        if _pod_network(doc, cni) is not None:
            _set_pod_network(doc, cni, pod_subnet)
            found = True
    if not found:
        raise ValueError(f"the {cni} manifest has no place for the pod network; is it the {cni} release manifest?")
    return yaml.safe_dump_all(docs, sort_keys=False)


def cni_network_conflict(live: str, cni: str, pod_subnet: str) -> str:
    """The pod network a running CNI uses (`live`: kubectl's JSON of its CNI_NETWORK_OBJECTS object) when it is not
    the cluster's podSubnet, else "". Nodes get their pod ranges from podSubnet: a CNI on another network cannot
    hand them out (flannel: "subnet ... doesn't contain ... PodCIDR"), and applying the manifest over it would move
    running pods' network. An unset network (the CNI's own choice) is not a conflict here."""
    live, cni, pod_subnet = str(live), str(cni), str(pod_subnet)
    network = _pod_network(json.loads(live), cni) or ""
    if not network:
        return ""
    try:
        same = ipaddress.ip_network(network, strict=False) == ipaddress.ip_network(pod_subnet, strict=False)
    except ValueError:
        same = False
    return "" if same else network


def kubeconfig_for(raw: str, server_url: str, cluster_name: str) -> str:
    """admin.conf for the control machine: server set to the endpoint, names set to the cluster's."""
    # Ansible hands tagged str subclasses that PyYAML's safe dumper refuses: plain str from here on.
    raw, server_url, cluster_name = str(raw), str(server_url), str(cluster_name)
    config = copy.deepcopy(yaml.safe_load(raw))
    user = f"{cluster_name}-admin"
    config["clusters"] = [
        {"name": cluster_name, "cluster": {**config["clusters"][0]["cluster"], "server": server_url}}
    ]
    config["users"] = [{"name": user, "user": config["users"][0]["user"]}]
    config["contexts"] = [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}]
    config["current-context"] = cluster_name
    return yaml.safe_dump(config, sort_keys=False)


def _ready(node: dict[str, Any]) -> tuple[bool, str]:
    for condition in node.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True", condition.get("message", "")
    return False, "no Ready condition"


def node_problems(node_list: dict[str, Any], expected: list[str], version: str) -> list[str]:
    """One line per expected node that is missing, not Ready, or whose kubelet is not at `version`."""
    nodes = {n["metadata"]["name"]: n for n in node_list.get("items", [])}
    problems = []
    for name in expected:
        node = nodes.get(name)
        if node is None:
            problems.append(f"{name}: not registered")
            continue
        ready, message = _ready(node)
        if not ready:
            problems.append(f"{name}: not Ready ({message})" if message else f"{name}: not Ready")
        kubelet = node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
        if kubelet != version:
            problems.append(f"{name}: kubelet {kubelet or '?'} (want {version})")
    return problems


def daemonset_ready(daemonset: dict[str, Any]) -> bool:
    """A DaemonSet scheduled somewhere, its pods ready everywhere and up to date."""
    status = daemonset.get("status", {})
    desired = int(status.get("desiredNumberScheduled", 0))
    return desired > 0 and int(status.get("numberReady", 0)) == desired and int(
        status.get("updatedNumberScheduled", desired)) == desired


# containerd's registry hosts (its CRI plugin reads config_path/<registry>/hosts.toml at every pull). The inventory
# gives K3s's registries.yaml format: mirrors (registry -> endpoints) and configs (host -> auth, tls).
_UPSTREAM_SERVER = {"docker.io": "https://registry-1.docker.io"}


def _toml_string(text: object) -> str:
    return json.dumps(str(text))  # a JSON string is a valid TOML basic string


def _tls_lines(tls: dict[str, Any], indent: str) -> list[str]:
    lines = []
    if tls.get("ca_file"):
        lines.append(f"{indent}ca = {_toml_string(tls['ca_file'])}")
    if tls.get("cert_file") and tls.get("key_file"):
        lines.append(f"{indent}client = [[{_toml_string(tls['cert_file'])}, {_toml_string(tls['key_file'])}]]")
    if tls.get("insecure_skip_verify"):
        lines.append(f"{indent}skip_verify = true")
    return lines


def _host_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def containerd_hosts(registries: dict[str, Any] | None, mark: str) -> dict[str, str]:
    """{certs.d folder: hosts.toml text starting with the comment `mark`}: one per mirrored registry ("*" is
    containerd's _default) and one per registry that has only TLS settings. Each mirror endpoint may pull and
    resolve; the registry itself stays the fallback (containerd tries the hosts in order, then the server)."""
    registries = registries or {}
    mirrors: dict[str, Any] = registries.get("mirrors") or {}
    configs: dict[str, Any] = registries.get("configs") or {}
    files: dict[str, str] = {}
    for name in sorted(set(mirrors) | {n for n, c in configs.items() if (c or {}).get("tls")}):
        folder = "_default" if name == "*" else name
        lines = [mark]
        if name != "*":
            lines.append(f"server = {_toml_string(_UPSTREAM_SERVER.get(name, 'https://' + name))}")
            lines += _tls_lines((configs.get(name) or {}).get("tls") or {}, "")
        for endpoint in (mirrors.get(name) or {}).get("endpoint") or []:
            lines += ["", f"[host.{_toml_string(str(endpoint).rstrip('/'))}]", '  capabilities = ["pull", "resolve"]']
            lines += _tls_lines((configs.get(_host_of(str(endpoint))) or {}).get("tls") or {}, "  ")
        files[folder] = "\n".join(lines) + "\n"
    return files


def registry_auths(registries: dict[str, Any] | None) -> list[dict[str, str]]:
    """[{host, username, password, auth, identitytoken}] for config.toml's registry.configs.<host>.auth (the keys
    of registries.yaml's auth, named as containerd names them); only the keys given."""
    names = {"username": "username", "password": "password", "auth": "auth", "identity_token": "identitytoken"}
    found = []
    for host, config in sorted(((registries or {}).get("configs") or {}).items()):
        auth = (config or {}).get("auth") or {}
        entry = {names[k]: str(v) for k, v in auth.items() if k in names and v not in (None, "")}
        if entry:
            found.append({"host": host, **entry})
    return found


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "kubeadm_ca_cert_hash": ca_cert_hash,
            "kubeadm_scrub": scrub,
            "kubeadm_settings_changes": settings_changes,
            "kubeadm_cni_manifest": cni_manifest,
            "kubeadm_cni_network_conflict": cni_network_conflict,
            "kubeadm_cni_network_object": cni_network_object,
            "kubeadm_kubeconfig_for": kubeconfig_for,
            "kubeadm_node_problems": node_problems,
            "kubeadm_daemonset_ready": daemonset_ready,
            "kubeadm_containerd_hosts": containerd_hosts,
            "kubeadm_registry_auths": registry_auths,
        }
