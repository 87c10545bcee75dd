"""The probe (pyinfra/paramiko) and Ansible reach every host with the same SSH settings, whatever sets them (issue 18).

Ansible's side is not modelled here: real `ansible` runs with the product's environment (``SshSettings.envvars``)
against an inventory that sets each setting through a different source, with an ``ssh`` executable that records
the command line Ansible built and connects to nothing. OpenSSH itself (`ssh -G` over that recorded command line)
then says what ssh would have used. The probe's side is what paramiko reads from the ssh_config the probe is given
(``render_probe_config``), looked up the way pyinfra looks it up. Both must agree on host name, port, user, key
files, known_hosts files, host-key policy and jump hosts, for every source: the command line (--known-hosts,
--no-host-key-checking), the inventory (ansible_port, ansible_user, ansible_ssh_private_key_file, -o options in
ansible_ssh_common_args and ansible_ssh_extra_args) and the SSH configuration file (here named with -F in the
inventory: OpenSSH reads ~/.ssh/config from the passwd home, which a test cannot redirect; the rules are the same).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
import yaml

from provisioner.inventory import load_inventory
from provisioner.ssh_config import SshSettings, probe_alias, render_probe_config, resolve

pytestmark = pytest.mark.unit

SSH_CONFIG = """\
Host 10.1.0.3
  User ubuntu
Host 10.1.0.4
  Port 2200
Host 10.1.0.5
  IdentityFile /keys/from-config
Host 10.1.0.6
  User pi
  Port 2201
  IdentityFile /keys/site
  UserKnownHostsFile /site/known_hosts
  ProxyJump bastion
Host board7
  HostName 10.1.0.7
  User admin
Host bastion
  HostName 10.9.9.9
  User jumper
  Port 2022
  UserKnownHostsFile /site/bastion_known_hosts
"""


def hosts(config: Path) -> dict[str, dict[str, object]]:
    """One inventory host per source of a setting; all of them read the -F file."""
    return {
        "h1": {"ansible_host": "10.1.0.1"},  # defaults (and the command line's settings in the second run)
        "h2": {"ansible_host": "10.1.0.2", "ansible_ssh_common_args": f"-F {config} -o UserKnownHostsFile=/inv/common",
               "ansible_ssh_extra_args": "-o UserKnownHostsFile=/inv/extra -o User=extra"},
        "h3": {"ansible_host": "10.1.0.3", "ansible_user": "root"},  # wins over the file's User ubuntu
        "h4": {"ansible_host": "10.1.0.4", "ansible_port": 2222},  # wins over the file's Port 2200
        "h5": {"ansible_host": "10.1.0.5", "ansible_ssh_private_key_file": "/keys/from-inventory"},  # both tried
        "h6": {"ansible_host": "10.1.0.6"},  # everything from the file, a jump host included
        "h7": {"ansible_host": "board7", "ansible_ssh_extra_args": "-o StrictHostKeyChecking=accept-new"},
        "h8": {"ansible_host": "10.1.0.8", "ansible_ssh_common_args": f"-F {config} -J edge@10.9.9.8:2023"},
    }


@pytest.fixture
def site(tmp_path: Path) -> Path:
    config = tmp_path / "ssh_config"
    config.write_text(SSH_CONFIG)
    record = tmp_path / "ssh-calls.jsonl"
    fake = tmp_path / "recording-ssh"
    fake.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "sys.stderr.write('recorded, not connected\\n')\nsys.exit(255)\n"
    )
    fake.chmod(0o755)
    inventory = {
        "all": {
            "vars": {"ansible_ssh_common_args": f"-F {config}", "k3s_version": "v1.28.4+k3s2",
                     "provision_cluster_name": "site"},
            "children": {"server": {"hosts": {"h1": None}}, "agent": {"hosts": {
                name: values for name, values in hosts(config).items() if name != "h1"}}},
        }
    }
    inventory["all"]["children"]["server"]["hosts"]["h1"] = hosts(config)["h1"]
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    return tmp_path


def ansible_view(site: Path, settings: SshSettings) -> dict[str, dict[str, list[str]]]:
    """Run real Ansible once over every host; for each host, what `ssh -G` says of the command line it built."""
    record = site / "ssh-calls.jsonl"
    record.unlink(missing_ok=True)
    env = os.environ | settings.envvars() | {
        "ANSIBLE_SSH_EXECUTABLE": str(site / "recording-ssh"), "ANSIBLE_SSH_RETRIES": "0",
        "ANSIBLE_LOCAL_TEMP": str(site / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
    }
    ansible = Path(sys.executable).parent / "ansible"
    subprocess.run([str(ansible), "all", "-i", str(site / "inventory.yml"), "-m", "ansible.builtin.ping", "-f", "10"],
                   env=env, capture_output=True, text=True, check=False, timeout=120)
    views: dict[str, dict[str, list[str]]] = {}
    for line in record.read_text().splitlines():
        argv = json.loads(line)
        shown = subprocess.run(["ssh", "-G", *argv], capture_output=True, text=True, check=True).stdout
        values: dict[str, list[str]] = {}
        for row in shown.splitlines():
            key, _, value = row.partition(" ")
            values.setdefault(key.lower(), []).append(value)
        views[_host_of(argv)] = values
    return views


def _host_of(argv: list[str]) -> str:
    """The destination in ssh's argv as Ansible builds it: the word before the remote command."""
    return argv[-2]


