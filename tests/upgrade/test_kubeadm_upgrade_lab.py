"""`provision upgrade` of a kubeadm cluster in the lab: one control plane and two workers from v1.30.2 to v1.31.1,
from the lab's pkgs.k8s.io-style repositories (one per minor), with the kubeadm/kubelet stand-ins' `kubeadm upgrade
plan/apply/node` (tests/standin/kube_standin/upgrade.py): refusals, the plan, an interruption, a drain a
PodDisruptionBudget blocks, the resumed run, and `up` afterwards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.harness import LabCluster, interrupted_after, node_ready, unit_invocation
from tests.lab.lab import HostSpec

pytestmark = pytest.mark.lab

FROM, TO = "v1.30.2", "v1.31.1"
APPLY_TASK = f"Upgrade the control plane (kubeadm upgrade apply {TO})"
#: A pod on w1 and a budget that lets none of its pods go (the stand-ins run no containers: the pod is a record the
#: eviction subresource and drain act on, and the budget's status comes from the controller-manager stand-in).
BLOCKER = """apiVersion: v1
kind: Pod
metadata: {name: blocker, namespace: default, labels: {app: blocker}}
spec:
  nodeName: w1
  containers: [{name: app, image: registry.k8s.io/pause:3.9}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: blocker, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: blocker}}
