"""The check phase's captured task results become plan inputs (no stdout is parsed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioner.flavors.k3s.upgrade_phases import (
    TASK_HEALTH,
    TASK_INSTALLED,
    TASK_NODES,
    TASK_PLAN_CRD,
    TASK_TARGET,
    read_check,
)
from provisioner.inventory import load_inventory
from provisioner.plan import K3sVersion
from provisioner.runner import HostOutcome, PlaybookResult

pytestmark = pytest.mark.unit

INVENTORY = """
all:
  vars:
    provision_cluster_name: edge
    k3s_version: v1.28.4+k3s2
  children:
    server:
      hosts:
        s1: {ansible_host: 10.0.0.1}
        s2: {ansible_host: 10.0.0.2}
        s3: {ansible_host: 10.0.0.3}
    agent:
      hosts:
        a1: {ansible_host: 10.0.0.11}
"""


def _node(name: str, version: str, ready: bool) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "status": {"nodeInfo": {"kubeletVersion": version},
                   "conditions": [{"type": "Ready", "status": "True" if ready else "Unknown"}]},
    }


def test_read_check_maps_versions_health_and_reachability(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY)
    cluster = load_inventory(path)
    nodes = {"items": [_node("s1", "v1.29.0+k3s1", True), _node("s2", "v1.28.4+k3s2", True),
                       _node("s3", "v1.28.4+k3s2", True), _node("a1", "v1.28.4+k3s2", False)]}
    captured = {
        "s1": {TASK_INSTALLED: {"stdout": "k3s version v1.29.0+k3s1 (abcdef12)\ngo version go1.21"},
               TASK_TARGET: {"msg": "v1.29.0+k3s1"}, TASK_NODES: {"stdout": json.dumps(nodes)},
               TASK_HEALTH: {"rc": 0}},
        "s2": {TASK_INSTALLED: {"stdout": "k3s version v1.28.4+k3s2 (31db0ed5)"}, TASK_HEALTH: {"rc": 1}},
        "a1": {TASK_INSTALLED: {"stdout": "k3s version v1.28.4+k3s2 (31db0ed5)"}},
    }
    result = PlaybookResult(
        playbook="upgrade_check.yml", status="failed", rc=2, duration_s=1.0, artifact_dir=tmp_path,
        hosts={"s3": HostOutcome(unreachable=True, reason="ssh: connect timed out"),
               "a1": HostOutcome(failed=True, reason="Check the binary can be downloaded: HTTP Error 404")},
        captured=captured,
    )
    findings = read_check(cluster, result)
    assert findings.target == "v1.29.0+k3s1"
    states = {n.name: n for n in findings.nodes}
    assert states["s1"].version == K3sVersion.parse("v1.29.0+k3s1") and states["s1"].ready
    assert states["s1"].binary_version == K3sVersion.parse("v1.29.0+k3s1")
    assert not states["s2"].ready  # Ready node, but its /readyz failed
    assert not states["s3"].reachable
    assert not states["a1"].ready and states["a1"].reachable
    assert findings.problems == ["a1: Check the binary can be downloaded: HTTP Error 404"]


def test_missing_controller_crd_is_a_problem_only_when_the_check_read_it(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(INVENTORY)
    cluster = load_inventory(path)
    nodes = {"items": [_node(n, "v1.28.4+k3s2", True) for n in ("s1", "s2", "s3", "a1")]}
    base = {TASK_TARGET: {"msg": "v1.29.0+k3s1"}, TASK_NODES: {"stdout": json.dumps(nodes)}, TASK_HEALTH: {"rc": 0}}
    missing = {
        "rc": 1,
        "stderr": 'Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io '
        '"plans.upgrade.cattle.io" not found',
    }

    def findings(captured_s1: dict[str, object]) -> list[str]:
        result = PlaybookResult(playbook="upgrade_check.yml", status="successful", rc=0, duration_s=1.0,
                                artifact_dir=tmp_path, hosts={}, captured={"s1": captured_s1})  # type: ignore[dict-item]
        return read_check(cluster, result).problems

    assert findings(base) == []  # rolling: the check does not read the CRD
    assert findings(base | {TASK_PLAN_CRD: {"rc": 0, "stdout": "customresourcedefinition..."}}) == []
    problems = findings(base | {TASK_PLAN_CRD: missing})
    assert len(problems) == 1
    assert "system-upgrade-controller is not installed" in problems[0]
    assert '"plans.upgrade.cattle.io" not found' in problems[0] and "provision does not install it" in problems[0]
