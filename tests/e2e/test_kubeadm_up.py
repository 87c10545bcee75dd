"""`provision up` of a kubeadm cluster end to end: lab hosts over real SSH with Debian's real containerd, runc, CNI
plugins and etcd, and the kubeadm/kubelet stand-ins from the lab's dl.k8s.io-style mirror (tests/standin)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import LabCluster, diff, node_ready, report_of, snapshot, unit_invocation
from tests.lab.lab import HostSpec

pytestmark = pytest.mark.lab

VERSION = "v1.30.2"


@pytest.fixture
def cluster(make_lab, tmp_path: Path) -> LabCluster:
    # kubeadm wants 2 CPUs and 1700 MB on a control plane (the probe and kubeadm's preflight both check).
    lab = make_lab([HostSpec("cp1", cpus=2, memory_mb=2048), "w1", "w2", "w3"])  # w3 joins later
    # The packages (the default source) here; the HA test installs the release binaries.
    return LabCluster(lab, tmp_path / "cluster", servers=["cp1"], agents=["w1", "w2"], flavor="kubeadm",
                      extra_vars={"kubeadm_package_source": "apt"})


def bootstrap_token_secrets(cluster: LabCluster) -> list[str]:
    """The secret halves of every bootstrap token the cluster holds (as real kubectl reads them)."""
    listed = cluster.kubectl("--namespace", "kube-system", "get", "secrets", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return [base64.b64decode(s["data"]["token-secret"]).decode() for s in items
            if s.get("type") == "bootstrap.kubernetes.io/token"]


def assert_no_secret_left(cluster: LabCluster, output: str) -> None:
    # Tokens and certificate keys: never in the output, the reports or the runner's artifacts; no file left holding
    # them on the hosts.
    secrets = bootstrap_token_secrets(cluster)
    assert secrets
    leaked = [str(path) for path in cluster.state_dir.rglob("*")
              if path.is_file() and path.name != "kubeconfig" and any(s.encode() in path.read_bytes() for s in secrets)]
    assert leaked == []
    assert not any(s in output for s in secrets)
    for host in ("cp1", "w1", "w2"):
        left = cluster.lab.exec(host, "ls /etc/kubernetes/provision/", check=True).stdout.split()
        assert not {"init.yaml", "join.yaml", "upload-certs.yaml"} & set(left), (host, left)


def assert_fixed_settings_refused(cluster: LabCluster, kubelet_before: str) -> None:  # and the CNI's network
    # kubeadm fixes the pod subnet at init: a changed one is refused with the reason, nothing re-initialised. The CLI
    # refuses from its record of the last up before contacting a host (exit 4); without that record (another
    # machine's state directory, or plain ansible-playbook) the first control plane's own record refuses it.
    cluster.extra_vars["kubeadm_pod_subnet"] = "10.42.0.0/16"
    cluster.write_inventory()
    refused = cluster.up()
    assert refused.rc == 4, refused.stdout[-3000:]
    assert "kubeadm_pod_subnet: 10.244.0.0/16 -> 10.42.0.0/16" in refused.report["error"]["message"]
    (cluster.state_dir / cluster.name / "fixed-settings.json").unlink()
    refused = cluster.up()
    assert refused.rc != 0
    text = " ".join(refused.report["error"]["details"])
    assert 'kubeadm_pod_subnet would change networking.podSubnet from "10.244.0.0/16" to "10.42.0.0/16"' in text
    assert unit_invocation(cluster.lab, "cp1", "kubelet") == kubelet_before

    # Another CNI over the running one is refused too (the manifest is not applied).
    del cluster.extra_vars["kubeadm_pod_subnet"]
    cluster.extra_vars["kubeadm_cni"] = "calico"
    cluster.write_inventory()
    swapped = cluster.up()  # no CLI record now (removed above): the first control plane's record refuses it
    assert swapped.rc != 0
    assert "kubeadm_cni would change from flannel to calico" in " ".join(swapped.report["error"]["details"])
    assert cluster.kubectl("--namespace", "kube-system", "get", "daemonset", "calico-node").returncode != 0
    del cluster.extra_vars["kubeadm_cni"]
    cluster.write_inventory()

    # The running CNI on another pod network than podSubnet (someone edited flannel's net-conf.json): refused with
    # both networks named, rather than re-applied over running pods; flannel's ConfigMap is left as found.
    flannel = ("--namespace", "kube-flannel", "get", "configmap", "kube-flannel-cfg", "--output", "json")
    original = json.loads(cluster.kubectl(*flannel).stdout)["data"]["net-conf.json"]
    other = json.dumps(json.loads(original) | {"Network": "10.99.0.0/16"})
    patch = ("--namespace", "kube-flannel", "patch", "configmap", "kube-flannel-cfg", "--type", "merge", "--patch")
    assert cluster.kubectl(*patch, json.dumps({"data": {"net-conf.json": other}})).returncode == 0
    mismatch = cluster.up()
    assert mismatch.rc != 0
    text = " ".join(mismatch.report["error"]["details"])
    assert "flannel runs with the pod network 10.99.0.0/16" in text and "podSubnet is 10.244.0.0/16" in text, text
    assert json.loads(cluster.kubectl(*flannel).stdout)["data"]["net-conf.json"] == other
    assert cluster.kubectl(*patch, json.dumps({"data": {"net-conf.json": original}})).returncode == 0


def assert_remove_worker_and_reset(cluster: LabCluster, before: dict[str, dict[str, list[str]]]) -> None:
    lab, known_hosts = cluster.lab, str(cluster.lab.known_hosts)
    # The leftovers kubeadm reset keeps by design are really there (the stand-in leaves kube-proxy's and flannel's),
    # so the resets below have something to remove.
    during = snapshot(lab, "w1")
    assert {"cni0", "flannel.1"} <= set(during["interfaces"]), during["interfaces"]
    assert any("KUBE-" in line for line in during["iptables"]) and during["netns"]
    assert any("/var/lib/kubelet/pods/" in line for line in during["mounts"])

    # remove-node of a worker: drained, its host reset to what it was, its node deleted; the others untouched.
    removed = cluster.provision("remove-node", "w3", "--yes", "--json", "--known-hosts", known_hosts)
    assert removed.rc == 0, removed.stdout[-3000:] + removed.stderr[-3000:]
    assert set(cluster.nodes()) == {"cp1", "w1", "w2"}
    changes = diff(before["w3"], snapshot(lab, "w3"))
    assert changes == {}, changes
    assert report_of(cluster, "remove-node")["hosts"]["w3"]["removal"]["host_reset"] is True
    cluster.agents.remove("w3")
    cluster.write_inventory()

    # The last control plane is never removed.
    last = cluster.provision("remove-node", "cp1", "--yes", "--known-hosts", known_hosts)
    assert last.rc == 4 and "last server" in last.stderr

    # reset: every host back to what it was before up (packages, containerd's configuration, CNI leftovers), the
    # SSH session kept, the context gone from the kubeconfig; a second reset changes nothing.
    outcome = cluster.provision("reset", "--yes", "--json", "--known-hosts", known_hosts)
    assert outcome.rc == 0, outcome.stdout[-3000:] + outcome.stderr[-3000:]
    for host in ("cp1", "w1"):
        assert diff(before[host], snapshot(lab, host)) == {}, (host, diff(before[host], snapshot(lab, host)))
        assert lab.ssh(host, "true").returncode == 0
    report = report_of(cluster, "reset")
    assert report["status"] == "ok" and "containerd" in report["hosts"]["w1"]["packages_left"]
    assert any("Kubernetes rule(s)/chain(s)" in a for a in report["hosts"]["w1"]["actions"])
    assert cluster.name not in [c["name"] for c in cluster.kubeconfig_data().get("contexts") or []]
    again = cluster.provision("reset", "--yes", "--json", "--known-hosts", known_hosts)
    assert again.rc == 0 and again.changed_total() == 0, again.changed_by_host()


def assert_unpinned_join_refused(cluster: LabCluster) -> None:
    """w3's join pins a CA hash the endpoint does not serve: kubeadm join refuses at discovery, the run says why."""
    lab = cluster.lab
    pki = "/etc/kubernetes/pki"
    lab.exec("cp1", f"cp -p {pki}/ca.crt /root/ca.crt.kept && cp {pki}/front-proxy-ca.crt {pki}/ca.crt", check=True)
    unpinned = cluster.up()
    lab.exec("cp1", f"cp -p /root/ca.crt.kept {pki}/ca.crt && rm /root/ca.crt.kept", check=True)
    assert unpinned.rc != 0
    text = unpinned.stdout + unpinned.stderr
    assert "kubeadm join failed on w3 (exit 1)" in text, text[-4000:]
    assert "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys" in text, text[-4000:]
    assert "the API server at the endpoint serves a CA other than" in text, text[-4000:]
    assert unpinned.changed_by_host().get("w1", 0) == 0 and unpinned.changed_by_host().get("w2", 0) == 0
    assert "w3" not in cluster.nodes()


