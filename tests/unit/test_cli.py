"""The CLI boundary: bad input is one clear error and exit code 2, before any host is contacted."""

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from provisioner.cli.main import main
from provisioner.cli.output import JsonReporter

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
KUBEADM_INVENTORY = INVENTORY.replace("k3s_version: v1.28.4", "kubeadm_version: v1.30.2")


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


@pytest.mark.parametrize("command", [["backup"]])
def test_kubeadm_commands_not_built_yet_are_refused_before_any_host_is_asked(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "edge.yml"
    path.write_text(KUBEADM_INVENTORY)
    assert main(["validate", "--flavor", "kubeadm", "--inventory", str(path)]) == 0  # the inventory is fine ...
    capsys.readouterr()
    assert main([command[0], "--flavor", "kubeadm", "--inventory", str(path), *command[1:]]) == 2
    err = capsys.readouterr().err
    assert f"`provision {command[0]}` is not built for Kubernetes (kubeadm) clusters yet" in err
    assert "remove-node, reset, status, up, upgrade" in err
    assert not (tmp_path / "state").exists()  # refused before the state directory or a lock


@pytest.mark.parametrize(("args", "said"), [
    (["--channel", "stable"], "--channel names a K3s release channel; kubeadm clusters take --version vX.Y.Z"),
    (["--version", "v1.31.1+k3s1"], "--version 'v1.31.1+k3s1': a Kubernetes release is v1.MINOR.PATCH"),
    (["--version", "v1.27.3"], "provision installs Kubernetes v1.28 and later"),
    (["--version", "v1.31.1", "--strategy", "plan"], "--strategy plan: kubeadm clusters are upgraded by provision"),
])
def test_kubeadm_upgrade_refuses_what_it_cannot_do_before_any_host_is_asked(
    args: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "edge.yml"
    path.write_text(KUBEADM_INVENTORY)
    assert main(["upgrade", "--flavor", "kubeadm", "--inventory", str(path), *args]) == 2
    assert said in capsys.readouterr().err


def test_a_k3s_inventory_forced_to_kubeadm_names_what_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "edge.yml"
    path.write_text(INVENTORY.replace("v1.28.4", "v1.28.4+k3s2"))
    assert main(["validate", "--flavor", "kubeadm", "--inventory", str(path)]) == 2
    err = capsys.readouterr().err
    assert "k3s_version: is a k3s setting, but this inventory installs kubeadm" in err
    assert "kubeadm_version: is missing" in err


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")


def test_json_output_carries_every_warning_also_when_the_command_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host-key warning and the inventory's warnings reach --json users in the one error document."""
    monkeypatch.setenv("PROVISION_STATE_DIR", str(tmp_path / "state"))
    path = tmp_path / "edge.yml"
    text = KUBEADM_INVENTORY.replace("  children:", "    kubeadm_frobnicate: 1\n  children:")
    path.write_text(text)
    code = main(["backup", "--json", "--no-host-key-checking", "--flavor", "kubeadm", "--inventory", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    document = json.loads(captured.out)  # exactly one JSON document on stdout
    assert document["status"] == "error" and "not built for" in document["error"]
    assert any("host-key checking is OFF" in w for w in document["warnings"]), document
    assert any("kubeadm_frobnicate" in w for w in document["warnings"]), document


def test_json_result_document_merges_gathered_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    reporter = JsonReporter()
    reporter.warn("SSH host-key checking is OFF")
    reporter.warn("SSH host-key checking is OFF")
    reporter.document({"status": "ok", "warnings": ["from the inventory"]})
    assert capsys.readouterr().out == ""  # held until the command ends, so that a later error joins it
    reporter.flush()
    assert json.loads(capsys.readouterr().out)["warnings"] == ["from the inventory", "SSH host-key checking is OFF"]


def test_version_names_the_tool_ansible_core_and_the_playbooks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"provision {version('provision')}"
    assert lines[1] == f"ansible-core {version('ansible-core')}"
    playbooks = Path(lines[2].removeprefix("playbooks "))
    assert (playbooks / "up.yml").is_file() and (playbooks / "roles" / "k3s").is_dir()
