"""`up` converges hosts to the inventory whatever happened before (issue 19): a restart an interrupted run owed is
still made, a reverted inventory is applied to hosts a failed run changed, and labels and taints of existing nodes
change (and go away) through the API without restarting K3s."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import LabCluster, interrupted_after, unit_invocation
from tests.lab.inventory import lab_inventory, write_lab_inventory

pytestmark = pytest.mark.lab



def set_agent(cluster: LabCluster, **agent_vars: Any) -> None:
    """Rewrite the inventory with these host vars on a1 (nothing else changes)."""
    data = lab_inventory(cluster.lab, cluster.servers, cluster.agents, cluster_name=cluster.name,
                         host_vars={"a1": agent_vars})
    write_lab_inventory(cluster.inventory, data)


def up_interrupted_after(cluster: LabCluster, task: str, host: str) -> subprocess.CompletedProcess[str]:
    """`provision up`, Ctrl-C'd (SIGINT to its process group) right after `task` changed `host`."""
    return interrupted_after(cluster, task, host, "up", "--known-hosts", str(cluster.lab.known_hosts))


def agent_config(cluster: LabCluster) -> dict[str, Any]:
    out = cluster.lab.exec("a1", "cat /etc/rancher/k3s/config.yaml", check=True).stdout
    return dict(yaml.safe_load(out))


def started_after_config_written(cluster: LabCluster) -> bool:
    """The running k3s-agent was started after its config.yaml was last written (so it runs with that file)."""
    out = cluster.lab.exec(
        "a1",
        "echo $(stat -c %Y /etc/rancher/k3s/config.yaml) "
        "$(date -d \"$(systemctl show --property=ExecMainStartTimestamp --value k3s-agent)\" +%s)",
        check=True,
    ).stdout.split()
    return int(out[1]) >= int(out[0])


