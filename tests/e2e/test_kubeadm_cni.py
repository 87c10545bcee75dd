"""Calico and Cilium on a kubeadm cluster (1 control plane + 2 workers), one after the other on the same lab hosts: `up` with Calico, `reset`
back to the hosts as they were, `up` again with Cilium. The stand-in kubelet does each CNI's install work (its
conflist, interfaces, chains: tests/standin/kube_standin/hostnet.py), so the reset between them is checked against
real leftovers, and the second `up` shows a reset host takes another CNI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import LabCluster, diff, node_ready, snapshot
from tests.lab.lab import HostSpec

pytestmark = pytest.mark.lab


def daemonset_ready(cluster: LabCluster, namespace: str, name: str) -> int:
    got = cluster.kubectl("--namespace", namespace, "get", "daemonset", name, "-o", "json")
    assert got.returncode == 0, got.stderr
    return int(json.loads(got.stdout)["status"]["numberReady"])


# A mirror for docker.io with a login (the password reaches only containerd's config.toml, 0600). No registry runs in
# the lab: what is checked is that the real containerd reads the configuration (config dump), not a pull through it.
REGISTRIES = {"mirrors": {"docker.io": {"endpoint": ["https://registry.lab.invalid:5000"]}},
              "configs": {"registry.lab.invalid:5000": {"auth": {"username": "puller", "password": "lab-pull-secret"}}}}


def assert_registries_configured(lab, host: str) -> None:
    hosts_toml = lab.exec(host, "cat /etc/containerd/certs.d/docker.io/hosts.toml", check=True).stdout
    assert 'server = "https://registry-1.docker.io"' in hosts_toml
    assert '[host."https://registry.lab.invalid:5000"]' in hosts_toml
    assert lab.exec(host, "stat -c %a /etc/containerd/config.toml", check=True).stdout.strip() == "600"
    # Debian's real containerd, reading the file it runs with: the registry section as it understood it
    dumped = lab.exec(host, "containerd config dump", check=True).stdout
    assert 'config_path = "/etc/containerd/certs.d"' in dumped, dumped
    assert 'username = "puller"' in dumped


def test_calico_then_reset_then_cilium_on_the_same_hosts(make_lab, tmp_path: Path) -> None:
    lab = make_lab([HostSpec("cp1", cpus=2, memory_mb=2048), "w1", "w2"])
    cluster = LabCluster(lab, tmp_path / "cluster", servers=["cp1"], agents=["w1", "w2"], flavor="kubeadm",
                         extra_vars={"kubeadm_cni": "calico", "kubeadm_pod_subnet": "10.200.0.0/16",
                                     "kubeadm_registries": REGISTRIES})
    before = {h: snapshot(lab, h) for h in ("cp1", "w1", "w2")}

    calico = cluster.up()
    assert calico.rc == 0, calico.stdout[-4000:] + calico.stderr[-4000:]
    nodes = cluster.nodes()
    assert set(nodes) == {"cp1", "w1", "w2"} and all(node_ready(n) for n in nodes.values())
    assert daemonset_ready(cluster, "kube-system", "calico-node") == 3
    # Calico's pool is the inventory's pod subnet (the manifest's default 192.168.0.0/16 would be refused).
    assert {n["spec"]["podCIDR"] for n in nodes.values()} <= {f"10.200.{i}.0/24" for i in range(256)}
    assert_registries_configured(lab, "w1")
    # the registry password reaches no output, report or runner artifact
    assert "lab-pull-secret" not in calico.stdout + calico.stderr
    assert [str(f) for f in cluster.state_dir.rglob("*") if f.is_file() and b"lab-pull-secret" in f.read_bytes()] == []
    during = snapshot(lab, "w1")
    assert "vxlan.calico" in during["interfaces"] and any("cali-" in r for r in during["iptables"])
    assert "/etc/cni/net.d/10-calico.conflist" in during["files"]

    reset = cluster.provision("reset", "--yes", "--json", "--known-hosts", str(lab.known_hosts))
    assert reset.rc == 0, reset.stdout[-3000:] + reset.stderr[-3000:]
    for host in ("cp1", "w1", "w2"):
        changes = diff(before[host], snapshot(lab, host))
        assert changes == {}, (host, changes)

    # A new cluster on the reset hosts, with another CNI: the record of the old cluster's fixed settings went with
    # the reset, so this is not refused as a CNI change.
    cluster.extra_vars["kubeadm_cni"] = "cilium"
    cluster.write_inventory()
    cilium = cluster.up()
    assert cilium.rc == 0, cilium.stdout[-4000:] + cilium.stderr[-4000:]
    nodes = cluster.nodes()
    assert set(nodes) == {"cp1", "w1", "w2"} and all(node_ready(n) for n in nodes.values())
    assert daemonset_ready(cluster, "kube-system", "cilium") == 3
    after = snapshot(lab, "w1")
    assert "cilium_host" in after["interfaces"] and "vxlan.calico" not in after["interfaces"]
    assert not any("cali-" in r for r in after["iptables"])
    assert [f for f in after["files"] if f.startswith("/etc/cni/net.d/")] == ["/etc/cni/net.d/05-cilium.conflist"]
