"""`provision up` of a highly available kubeadm cluster: three control planes with stacked etcd plus two workers, on lab
hosts over real SSH with Debian's real containerd and etcd, and the kubeadm/kubelet stand-ins (tests/standin).

The joining control planes go through kubeadm's control-plane join: the certificates come from the kubeadm-certs
Secret under the certificate key, each adds a real etcd member. Everything goes through a keepalived VIP. The control
plane holding it goes down and the others keep serving through it (etcd keeps its quorum with 2 of 3 members, the VIP
moves); it comes back; `provision upgrade` takes the cluster to v1.31.1 with no failed poll through the VIP; and
`provision remove-node` takes cp3 out of the cluster and etcd and leaves its host as it
was before up."""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import LabCluster, diff, node_ready, snapshot
from tests.ha.harness import ReadyzPoller, vip_for, vip_holder, wait_until
from tests.lab.lab import HostSpec, Lab

pytestmark = pytest.mark.lab

CONTROL_PLANES = ["cp1", "cp2", "cp3"]
WORKERS = ("w1", "w2")
UPGRADE_TO = "v1.31.1"
ETCDCTL = ("ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
           "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
           "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")


@pytest.fixture
def cluster(make_lab: Callable[..., Lab], tmp_path: Path) -> LabCluster:
    # kubeadm wants 2 CPUs and 1700 MB on every control plane (init and control-plane join both check).
    lab = make_lab([*(HostSpec(cp, cpus=2, memory_mb=2048) for cp in CONTROL_PLANES), *WORKERS])
    return LabCluster(lab, tmp_path / "cluster", servers=CONTROL_PLANES, agents=list(WORKERS), flavor="kubeadm",
                      extra_vars={"keepalived_vip_address": vip_for(lab)})


def api_answers(cluster: LabCluster) -> bool:
    """kubectl through the kubeconfig (server = the VIP) gets the node list."""
    return cluster.kubectl("get", "nodes", "-o", "name", "--request-timeout=4s").returncode == 0


def etcd_members(cluster: LabCluster, host: str) -> list[dict[str, Any]]:
    listed = cluster.lab.exec(host, f"{ETCDCTL} member list -w json", check=True)
    return list(json.loads(listed.stdout)["members"])


def api_nodes(cluster: LabCluster, host: str, timeout: float = 60) -> set[str]:
    """The node names as the API server on ``host`` answers them (real kubectl, straight at that server)."""
    deadline = time.monotonic() + timeout
    while True:
        got = cluster.kubectl("--server", f"https://{cluster.lab.ip(host)}:6443", "get", "nodes", "-o", "json")
        if got.returncode == 0:
            return {n["metadata"]["name"] for n in json.loads(got.stdout)["items"]}
        if time.monotonic() > deadline:
            raise AssertionError(f"API server on {host} does not answer: {got.stderr}")
        time.sleep(2)


def _all_ready(cluster: LabCluster) -> bool:
    listed = cluster.kubectl("get", "nodes", "-o", "json", "--request-timeout=4s")
    return listed.returncode == 0 and all(node_ready(n) for n in json.loads(listed.stdout)["items"])


def _upgrade_through_the_vip(cluster: LabCluster, vip: str) -> None:
    """`provision upgrade` to v1.31.1 while a client asks /readyz through the VIP every 0.2 s: kubeadm's order (apply
    on cp1, node on cp2 and cp3, then the kubelets), each API server's holder handing the VIP over before kubeadm
    restarts it, so no poll fails."""
    ready = wait_until(lambda: _all_ready(cluster), 180, interval=2)
    assert ready is not None, "not every node came back Ready"
    ca = base64.b64decode(next(c for c in cluster.kubeconfig_data()["clusters"] if c["name"] == "lab")["cluster"][
        "certificate-authority-data"])
    poller = ReadyzPoller(f"https://{vip}:6443", ssl.create_default_context(cadata=ca.decode()))
    poller.start()
    upgraded = cluster.provision("upgrade", "--version", UPGRADE_TO, "--yes", "--json", "--known-hosts",
                                 str(cluster.lab.known_hosts))
    poller.stop.set()
    poller.join(10)
    assert upgraded.rc == 0, upgraded.stdout[-4000:] + upgraded.stderr[-4000:]
    nodes = cluster.nodes()
    assert {n: v["status"]["nodeInfo"]["kubeletVersion"] for n, v in nodes.items()} == dict.fromkeys(
        [*CONTROL_PLANES, *WORKERS], UPGRADE_TO)
    for cp in CONTROL_PLANES:
        answered = cluster.kubectl("--server", f"https://{cluster.lab.ip(cp)}:6443", "version", "-o", "json")
        assert json.loads(answered.stdout)["serverVersion"]["gitVersion"] == UPGRADE_TO, cp
    print(f"kubeadm upgrade 3+2 through the VIP: {len(poller.samples)} polls, {len(poller.errors)} failed, "
          f"{len(poller.retried)} retried after a reset connection")
    assert poller.samples and poller.errors == [], poller.errors[:5]