def test_one_control_plane_two_workers_flannel_noop_rerun_added_worker_refusals_remove_node_and_reset(
    cluster: LabCluster,
) -> None:
    lab = cluster.lab
    before = {h: snapshot(lab, h) for h in ("cp1", "w1", "w3")}
    first = cluster.up()
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert {h: r["ready"] for h, r in first.report["hosts"].items()} == {"cp1": "yes", "w1": "yes", "w2": "yes"}

    # Installed from the signed pkgs.k8s.io-style repository and held there.
    held = cluster.lab.exec("w1", "apt-mark showhold", check=True).stdout.split()
    assert held == ["kubeadm", "kubectl", "kubelet"]

    # Real kubectl through the merged kubeconfig: every node Ready at the version, the control plane marked.
    nodes = cluster.nodes()
    assert set(nodes) == {"cp1", "w1", "w2"} and all(node_ready(n) for n in nodes.values())
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes.values()} == {VERSION}
    assert "node-role.kubernetes.io/control-plane" in nodes["cp1"]["metadata"]["labels"]
    assert {t["key"] for t in nodes["cp1"]["spec"].get("taints", [])} == {"node-role.kubernetes.io/control-plane"}
    assert {n["spec"]["podCIDR"] for n in nodes.values()} <= {f"10.244.{i}.0/24" for i in range(256)}
    flannel = cluster.kubectl("--namespace", "kube-flannel", "get", "daemonset", "kube-flannel-ds", "-o", "json")
    assert flannel.returncode == 0, flannel.stderr
    assert json.loads(flannel.stdout)["status"]["numberReady"] == 3
    conflist = cluster.lab.exec("w1", "cat /etc/cni/net.d/10-flannel.conflist", check=True).stdout
    assert json.loads(conflist)["plugins"][0]["type"] == "flannel"

    assert_no_secret_left(cluster, first.stdout + first.stderr)

    # `provision status` reads the same cluster through the kubeadm flavor's node list.
    status = cluster.provision("status", "--json", "--known-hosts", str(cluster.lab.known_hosts))
    assert status.rc == 0, status.stdout + status.stderr
    rows = {r["name"]: r for r in json.loads(status.stdout)["nodes"]}
    assert {n: (r["ready"], r["roles"], r["version"]) for n, r in rows.items()} == {
        "cp1": (True, "control-plane", VERSION), "w1": (True, "<none>", VERSION), "w2": (True, "<none>", VERSION)}

    # A rerun changes nothing and restarts nothing.
    before_kubelet = {h: unit_invocation(cluster.lab, h, "kubelet") for h in ("cp1", "w1", "w2")}
    second = cluster.up("--all")
    assert second.rc == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert second.changed_total() == 0, second.changed_by_host()
    assert {h: unit_invocation(cluster.lab, h, "kubelet") for h in ("cp1", "w1", "w2")} == before_kubelet

    # A worker added to the inventory joins alone: the others are not touched, nothing restarts; the token and CA pin
    # come from the first control plane by delegation. First the pin does not match what the endpoint serves (as when
    # the endpoint leads to another cluster; here the CA file provision pins from is swapped for another CA): kubeadm
    # join refuses at discovery and the run says why. Then, with the pin right, w3 joins.
    cluster.agents.append("w3")
    cluster.write_inventory()
    assert_unpinned_join_refused(cluster)
    added = cluster.up()
    assert added.rc == 0, added.stdout[-4000:] + added.stderr[-4000:]
    changed = added.changed_by_host()
    assert changed.get("w3", 0) > 0 and changed.get("w1", 0) == 0 and changed.get("w2", 0) == 0, changed
    assert node_ready(cluster.nodes()["w3"])
    assert {h: unit_invocation(cluster.lab, h, "kubelet") for h in ("cp1", "w1", "w2")} == before_kubelet

    assert_fixed_settings_refused(cluster, before_kubelet["cp1"])

    assert_remove_worker_and_reset(cluster, before)


