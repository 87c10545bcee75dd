"""The kubeadm role's filters: the CA pin joining nodes check, secret scrubbing, settings fixed at init, CNI
manifests set to the pod subnet, the kubeconfig for the control machine, readiness."""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.playbook_code import load

pytestmark = pytest.mark.unit

filters = load("roles/kubeadm/filter_plugins/kubeadm_filters.py")
version = load("roles/kubeadm/filter_plugins/kubeadm_version.py")


def _ca_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_ca_hash_is_the_sha256_of_the_public_key_info_as_openssl_computes_it(tmp_path: Path) -> None:
    pem = _ca_pem()
    (tmp_path / "ca.crt").write_bytes(pem)
    # kubeadm's documented recipe: the public key in DER, hashed.
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(tmp_path / "ca.crt")],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    assert filters.ca_cert_hash(pem.decode()) == "sha256:" + hashlib.sha256(der).hexdigest()


def test_scrub_hides_the_token_and_its_secret_half_and_the_certificate_key() -> None:
    text = "token abcdef.0123456789abcdef failed; secret 0123456789abcdef seen; key " + "a" * 64
    out = filters.scrub(text, ["abcdef.0123456789abcdef", "a" * 64, ""])
    assert "0123456789abcdef" not in out and "a" * 64 not in out
    assert out.count("<redacted>") == 3


CLUSTER = """apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.2
clusterName: edge
controlPlaneEndpoint: "10.0.0.1:6443"
networking: {podSubnet: 10.244.0.0/16, serviceSubnet: 10.96.0.0/12, dnsDomain: cluster.local}
etcd: {local: {dataDir: /var/lib/etcd}}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
"""


def test_settings_fixed_at_init_are_named_when_they_change_and_the_version_is_not() -> None:
    assert filters.settings_changes(CLUSTER, CLUSTER) == []
    assert filters.settings_changes(CLUSTER, CLUSTER.replace("v1.30.2", "v1.31.1")) == []  # upgrade's business
    changed = filters.settings_changes(CLUSTER, CLUSTER.replace("10.244.0.0/16", "10.42.0.0/16"))
    assert changed == ['kubeadm_pod_subnet would change networking.podSubnet from "10.244.0.0/16" to "10.42.0.0/16"']


FLANNEL = """---
kind: Namespace
apiVersion: v1
metadata: {name: kube-flannel}
---
kind: ConfigMap
apiVersion: v1
metadata: {name: kube-flannel-cfg, namespace: kube-flannel}
data:
  cni-conf.json: '{"name": "cbr0"}'
  net-conf.json: |
    {"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}
"""


def test_flannel_manifest_gets_the_pod_subnet_and_keeps_everything_else() -> None:
    docs = list(yaml.safe_load_all(filters.cni_manifest(FLANNEL, "flannel", "10.42.0.0/16")))
    net = json.loads(docs[1]["data"]["net-conf.json"])
    assert net == {"Network": "10.42.0.0/16", "Backend": {"Type": "vxlan"}}
    assert docs[0] == {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "kube-flannel"}}


def test_a_manifest_without_the_cnis_network_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="no place for the pod network"):
        filters.cni_manifest(FLANNEL, "cilium", "10.42.0.0/16")


