"""One SSH configuration per command: what OpenSSH uses for each host when Ansible connects, and the probe with it.

Four sources set how a host is reached: the command line (``--known-hosts``, ``--no-host-key-checking``), the
inventory (``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_ssh_private_key_file``, and ``-o`` options or
``-F`` in ``ansible_ssh_common_args`` / ``ansible_ssh_extra_args``), the SSH client configuration (``~/.ssh/config``
and ``/etc/ssh/ssh_config``, or the file ``-F`` names) and OpenSSH's defaults. Rather than re-implement how OpenSSH
combines them, each host is resolved by OpenSSH itself: ``ssh -G`` over the options Ansible's ssh connection puts on
its command line, in Ansible's order (``ansible_ssh_options``), prints the settings ssh would use and connects to
nothing. The probe (pyinfra on paramiko) then reads exactly those settings from a generated ssh_config file
(``render_probe_config``), jump hosts included, so the probe and Ansible cannot disagree (issue 18). Where two sources
set one setting to different values, ``HostSsh.conflicts`` says which one wins.

A ProxyJump host is reached the way OpenSSH reaches it: ``ssh [-l user] [-p port] [-F file] jump``, that is with the
configuration file only; the command line's ``-o`` options (``--known-hosts`` too) do not apply to it.
"""

from __future__ import annotations

import concurrent.futures
import getpass
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from provisioner.errors import UsageError
from provisioner.inventory.host_checks import ssh_option

SSH_G_TIMEOUT_S = 15
RESOLVE_WORKERS = 8
# OpenSSH's StrictHostKeyChecking as `ssh -G` prints it -> the probe's policy. Nobody answers the probe's questions,
# so "ask" refuses an unknown key, as ssh does without a terminal.
_STRICT = {
    "true": "yes", "yes": "yes", "ask": "yes", "false": "no", "no": "no", "off": "no", "accept-new": "accept-new",
}


class SshHost(Protocol):
    """What the resolution needs from an inventory host (provisioner.inventory.model.Host has it)."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def port_given(self) -> bool: ...

    @property
    def user(self) -> str | None: ...

    @property
    def ssh_key(self) -> Path | None: ...

    @property
    def ssh_common_args(self) -> str | None: ...

    @property
    def ssh_extra_args(self) -> str | None: ...

    @property
    def host_key_checking(self) -> bool: ...


@dataclass(frozen=True)
class SshSettings:
    """The command line's part of the SSH configuration. Host-key checking stays on unless turned off here, visibly."""

    known_hosts: Path | None = None  # --known-hosts: first on ssh's command line, so it wins for every target host
    strict_host_key_checking: bool = True  # False accepts UNKNOWN keys; a CHANGED key is always refused
    connect_timeout: float = 10.0  # TCP connect, SSH banner, authentication: each
    host_timeout: float = 60.0  # whole probe of one host, connection included; the watchdog's deadline
    default_user: str | None = None  # Ansible's remote_user: for hosts whose inventory names none
    default_key: Path | None = None  # Ansible's private_key_file: for hosts whose inventory names none
    # sudo's password (--ask-become-pass, PROVISION_BECOME_PASSWORD): given to `sudo -S` on the channel's stdin only
    become_password: str | None = field(default=None, repr=False)

    ansible_timeout: int = 15  # Ansible's ssh ConnectTimeout (ANSIBLE_TIMEOUT)

    def ansible_args(self) -> list[str]:
        """ANSIBLE_SSH_ARGS: what Ansible puts first on every ssh command line, so it wins over the inventory."""
        args = ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s"]
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if not self.strict_host_key_checking:
            args += ["-o", "StrictHostKeyChecking=no"]
        return args

    def envvars(self) -> dict[str, str]:
        """The environment ansible-runner gives Ansible: these settings, and nothing secret."""
        env = {
            "ANSIBLE_HOST_KEY_CHECKING": "True" if self.strict_host_key_checking else "False",
            "ANSIBLE_TIMEOUT": str(self.ansible_timeout),
            # Pipelining: fewer round trips per task; sudo without requiretty is the norm on current distributions.
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_ARGS": shlex.join(self.ansible_args()),
        }
        if self.default_key is not None:
            env["ANSIBLE_PRIVATE_KEY_FILE"] = str(self.default_key)
        if self.default_user is not None:
            env["ANSIBLE_REMOTE_USER"] = self.default_user
        return env


@dataclass(frozen=True)
class Endpoint:
    """Where and how ssh connects, as ``ssh -G`` resolved it."""

    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]  # only files a source named; () means OpenSSH's default keys and the agent
    known_hosts: tuple[str, ...]
    strict: str  # yes | no | accept-new
    proxy_jump: str | None = None
    proxy_command: str | None = None


@dataclass(frozen=True)
class HostSsh:
    """One inventory host's resolved SSH configuration."""

    name: str
    endpoint: Endpoint
    config_file: str | None  # the -F file, or None for ~/.ssh/config and /etc/ssh/ssh_config
    hops: tuple[Endpoint, ...] = ()  # jump hosts, first one first
    conflicts: tuple[str, ...] = ()

    @property
    def known_hosts_file(self) -> Path:
        """The file this host's key is checked against first (and where `provision trust` records it)."""
        return Path(self.endpoint.known_hosts[0]).expanduser()


