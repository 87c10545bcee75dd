"""Every Molecule scenario under molecule/ passes `molecule test` (create, converge, idempotence, verify, destroy).

The scenarios import the product's own playbooks; their verify steps assert real outcomes on the lab hosts. This
wrapper runs each one as a user would, from the repository root with the virtualenv's molecule and ansible, and also
checks the whole output for leaked cluster tokens (the roles must never print them).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIO_ROOT = REPO_ROOT / "molecule"
#: The scenario wall time budget; a scenario slower than this is a failure, not a hang. On a 2-core machine shared
#: with other test runs (load ~10) `single` took ~20 min and `ha-etcd` longer; idle, both are several times faster.
SCENARIO_TIMEOUT_S = 3000
TAIL_LINES = 120

#: A full K3s token or a password in an env-file line: neither may ever reach the output.
TOKEN_PATTERNS = (
    re.compile(r"K10[0-9a-f]{64}::\w+:\S+"),
    re.compile(r"K3S_TOKEN=[A-Za-z0-9]"),
    re.compile(r"K3S_AGENT_TOKEN=[A-Za-z0-9]"),
)
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\x1b\]8;;[^\x1b]*\x1b\\")

pytestmark = [pytest.mark.molecule, pytest.mark.lab]


def scenario_names() -> list[str]:
    """Scenarios are directories holding a molecule.yml (molecule/_shared holds the shared playbooks only)."""
    return sorted(path.parent.name for path in SCENARIO_ROOT.glob("*/molecule.yml"))


def venv_environment(lab_image: str) -> dict[str, str]:
    """Run with this interpreter's bin directory first on PATH, so molecule finds the same ansible-playbook."""
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["PROVISION_LAB_IMAGE"] = lab_image
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PY_COLORS"] = "0"
    env["NO_COLOR"] = "1"
    return env


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


# Outside the default run (-m heavy) to keep it within 60 minutes on 2 cores: the upgrade, reset and ha-external-db
# scenarios, whose paths the lab tests also cover (tests/upgrade/test_upgrade_lab.py, tests/e2e/test_lifecycle.py reset,
# tests/ha/test_ha_lab.py on PostgreSQL and MariaDB with a no-op rerun); kubeadm-upgrade (the kubeadm upgrade lab test,
# tests/upgrade/test_kubeadm_upgrade_lab.py, runs the same playbook through the CLI); single (one server on SQLite and
# an agent: tests/e2e/test_up.py installs the same topology through the same playbooks, with a no-op rerun). The
# default run keeps Molecule's ha-etcd (K3s) and kubeadm scenarios.
HEAVY_SCENARIOS = ("reset", "upgrade", "ha-external-db", "kubeadm-upgrade", "single")


@pytest.mark.parametrize("scenario", [
    pytest.param(name, marks=pytest.mark.heavy) if name in HEAVY_SCENARIOS else name for name in scenario_names()
])
@pytest.mark.timeout(SCENARIO_TIMEOUT_S + 120)
def test_scenario(scenario: str, lab_image: str) -> None:
    molecule = Path(sys.executable).parent / "molecule"
    started = time.monotonic()
    result = subprocess.run(
        [str(molecule), "test", "--scenario-name", scenario],
        cwd=REPO_ROOT,
        env=venv_environment(lab_image),
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = ANSI_ESCAPE.sub("", result.stdout + result.stderr)
    print(f"molecule scenario {scenario}: rc={result.returncode} in {elapsed:.0f}s")
    assert result.returncode == 0, f"molecule test -s {scenario} failed (rc {result.returncode}):\n{tail(output)}"
    leaks = [pattern.pattern for pattern in TOKEN_PATTERNS if pattern.search(output)]
    assert not leaks, f"scenario {scenario} printed something that looks like a cluster token ({leaks})"
