"""The kubeadm upgrade's rules (roles/kubeadm/filter_plugins/kubeadm_upgrade_filters.py), as the playbook asserts
them and the CLI plans with them: downgrades and skipped minors are refused, health and etcd quorum while any node
still has to move, nothing once every node runs the target."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.flavors.upgrade_view import CORDON_MARK
from tests.playbook_code import PLAYBOOKS, load

pytestmark = pytest.mark.unit

rules = load("roles/kubeadm/filter_plugins/kubeadm_upgrade_filters.py")


def node(name: str, version: str, ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {}},
            "status": {"nodeInfo": {"kubeletVersion": version},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def nodes(*items: dict[str, Any]) -> dict[str, Any]:
    return {"items": list(items)}


CP = ["cp1", "cp2", "cp3"]


def refuse(listed: dict[str, Any], cluster: str, target: str, servers: list[str] = CP[:1],
           agents: list[str] | None = None, unreachable: list[str] | None = None) -> list[str]:
    return list(rules.upgrade_refusals(listed, cluster, target, servers, agents or [], True, unreachable))


def test_one_minor_up_is_allowed_and_a_finished_cluster_is_not_refused() -> None:
    assert refuse(nodes(node("cp1", "v1.30.2"), node("w1", "v1.30.2")), "v1.30.2", "v1.31.1", agents=["w1"]) == []
    done = nodes(node("cp1", "v1.31.1"), node("w1", "v1.31.1", ready=False))
    assert refuse(done, "v1.31.1", "v1.31.1", agents=["w1"]) == []  # nothing moves: health does not matter


def test_downgrade_of_a_node_or_of_the_control_plane_is_refused() -> None:
    found = refuse(nodes(node("cp1", "v1.31.1")), "v1.31.1", "v1.30.2")
    assert any("cp1 runs v1.31.1, newer than v1.30.2" in p for p in found), found
    assert any("the control plane runs v1.31.1" in p for p in found), found
    # Within a minor too: v1.31.1 -> v1.31.0.
    assert refuse(nodes(node("cp1", "v1.31.1")), "v1.31.1", "v1.31.0")


def test_a_skipped_minor_names_the_chain() -> None:
    found = refuse(nodes(node("cp1", "v1.30.2")), "v1.30.2", "v1.32.0")
    assert found == ["v1.32.0 would skip a minor version from v1.30 (kubeadm upgrades one minor at a time): upgrade "
                     "to the latest v1.31, then v1.32.0"]
    # An older kubelet decides too: the control plane at v1.31 with a worker left on v1.30.
    found = refuse(nodes(node("cp1", "v1.31.1"), node("w1", "v1.30.2")), "v1.31.1", "v1.32.0", agents=["w1"])
    assert any("would skip a minor version from v1.30" in p for p in found), found


def test_health_and_quorum_while_nodes_still_move() -> None:
    found = refuse(nodes(node("cp1", "v1.30.2"), node("w1", "v1.30.2", ready=False)), "v1.30.2", "v1.31.1",
                   agents=["w1"])
    assert any("w1 is not Ready" in p for p in found), found
    found = refuse(nodes(node("cp1", "v1.30.2")), "v1.30.2", "v1.31.1", agents=["w2"])
    assert any("w2 is not registered" in p for p in found), found
    three = nodes(node("cp1", "v1.30.2"), node("cp2", "v1.30.2"), node("cp3", "v1.30.2", ready=False))
    found = refuse(three, "v1.30.2", "v1.31.1", servers=CP)
    assert any("lose quorum" in p for p in found), found
    found = refuse(nodes(node("cp1", "v1.30.2"), node("w1", "v1.30.2")), "v1.30.2", "v1.31.1", agents=["w1"],
                   unreachable=["w1"])
    assert any("w1 is unreachable" in p for p in found), found


def test_version_key_reads_command_output() -> None:
    assert rules.version_key("Kubernetes v1.31.1") == [1, 31, 1]
    assert rules.version_key("kubeadm.k8s.io/v1beta4") == []


def test_both_roles_and_the_cli_name_the_same_cordon_mark() -> None:
    for role, file in (("k3s_upgrade", "tasks/common.yml"), ("kubeadm", "vars/main.yml")):
        text = (PLAYBOOKS / "roles" / role / file).read_text()
        named = re.findall(r"_upgrade_cordon_label: (\S+)", text)
        assert named == [CORDON_MARK], (role, named)


def test_the_playbook_runs_kubeadms_order() -> None:
    plays = yaml.safe_load(Path(PLAYBOOKS / "kubeadm_upgrade.yml").read_text())
    order = [(p.get("hosts"), p["tasks"][0]["ansible.builtin.include_role"]["tasks_from"], p.get("serial"))
             for p in plays if "tasks" in p]
    assert order == [("server[0]", "upgrade_apply.yml", None), ("server[1:]", "upgrade_control_plane.yml", 1),
                     ("server", "upgrade_kubelet.yml", 1),
                     ("agent", "upgrade_kubelet.yml", "{{ kubeadm_upgrade_max_unavailable | default(1) }}")]


def test_a_blocked_drain_names_the_budgets_that_allow_no_disruption() -> None:
    def budget(name: str, allowed: int, labels: dict[str, str], namespace: str = "default") -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": {"matchLabels": labels}},
                "status": {"disruptionsAllowed": allowed, "desiredHealthy": 1, "currentHealthy": 1}}

    pods = {"items": [{"metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}}}]}
    budgets = {"items": [budget("web", 0, {"app": "web"}), budget("db", 0, {"app": "db"}),
                         budget("web-elsewhere", 0, {"app": "web"}, "other"), budget("loose", 1, {"app": "web"})]}
    assert rules.blocking_budgets(budgets, pods) == [
        "PodDisruptionBudget default/web (needs 1 healthy pods, has 1)"]
    assert rules.blocking_budgets(budgets, {"items": []}) == []
