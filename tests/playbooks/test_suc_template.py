"""The system-upgrade-controller template renders the same under Ansible (what the role applies) and under the CLI's
Jinja2 (what `--dry-run` shows), and the role's defaults and checks agree with the inventory model's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.flavors.k3s.suc import PlanSettings, plan_template, render_plans
from provisioner.inventory.model import DEFAULT_UPGRADE_IMAGE
from provisioner.inventory.syntax import IMAGE_REPOSITORY_RE

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "k3s_upgrade"
BIN_DIR = Path(sys.executable).parent

pytestmark = pytest.mark.unit


def _write_task() -> dict[str, Any]:
    tasks = yaml.safe_load((ROLE / "tasks" / "plan.yml").read_text())
    return next(t for t in tasks if t["name"] == "Write the Plans")


def _ansible_render(tmp_path: Path, role_vars: dict[str, Any]) -> str:
    """Render the template with the role's own task vars, through ansible-playbook on localhost."""
    task = _write_task()
    dest = tmp_path / "plans.yaml"
    play = [{
        "name": "Render the Plans as the role does",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": "Write the Plans",
                   "ansible.builtin.template": {"src": str(plan_template()), "dest": str(dest), "mode": "0600"},
                   "vars": task["vars"]}],
    }]
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump(play))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(role_vars | {"ansible_python_interpreter": sys.executable}))
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN_DIR), os.environ.get("PATH", "")]), ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [str(BIN_DIR / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{extra}", str(playbook)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dest.read_text()


@pytest.mark.parametrize("drain", [True, False])
def test_ansible_and_the_cli_render_the_same_plans(tmp_path: Path, drain: bool) -> None:
    # As plain ansible-playbook -e would pass them: strings, which the role's task vars turn into int and bool.
    role_vars = {
        "_k3s_target_version": "v1.29.0+k3s1",
        "k3s_upgrade_image": "registry.site:5000/mirror/k3s-upgrade",
        "k3s_upgrade_max_unavailable": "2",
        "k3s_upgrade_drain": "true" if drain else "false",
        "k3s_upgrade_drain_timeout": "90",
    }
    expected = render_plans(PlanSettings("v1.29.0+k3s1", "registry.site:5000/mirror/k3s-upgrade", 2, drain, 90))
    assert _ansible_render(tmp_path, role_vars) == expected
    assert ("drain:" in expected) is drain


def test_role_default_image_and_pattern_match_the_inventory_model() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert defaults["k3s_upgrade_image"] == DEFAULT_UPGRADE_IMAGE
    assert variables["_k3s_upgrade_image_pattern"] == IMAGE_REPOSITORY_RE.pattern
    assert defaults["k3s_upgrade_strategy"] == "rolling"
