"""First contact with hosts whose keys are not recorded yet (freshly flashed boards): `up` refuses and says to run
`provision trust`; `provision trust` shows each host's fingerprint (the one the host itself reports) and records it
when agreed. Then, as on a board with a default user, `up` logs in as a non-root user whose sudo asks for a
password: refused without it and with a wrong one (the probe tries it on sudo's stdin), done with it, and the
password is in no output or state file. A host whose key later changes (reinstalled, or someone in the middle) is
refused by `provision trust` and by `up`, and nothing replaces the recorded key.

The lab's own known_hosts file (tests/lab) is not used here: the runs get an empty one with --known-hosts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import LabCluster

pytestmark = pytest.mark.lab

PASSWORD = "lab sudo pw;$(id)"  # noqa: S105 - the lab user's sudo password, with characters a shell would mangle
SUDO_USER = (
    "useradd --create-home --shell /bin/bash edge && echo 'edge:lab sudo pw;$(id)' | chpasswd"
    " && install -d -m 700 -o edge -g edge /home/edge/.ssh"
    " && install -m 600 -o edge -g edge /root/.ssh/authorized_keys /home/edge/.ssh/authorized_keys"
    " && echo 'edge ALL=(ALL:ALL) ALL' > /etc/sudoers.d/edge && chmod 440 /etc/sudoers.d/edge"
)


def host_fingerprint(lab, host: str) -> str:
    """The ed25519 key's fingerprint as the host prints it about itself (what a user reads on a board's console)."""
    out = lab.exec(host, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub", check=True).stdout
    return out.split()[1]


def test_unknown_keys_refused_then_trusted_then_a_changed_key_refused(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["s1"])
    cluster = LabCluster(lab, tmp_path / "cluster", servers=["s1"], agents=[])
    fresh = tmp_path / "fresh_known_hosts"
    fresh.touch()

    unknown = cluster.provision("up", "--json", "--known-hosts", str(fresh))
    assert unknown.rc == 3, unknown.stdout[-3000:] + unknown.stderr[-3000:]
    assert "provision trust" in unknown.stdout, unknown.stdout[-3000:]
    assert lab.exec("s1", "test -e /usr/local/bin/k3s").returncode != 0  # nothing changed

    trusted = cluster.provision("trust", "--yes", "--json", "--known-hosts", str(fresh))
    assert trusted.rc == 0, trusted.stdout + trusted.stderr
    document = json.loads(trusted.stdout)
    s1 = document["hosts"]["s1"]
    assert s1["state"] == "new" and host_fingerprint(lab, "s1") in s1["recorded"], s1
    assert document["recorded"] == len(s1["recorded"]) > 0
    again = cluster.provision("trust", "--json", "--known-hosts", str(fresh))  # nothing new: no question asked
    assert again.rc == 0 and json.loads(again.stdout)["hosts"]["s1"]["state"] == "known", again.stdout

    # A login user whose sudo wants a password, as on many boards' images.
    lab.exec("s1", SUDO_USER, check=True)
    cluster.extra_vars.update({"ansible_user": "edge", "ansible_become": True})
    cluster.write_inventory()
    no_password = cluster.provision("up", "--json", "--known-hosts", str(fresh))
    assert no_password.rc != 0 and "--ask-become-pass" in no_password.stdout, no_password.stdout[-3000:]
    wrong = cluster.provision("up", "--json", "--known-hosts", str(fresh),
                              env={"PROVISION_BECOME_PASSWORD": "not-the-password"})
    assert wrong.rc != 0 and "sudo refused the become password" in wrong.stdout, wrong.stdout[-3000:]
    assert lab.exec("s1", "test -e /usr/local/bin/k3s").returncode != 0  # nothing changed

    up = cluster.provision("up", "--json", "--known-hosts", str(fresh), env={"PROVISION_BECOME_PASSWORD": PASSWORD})
    assert up.rc == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert PASSWORD not in up.stdout + up.stderr
    assert [str(f) for f in cluster.state_dir.rglob("*") if f.is_file() and PASSWORD.encode() in f.read_bytes()] == []
    assert lab.exec("s1", "systemctl is-active k3s", check=True).stdout.strip() == "active"

    # The host is "reinstalled": new host keys. Neither trust nor up accepts it, and the record stays as it was.
    recorded = fresh.read_text()
    lab.exec("s1", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh", check=True)
    # Ansible's ssh keeps a master connection open for a minute (ControlPersist) and reuses it without a new key
    # exchange; a reinstalled host has none: end the lab user's sessions on it.
    lab.exec("s1", "pkill -KILL -u edge; true", check=True)
    changed = cluster.provision("trust", "--yes", "--json", "--known-hosts", str(fresh))
    assert changed.rc == 4, changed.stdout + changed.stderr
    details = " ".join(json.loads(changed.stdout)["error"]["details"])
    assert "key CHANGED" in details and host_fingerprint(lab, "s1") in details and "ssh-keygen -f" in details
    assert fresh.read_text() == recorded
    refused = cluster.provision("up", "--json", "--known-hosts", str(fresh))
    assert refused.rc == 3, refused.stdout[-3000:]
    assert "provision trust" in refused.stdout, refused.stdout[-3000:]
