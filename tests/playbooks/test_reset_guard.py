"""The reset role deletes whole directories: its guard refuses any but K3s's own, whatever the inventory says.
Only the guard's task file runs (on this machine, through ansible-playbook): nothing is stopped or deleted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.playbook_code import PLAYBOOKS

pytestmark = pytest.mark.unit

BIN_DIR = Path(sys.executable).parent


def run_guard(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    play = [{"name": "Reset guard", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Guard", "ansible.builtin.include_role": {"name": "k3s_reset", "tasks_from": "guard.yml"}},
    ]}]
    playbook = tmp_path / "guard.yml"
    playbook.write_text(yaml.safe_dump(play))
    args = [a for k, v in extra.items() for a in ("-e", f"{k}={v}")]
    return subprocess.run(
        [str(BIN_DIR / "ansible-playbook"), "-i", "localhost,", "-c", "local", *args, str(playbook)],
        capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path,
        env=os.environ | {"ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"), "ANSIBLE_LOCALHOST_WARNING": "False",
                          "ANSIBLE_NOCOLOR": "1"},
    )


@pytest.mark.parametrize("extra", [{}, {"k3s_data_dir": "/var/lib/rancher/k3s/"}])
def test_k3s_own_directories_pass(tmp_path: Path, extra: dict[str, str]) -> None:
    result = run_guard(tmp_path, extra)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("extra", [{"k3s_data_dir": "/"}, {"k3s_config_dir": "/etc"}, {"k3s_data_dir": "/data/k3s"}])
def test_other_directories_are_refused(tmp_path: Path, extra: dict[str, str]) -> None:
    result = run_guard(tmp_path, extra)
    assert result.returncode != 0
    assert "Refusing to reset" in result.stdout and "must be K3s's own" in result.stdout, result.stdout
