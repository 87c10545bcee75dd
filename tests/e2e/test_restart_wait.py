"""The k3s role's restart is finished before the role moves on, even when systemd holds the restart job back.

The role restarts K3s without blocking (a broken node would never send READY) and then waits for the unit. A unit
that is still "active" because its restart job has not been dispatched yet must not count as restarted: a rolling
restart that moved on then restarts the next server while this one is still going down (the HA lab test saw it once
as servers restarted out of order). Here a helper unit ordered after the service, and part of it, stops slowly, so
systemd keeps the service's restart job waiting for several seconds while the service itself stays active.

No K3s is needed: the role's tasks/run.yml and its handler run against a small notify service on a lab host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from provisioner import paths

pytestmark = pytest.mark.lab

SERVICE = "provision-test-restarted"
HOLDER = "provision-test-holder"
HOLD_S = 8

UNITS = f"""
cat >/etc/systemd/system/{SERVICE}.service <<'EOF'
[Unit]
Description=provision test: a notify service restarted by the k3s role's handler
[Service]
Type=notify
NotifyAccess=all
ExecStart=/bin/bash -c 'sleep 1; systemd-notify --ready; exec sleep infinity'
[Install]
WantedBy=multi-user.target
EOF
cat >/etc/systemd/system/{HOLDER}.service <<'EOF'
[Unit]
Description=provision test: stops slowly before {SERVICE} may restart
After={SERVICE}.service
PartOf={SERVICE}.service
[Service]
ExecStart=/bin/sleep infinity
ExecStop=/bin/sleep {HOLD_S}
EOF
systemctl daemon-reload
systemctl start {SERVICE} {HOLDER}
"""

PLAYBOOK = [{
    "name": "Restart through the k3s role's handler, then wait as the role does",
    "hosts": "all",
    "gather_facts": False,
    "become": True,
    "tasks": [
        {"name": "Ask for a restart", "ansible.builtin.debug": {"msg": "restart"}, "changed_when": True,
         "notify": "Restart k3s"},
        {"name": "Run the role's start and wait",
         "ansible.builtin.import_role": {"name": "k3s", "tasks_from": "run.yml"}},
    ],
}]


def _entered(lab, host: str) -> int:
    out = lab.exec(host, f"systemctl show --property=ActiveEnterTimestampMonotonic --value {SERVICE}", check=True)
    return int(out.stdout.strip())


def test_the_role_waits_for_a_restart_systemd_holds_back(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["h1"], mirror=False)
    lab.exec("h1", UNITS, check=True)
    before = _entered(lab, "h1")

    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"h1": {
        "ansible_host": lab.ip("h1"), "ansible_user": "root",
        "ansible_ssh_private_key_file": str(lab.key_path.resolve()),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={lab.known_hosts.resolve()}"}}}}))
    playbook = tmp_path / "restart.yml"
    playbook.write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False))
    env = os.environ | {"ANSIBLE_ROLES_PATH": str(paths.playbook_dir() / "roles"), "ANSIBLE_NOCOLOR": "1"}
    ran = subprocess.run(
        [Path(sys.executable).parent / "ansible-playbook", "-i", inventory, playbook,
         "-e", f"_k3s_service={SERVICE}", "-e", "k3s_start_timeout=60"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=300)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]

    # When the play returned, the service had been restarted (entered active again) and no job was left for it.
    after = _entered(lab, "h1")
    assert after > before, (before, after)
    assert after - before >= HOLD_S * 1_000_000, (before, after)
    job = lab.exec("h1", f"systemctl show --property=Job --value {SERVICE}", check=True).stdout.strip()
    assert job == "", job
