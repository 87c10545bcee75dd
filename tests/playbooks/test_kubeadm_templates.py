"""The kubeadm role's config templates render to the config API each Kubernetes minor reads: kubeletExtraArgs is a
map in v1beta3 and a name/value list in v1beta4 (kubeadm refuses the other form), and the node's address is
advertised only when the role found it on the host."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jinja2
import pytest
import yaml

from tests.playbook_code import load

pytestmark = pytest.mark.unit

FILTERS = load("roles/kubeadm/filter_plugins/kubeadm_filters.py")

TEMPLATES = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "kubeadm" / "templates"
# Ansible renders templates with trim_blocks on.
ENV = jinja2.Environment(  # noqa: S701 - YAML, not HTML: nothing to escape
    loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, undefined=jinja2.StrictUndefined
)


def join(api: str, node_ip: str, role: str) -> dict[str, object]:
    text = ENV.get_template("join.yaml.j2").render(
        _kubeadm_config_api=api, _kubeadm_node_ip=node_ip, inventory_hostname="n1", _kubeadm_cri_socket="unix:///s",
        _kubeadm_endpoint="10.0.0.1:6443", _kubeadm_join_token="abcdef.0123456789abcdef",  # noqa: S106 - a sample
        _kubeadm_ca_cert_hash="sha256:00", _kubeadm_role=role, _kubeadm_join_certificate_key="k" * 64,
    )
    return dict(yaml.safe_load(text))


def test_v1beta3_takes_kubelet_arguments_as_a_map_and_v1beta4_as_a_list() -> None:
    old = join("kubeadm.k8s.io/v1beta3", "10.0.0.5", "worker")
    new = join("kubeadm.k8s.io/v1beta4", "10.0.0.5", "worker")
    assert old["nodeRegistration"]["kubeletExtraArgs"] == {"node-ip": "10.0.0.5"}  # type: ignore[index]
    assert new["nodeRegistration"]["kubeletExtraArgs"] == [{"name": "node-ip", "value": "10.0.0.5"}]  # type: ignore[index]
    assert "controlPlane" not in old


def test_a_control_plane_advertises_its_address_only_when_known() -> None:
    known = join("kubeadm.k8s.io/v1beta3", "10.0.0.5", "control-plane")
    unknown = join("kubeadm.k8s.io/v1beta3", "", "control-plane")
    assert known["controlPlane"] == {"certificateKey": "k" * 64, "localAPIEndpoint": {"advertiseAddress": "10.0.0.5"}}
    assert unknown["controlPlane"] == {"certificateKey": "k" * 64}
    assert "kubeletExtraArgs" not in unknown["nodeRegistration"]  # type: ignore[operator]


def cluster(etcd: str, endpoints: list[str]) -> dict[str, object]:
    text = ENV.get_template("cluster.yaml.j2").render(
        _kubeadm_config_api="kubeadm.k8s.io/v1beta3", kubeadm_version="v1.30.2", kubeadm_cluster_name="edge",
        _kubeadm_endpoint="10.0.0.1:6443", kubeadm_pod_subnet="10.244.0.0/16", kubeadm_service_subnet="10.96.0.0/12",
        kubeadm_dns_domain="cluster.local", kubeadm_api_endpoint="10.0.0.1", kubeadm_etcd=etcd,
        kubeadm_etcd_endpoints=endpoints,
        _kubeadm_etcd_external={"ca": "/pki/etcd/ca.crt", "cert": "/pki/client.crt", "key": "/pki/client.key"},
    )
    return dict(next(yaml.safe_load_all(text)))


def test_etcd_is_stacked_by_default_and_external_names_the_endpoints_and_client_files() -> None:
    assert cluster("stacked", [])["etcd"] == {"local": {"dataDir": "/var/lib/etcd"}}
    external = cluster("external", ["https://10.0.0.21:2379", "https://10.0.0.22:2379"])
    assert external["etcd"] == {"external": {
        "endpoints": ["https://10.0.0.21:2379", "https://10.0.0.22:2379"],
        "caFile": "/pki/etcd/ca.crt", "certFile": "/pki/client.crt", "keyFile": "/pki/client.key"}}


def containerd_config(registries: dict[str, object]) -> dict[str, object]:
    env = ENV.overlay()
    env.filters["to_json"] = json.dumps
    env.filters["kubeadm_registry_auths"] = FILTERS.registry_auths
    text = env.get_template("containerd-config.toml.j2").render(
        ansible_managed="managed", _kubeadm_pause_image="registry.k8s.io/pause:3.9",
        _kubeadm_cni_bin_dir="/usr/lib/cni", kubeadm_registries=registries,
        _kubeadm_registry_hosts_dir="/etc/containerd/certs.d")
    return tomllib.loads(text)


def test_containerd_reads_registry_hosts_from_certs_d_and_auth_from_its_config_only_when_registries_are_given() -> None:
    cri = "io.containerd.grpc.v1.cri"
    plain = containerd_config({})
    assert "registry" not in plain["plugins"][cri]
    assert plain["plugins"][cri]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    given = containerd_config({"mirrors": {"docker.io": {"endpoint": ["https://m:5000"]}},
                               "configs": {"m:5000": {"auth": {"username": "u", "password": 'a"b\\c'}}}})
    registry = given["plugins"][cri]["registry"]
    # config_path, and no `mirrors` or `configs.tls` beside it (containerd refuses to start with both)
    assert registry == {"config_path": "/etc/containerd/certs.d",
                        "configs": {"m:5000": {"auth": {"username": "u", "password": 'a"b\\c'}}}}