def test_three_control_planes_with_stacked_etcd_keep_serving_with_one_down_and_one_removed(
    cluster: LabCluster,
) -> None:
    before_cp3 = snapshot(cluster.lab, "cp3")
    first = cluster.up()
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-4000:]
    all_nodes = {*CONTROL_PLANES, *WORKERS}

    # Every node Ready through real kubectl; every control plane labelled and tainted as one.
    nodes = cluster.nodes()
    assert set(nodes) == all_nodes and all(node_ready(n) for n in nodes.values())
    for cp in CONTROL_PLANES:
        assert "node-role.kubernetes.io/control-plane" in nodes[cp]["metadata"]["labels"], cp
        assert {t["key"] for t in nodes[cp]["spec"].get("taints", [])} == {"node-role.kubernetes.io/control-plane"}

    # One etcd cluster of three voting members, each advertising its own host; every API server serves it.
    members = etcd_members(cluster, "cp1")
    assert sorted(m["name"] for m in members) == CONTROL_PLANES
    assert not any(m.get("isLearner") for m in members)
    assert {m["name"]: m["peerURLs"] for m in members} == {
        cp: [f"https://{cluster.lab.ip(cp)}:2380"] for cp in CONTROL_PLANES}
    manifest = cluster.lab.exec("cp3", "cat /etc/kubernetes/manifests/etcd.yaml", check=True).stdout
    assert "--initial-cluster-state=existing" in manifest and "cp1=https://" in manifest
    for cp in CONTROL_PLANES:
        assert api_nodes(cluster, cp) == all_nodes, cp

    # Everything goes through the keepalived VIP: kubeadm's controlPlaneEndpoint, the joins, the kubeconfig.
    vip = cluster.extra_vars["keepalived_vip_address"]
    assert next(c for c in cluster.kubeconfig_data()["clusters"] if c["name"] == "lab")["cluster"]["server"] == (
        f"https://{vip}:6443")
    for worker in WORKERS:
        kubelet_conf = cluster.lab.exec(worker, "cat /etc/kubernetes/kubelet.conf", check=True).stdout
        assert f"server: https://{vip}:6443" in kubelet_conf, worker

    # The control plane holding the VIP goes down: etcd keeps its quorum, the VIP moves, the API answers through it,
    # and a write through one survivor is read through the other.
    holder = vip_holder(cluster.lab, CONTROL_PLANES, vip)
    assert holder is not None
    cluster.lab.stop(holder)
    survivors = [cp for cp in CONTROL_PLANES if cp != holder]
    moved = wait_until(lambda: vip_holder(cluster.lab, survivors, vip) is not None and api_answers(cluster), 60)
    assert moved is not None, "the VIP did not move, or the API did not answer through it"
    for cp in survivors:
        assert api_nodes(cluster, cp) == all_nodes, cp
    made = cluster.kubectl("--server", f"https://{cluster.lab.ip(survivors[0])}:6443", "--namespace", "default",
                           "create", "configmap", "ha-probe", "--from-literal=written=through-one")
    assert made.returncode == 0, made.stderr
    read = cluster.kubectl("--namespace", "default", "get", "configmap", "ha-probe", "-o", "jsonpath={.data.written}")
    assert read.returncode == 0 and read.stdout == "through-one", read.stderr
    cluster.lab.start(holder)
    assert api_nodes(cluster, holder, timeout=120) == all_nodes

    _upgrade_through_the_vip(cluster, vip)

    # `provision remove-node cp3` drains it, takes its etcd member out from its own host while the other two serve,
    # resets the host to what it was before up (keepalived stopped, its files gone) and deletes its node; etcd keeps
    # a quorum throughout.
    removed = cluster.provision("remove-node", "cp3", "--yes", "--json", "--known-hosts", str(cluster.lab.known_hosts))
    assert removed.rc == 0, removed.stdout[-3000:] + removed.stderr[-3000:]
    assert "2 etcd members remain" in " ".join(json.loads(removed.stdout)["hosts"]["cp3"]["removal"]["notes"])
    assert sorted(m["name"] for m in etcd_members(cluster, "cp1")) == ["cp1", "cp2"]
    assert api_nodes(cluster, "cp2") == all_nodes - {"cp3"}
    changes = diff(before_cp3, snapshot(cluster.lab, "cp3"))
    assert changes == {}, changes