def test_calico_pool_is_set_in_the_calico_node_container() -> None:
    manifest = yaml.safe_dump({
        "kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "calico-node", "namespace": "kube-system"},
        "spec": {"template": {"spec": {"containers": [{"name": "calico-node", "env": [
            {"name": "CALICO_IPV4POOL_CIDR", "value": "192.168.0.0/16"}, {"name": "IP", "value": "autodetect"}]}]}}},
    })
    doc = yaml.safe_load(filters.cni_manifest(manifest, "calico", "10.244.0.0/16"))
    env = doc["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "CALICO_IPV4POOL_CIDR", "value": "10.244.0.0/16"} in env and len(env) == 2


@pytest.mark.parametrize("cni", ["flannel", "calico", "cilium"])
def test_a_running_cni_on_another_pod_network_is_named_and_the_right_one_is_not(cni: str) -> None:
    """What cni_manifest writes, cni_network_conflict reads back from the object in the running cluster."""
    calico = yaml.safe_dump({
        "kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "calico-node", "namespace": "kube-system"},
        "spec": {"template": {"spec": {"containers": [{"name": "calico-node", "env": [{"name": "IP", "value": "x"}]}]}}},
    })
    cilium = yaml.safe_dump({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cilium-config"},
                             "data": {"cluster-pool-ipv4-cidr": "10.0.0.0/8", "ipam": "kubernetes"}})
    manifest = {"flannel": FLANNEL, "calico": calico, "cilium": cilium}[cni]
    kind, name = filters.CNI_NETWORK_OBJECTS[cni]
    assert filters.cni_network_object(cni) == f"{kind.lower()}/{name}"
    (live,) = [d for d in yaml.safe_load_all(filters.cni_manifest(manifest, cni, "10.99.0.0/16")) if d["kind"] == kind]
    assert filters.cni_network_conflict(json.dumps(live), cni, "10.99.0.0/16") == ""
    assert filters.cni_network_conflict(json.dumps(live), cni, "10.244.0.0/16") == "10.99.0.0/16"


def test_a_cni_left_to_choose_its_network_is_no_conflict() -> None:
    unset = {"kind": "DaemonSet", "metadata": {"name": "calico-node"},
             "spec": {"template": {"spec": {"containers": [{"name": "calico-node", "env": []}]}}}}
    assert filters.cni_network_conflict(json.dumps(unset), "calico", "10.244.0.0/16") == ""


def test_kubeconfig_points_at_the_endpoint_under_the_clusters_name() -> None:
    ca = {"certificate-authority-data": "Q0E="}
    admin = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"server": "https://10.0.0.5:6443", **ca}}],
        "users": [{"name": "kubernetes-admin", "user": {"client-certificate-data": "Qw==", "client-key-data": "Sw=="}}],
        "contexts": [{"name": "kubernetes-admin@kubernetes",
                      "context": {"cluster": "kubernetes", "user": "kubernetes-admin"}}],
        "current-context": "kubernetes-admin@kubernetes",
    })
    out = yaml.safe_load(filters.kubeconfig_for(admin, "https://10.0.0.1:6443", "edge"))
    assert out["clusters"] == [{"name": "edge", "cluster": {"server": "https://10.0.0.1:6443", **ca}}]
    assert out["current-context"] == "edge"
    assert out["contexts"][0]["context"] == {"cluster": "edge", "user": "edge-admin"}
    assert out["users"][0]["user"]["client-key-data"] == "Sw=="


def _node(name: str, ready: str, kubelet: str, message: str = "") -> dict[str, object]:
    return {"metadata": {"name": name}, "status": {"nodeInfo": {"kubeletVersion": kubelet}, "conditions": [
        {"type": "Ready", "status": ready, "message": message}]}}


def test_node_problems_name_missing_not_ready_and_wrong_version_nodes() -> None:
    no_cni = "container runtime network not ready: cni plugin not initialized"
    nodes = {"items": [_node("cp1", "True", "v1.30.2"), _node("w1", "False", "v1.30.2", no_cni),
                       _node("w2", "True", "v1.29.6")]}
    assert filters.node_problems(nodes, ["cp1", "w1", "w2", "w3"], "v1.30.2") == [
        "w1: not Ready (container runtime network not ready: cni plugin not initialized)",
        "w2: kubelet v1.29.6 (want v1.30.2)",
        "w3: not registered",
    ]


def test_daemonset_is_ready_only_when_every_scheduled_pod_is_ready_and_updated() -> None:
    assert not filters.daemonset_ready({"status": {}})
    assert not filters.daemonset_ready({"status": {"desiredNumberScheduled": 3, "numberReady": 2}})
    assert not filters.daemonset_ready(
        {"status": {"desiredNumberScheduled": 3, "numberReady": 3, "updatedNumberScheduled": 1}})
    assert filters.daemonset_ready({"status": {"desiredNumberScheduled": 3, "numberReady": 3}})