"""


def kubelet_versions(cluster: LabCluster) -> dict[str, str]:
    return {name: n["status"]["nodeInfo"]["kubeletVersion"] for name, n in cluster.nodes().items()}


def cluster_config(cluster: LabCluster) -> str:
    result = cluster.kubectl("--namespace", "kube-system", "get", "configmap", "kubeadm-config", "--output",
                             "jsonpath={.data.ClusterConfiguration}")
    assert result.returncode == 0, result.stderr
    return result.stdout


def apt_source(cluster: LabCluster, host: str) -> str:
    return cluster.lab.exec(host, "cat /etc/apt/sources.list.d/kubernetes.list", check=True).stdout


def test_one_control_plane_two_workers_refusals_interrupted_blocked_then_resumed(make_lab, tmp_path: Path) -> None:
    lab = make_lab([HostSpec("cp1", cpus=2, memory_mb=2048), "w1", "w2"])
    cluster = LabCluster(lab, tmp_path / "cluster", servers=["cp1"], agents=["w1", "w2"], flavor="kubeadm",
                         extra_vars={"kubeadm_package_source": "apt", "kubeadm_version": FROM})
    up = cluster.up()
    assert up.rc == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert set(kubelet_versions(cluster).values()) == {FROM}
    known = ("--known-hosts", str(lab.known_hosts))

    # Refused before anything changes: a skipped minor (the chain is named), a downgrade.
    kubelet_before = {h: unit_invocation(lab, h, "kubelet") for h in ("cp1", "w1", "w2")}
    skipped = cluster.provision("upgrade", "--version", "v1.32.0", "--yes", *known)
    assert skipped.rc == 4, skipped.stdout[-2000:] + skipped.stderr[-2000:]
    assert "would skip a minor version from v1.30" in skipped.stderr and "the latest v1.31" in skipped.stderr
    down = cluster.provision("upgrade", "--version", "v1.29.6", "--yes", *known)
    assert down.rc == 4, down.stdout[-2000:] + down.stderr[-2000:]
    assert "cp1 runs v1.30.2, newer than v1.29.6" in down.stderr
    assert {h: unit_invocation(lab, h, "kubelet") for h in ("cp1", "w1", "w2")} == kubelet_before
    assert "/v1.30/deb/" in apt_source(cluster, "cp1")

    # The plan, then nothing changed.
    planned = cluster.provision("upgrade", "--version", TO, "--dry-run", "--json", *known)
    assert planned.rc == 0, planned.stdout[-2000:] + planned.stderr[-2000:]
    plan = json.loads(planned.stdout)["plan"]
    assert [(n["name"], n["action"], n["order"]) for n in plan["nodes"]] == [
        ("cp1", "upgrade", 1), ("w1", "upgrade", 2), ("w2", "upgrade", 3)]
    assert set(kubelet_versions(cluster).values()) == {FROM}

    # Interrupted right after `kubeadm upgrade apply` on cp1 (Ctrl-C): the control plane runs the target, the
    # kubelets do not; the rerun skips the apply and finishes the nodes.
    stopped = interrupted_after(cluster, APPLY_TASK, "cp1", "upgrade", "--version", TO, "--yes", *known)
    assert stopped.returncode == 130, stopped.stdout[-2000:] + stopped.stderr[-3000:]
    assert f"kubernetesVersion: {TO}" in cluster_config(cluster)
    assert set(kubelet_versions(cluster).values()) == {FROM}
    apiserver = unit_invocation(lab, "cp1", "kube-standin-pod-kube-apiserver")

    # A PodDisruptionBudget that allows no disruption keeps w1's drain from finishing: the rerun finishes cp1, stops
    # at w1 naming the budget, and leaves w1 uncordoned on its old kubelet.
    (tmp_path / "blocker.yaml").write_text(BLOCKER)
    made = cluster.kubectl("create", "--validate=false", "-f", str(tmp_path / "blocker.yaml"))
    assert made.returncode == 0, made.stderr
    blocked = cluster.provision("upgrade", "--version", TO, "--yes", "--drain-timeout", "10", *known)
    assert blocked.rc != 0, blocked.stdout[-2000:]
    said = blocked.stdout + blocked.stderr
    named = "PodDisruptionBudget default/blocker (needs 1 healthy pods, has 1) allows no disruption"
    assert named in said, said[-3000:]
    assert 'kubectl said: error when evicting pods/"blocker" -n "default": global timeout reached: 10s' in said, said[
        -3000:]
    nodes = cluster.nodes()
    assert nodes["cp1"]["status"]["nodeInfo"]["kubeletVersion"] == TO
    assert nodes["w1"]["status"]["nodeInfo"]["kubeletVersion"] == FROM
    assert not nodes["w1"]["spec"].get("unschedulable") and "upgrade.provision.io/cordoned" not in nodes["w1"][
        "metadata"]["labels"]
    assert cluster.kubectl("delete", "poddisruptionbudget", "blocker").returncode == 0

    resumed = cluster.provision("upgrade", "--version", TO, "--yes", "--json", *known)
    assert resumed.rc == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert unit_invocation(lab, "cp1", "kube-standin-pod-kube-apiserver") == apiserver  # apply not run again
    assert cluster.kubectl("get", "pod", "blocker").returncode != 0  # evicted by w1's drain

    # Every node at the target, Ready and schedulable; the control plane's components and addons moved; the
    # package repository is the new minor's and the packages are held.
    nodes = cluster.nodes()
    assert {name: n["status"]["nodeInfo"]["kubeletVersion"] for name, n in nodes.items()} == dict.fromkeys(
        ("cp1", "w1", "w2"), TO)
    assert all(node_ready(n) and not n["spec"].get("unschedulable") for n in nodes.values())
    assert not any("upgrade.provision.io/cordoned" in n["metadata"]["labels"] for n in nodes.values())
    server = json.loads(cluster.kubectl("version", "--output", "json").stdout)["serverVersion"]["gitVersion"]
    assert server == TO
    config = cluster_config(cluster)
    assert f"kubernetesVersion: {TO}" in config and "kubeadm.k8s.io/v1beta4" in config
    manifest = lab.exec("cp1", "cat /etc/kubernetes/manifests/kube-scheduler.yaml", check=True).stdout
    assert f"kube-scheduler:{TO}" in manifest
    proxy = cluster.kubectl("--namespace", "kube-system", "get", "daemonset", "kube-proxy", "--output",
                            "jsonpath={.spec.template.spec.containers[0].image}")
    assert proxy.stdout.endswith(f"kube-proxy:{TO}"), proxy.stdout
    for host in ("cp1", "w1", "w2"):
        assert "/v1.31/deb/" in apt_source(cluster, host), host
        held = lab.exec(host, "apt-mark showhold", check=True).stdout.split()
        assert set(held) >= {"kubeadm", "kubelet", "kubectl"}, (host, held)
        assert re.search(r"Kubernetes v1\.31\.1", lab.exec(host, "kubelet --version", check=True).stdout), host

    # A rerun has nothing to do.
    again = cluster.provision("upgrade", "--version", TO, "--yes", "--json", *known)
    assert again.rc == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert all(n["action"] == "skip" for n in json.loads(again.stdout)["plan"]["nodes"])

    # `up` with the old version in the inventory refuses to downgrade; with the new one it changes nothing.
    refused = cluster.up()
    assert refused.rc != 0
    assert f"runs Kubernetes {TO}, newer than kubeadm_version {FROM}" in " ".join(refused.report["error"]["details"])
    cluster.extra_vars["kubeadm_version"] = TO
    cluster.write_inventory()
    kept = cluster.up()
    assert kept.rc == 0, kept.stdout[-3000:] + kept.stderr[-3000:]
    assert kept.changed_total() == 0, kept.changed_by_host()
