"""A kubeadm cluster's settings fixed at init (subnets, endpoint, etcd) and its CNI are refused from the state dir's
record of the last verified `up`, before any host is contacted (exit 4); without a record the first control plane's
own check applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli_runs import run

pytestmark = pytest.mark.unit

RECORD = {"kubeadm_cni": "flannel", "kubeadm_etcd": "stacked", "kubeadm_pod_subnet": "10.244.0.0/16",
          "kubeadm_service_subnet": "10.96.0.0/12", "provision_api_endpoint": "127.0.0.1"}


def kubeadm_inventory(folder: Path, extra: str = "") -> None:
    (folder / "edge.yml").write_text(
        "all:\n  vars: {provision_cluster_name: edge, provision_flavor: kubeadm, kubeadm_version: v1.30.2"
        f"{extra}}}\n  children:\n    server:\n      hosts:\n        s1: {{ansible_host: 127.0.0.1, ansible_port: 1}}\n"
    )
    (folder / "known_hosts").touch()
    state = folder / "state" / "edge"
    state.mkdir(parents=True, exist_ok=True)
    (state / "fixed-settings.json").write_text(json.dumps(RECORD))


@pytest.mark.parametrize(("extra", "expected"), [
    (", kubeadm_pod_subnet: 10.42.0.0/16", "kubeadm_pod_subnet: 10.244.0.0/16 -> 10.42.0.0/16"),
    (", kubeadm_cni: calico", "kubeadm_cni: flannel -> calico"),
])
def test_a_fixed_setting_change_is_refused_before_any_host_is_contacted(
    tmp_path: Path, extra: str, expected: str
) -> None:
    kubeadm_inventory(tmp_path, extra)
    result = run(tmp_path, "up", "--json")
    assert result.returncode == 4, result.stdout + result.stderr
    assert expected in json.loads(result.stdout)["error"]["message"]
    assert not list((tmp_path / "state" / "edge").glob("artifacts/*/*")), "a playbook ran before the refusal"


def test_unchanged_settings_go_on_to_the_hosts(tmp_path: Path) -> None:
    kubeadm_inventory(tmp_path)
    result = run(tmp_path, "up", "--json")
    assert result.returncode != 4, result.stdout + result.stderr  # it went on and failed at the unreachable host
    first = json.loads(result.stdout)["phases"][0]
    assert first["name"] == "settings" and first["status"] == "ok"


def test_an_artifact_folder_without_the_release_is_refused_before_any_host_is_contacted(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    kubeadm_inventory(tmp_path, f", kubeadm_package_source: artifacts, kubeadm_artifact_dir: {tmp_path / 'k8s'}")
    result = run(tmp_path, "up", "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"kubeadm_artifact_dir: {tmp_path / 'k8s'} has no v1.30.2/bin/linux/ folder" in result.stdout
    assert not list((tmp_path / "state" / "edge").glob("artifacts/*/*"))


def test_an_artifact_folder_with_the_release_goes_on_to_the_hosts(tmp_path: Path) -> None:
    (tmp_path / "k8s" / "v1.30.2" / "bin" / "linux").mkdir(parents=True)
    kubeadm_inventory(tmp_path, ", kubeadm_package_source: artifacts, kubeadm_artifact_dir: k8s")
    result = run(tmp_path, "up", "--json")
    assert result.returncode not in (2, 4), result.stdout + result.stderr  # on to the unreachable host
    assert json.loads(result.stdout)["phases"][0]["name"] == "settings"