@pytest.mark.parametrize(("text", "valid"), [("v1.30.2", True), ("v1.31.0", True), ("1.30.2", False),
                                             ("v1.30.2-rc.1", False), ("v1.30", False), ("v1.030.2", False)])
def test_version_grammar(text: str, valid: bool) -> None:
    assert version.kubeadm_version_valid(text) is valid
    if valid:
        assert version.kubeadm_minor(text) == int(text.split(".")[1])


class _TaggedStr(str):
    """What Ansible 2.19 hands filters: a str subclass PyYAML's safe dumper cannot represent."""


def test_filters_accept_ansibles_str_subclasses() -> None:
    with pytest.raises(yaml.representer.RepresenterError):
        yaml.safe_dump({"a": _TaggedStr("x")})
    admin = yaml.safe_dump({"clusters": [{"name": "k", "cluster": {"server": "s"}}],
                            "users": [{"name": "u", "user": {}}], "contexts": [], "current-context": ""})
    tagged = _TaggedStr
    assert "name: edge" in filters.kubeconfig_for(tagged(admin), tagged("https://h:6443"), tagged("edge"))
    assert "10.42.0.0/16" in filters.cni_manifest(tagged(FLANNEL), tagged("flannel"), tagged("10.42.0.0/16"))


REGISTRIES = {
    "mirrors": {
        "docker.io": {"endpoint": ["https://mirror.lab:5000/", "http://plain.lab"]},
        "*": {"endpoint": ["https://mirror.lab:5000"]},
    },
    "configs": {
        "mirror.lab:5000": {"auth": {"username": "puller", "password": 'p"w'},
                            "tls": {"ca_file": "/etc/ssl/lab-ca.pem", "cert_file": "/etc/ssl/c.pem",
                                    "key_file": "/etc/ssl/c.key"}},
        "quay.io": {"tls": {"insecure_skip_verify": True}},
    },
}


def test_registries_become_containerd_hosts_files_one_per_registry() -> None:
    mark = "# Written by provision (test)"
    files = filters.containerd_hosts(REGISTRIES, mark)
    # the mirror has TLS settings, so images named after it directly (mirror.lab:5000/app) get them too
    assert sorted(files) == ["_default", "docker.io", "mirror.lab:5000", "quay.io"]
    parsed = {name: tomllib.loads(text) for name, text in files.items()}
    assert all(text.startswith(mark + "\n") for text in files.values())
    docker = parsed["docker.io"]
    assert docker["server"] == "https://registry-1.docker.io"  # the registry stays the fallback
    assert list(docker["host"]) == ["https://mirror.lab:5000", "http://plain.lab"]  # in the inventory's order
    assert docker["host"]["https://mirror.lab:5000"] == {
        "capabilities": ["pull", "resolve"], "ca": "/etc/ssl/lab-ca.pem",
        "client": [["/etc/ssl/c.pem", "/etc/ssl/c.key"]]}
    assert docker["host"]["http://plain.lab"] == {"capabilities": ["pull", "resolve"]}
    assert "server" not in parsed["_default"] and list(parsed["_default"]["host"]) == ["https://mirror.lab:5000"]
    assert parsed["quay.io"] == {"server": "https://quay.io", "skip_verify": True}
    assert parsed["mirror.lab:5000"] == {"server": "https://mirror.lab:5000", "ca": "/etc/ssl/lab-ca.pem",
                                         "client": [["/etc/ssl/c.pem", "/etc/ssl/c.key"]]}
    assert filters.containerd_hosts({}, mark) == {} and filters.containerd_hosts(None, mark) == {}


def test_registry_auth_takes_containerds_key_names_and_only_what_is_given() -> None:
    assert filters.registry_auths(REGISTRIES) == [{"host": "mirror.lab:5000", "username": "puller", "password": 'p"w'}]
    assert filters.registry_auths({"configs": {"r": {"auth": {"identity_token": "t", "auth": ""}}}}) == [
        {"host": "r", "identitytoken": "t"}]
