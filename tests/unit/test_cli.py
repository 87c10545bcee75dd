"""The CLI boundary: bad input is one clear error and exit code 2, before any host is contacted."""

from pathlib import Path

import pytest

from provisioner.cli.main import main

pytestmark = pytest.mark.unit

INVENTORY = """
all:
  vars:
    provision_cluster_name: edge
    k3s_version: v1.28.4
  children:
    server:
      hosts:
        pi-1: {ansible_host: 10.0.0.11}
"""


def test_bad_inventory_exits_2_naming_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "edge.yml"
    path.write_text(INVENTORY)
    code = main(["validate", "--inventory", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: the inventory has 1 problem" in err
    assert f"{path}:5" in err and "k3s_version" in err and "v1.28.4+k3s1" in err


def test_up_with_bad_inventory_touches_no_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "edge.yml"
    path.write_text(INVENTORY)
    assert main(["up", "--inventory", str(path)]) == 2
    assert not (tmp_path / "state").exists()


def test_kubeadm_flavor_is_reported_as_not_available(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "edge.yml"
    path.write_text(INVENTORY.replace("v1.28.4", "v1.28.4+k3s2"))
    assert main(["up", "--flavor", "kubeadm", "--inventory", str(path)]) == 2
    assert "not available in this release" in capsys.readouterr().err


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
