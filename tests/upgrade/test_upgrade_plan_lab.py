"""`provision upgrade --strategy plan` on a lab cluster: refused without the system-upgrade-controller, Plans applied
once its CRD exists.

The K3s stand-in models the Plan CRD and stores Plans, but not the controller: nothing upgrades the nodes afterwards,
which lets this test also check that provision itself upgraded no node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.fixtures import MakeLab
from tests.upgrade.helpers import NEW, OLD, LabCluster, make_cluster, restarts_to

pytestmark = pytest.mark.lab

SUC_CRD = Path(__file__).resolve().parents[1] / "standin" / "manifests" / "system-upgrade-crd.yaml"


def _plans(cluster: LabCluster) -> dict[str, Any]:
    listing = cluster.kubectl("get", "plans.upgrade.cattle.io", "-n", "system-upgrade", "-o", "json")
    assert listing.returncode == 0, listing.stderr
    return {p["metadata"]["name"]: p for p in json.loads(listing.stdout)["items"]}


def test_plan_strategy_refuses_without_controller_then_applies_plans(make_lab: MakeLab, tmp_path: Path) -> None:
    lab = make_lab(["s1", "a1"])
    cluster = make_cluster(lab, ["s1"], ["a1"], tmp_path)
    up = cluster.provision("up")
    assert up.returncode == 0, up.stderr[-3000:]
    upgrade = ("upgrade", "--version", NEW, "--strategy", "plan")
    backups = cluster.state_dir / "lab" / "backups"

    refused = cluster.provision(*upgrade, "--yes")
    assert refused.returncode == 4, refused.stderr[-3000:]
    assert "system-upgrade-controller is not installed" in refused.stderr, refused.stderr[-3000:]
    assert '"plans.upgrade.cattle.io" not found' in refused.stderr
    assert not list(backups.glob("lab-pre-upgrade-*"))  # refused in the read-only check, before the backup

    installed = lab.exec("s1", ["k3s", "kubectl", "apply", "-f", "-"], input=SUC_CRD.read_text())
    assert installed.returncode == 0, installed.stderr

    dry = cluster.provision(*upgrade, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    shown = [d for d in yaml.safe_load_all(dry.stdout) if d]
    assert [d["metadata"]["name"] for d in shown] == ["k3s-server", "k3s-agent"]
    assert _plans(cluster) == {}  # a dry run applies nothing

    applied = cluster.provision(*upgrade, "--yes", "--max-unavailable", "2")
    assert applied.returncode == 0, applied.stderr[-4000:]
    assert "the system-upgrade-controller now upgrades" in applied.stderr
    plans = _plans(cluster)
    assert sorted(plans) == ["k3s-agent", "k3s-server"]
    specs = {name: plan["spec"] for name, plan in plans.items()}
    assert {s["version"] for s in specs.values()} == {NEW}
    assert specs["k3s-agent"]["concurrency"] == 2
    assert specs["k3s-agent"]["prepare"]["args"] == ["prepare", "k3s-server"]
    assert specs["k3s-server"]["upgrade"] == {"image": "rancher/k3s-upgrade"}
    assert lab.exec("s1", "stat -c %a /var/lib/rancher/k3s-upgrade/suc-plans.yaml").stdout.strip() == "600"
    assert list(backups.glob("lab-pre-upgrade-*"))
    # provision upgraded no node itself, and the stand-in has no controller to run the Plans.
    assert cluster.binary_version("s1") == OLD and cluster.binary_version("a1") == OLD
    assert not restarts_to(lab, "s1", NEW) and not restarts_to(lab, "a1", NEW)

    before = {n: p["metadata"]["resourceVersion"] for n, p in plans.items()}
    again = cluster.provision(*upgrade, "--yes", "--max-unavailable", "2", "--no-backup")
    assert again.returncode == 0, again.stderr[-3000:]
    assert {n: p["metadata"]["resourceVersion"] for n, p in _plans(cluster).items()} == before