def test_a_one_cpu_control_plane_and_a_worker_with_swap_are_refused_before_anything_changes(
    make_lab, tmp_path: Path,
) -> None:
    # w1's swap is simulated (its /proc/swaps and /proc/meminfo say so; a container has no swap of its own), which
    # is the case the probe refuses: inside a container, prepare could not turn it off and the kubelet would refuse.
    lab = make_lab([HostSpec("cp1", cpus=1, memory_mb=2048), HostSpec("w1", simulated_swap_mb=512)])
    cluster = LabCluster(lab, tmp_path / "small", servers=["cp1"], agents=["w1"], flavor="kubeadm")
    refused = cluster.up()
    assert refused.rc != 0
    details = refused.report["error"]["details"]
    assert any(line.startswith("cp1: cpus: kubeadm refuses a control-plane node with fewer than 2 CPUs") for line in
               details), details
    assert any(line.startswith("w1: swap: swap is on (512 MB) and this host is a docker container") for line in
               details), details
    assert "prepare" not in [p["name"] for p in refused.report["phases"]]  # refused before anything changed
    for host in ("cp1", "w1"):
        assert lab.exec(host, "test -e /etc/kubernetes/provision || test -e /usr/bin/kubeadm").returncode == 1


def test_check_mode_on_fresh_hosts_reports_and_changes_nothing(make_lab, tmp_path: Path) -> None:
    lab = make_lab([HostSpec("cp1", cpus=2, memory_mb=2048), "w1"])
    cluster = LabCluster(lab, tmp_path / "check", servers=["cp1"], agents=["w1"], flavor="kubeadm",
                         extra_vars={"kubeadm_package_source": "apt"})
    outcome = cluster.up("--check")
    assert outcome.rc == 0, outcome.stdout[-3000:] + outcome.stderr[-3000:]
    assert outcome.changed_total() > 0  # it reports what would change ...
    assert "w1 would run kubeadm join" in " ".join(outcome.report["hosts"]["w1"]["notes"])
    for host in ("cp1", "w1"):  # ... and changes nothing
        assert lab.exec(host, "test -e /usr/bin/kubeadm || test -e /etc/kubernetes/provision "
                              "|| test -e /etc/apt/sources.list.d/kubernetes.list").returncode == 1
        assert lab.exec(host, "systemctl is-active containerd").stdout.strip() != "active"
