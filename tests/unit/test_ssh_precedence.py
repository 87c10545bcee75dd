"""The probe (pyinfra/paramiko) and Ansible use the same known_hosts file for every source of the setting.

Ansible's ssh connection plugin writes, in this order: ssh_args (ANSIBLE_SSH_ARGS: the CLI's --known-hosts), then
ansible_ssh_common_args, then ansible_ssh_extra_args; ssh keeps the first value of an option. The probe must pick
what that command line would (issue 18: they disagreed, the probe used the inventory's file, Ansible the CLI's).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from provisioner.inventory.host_checks import known_hosts_file
from provisioner.inventory.model import Host
from provisioner.probe import SshSettings, _connector_data
from provisioner.runner import SshOptions

pytestmark = pytest.mark.unit


def ansible_known_hosts(cli: Path | None, common: str | None, extra: str | None) -> str | None:
    """The UserKnownHostsFile the ssh command line Ansible builds ends up using (first one wins)."""
    words = shlex.split(SshOptions(known_hosts=cli).envvars()["ANSIBLE_SSH_ARGS"])
    words += shlex.split(common or "") + shlex.split(extra or "")
    options = [w.split("=", 1)[1] for w in words if w.startswith("UserKnownHostsFile=")]
    return options[0] if options else None


@pytest.mark.parametrize(
    ("cli", "common", "extra"),
    [
        (None, None, None),
        (Path("/cli/known_hosts"), None, None),
        (Path("/cli/known_hosts"), "-o UserKnownHostsFile=/inv/common", None),
        (None, "-o UserKnownHostsFile=/inv/common", None),
        (None, None, "-o UserKnownHostsFile=/inv/extra"),
        (None, "-o UserKnownHostsFile=/inv/common", "-o UserKnownHostsFile=/inv/extra"),
        (Path("/cli/known_hosts"), "-o UserKnownHostsFile=/inv/common", "-o UserKnownHostsFile=/inv/extra"),
    ],
)
def test_probe_and_ansible_agree_on_the_known_hosts_file(cli: Path | None, common: str | None, extra: str | None) -> None:
    host = Host(name="s1", address="10.0.0.1", port=22, user=None, role="server", ssh_common_args=common,
                ssh_extra_args=extra, known_hosts_file=known_hosts_file(common, extra))
    probe = _connector_data(host, SshSettings(known_hosts=cli)).get("ssh_known_hosts_file")
    assert probe == ansible_known_hosts(cli, common, extra)