def meta(node: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    labels = {k: v for k, v in node["metadata"].get("labels", {}).items() if "kubernetes.io" not in k and
              not k.startswith(("k3s.io", "node.kubernetes.io"))}
    taints = {f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in node["spec"].get("taints", []) or []}
    return labels, taints


def assert_check_names_the_change(cluster: LabCluster) -> None:
    # --check names the host, the file and the keys that would change, and reads the live node state.
    check = cluster.up("--check")
    assert check.rc == 0, check.stdout[-3000:] + check.stderr[-3000:]
    notes = check.report["hosts"]["a1"]["notes"]
    assert "/etc/rancher/k3s/config.yaml: node-label: (unset) -> [tier=edge, zone=a]; "\
           "node-taint: (unset) -> [dedicated=gpu:NoSchedule]" in notes, notes
    assert any("kubectl label node a1 tier=edge zone=a" in n for n in notes), notes
    assert {h: (r["ready"], r["version"]) for h, r in check.report["hosts"].items()} == \
        {"s1": ("yes", "v1.28.4+k3s2"), "a1": ("yes", "v1.28.4+k3s2")}
    assert "tier" not in cluster.nodes()["a1"]["metadata"]["labels"]


def assert_limit_defers_a_change(cluster: LabCluster, base: dict[str, Any]) -> None:
    # 5. --limit: a change for a1 waits while only s1 is converged, then a run without --limit applies it.
    set_agent(cluster, **base, k3s_node_labels={"zone": "b"})
    limited = cluster.up("--limit", "s1")
    assert limited.rc == 0, limited.stdout[-3000:] + limited.stderr[-3000:]
    assert limited.changed_by_host().get("a1", 0) == 0 and "node-label" not in agent_config(cluster)
    applied = cluster.up()
    assert applied.rc == 0 and agent_config(cluster)["node-label"] == ["zone=b"]


def test_interrupted_reverted_and_relabelled_hosts_converge(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["s1", "a1"])
    cluster = LabCluster(lab, tmp_path / "cluster", servers=["s1"], agents=["a1"])
    first = cluster.up()
    assert first.rc == 0, first.stdout[-3000:] + first.stderr[-3000:]

    # 1. Ctrl-C after config.yaml changed on the agent, before the restart it needs: the next `up` restarts it.
    set_agent(cluster, k3s_agent_config={"kubelet-arg": ["max-pods=150"]})
    before = unit_invocation(lab, "a1", "k3s-agent")
    interrupted = up_interrupted_after(cluster, "Write config.yaml", "a1")
    assert interrupted.returncode == 130, interrupted.stdout[-2000:] + interrupted.stderr[-3000:]
    assert "Traceback" not in interrupted.stderr
    assert agent_config(cluster)["kubelet-arg"] == ["max-pods=150"]
    assert unit_invocation(lab, "a1", "k3s-agent") == before, "the interruption came too late to test anything"
    assert not started_after_config_written(cluster)

    rerun = cluster.up()
    assert rerun.rc == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert unit_invocation(lab, "a1", "k3s-agent") != before, "the restart the interrupted run owed was lost"
    assert started_after_config_written(cluster)

    # 2. Labels and taints on an existing node: set, changed and removed through the API, with no restart; a label
    #    someone else set stays.
    assert cluster.kubectl("label", "node", "a1", "owner=ops").returncode == 0
    running = unit_invocation(lab, "a1", "k3s-agent")
    base = {"k3s_agent_config": {"kubelet-arg": ["max-pods=150"]}}
    set_agent(cluster, **base, k3s_node_labels={"tier": "edge", "zone": "a"},
              k3s_node_taints=["dedicated=gpu:NoSchedule"])
    assert_check_names_the_change(cluster)
    labelled = cluster.up()
    assert labelled.rc == 0, labelled.stdout[-3000:] + labelled.stderr[-3000:]
    assert meta(cluster.nodes()["a1"]) == ({"owner": "ops", "tier": "edge", "zone": "a"}, {"dedicated=gpu:NoSchedule"})

    set_agent(cluster, **base, k3s_node_labels={"tier": "core"}, k3s_node_taints=["dedicated=ml:NoExecute"])
    changed = cluster.up()
    assert changed.rc == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    assert meta(cluster.nodes()["a1"]) == ({"owner": "ops", "tier": "core"}, {"dedicated=ml:NoExecute"})
    assert unit_invocation(lab, "a1", "k3s-agent") == running, "a label or taint change restarted K3s"

    # 3. A failed (here: interrupted) run changed the agent's config.yaml; the inventory is then reverted to what the
    #    last successful run recorded. `up` must put the host back, not call it "already a member as described".
    set_agent(cluster, **base, k3s_node_labels={"tier": "broken"}, k3s_node_taints=["dedicated=ml:NoExecute"])
    interrupted = up_interrupted_after(cluster, "Write config.yaml", "a1")
    assert interrupted.returncode == 130, interrupted.stdout[-2000:] + interrupted.stderr[-3000:]
    assert "tier=broken" in agent_config(cluster)["node-label"]
    set_agent(cluster, **base, k3s_node_labels={"tier": "core"}, k3s_node_taints=["dedicated=ml:NoExecute"])
    reverted = cluster.up()
    assert reverted.rc == 0, reverted.stdout[-3000:] + reverted.stderr[-3000:]
    assert agent_config(cluster)["node-label"] == ["tier=core"]
    assert meta(cluster.nodes()["a1"]) == ({"owner": "ops", "tier": "core"}, {"dedicated=ml:NoExecute"})
    # (The interrupted run may have changed files K3s reads at start, so the host owed a restart: it was made.)
    running = unit_invocation(lab, "a1", "k3s-agent")

    # 4. Dropping them from the inventory removes the ones provision set, and only those.
    set_agent(cluster, **base)
    dropped = cluster.up()
    assert dropped.rc == 0, dropped.stdout[-3000:] + dropped.stderr[-3000:]
    assert meta(cluster.nodes()["a1"]) == ({"owner": "ops"}, set())
    assert "node-label" not in agent_config(cluster)
    assert unit_invocation(lab, "a1", "k3s-agent") == running
    noop = cluster.up()
    assert noop.rc == 0 and noop.changed_total() == 0, noop.changed_by_host()

    assert_limit_defers_a_change(cluster, base)
