"""A kubeadm cluster on an external etcd: Debian's real etcd on this machine's lab gateway address, over TLS that
requires a client certificate of a throwaway CA. The inventory names the endpoint and the PEM files on the control
machine (relative to the inventory); provision copies them to the control plane and kubeadm's ClusterConfiguration
points the API server at them, so the cluster's objects live in that etcd and no etcd runs on the node."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.harness import LabCluster, node_ready
from tests.ha.datastores import etcd_on, gateway_of
from tests.lab.lab import HostSpec
from tests.standin.datastore_servers import TestPKI

pytestmark = pytest.mark.lab


def test_one_control_plane_and_a_worker_on_an_external_etcd_with_client_certificates(
    make_lab, tmp_path: Path
) -> None:
    lab = make_lab([HostSpec("cp1", cpus=2, memory_mb=2048), "w1"])
    pki = TestPKI(tmp_path / "pki")
    with etcd_on(gateway_of(lab), tmp_path / "etcd", pki=pki) as store:
        assert store.tls is not None
        workdir = tmp_path / "cluster"
        workdir.mkdir()
        for source, name in zip(store.tls, ("etcd-ca.crt", "etcd-client.crt", "etcd-client.key"), strict=True):
            shutil.copy(source, workdir / name)
        (workdir / "etcd-client.key").chmod(0o600)
        cluster = LabCluster(lab, workdir, servers=["cp1"], agents=["w1"], flavor="kubeadm", extra_vars={
            "kubeadm_etcd": "external", "kubeadm_etcd_endpoints": [store.endpoint],
            "kubeadm_etcd_ca_file": "etcd-ca.crt", "kubeadm_etcd_cert_file": "etcd-client.crt",
            "kubeadm_etcd_key_file": "etcd-client.key"})

        up = cluster.up()
        assert up.rc == 0, up.stdout[-4000:] + up.stderr[-4000:]
        nodes = cluster.nodes()
        assert set(nodes) == {"cp1", "w1"} and all(node_ready(n) for n in nodes.values())

        # The cluster's objects are in the external etcd; the control plane runs no etcd of its own.
        keys = store.etcd_keys()
        assert any(k.startswith("/registry/minions/cp1") for k in keys), keys[:20]
        manifests = lab.exec("cp1", "ls /etc/kubernetes/manifests", check=True).stdout.split()
        assert "etcd.yaml" not in manifests and "kube-apiserver.yaml" in manifests
        apiserver = lab.exec("cp1", "cat /etc/kubernetes/manifests/kube-apiserver.yaml", check=True).stdout
        assert f"--etcd-servers={store.endpoint}" in apiserver
        mode = lab.exec("cp1", "stat -c %a /etc/kubernetes/pki/apiserver-etcd-client.key", check=True).stdout
        assert mode.strip() == "600"

        # The rerun changes nothing.
        again = cluster.up()
        assert again.rc == 0 and again.changed_total() == 0, again.changed_by_host()
