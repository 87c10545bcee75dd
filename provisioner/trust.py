"""Trust on first use, deliberately: what `provision trust` reads, compares and records.

Each host's SSH host keys are fetched with ``ssh-keyscan`` (OpenSSH's client, which Ansible needs anyway) and compared
with the known_hosts file that host is checked against (the first UserKnownHostsFile that OpenSSH resolves for it,
``provisioner.ssh_config``: the same the probe and Ansible use). A key type
with no entry is NEW and is recorded only after the user saw its fingerprint and agreed; an entry of that type with
another key is CHANGED and is never replaced here (the user removes it after checking why it changed). This is
OpenSSH's `accept-new`, with a person in the loop.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import paramiko

from provisioner.ssh_config import hop_specs, parse_jump

# Host key types ssh-keyscan asks for (OpenSSH's default set minus DSA, which OpenSSH no longer offers).
KEY_TYPES = "ed25519,ecdsa,rsa"
SCAN_TIMEOUT_S = 5
SSH_PORT = 22
_KEYSCAN_FIELDS = 3  # name, type, base64
BEHIND_A_PROXY_COMMAND = (
    "reached through a ProxyCommand, which ssh-keyscan cannot use: read the key on the host's console and add it to "
    "the known_hosts file yourself"
)


def through_jump(ssh_config: str | None, proxy_jump: str) -> list[str]:
    """The ssh command line that logs into the last jump host of a ProxyJump list, through the ones before it, the
    way ssh's ProxyJump reaches it (the configuration file only; host keys checked, no question asked)."""
    *before, last = hop_specs(proxy_jump)
    user, host, port = parse_jump(last)
    command = ["ssh", "-o", "BatchMode=yes"]
    command += ["-F", ssh_config] if ssh_config else []
    command += ["-J", ",".join(before)] if before else []
    command += ["-l", user] if user else []
    command += ["-p", port] if port else []
    return [*command, "--", host]

State = Literal["known", "new", "changed", "unreachable"]


@dataclass(frozen=True)
class ScannedKey:
    key_type: str  # as in known_hosts: ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa
    data: str  # base64 of the public key blob

    @property
    def fingerprint(self) -> str:
        """SHA256:... as `ssh-keygen -l` prints it."""
        digest = hashlib.sha256(base64.b64decode(self.data)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass
class HostTrust:
    """One host's keys against its known_hosts file."""

    host: str
    address: str
    port: int
    known_hosts: Path
    state: State
    keys: list[ScannedKey] = field(default_factory=list)
    new: list[ScannedKey] = field(default_factory=list)
    changed: list[tuple[ScannedKey, str]] = field(default_factory=list)  # (offered, fingerprint on record)
    error: str = ""

    @property
    def entry_name(self) -> str:
        return entry_name(self.address, self.port)


def entry_name(address: str, port: int) -> str:
    """The name known_hosts files use: the address, or [address]:port off port 22."""
    return address if port == SSH_PORT else f"[{address}]:{port}"


def parse_keyscan(output: str) -> list[ScannedKey]:
    """ssh-keyscan's lines (`name type base64`), comments skipped, each key type once."""
    keys: dict[str, ScannedKey] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) < _KEYSCAN_FIELDS or line.startswith("#"):
            continue
        keys.setdefault(parts[1], ScannedKey(parts[1], parts[2]))
    return list(keys.values())


def scan(
    address: str, port: int, timeout: int = SCAN_TIMEOUT_S, via: Sequence[str] = ()
) -> tuple[list[ScannedKey], str]:
    """The host's keys, or ([], why not). ``via``: an ssh command line that logs into the last jump host (checked
    against its own known_hosts, in batch mode), where ssh-keyscan runs: the same path ProxyJump takes."""
    keyscan = shutil.which("ssh-keyscan")
    if keyscan is None:
        return [], "ssh-keyscan is not installed on this machine (Debian/Ubuntu: apt-get install openssh-client)"
    command = ["ssh-keyscan" if via else keyscan, "-T", str(timeout), "-t", KEY_TYPES, "-p", str(port), address]
    done = subprocess.run(
        [*via, shlex.join(command)] if via else command,
        capture_output=True, text=True, check=False, timeout=timeout * 4 + 5 + (30 if via else 0),
        stdin=subprocess.DEVNULL,
    )
    keys = parse_keyscan(done.stdout)
    if not keys:
        why = " ".join(line for line in done.stderr.splitlines() if not line.startswith("#")).strip()
        return [], why or f"no SSH host key answered on {address}:{port}"
    return keys, ""


def recorded(known_hosts: Path, address: str, port: int) -> dict[str, str]:
    """key type -> base64 key on record for the host (hashed entries included; a missing file records nothing)."""
    keys = paramiko.HostKeys()
    if known_hosts.is_file():
        keys.load(str(known_hosts))
    found = keys.lookup(entry_name(address, port))
    if found is None:
        return {}
    return {key_type: found[key_type].get_base64() for key_type in found}


def judge(target: HostTrust, scanned: list[ScannedKey], error: str) -> HostTrust:
    """Compare what the host offers with the record: CHANGED wins over NEW (any mismatch refuses the host).
    `target` names the host, its address and file (its state is decided here)."""
    if not scanned:
        target.state, target.error = "unreachable", error
        return target
    on_record = recorded(target.known_hosts, target.address, target.port)
    trust = target
    trust.state, trust.keys = "known", scanned
    for key in scanned:
        old = on_record.get(key.key_type)
        if old is None:
            trust.new.append(key)
        elif old != key.data:
            trust.changed.append((key, ScannedKey(key.key_type, old).fingerprint))
    if trust.changed:
        trust.state = "changed"
    elif trust.new and not on_record:
        trust.state = "new"
    elif trust.new:
        # Some key types are on record and match: the host is known; recording its other types adds nothing ssh
        # needs (it negotiates a type it knows), so they are only listed.
        trust.new = []
    return trust


def record(known_hosts: Path, entries: Iterable[tuple[str, ScannedKey]]) -> int:
    """Append `name type key` lines to the file (created 0600, its folder 0700 when new); returns lines written."""
    lines = [f"{name} {key.key_type} {key.data}\n" for name, key in entries]
    if not lines:
        return 0
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(known_hosts, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        if handle.tell() > 0 and not known_hosts.read_bytes().endswith(b"\n"):
            handle.write("\n")
        handle.writelines(lines)
    return len(lines)
