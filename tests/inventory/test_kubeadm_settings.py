"""kubeadm inventories: external etcd with client certificates from the control machine (the key must be private),
and a kubeadm cluster's model carries kubeadm settings only."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.errors import InventoryError
from provisioner.inventory import cluster_to_dict, load_inventory

pytestmark = pytest.mark.unit

INVENTORY = """all:
  vars:
    provision_cluster_name: kube
    provision_flavor: kubeadm
    kubeadm_version: v1.31.1
    kubeadm_cni: cilium
    kubeadm_etcd: external
    kubeadm_etcd_endpoints: [https://10.0.0.21:2379, https://10.0.0.22:2379, https://10.0.0.23:2379]
    kubeadm_etcd_ca_file: etcd/ca.crt
    kubeadm_etcd_cert_file: etcd/client.crt
    kubeadm_etcd_key_file: etcd/client.key
  children:
    server:
      hosts:
        cp-1: {ansible_host: 10.0.0.1}
        cp-2: {ansible_host: 10.0.0.2}
"""


def _inventory(tmp_path: Path, key_mode: int) -> Path:
    (tmp_path / "etcd").mkdir()
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / "etcd" / name).write_text("PEM\n")
    (tmp_path / "etcd" / "client.key").chmod(key_mode)
    path = tmp_path / "kube.yml"
    path.write_text(INVENTORY)
    return path


def test_external_etcd_with_a_private_key_is_valid_and_even_control_planes_are_fine(tmp_path: Path) -> None:
    cluster = load_inventory(_inventory(tmp_path, 0o600))
    model = cluster_to_dict(cluster)
    assert "k3s" not in model and model["datastore"] == "external"
    etcd = cluster.kubeadm.etcd
    assert etcd is not None and len(etcd.endpoints) == 3 and etcd.key_file == tmp_path / "etcd" / "client.key"
    with pytest.raises(TypeError, match="no K3s settings"):
        _ = cluster.k3s


def test_a_readable_etcd_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(_inventory(tmp_path, 0o644))
    rendered = [p.render() for p in caught.value.problems]
    assert rendered == [
        f"{tmp_path}/kube.yml:11: kubeadm_etcd_key_file: {tmp_path}/etcd/client.key is readable by others (it is a private key) "
        f"(fix: run: chmod 600 {tmp_path}/etcd/client.key)"
    ]