def probe_view(site: Path, settings: SshSettings) -> dict[str, dict[str, object]]:
    """What paramiko (pyinfra's SSHConfig lookup) reads for each host from the probe's generated ssh_config."""
    cluster = load_inventory(site / "inventory.yml")
    resolved = resolve(cluster.hosts, settings)
    (site / "probe_config").write_text(render_probe_config(resolved.values()))
    parsed = paramiko.SSHConfig.from_path(str(site / "probe_config"))
    return {host.address: dict(parsed.lookup(probe_alias(host.name))) for host in cluster.hosts}


@pytest.mark.parametrize("settings", [
    SshSettings(),
    SshSettings(known_hosts=Path("/cli/known_hosts"), strict_host_key_checking=False),
], ids=["inventory-and-config", "command-line-too"])
def test_probe_and_ansible_agree_on_every_setting_from_every_source(site: Path, settings: SshSettings) -> None:
    ansible = ansible_view(site, settings)
    probe = probe_view(site, settings)
    assert set(ansible) == set(probe) == {f"10.1.0.{n}" for n in (1, 2, 3, 4, 5, 6, 8)} | {"board7"}
    for address, seen in ansible.items():
        mine = probe[address]
        identity = seen["identityfile"]
        defaults = [f"~/.ssh/{name}" for name in ("id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk",
                                                   "id_xmss", "id_dsa")]
        assert mine["hostname"] == seen["hostname"][0], address
        assert mine["port"] == seen["port"][0], address
        assert mine["user"] == seen["user"][0], address
        assert mine.get("identityfile", []) == ([] if identity == defaults else identity), address
        assert mine["userknownhostsfile"] == seen["userknownhostsfile"][0], address
        strict = {"true": "yes", "ask": "yes", "false": "no", "accept-new": "accept-new"}[seen["stricthostkeychecking"][0]]
        assert mine["stricthostkeychecking"] == strict, address
        assert ("proxyjump" in mine) == ("proxyjump" in seen), address
    # The values themselves, so that agreeing on nothing cannot pass.
    assert ansible["10.1.0.3"]["user"] == ["root"] and ansible["10.1.0.4"]["port"] == ["2222"]
    assert probe["10.1.0.5"]["identityfile"] == ["/keys/from-inventory", "/keys/from-config"]
    assert probe["10.1.0.6"]["proxyjump"] == "jumper@10.9.9.9:2022" and probe["10.1.0.6"]["user"] == "pi"
    assert probe["10.1.0.8"]["proxyjump"] == "edge@10.9.9.8:2023"
    assert probe["board7"]["hostname"] == "10.1.0.7" and probe["board7"]["user"] == "admin"
    bastion = paramiko.SSHConfig.from_path(str(site / "probe_config")).lookup("10.9.9.9")
    assert bastion["userknownhostsfile"] == "/site/bastion_known_hosts"  # the jump host: the file only, as ssh does
    if settings.known_hosts is None:
        assert probe["10.1.0.2"]["userknownhostsfile"] == "/inv/common" and probe["10.1.0.2"]["user"] == "extra"
        assert probe["board7"]["stricthostkeychecking"] == "accept-new"
    else:
        assert {probe[a]["userknownhostsfile"] for a in probe} == {"/cli/known_hosts"}
        assert {probe[a]["stricthostkeychecking"] for a in probe} == {"no"}


def test_a_conflict_between_two_sources_names_the_winner(site: Path) -> None:
    cluster = load_inventory(site / "inventory.yml")
    resolved = resolve(cluster.hosts, SshSettings(known_hosts=Path("/cli/known_hosts")))
    assert "User root from ansible_user wins over ubuntu from " + str(site / "ssh_config") in resolved["h3"].conflicts
    assert any(c.startswith("Port 2222 from ansible_port wins over 2200") for c in resolved["h4"].conflicts)
    assert any("/cli/known_hosts from --known-hosts wins over /inv/common from ansible_ssh_common_args" in c
               for c in resolved["h2"].conflicts), resolved["h2"].conflicts
    assert any("/inv/extra from ansible_ssh_extra_args" in c for c in resolved["h2"].conflicts)
    assert resolved["h1"].conflicts == ()
    assert not any("IdentityFile" in c for c in resolved["h5"].conflicts)  # ssh tries both: no conflict


def test_a_jump_host_is_resolved_with_the_file_only_like_openssh(site: Path) -> None:
    cluster = load_inventory(site / "inventory.yml")
    resolved = resolve(cluster.hosts, SshSettings(known_hosts=Path("/cli/known_hosts")))
    (hop,) = resolved["h6"].hops
    assert (hop.hostname, hop.port, hop.user) == ("10.9.9.9", 2022, "jumper")
    assert hop.known_hosts == ("/site/bastion_known_hosts",)  # --known-hosts is for the targets, not the jump
    assert resolved["h6"].known_hosts_file == Path("/cli/known_hosts")
    words = shlex.split(SshSettings(known_hosts=Path("/cli/known_hosts")).envvars()["ANSIBLE_SSH_ARGS"])
    assert "UserKnownHostsFile=/cli/known_hosts" in words
