"""`provision upgrade --strategy plan` end to end in the CLI, with the runner replaced by recorded playbook results.

No host is contacted: the fake runner answers the read-only check as a cluster at v1.28.4+k3s2 would, and records
which phase playbooks run with which variables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.cli.main import main
from provisioner.flavors.k3s.upgrade_phases import TASK_HEALTH, TASK_INSTALLED, TASK_NODES, TASK_PLAN_CRD, TASK_TARGET
from provisioner.runner import HostOutcome, PlaybookResult, PlaybookRun, Runner

pytestmark = pytest.mark.unit

OLD, NEW = "v1.28.4+k3s2", "v1.29.0+k3s1"
INVENTORY = f"""
all:
  vars:
    provision_cluster_name: edge
    k3s_version: {OLD}
    k3s_upgrade_image: registry.site:5000/mirror/k3s-upgrade
  children:
    server:
      hosts:
        s1: {{ansible_host: 10.0.0.1}}
    agent:
      hosts:
        a1: {{ansible_host: 10.0.0.11}}
        a2: {{ansible_host: 10.0.0.12}}
"""
CRD_MISSING = ('Error from server (NotFound): customresourcedefinitions.apiextensions.k8s.io '
               '"plans.upgrade.cattle.io" not found')


def _node(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {}},
            "status": {"nodeInfo": {"kubeletVersion": version}, "conditions": [{"type": "Ready", "status": "True"}]}}


class FakeCluster:
    """Answers check runs; records every run."""

    def __init__(self, version: str = OLD, crd_installed: bool = True) -> None:
        self.version = version
        self.crd_installed = crd_installed
        self.runs: list[PlaybookRun] = []

    def run(self, run: PlaybookRun) -> PlaybookResult:
        self.runs.append(run)
        hosts = {h: HostOutcome(ok=1) for h in ("s1", "a1", "a2")}
        captured: dict[str, dict[str, Any]] = {}
        if run.playbook == "upgrade_check.yml":
            nodes = {"items": [_node(n, self.version) for n in ("s1", "a1", "a2")]}
            installed = {"stdout": f"k3s version {self.version} (abcdef12)"}
            captured = {"s1": {TASK_TARGET: {"msg": run.extravars["k3s_version"]},
                               TASK_NODES: {"stdout": json.dumps(nodes)}, TASK_HEALTH: {"rc": 0},
                               TASK_INSTALLED: installed},
                        "a1": {TASK_INSTALLED: installed}, "a2": {TASK_INSTALLED: installed}}
            if run.extravars.get("k3s_upgrade_strategy") == "plan":  # the check reads the CRD for Plans only
                captured["s1"][TASK_PLAN_CRD] = (
                    {"rc": 0, "stdout": "customresourcedefinition.apiextensions.k8s.io/plans.upgrade.cattle.io"}
                    if self.crd_installed else {"rc": 1, "stderr": CRD_MISSING}
                )
        return PlaybookResult(playbook=run.playbook, status="successful", rc=0, duration_s=0.1, hosts=hosts,
                              artifact_dir=Path("/nonexistent"), captured=captured)


@pytest.fixture()
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "edge.yml"
    path.write_text(INVENTORY)
    return path


def _use(monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster) -> FakeCluster:
    monkeypatch.setattr(Runner, "run", cluster.run)  # a bound method: runner.run(x) calls cluster.run(x)
    return cluster


def _upgrade(inventory: Path, *extra: str) -> int:
    return main(["upgrade", "-i", str(inventory), "--version", NEW, "--strategy", "plan", *extra])


def test_dry_run_prints_the_plans_and_changes_nothing(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = _use(monkeypatch, FakeCluster())
    assert _upgrade(inventory, "--dry-run", "--max-unavailable", "2") == 0
    out, err = capsys.readouterr()
    plans = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out) if d}
    assert sorted(plans) == ["k3s-agent", "k3s-server"]
    assert plans["k3s-agent"]["spec"]["concurrency"] == 2
    assert plans["k3s-server"]["spec"]["upgrade"]["image"] == "registry.site:5000/mirror/k3s-upgrade"
    assert "system-upgrade-controller Plans" in err and "dry run: nothing was changed" in err
    assert [r.playbook for r in cluster.runs] == ["upgrade_check.yml"]
    assert cluster.runs[0].extravars["k3s_upgrade_strategy"] == "plan"


def test_plan_out_writes_the_file_and_json_names_it(
    inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, FakeCluster())
    target = tmp_path / "plans.yaml"
    assert _upgrade(inventory, "--dry-run", "--plan-out", str(target), "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "planned" and document["plan_out"] == str(target)
    assert document["plan"]["strategy"] == "plan"
    assert [d["spec"]["version"] for d in yaml.safe_load_all(target.read_text()) if d] == [NEW, NEW]


def test_missing_controller_is_refused_before_any_change(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = _use(monkeypatch, FakeCluster(crd_installed=False))
    assert _upgrade(inventory, "--yes") == 4
    err = capsys.readouterr().err
    assert "system-upgrade-controller is not installed" in err and "plans.upgrade.cattle.io" in err
    assert [r.playbook for r in cluster.runs] == ["upgrade_check.yml"]


def test_safety_rules_refuse_plans_too(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = _use(monkeypatch, FakeCluster(version="v1.27.6+k3s1"))
    assert _upgrade(inventory, "--dry-run") == 4
    out, err = capsys.readouterr()
    assert "would skip a minor version" in err and out == ""  # no Plans shown for a refused upgrade
    assert [r.playbook for r in cluster.runs] == ["upgrade_check.yml"]


def test_apply_backs_up_then_applies_the_plans_on_the_first_server(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = _use(monkeypatch, FakeCluster())
    assert _upgrade(inventory, "--yes", "--max-unavailable", "2", "--no-drain") == 0
    assert [r.playbook for r in cluster.runs] == ["upgrade_check.yml", "backup.yml", "upgrade_plan_apply.yml"]
    applied = cluster.runs[-1].extravars
    assert applied["k3s_version"] == NEW and applied["k3s_upgrade_strategy"] == "plan"
    assert applied["k3s_upgrade_max_unavailable"] == 2 and applied["k3s_upgrade_drain"] is False
    assert applied["k3s_upgrade_image"] == "registry.site:5000/mirror/k3s-upgrade"
    assert "k3s_upgrade_enforce_checks" not in applied  # the apply phase asserts the controller itself
    err = capsys.readouterr().err
    assert "the system-upgrade-controller now upgrades 3 node(s)" in err and "provision status" in err


def test_plan_out_needs_the_plan_strategy(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["upgrade", "-i", str(inventory), "--version", NEW, "--plan-out", "x.yaml"])
    assert code == 2 and "--plan-out" in capsys.readouterr().err