def ansible_ssh_options(host: SshHost, settings: SshSettings) -> list[str]:
    """The options Ansible's ssh connection plugin puts on ssh's command line for this host, in its order:
    ssh_args, StrictHostKeyChecking=no when checking is off, Port, IdentityFile, User, then ansible_ssh_common_args
    and ansible_ssh_extra_args. ssh keeps the first value it sees of an option."""
    args = settings.ansible_args()
    if not (settings.strict_host_key_checking and host.host_key_checking):
        args += ["-o", "StrictHostKeyChecking=no"]
    if host.port_given:
        args += ["-o", f"Port={host.port}"]
    key = host.ssh_key or settings.default_key
    if key is not None:
        args += ["-o", f"IdentityFile={key}"]
    user = host.user or settings.default_user
    if user:
        args += ["-o", f"User={user}"]
    args += _split(host.ssh_common_args) + _split(host.ssh_extra_args)
    return args


def resolve(hosts: Sequence[SshHost], settings: SshSettings) -> dict[str, HostSsh]:
    """Every host's SSH configuration, resolved by OpenSSH (`ssh -G`) in parallel."""
    if not hosts:
        return {}
    ssh = _ssh_binary()
    defaults = _ssh_g(ssh, ["-F", os.devnull], "provision-defaults")
    workers = max(1, min(RESOLVE_WORKERS, len(hosts)))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="ssh-G") as pool:
        found = list(pool.map(lambda host: _resolve_one(ssh, host, settings, defaults), hosts))
    return {item.name: item for item in found}


def _resolve_one(ssh: str, host: SshHost, settings: SshSettings, defaults: Mapping[str, list[str]]) -> HostSsh:
    options = ansible_ssh_options(host, settings)
    config_file = _config_file(options)
    config_args = ["-F", config_file] if config_file else []
    full = _ssh_g(ssh, options, host.address)
    from_config = _ssh_g(ssh, config_args, host.address)
    endpoint = _endpoint(full, defaults)
    hops = tuple(_resolve_hop(ssh, spec, config_args, defaults) for spec in hop_specs(endpoint.proxy_jump))
    conflicts = _conflicts(
        host, settings, full=full, from_config=from_config, defaults=defaults, config_file=config_file
    )
    return HostSsh(name=host.name, endpoint=endpoint, config_file=config_file, hops=hops, conflicts=conflicts)


def _resolve_hop(ssh: str, spec: str, config_args: list[str], defaults: Mapping[str, list[str]]) -> Endpoint:
    """A jump host as OpenSSH's ProxyJump reaches it: `ssh [-l user] [-p port] [-F file] host`."""
    user, host, port = parse_jump(spec)
    args = list(config_args)
    if user:
        args += ["-l", user]
    if port:
        args += ["-p", port]
    return _endpoint(_ssh_g(ssh, args, host), defaults)


def parse_jump(spec: str) -> tuple[str, str, str]:
    """One ProxyJump hop, ``[user@]host[:port]`` or ``[user@][host]:port`` (as ssh -G prints it): (user, host, port),
    empty strings for what the spec leaves out."""
    user, _, hostport = spec.strip().rpartition("@")
    host, port = hostport, ""
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest.removeprefix(":")
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    return user, host, port


def hop_specs(proxy_jump: str | None) -> list[str]:
    if not proxy_jump or proxy_jump.lower() == "none":
        return []
    return [spec.strip() for spec in proxy_jump.split(",") if spec.strip()]


def _endpoint(values: Mapping[str, list[str]], defaults: Mapping[str, list[str]]) -> Endpoint:
    identity = values.get("identityfile", [])
    named = () if identity == defaults.get("identityfile", []) else tuple(identity)
    jump = _first(values, "proxyjump")
    command = _first(values, "proxycommand")
    return Endpoint(
        hostname=_first(values, "hostname") or "",
        port=int(_first(values, "port") or 22),
        user=_first(values, "user") or getpass.getuser(),
        identity_files=tuple(_home(path) for path in named),
        known_hosts=tuple(" ".join(values.get("userknownhostsfile", [])).split()) or ("~/.ssh/known_hosts",),
        strict=_STRICT.get((_first(values, "stricthostkeychecking") or "ask").lower(), "yes"),
        proxy_jump=None if not jump or jump.lower() == "none" else jump,
        proxy_command=None if not command or command.lower() == "none" else command,
    )


# Settings whose sources are compared; IdentityFile is not among them: ssh tries every file that any source names.
_COMPARED = {
    "user": ("User", "ansible_user"),
    "port": ("Port", "ansible_port"),
    "userknownhostsfile": ("UserKnownHostsFile", None),
    "proxyjump": ("ProxyJump", None),
    "stricthostkeychecking": ("StrictHostKeyChecking", None),
}


