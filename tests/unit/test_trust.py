"""provision trust's pure parts: ssh-keyscan output, fingerprints as ssh-keygen prints them, new/known/changed
against a known_hosts file (hashed entries too), and recording new keys into a 0600 file."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from provisioner import trust
from provisioner.inventory.model import Host
from provisioner.ssh_config import SshSettings, resolve

pytestmark = pytest.mark.unit


def _ed25519() -> trust.ScannedKey:
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    key_type, data = public.split()
    return trust.ScannedKey(key_type, data)


def _target(known: Path, port: int = 22) -> trust.HostTrust:
    return trust.HostTrust("s1", "10.0.0.5", port, known, "known")


def test_keyscan_lines_give_each_key_type_once_and_skip_comments() -> None:
    out = ("# 10.0.0.5:22 SSH-2.0-OpenSSH_9.2p1 Debian-2\n10.0.0.5 ssh-ed25519 AAAAC3Nz\n"
           "10.0.0.5 ssh-rsa AAAAB3Nz\n10.0.0.5 ssh-ed25519 AAAAother\n")
    assert trust.parse_keyscan(out) == [trust.ScannedKey("ssh-ed25519", "AAAAC3Nz"),
                                        trust.ScannedKey("ssh-rsa", "AAAAB3Nz")]


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen to compare with")
def test_the_fingerprint_is_the_one_ssh_keygen_prints(tmp_path: Path) -> None:
    key = _ed25519()
    (tmp_path / "k.pub").write_text(f"{key.key_type} {key.data}\n")
    printed = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert key.fingerprint == printed


def test_a_host_with_no_entry_is_new_and_recording_it_makes_it_known(tmp_path: Path) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    key = _ed25519()
    judged = trust.judge(_target(known, 2222), [key], "")
    assert judged.state == "new" and judged.new == [key] and judged.entry_name == "[10.0.0.5]:2222"
    assert trust.record(known, [(judged.entry_name, key)]) == 1
    assert known.stat().st_mode & 0o777 == 0o600 and known.parent.stat().st_mode & 0o777 == 0o700
    assert known.read_text() == f"[10.0.0.5]:2222 {key.key_type} {key.data}\n"
    assert trust.judge(_target(known, 2222), [key], "").state == "known"
    assert trust.judge(_target(known, 22), [key], "").state == "new"  # another port is another entry


def test_a_different_key_of_a_recorded_type_is_changed_even_in_a_hashed_entry(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    old, offered = _ed25519(), _ed25519()
    hashed = paramiko.HostKeys.hash_host("10.0.0.5")
    known.write_text(f"{hashed} {old.key_type} {old.data}")  # no final newline: recording must not glue lines
    judged = trust.judge(_target(known), [offered], "")
    assert judged.state == "changed" and judged.changed == [(offered, old.fingerprint)]
    assert trust.judge(_target(known), [old], "").state == "known"
    other = trust.ScannedKey("ssh-rsa", _ed25519().data)
    both = trust.judge(_target(known), [old, other], "")  # known by one type: known, the other type not added
    assert both.state == "known" and both.new == []
    trust.record(known, [("10.0.0.9", offered)])
    assert known.read_text().splitlines()[1] == f"10.0.0.9 {offered.key_type} {offered.data}"


def test_a_host_that_gave_no_key_is_unreachable_with_the_reason(tmp_path: Path) -> None:
    judged = trust.judge(_target(tmp_path / "known_hosts"), [], "connect to 10.0.0.5 port 22: Connection refused")
    assert judged.state == "unreachable" and "refused" in judged.error


def test_trust_checks_the_file_ssh_resolves_for_each_host(tmp_path: Path) -> None:
    """The file is the first UserKnownHostsFile of the one SSH configuration: the command line's, the inventory's,
    the SSH configuration file's, then ssh's default."""
    config = tmp_path / "config"
    config.write_text("Host 10.0.0.*\n  UserKnownHostsFile ~/site_known_hosts /etc/other\n")
    host = Host(name="s1", address="10.0.0.5", port=22, user=None, role="server", ssh_common_args=f"-F {config}")
    other = dataclasses.replace(host, name="s2", address="192.168.1.5")
    inventory = dataclasses.replace(host, name="s3", ssh_extra_args="-o UserKnownHostsFile=/inv")
    found = resolve([host, other, inventory], SshSettings())
    assert found["s1"].known_hosts_file == Path("~/site_known_hosts").expanduser()
    assert found["s2"].known_hosts_file == Path("~/.ssh/known_hosts").expanduser()
    assert found["s3"].known_hosts_file == Path("/inv")  # an -o option beats the configuration file
    cli = resolve([host, inventory], SshSettings(known_hosts=tmp_path / "cli"))
    assert {h.known_hosts_file for h in cli.values()} == {tmp_path / "cli"}


def test_membership_says_what_to_do_for_a_host_key_or_sudo_password_refusal() -> None:
    from provisioner.phases.membership import host_key_hint

    assert "provision trust" in host_key_hint({"s1": "Failed to connect: Host key verification failed."})
    assert host_key_hint({"s1": "Failed to connect: Connection refused"}) == ""
    assert "--ask-become-pass" in host_key_hint({"s1": "Read the cluster's node list: Task failed: Missing sudo password"})
    assert "sudo refused the become password" in host_key_hint({"s1": "Task failed: Incorrect sudo password"})


def test_a_long_ssh_failure_keeps_its_last_words_in_the_short_reason() -> None:
    from provisioner.runner import REASON_MAX, _short_reason

    banner = "@" * 60 + " WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! " + "x" * 900
    reason = _short_reason({"res": {"msg": f"Failed to connect to the host via ssh: {banner} Host key verification "
                                           "failed."}})
    assert len(reason) <= REASON_MAX and reason.endswith("Host key verification failed.")
    assert reason.startswith("Failed to connect to the host via ssh:")
    assert _short_reason({"res": {"msg": "short"}}) == "short"


def test_keys_behind_a_jump_host_are_scanned_from_the_last_hop_reached_like_proxyjump() -> None:
    """ssh -G prints hops as [host]:port; the scan logs into the last hop through the ones before it, with the
    configuration file ProxyJump would use, in batch mode (a hop's unknown key fails instead of asking)."""
    via = trust.through_jump("/site/ssh_config", "ops@[10.9.9.8]:2023,edge@[bastion]:22")
    assert via == ["ssh", "-o", "BatchMode=yes", "-F", "/site/ssh_config", "-J", "ops@[10.9.9.8]:2023",
                   "-l", "edge", "-p", "22", "--", "bastion"]
    assert trust.through_jump(None, "site-jump") == ["ssh", "-o", "BatchMode=yes", "--", "site-jump"]
