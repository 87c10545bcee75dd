"""First contact with hosts whose keys are not recorded yet (freshly flashed boards): `up` refuses and says to run
`provision trust`; `provision trust` shows each host's fingerprint (the one the host itself reports) and records it
when agreed; then `up` works. A host whose key later changes (reinstalled, or someone in the middle) is refused by
`provision trust` and by `up`, and nothing replaces the recorded key.

The lab's own known_hosts file (tests/lab) is not used here: the runs get an empty one with --known-hosts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import LabCluster

pytestmark = pytest.mark.lab


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
    assert fresh.stat().st_mode & 0o777 == 0o600
    again = cluster.provision("trust", "--json", "--known-hosts", str(fresh))  # nothing new: no question asked
    assert again.rc == 0 and json.loads(again.stdout)["hosts"]["s1"]["state"] == "known", again.stdout

    up = cluster.provision("up", "--json", "--known-hosts", str(fresh))
    assert up.rc == 0, up.stdout[-3000:] + up.stderr[-3000:]

    # The host is "reinstalled": new host keys. Neither trust nor up accepts it, and the record stays as it was.
    recorded = fresh.read_text()
    lab.exec("s1", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh", check=True)
    changed = cluster.provision("trust", "--yes", "--json", "--known-hosts", str(fresh))
    assert changed.rc == 4, changed.stdout + changed.stderr
    details = " ".join(json.loads(changed.stdout)["error"]["details"])
    assert "key CHANGED" in details and host_fingerprint(lab, "s1") in details and "ssh-keygen -f" in details
    assert fresh.read_text() == recorded
    refused = cluster.provision("up", "--json", "--known-hosts", str(fresh))
    assert refused.rc == 3, refused.stdout[-3000:]
    assert "provision trust" in refused.stdout