def _conflicts(
    host: SshHost,
    settings: SshSettings,
    *,
    full: Mapping[str, list[str]],
    from_config: Mapping[str, list[str]],
    defaults: Mapping[str, list[str]],
    config_file: str | None,
) -> tuple[str, ...]:
    """Where two sources set one setting differently: which value wins (the resolved one) and which is ignored."""
    config_name = config_file or "~/.ssh/config"
    found: list[str] = []
    for key, (option, variable) in _COMPARED.items():
        sources: list[tuple[str, str]] = []
        if key == "userknownhostsfile" and settings.known_hosts is not None:
            sources.append(("--known-hosts", str(settings.known_hosts)))
        if key == "stricthostkeychecking" and not settings.strict_host_key_checking:
            sources.append(("--no-host-key-checking", "no"))
        if variable == "ansible_user" and host.user:
            sources.append(("ansible_user", host.user))
        if variable == "ansible_port" and host.port_given:
            sources.append(("ansible_port", str(host.port)))
        for field_name, args in (("ansible_ssh_common_args", host.ssh_common_args),
                                 ("ansible_ssh_extra_args", host.ssh_extra_args)):
            value = ssh_option(args, option)
            if value is not None:
                sources.append((field_name, value))
        configured = " ".join(from_config.get(key, []))
        if configured and configured != " ".join(defaults.get(key, [])):
            sources.append((config_name, configured))
        winner = " ".join(full.get(key, []))
        losers = [(source, value) for source, value in sources if not _same(key, value, winner)]
        if sources and losers and len(losers) < len(sources):
            won = next(source for source, value in sources if _same(key, value, winner))
            found += [f"{option} {winner} from {won} wins over {value} from {source}" for source, value in losers]
    return tuple(found)


def _same(key: str, value: str, resolved: str) -> bool:
    if key == "stricthostkeychecking":
        return _STRICT.get(value.lower()) == _STRICT.get(resolved.lower())
    if key == "userknownhostsfile":
        return [_home(v) for v in value.split()] == [_home(v) for v in resolved.split()]
    return value == resolved


def render_probe_config(resolved: Iterable[HostSsh]) -> str:
    """An ssh_config for the probe (pyinfra reads one file): a block per inventory host, named ``provision-<name>``,
    and one per jump host, each with every setting ssh -G resolved, so nothing is left to paramiko's defaults."""
    blocks: list[str] = []
    hops_written: set[str] = set()
    for host in resolved:
        lines = [f"Host {probe_alias(host.name)}", *_settings_lines(host.endpoint)]
        if host.endpoint.proxy_command:
            lines.append(f"  ProxyCommand {host.endpoint.proxy_command}")
        elif host.hops:
            lines.append("  ProxyJump " + ",".join(f"{hop.user}@{hop.hostname}:{hop.port}" for hop in host.hops))
        blocks.append("\n".join(lines))
        for hop in host.hops:
            if hop.hostname not in hops_written:  # pyinfra looks jump hosts up by their real name
                hops_written.add(hop.hostname)
                blocks.append("\n".join([f"Host {hop.hostname}", *_settings_lines(hop)]))
    return "\n\n".join(blocks) + "\n"


def probe_alias(name: str) -> str:
    return f"provision-{name}"


def _settings_lines(endpoint: Endpoint) -> list[str]:
    lines = [
        f"  HostName {endpoint.hostname}",
        f"  Port {endpoint.port}",
        f"  User {endpoint.user}",
        f"  UserKnownHostsFile {' '.join(endpoint.known_hosts)}",
        f"  StrictHostKeyChecking {endpoint.strict}",
    ]
    lines += [f"  IdentityFile {path}" for path in endpoint.identity_files]
    return lines


# ----- OpenSSH ------------------------------------------------------------------------------------------------------


def _ssh_binary() -> str:
    found = shutil.which("ssh")
    if found is None:
        raise UsageError(
            "the OpenSSH client (ssh) is not installed on this machine; Ansible connects with it: "
            "install openssh-client (apt) or openssh-clients (dnf)"
        )
    return found


def _ssh_g(ssh: str, args: list[str], host: str) -> dict[str, list[str]]:
    """`ssh -G`: the configuration ssh would use for this host, parsed; nothing is connected."""
    done = subprocess.run(
        [ssh, "-G", *args, "--", host], capture_output=True, text=True, timeout=SSH_G_TIMEOUT_S, check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(
            f"ssh cannot read the SSH settings for {host}: {reason}; check ansible_ssh_common_args / "
            "ansible_ssh_extra_args in the inventory and ~/.ssh/config"
        )
    values: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key.lower(), []).append(value.strip())
    return values


def _home(path: str) -> str:
    return str(Path(path).expanduser())


def _first(values: Mapping[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found else None


def _split(args: str | None) -> list[str]:
    if not args or "{{" in args:
        return []
    try:
        return shlex.split(args)
    except ValueError:
        return []


def _config_file(options: list[str]) -> str | None:
    """The -F file among the options (ssh uses the last -F), None when ssh reads its default files."""
    found: str | None = None
    for number, word in enumerate(options):
        if word == "-F" and number + 1 < len(options):
            found = options[number + 1]
        elif word.startswith("-F") and word != "-F":
            found = word[2:]
    return _home(found) if found else None
