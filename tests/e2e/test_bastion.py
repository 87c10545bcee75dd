"""A site reachable only through a jump host (issue 18): its hosts sit on a network this machine is not attached to
(`Lab.move_behind`), known by names only the site resolves. Without the jump host the run stops in the probe, with
nothing changed (membership cannot ask s1); with ProxyJump in the SSH configuration file the inventory names (-F), the probe and Ansible both go
through the jump host and K3s is installed, downloading from the site's mirror.

The jump host is checked against the file's UserKnownHostsFile (OpenSSH reaches a ProxyJump host with the
configuration file only); the site host against --known-hosts, under its site name, where `provision trust` records
it after fetching it through the jump host.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import LabCluster

pytestmark = pytest.mark.lab


def test_a_site_behind_a_jump_host_is_probed_and_installed_through_it(make_lab, tmp_path: Path) -> None:
    lab = make_lab(["jump", "s1"])
    lab_ip = lab.ip("s1")
    scanned = lab.known_hosts.read_text().splitlines()
    jump_keys = [line for line in scanned if line.split()[0] == lab.ip("jump")]
    site_keys = [" ".join(["s1", *line.split()[1:]]) for line in scanned if line.split()[0] == lab_ip]
    assert jump_keys and site_keys
    lab.move_behind("jump", ["s1"])

    jump_known = tmp_path / "jump_known_hosts"
    jump_known.write_text("\n".join(jump_keys) + "\n")
    site_known = tmp_path / "site_known_hosts"
    site_known.touch()  # a board seen for the first time
    config = tmp_path / "site_ssh_config"
    config.write_text(
        f"Host site-jump\n  HostName {lab.ip('jump')}\n  User root\n  IdentityFile {lab.key_path.resolve()}\n"
        f"  UserKnownHostsFile {jump_known}\n  StrictHostKeyChecking yes\n\n"
        "Host s1\n  ProxyJump site-jump\n"
    )
    mirror = lab.mirror_url.replace(lab.mirror_ip, "mirror")  # the site reaches the mirror by its site name
    cluster = LabCluster(
        lab, tmp_path / "cluster", servers=["s1"], agents=[],
        extra_vars={"k3s_release_url": mirror, "k3s_channel_url": f"{mirror}/v1-release/channels"},
        host_vars={"s1": {"ansible_host": "s1", "ansible_ssh_common_args": f"-o UserKnownHostsFile={site_known}"}},
    )

    direct = cluster.provision("up", "--json", "--known-hosts", str(site_known))
    assert direct.rc == 3, direct.stdout[-3000:] + direct.stderr[-3000:]
    details = json.loads(direct.stdout)["error"]["details"]
    assert any(line.startswith("s1: unreachable") for line in details), details
    assert lab.exec("s1", "test -e /usr/local/bin/k3s").returncode != 0  # nothing changed

    cluster.host_vars["s1"]["ansible_ssh_common_args"] = f"-F {config}"
    cluster.write_inventory()
    # provision trust fetches the key through the jump host (ssh-keyscan run there) and records it under the
    # name ssh checks: the site name.
    trusted = cluster.provision("trust", "--yes", "--json", "--known-hosts", str(site_known))
    assert trusted.rc == 0, trusted.stdout + trusted.stderr
    assert json.loads(trusted.stdout)["hosts"]["s1"]["state"] == "new"
    assert sorted(site_known.read_text().splitlines()) == sorted(site_keys)
    up = cluster.provision("up", "--json", "--known-hosts", str(site_known))
    assert up.rc == 0, up.stdout[-4000:] + up.stderr[-3000:]
    assert lab.exec("s1", "systemctl is-active k3s", check=True).stdout.strip() == "active"
    # The jump host carried the sessions: its sshd saw the logins that forwarded them.
    log = lab.exec("jump", "journalctl -u ssh --no-pager -o cat", check=True).stdout
    assert log.count("Accepted publickey for root") >= 2, log[-2000:]
