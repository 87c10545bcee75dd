"""`upgrade --strategy plan`: the system-upgrade-controller Plans as the CLI renders them (same code path as the CLI:
parsed arguments -> the typed request + loaded inventory -> the K3s flavor's plan_manifest -> the role's
template)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.cli.main import build_parser
from provisioner.cli.upgrade import upgrade_request
from provisioner.flavors.k3s.upgrade import plan_manifest
from provisioner.inventory import load_inventory

pytestmark = pytest.mark.unit

TARGET = "v1.29.0+k3s1"
# Labels K3s puts on its nodes: servers carry the control-plane role (and etcd/master with embedded etcd).
SERVER_LABELS = {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true",
                 "node-role.kubernetes.io/etcd": "true", "kubernetes.io/os": "linux"}
AGENT_LABELS = {"kubernetes.io/os": "linux"}


def _inventory(tmp_path: Path, agents: int, extra_vars: str = "") -> Path:
    agent_lines = "".join(f"        a{i}: {{ansible_host: 10.0.1.{i}}}\n" for i in range(1, agents + 1))
    path = tmp_path / "edge.yml"
    path.write_text(
        "all:\n  vars:\n    provision_cluster_name: edge\n    k3s_version: v1.28.4+k3s2\n" + extra_vars
        + "  children:\n    server:\n      hosts:\n"
        + "".join(f"        s{i}: {{ansible_host: 10.0.0.{i}}}\n" for i in (1, 2, 3))
        + ("    agent:\n      hosts:\n" + agent_lines if agents else "")
    )
    return path


def _plans(tmp_path: Path, *options: str, agents: int = 2, extra_vars: str = "") -> dict[str, dict[str, Any]]:
    inventory = _inventory(tmp_path, agents, extra_vars)
    args = build_parser().parse_args(
        ["upgrade", "-i", str(inventory), "--version", TARGET, "--strategy", "plan", *options]
    )
    text = plan_manifest(upgrade_request(args), load_inventory(inventory), TARGET)
    documents = [d for d in yaml.safe_load_all(text) if d]
    assert [d["kind"] for d in documents] == ["Plan", "Plan"]
    return {d["metadata"]["name"]: d for d in documents}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector's matchExpressions as Kubernetes evaluates them."""
    for term in selector.get("matchExpressions", []):
        key, operator, values = term["key"], term["operator"], term.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.mark.parametrize("agents", [0, 1, 5])
def test_plans_select_servers_then_agents(tmp_path: Path, agents: int) -> None:
    plans = _plans(tmp_path, "--max-unavailable", "3", agents=agents)
    server, agent = plans["k3s-server"], plans["k3s-agent"]
    for plan in (server, agent):
        assert plan["apiVersion"] == "upgrade.cattle.io/v1"
        assert plan["metadata"]["namespace"] == "system-upgrade"
        assert plan["spec"]["version"] == TARGET
        assert plan["spec"]["serviceAccountName"] == "system-upgrade"
        assert plan["spec"]["upgrade"] == {"image": "rancher/k3s-upgrade"}  # no tag: the controller adds the version
        assert "channel" not in plan["spec"]  # pinned: a channel would move on by itself
    nodes = {f"s{i}": SERVER_LABELS for i in (1, 2, 3)} | {f"a{i}": AGENT_LABELS for i in range(1, agents + 1)}
    assert sorted(n for n, labels in nodes.items() if _selects(server["spec"]["nodeSelector"], labels)) == [
        "s1", "s2", "s3"]
    assert sorted(n for n, labels in nodes.items() if _selects(agent["spec"]["nodeSelector"], labels)) == sorted(
        f"a{i}" for i in range(1, agents + 1))
    assert server["spec"]["concurrency"] == 1 and server["spec"]["cordon"] is True
    assert "drain" not in server["spec"]
    assert {t["key"] for t in server["spec"]["tolerations"]} == {
        "CriticalAddonsOnly", "node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/etcd"}
    assert all(t["operator"] == "Exists" for t in server["spec"]["tolerations"])
    assert agent["spec"]["concurrency"] == 3
    assert agent["spec"]["prepare"] == {"image": "rancher/k3s-upgrade", "args": ["prepare", "k3s-server"]}


def test_agent_drain_follows_the_drain_options(tmp_path: Path) -> None:
    default = _plans(tmp_path)["k3s-agent"]["spec"]
    assert default["concurrency"] == 1
    assert default["drain"] == {"ignoreDaemonSets": True, "deleteEmptydirData": True, "timeout": 120 * 10**9}
    slow = _plans(tmp_path, "--drain-timeout", "600")["k3s-agent"]["spec"]
    assert slow["drain"]["timeout"] == 600 * 10**9
    undrained = _plans(tmp_path, "--no-drain")["k3s-agent"]["spec"]
    assert "drain" not in undrained and undrained["cordon"] is True


def test_upgrade_image_comes_from_the_inventory(tmp_path: Path) -> None:
    plans = _plans(tmp_path, extra_vars="    k3s_upgrade_image: registry.site:5000/mirror/k3s-upgrade\n")
    images = [plans["k3s-server"]["spec"]["upgrade"]["image"], plans["k3s-agent"]["spec"]["upgrade"]["image"],
              plans["k3s-agent"]["spec"]["prepare"]["image"]]
    assert images == ["registry.site:5000/mirror/k3s-upgrade"] * 3
