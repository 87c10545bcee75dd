"""Shipped playbooks, roles and Molecule scenarios pass ansible-lint's production profile and the syntax check.

Both run offline (no Galaxy): collections come from the PyPI `ansible` package installed in the virtualenv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted((REPO_ROOT / "playbooks").glob("*.yml"))
BIN_DIR = Path(sys.executable).parent

#: Enough hosts in the groups the playbooks target for every `hosts:` pattern (server[0], server[1:], agent) to resolve.
SYNTAX_INVENTORY = """\
server:
  hosts:
    s1: {}
    s2: {}
agent:
  hosts:
    a1: {}
"""

#: Extra variables a playbook documents as required on its command line.
REQUIRED_EXTRA_VARS = {"remove_node.yml": "k3s_remove_node=a1"}

pytestmark = pytest.mark.unit


def tool_environment() -> dict[str, str]:
    """The virtualenv's tools first on PATH, Galaxy never consulted."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN_DIR), env.get("PATH", "")])
    env["ANSIBLE_LINT_OFFLINE"] = "1"
    env["NO_COLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    return env


def test_ansible_lint_production_profile_passes() -> None:
    config = REPO_ROOT / ".ansible-lint"
    assert "profile: production" in config.read_text(encoding="utf-8")
    result = subprocess.run(
        [str(BIN_DIR / "ansible-lint"), "--offline", "playbooks", "molecule"],
        cwd=REPO_ROOT,
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = (result.stdout + result.stderr)[-8000:]
    assert result.returncode == 0, f"ansible-lint found problems:\n{report}"


def test_there_are_playbooks_to_check() -> None:
    assert {path.name for path in PLAYBOOKS} >= {"up.yml", "prepare.yml", "install.yml", "verify.yml"}


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda path: path.name)
def test_playbook_syntax(playbook: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(SYNTAX_INVENTORY, encoding="utf-8")
    extra_vars = ["--extra-vars", REQUIRED_EXTRA_VARS[playbook.name]] if playbook.name in REQUIRED_EXTRA_VARS else []
    command = [str(BIN_DIR / "ansible-playbook"), "--syntax-check", "--inventory", str(inventory), *extra_vars]
    result = subprocess.run(
        [*command, str(playbook)],
        cwd=REPO_ROOT,
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{playbook.name}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
