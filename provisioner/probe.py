"""Parallel host facts over SSH (pyinfra on paramiko), and their comparison with the inventory.

Before anything is installed, every host is reached once: can we log in, can we become root, and does the
machine look like what the inventory says (architecture, board, memory) and like something K3s runs on
(memory cgroup, systemd, disk, clock)? ``probe_hosts`` gathers the facts; ``compare`` turns facts plus the
inventory into findings with a fix each. Neither prints: the CLI renders findings.

Transport: pyinfra's SSH connector (paramiko underneath) with host-key checking ON unless the caller turns it
off visibly (``SshSettings.strict_host_key_checking=False`` or a host's ``host_key_checking=False``).

Parallelism: pyinfra's own CLI runs hosts as gevent greenlets after ``gevent.monkey.patch_all()``. A library
must not monkey-patch the whole process (ansible-runner, subprocess and threading elsewhere in the CLI would
silently change behaviour), and without the patch paramiko's blocking sockets would serialise greenlets. So each
host runs in its own OS thread, which is what paramiko is built for; pyinfra's per-call gevent helpers then run
on a private hub per thread. A watchdog closes the SSH transport of any host that overruns its deadline, which
unblocks its reads, so one hung host cannot stall the probe.

Speed: after the connection, a host costs ONE remote command: pyinfra's facts (Arch, LinuxDistribution, Memory,
Cpus, Hostname) contribute their own commands and parsers to it, next to the shell reads pyinfra has no fact for.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import gevent  # type: ignore[import-untyped]  # no stubs; pyproject could list gevent.* with pyinfra.*
from paramiko import AuthenticationException, BadHostKeyException, SSHException
from paramiko.ssh_exception import NoValidConnectionsError
from pyinfra.api.command import StringCommand
from pyinfra.api.config import Config
from pyinfra.api.exceptions import ConnectError, PyinfraError
from pyinfra.api.facts import FactBase, get_fact
from pyinfra.api.inventory import Inventory
from pyinfra.api.state import State
from pyinfra.connectors.sshuserclient import client as pyinfra_ssh_client
from pyinfra.facts import hardware, server

from provisioner import arch as arch_table
from provisioner.ssh_config import HostSsh, SshHost, SshSettings, probe_alias, render_probe_config, resolve

# ----- what the probe needs from an inventory host ----------------------------------------------------------------


class HardwareLike(Protocol):
    """The declared hardware of a host (``provision_hardware``); None means "not declared"."""

    @property
    def arch(self) -> str | None: ...

    @property
    def board(self) -> str | None: ...

    @property
    def memory_mb(self) -> int | None: ...


class HostLike(SshHost, Protocol):
    """The fields of ``provisioner.inventory.model.Host`` the probe reads: how to reach it (``SshHost``) and what it
    should be."""

    @property
    def role(self) -> str: ...

    @property
    def hardware(self) -> HardwareLike: ...

    @property
    def become(self) -> bool: ...


# ----- settings and results ---------------------------------------------------------------------------------------


ErrorKind = Literal[
    "host key verification failed",
    "connection refused",
    "host unreachable",
    "timed out",
    "authentication failed",
    "name resolution failed",
    "private key unusable",
    "connection closed",
    "ssh error",
    "probe failed",
]


@dataclass(frozen=True)
class HostFacts:
    """What one host really is. Every fact is None when it could not be read (e.g. the host is unreachable)."""

    name: str
    reachable: bool = False
    error: ErrorKind | None = None  # one of a fixed set, for programs
    error_detail: str | None = None  # the underlying message, for people
    uid: int | None = None  # of the login user
    sudo_ok: bool = False  # root already, or `sudo -n true` works, or sudo took the become password
    sudo_password_tried: bool = False  # `sudo -n` failed and the become password was offered (accepted or not)
    hostname: str | None = None
    os_id: str | None = None  # os-release ID, e.g. debian, ubuntu, rocky
    os_like: tuple[str, ...] = ()  # os-release ID_LIKE
    os_version: str | None = None  # os-release VERSION_ID
    arch: str | None = None  # k3s naming: amd64, arm64, arm, s390x; otherwise uname -m as is
    arch_raw: str | None = None  # uname -m
    kernel: str | None = None
    memory_mb: int | None = None
    cpus: int | None = None
    board: str | None = None  # generic, vm, rpi3/4/5, jetson-nano/orin/xavier (jetson: family only), other-arm
    board_model: str | None = None  # device-tree model string as read
    cgroup_version: int | None = None  # 1 (legacy or hybrid) or 2 (unified)
    memory_cgroup_enabled: bool | None = None
    swap_mb: int | None = None
    disk_path: str | None = None  # where disk_free_mb was measured
    disk_free_mb: int | None = None
    clock_skew_s: float | None = None  # host clock minus control machine clock
    systemd: bool | None = None  # booted with systemd as init
    container: str | None = None  # container technology when the host is one (docker, lxc, podman, ...)
    virtualization: str | None = None  # hypervisor when the host is a VM (kvm, vmware, ...)
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (run reports, test cases)."""
        data = dataclasses.asdict(self)
        data["os_like"] = list(self.os_like)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HostFacts:
        """Inverse of ``to_dict``; unknown keys are an error so test cases cannot drift silently."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown HostFacts fields: {sorted(unknown)}")
        values = dict(data)
        if "os_like" in values:
            values["os_like"] = tuple(values["os_like"])
        return cls(**values)


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One difference between inventory and reality, or one reason K3s will not run well, with its fix."""

    host: str
    check: str
    severity: Severity
    message: str
    fix: str = ""


# ----- probing ----------------------------------------------------------------------------------------------------


PROBE_SCRIPT_MARK = "provision-probe"

#: Everything pyinfra has no fact for, as key=value lines (part of the one probe command, see build_probe_command).
#: Reads nothing that needs root. ``timeout`` guards df against hung network mounts.
SHELL_FACTS_SCRIPT = r"""
LC_ALL=C; export LC_ALL
echo "mark=provision-probe"
echo "kernel=$(uname -r)"
uid=$(id -u); echo "uid=$uid"
if [ "$uid" = 0 ]; then echo "sudo=root"
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then echo "sudo=ok"
else echo "sudo=fail"; fi
for f in /proc/device-tree/model /sys/firmware/devicetree/base/model; do
  if [ -r "$f" ]; then printf 'dt_model=%s\n' "$(tr -d '\000' < "$f")"; break; fi
done
for f in /proc/device-tree/compatible /sys/firmware/devicetree/base/compatible; do
  if [ -r "$f" ]; then printf 'dt_compatible=%s\n' "$(tr '\000' ' ' < "$f")"; break; fi
done
if [ -r /etc/nv_tegra_release ]; then printf 'tegra_release=%s\n' "$(head -n 1 /etc/nv_tegra_release)"; fi
if command -v systemd-detect-virt >/dev/null 2>&1; then
  echo "virt_vm=$(systemd-detect-virt --vm 2>/dev/null)"
  echo "virt_container=$(systemd-detect-virt --container 2>/dev/null)"
else
  c=none
  if [ -r /run/systemd/container ]; then c=$(cat /run/systemd/container)
  elif [ -e /.dockerenv ]; then c=docker
  elif [ -e /run/.containerenv ]; then c=podman
  fi
  echo "virt_container=$c"
fi
echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
if command -v nproc >/dev/null 2>&1; then echo "nproc=$(nproc 2>/dev/null)"; fi
c=/sys/fs/cgroup/cgroup.controllers
if [ -r "$c" ]; then echo "cgroup2_controllers=$(cat "$c")"; fi
awk '$1=="memory" {print "cgroup1_memory_enabled=" $4}' /proc/cgroups 2>/dev/null
awk '/^MemTotal:/ {print "memtotal_kb=" $2} /^SwapTotal:/ {print "swaptotal_kb=" $2}' /proc/meminfo 2>/dev/null
if [ -d /run/systemd/system ]; then echo "systemd=1"; else echo "systemd=0"; fi
for d in /var/lib/rancher /var /; do
  if [ -d "$d" ]; then
    echo "disk_path=$d"
    if command -v timeout >/dev/null 2>&1; then t="timeout 10"; else t=""; fi
    $t df -Pk "$d" 2>/dev/null | awk 'NR==2 {print "disk_free_kb=" $4}'
    break
  fi
done
"""

SECTION_MARK = "@@provision-probe-section:"
#: pyinfra facts whose command and parser the probe uses, by the section name in the probe's output.
PYINFRA_FACTS: tuple[tuple[str, type[FactBase[Any]]], ...] = (
    ("arch", server.Arch),
    ("distro", server.LinuxDistribution),
    ("memory", hardware.Memory),
    ("cpus", hardware.Cpus),
    ("hostname", server.Hostname),
)
WATCHDOG_TICK_S = 0.25

_LOGGERS_TO_SILENCE = ("pyinfra", "paramiko")


def probe_hosts(hosts: Sequence[HostLike], ssh: SshSettings, parallel: int = 20) -> dict[str, HostFacts]:
    """Probe every host in parallel and return facts by host name.

    Never raises for one bad host: an unreachable host, a refused login or a failing command becomes a
    ``HostFacts`` with ``reachable=False`` and a classified ``error``.
    """
    if not hosts:
        return {}
    resolved = resolve(hosts, ssh)
    with tempfile.TemporaryDirectory(prefix="provision-probe-") as folder:
        config = Path(folder) / "ssh_config"  # no secret in it: addresses, users, file paths
        config.write_text(render_probe_config(resolved.values()))
        state = _make_state(hosts, resolved, config, ssh, parallel)
        _reset_host_key_cache()
        return _probe_all(state, hosts, ssh, parallel)


def _probe_all(state: State, hosts: Sequence[HostLike], ssh: SshSettings, parallel: int) -> dict[str, HostFacts]:
    watchdog = _Watchdog()
    results: dict[str, HostFacts] = {}
    workers = max(1, min(parallel, len(hosts)))
    with _quiet_loggers(), concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="probe") as pool:
        futures = {
            pool.submit(_probe_one, state, state.inventory.get_host(host.name), host.name, ssh, watchdog): host.name
            for host in hosts
        }
        while futures:
            done, _ = concurrent.futures.wait(futures, timeout=WATCHDOG_TICK_S, return_when="FIRST_COMPLETED")
            for future in done:
                name = futures.pop(future)
                results[name] = future.result()
            watchdog.enforce()
    return {host.name: results[host.name] for host in hosts}


def _probe_one(state: State, pyhost: Any, name: str, ssh: SshSettings, watchdog: _Watchdog) -> HostFacts:
    """Connect, read all facts, disconnect. Runs in its own thread; returns instead of raising."""
    started = time.monotonic()
    watchdog.register(name, pyhost, started + ssh.host_timeout)
    try:
        try:
            pyhost.connect(show_errors=False, raise_exceptions=True)
        except Exception as error:  # every failure to connect is a result, not a crash
            kind, detail = classify_error(error)
            return HostFacts(name=name, error=kind, error_detail=detail, elapsed_s=time.monotonic() - started)
        try:
            facts = _gather(state, pyhost, name)
            if facts.reachable and not facts.sudo_ok and ssh.become_password:
                facts = dataclasses.replace(
                    facts, sudo_ok=_sudo_takes_password(pyhost, ssh.become_password, ssh.connect_timeout),
                    sudo_password_tried=True,
                )
        except Exception as error:  # a failing fact must not take the other hosts down
            kind, detail = classify_error(error)
            facts = HostFacts(name=name, error=kind, error_detail=detail)
        if watchdog.fired(name):
            facts = HostFacts(
                name=name, error="timed out", error_detail=f"probe took longer than {ssh.host_timeout:g}s"
            )
        return dataclasses.replace(facts, elapsed_s=time.monotonic() - started)
    finally:
        watchdog.unregister(name)
        _close(pyhost)
        _destroy_thread_hub()


def _sudo_takes_password(pyhost: Any, password: str, timeout: float) -> bool:
    """Whether sudo accepts the become password, as Ansible will give it: on stdin, never in a command line or an
    environment (`-k` so a cached ticket does not answer for it)."""
    client = getattr(pyhost.connector, "client", None)
    if client is None:
        return False
    stdin, stdout, _stderr = client.exec_command("sudo -S -k -p '' true", timeout=timeout)
    stdin.write(password + "\n")
    stdin.flush()
    stdin.channel.shutdown_write()
    return int(stdout.channel.recv_exit_status()) == 0


def _gather(state: State, pyhost: Any, name: str) -> HostFacts:
    """Run the whole probe as one remote command and build the facts; a fact that cannot be read stays None.

    One SSH channel costs a session on the host (PAM, logind) of roughly 50 ms, so the pyinfra facts are not
    fetched one by one: their own commands run in the same script as the shell reads, in marked sections, and
    their own ``process`` parses each section.
    """
    before = time.time()
    output = get_fact(state, pyhost, server.Command, args=[PROBE_COMMAND], apply_failed_hosts=False)
    after = time.time()
    if not output or f"mark={PROBE_SCRIPT_MARK}" not in output:
        raise ProbeCommandError("the probe's commands did not run (connection lost or no POSIX shell)")
    shell, sections = split_sections(str(output))
    pyinfra_facts = {key: _process_fact(cls, sections.get(key, [])) for key, cls in PYINFRA_FACTS}
    distro = pyinfra_facts["distro"] or {}
    meta: Mapping[str, str] = distro.get("release_meta") or {}
    arch_raw = _text(pyinfra_facts["arch"])
    memory = pyinfra_facts["memory"]
    if memory is None and shell.get("memtotal_kb", "").isdigit():
        memory = int(shell["memtotal_kb"]) // 1024
    board_model = shell.get("dt_model") or None
    virt_vm = _virt(shell.get("virt_vm"))
    return HostFacts(
        name=name,
        reachable=True,
        uid=_int(shell.get("uid")),
        sudo_ok=shell.get("sudo") in ("root", "ok"),
        hostname=_text(pyinfra_facts["hostname"]),
        os_id=meta.get("ID"),
        os_like=tuple(meta.get("ID_LIKE", "").split()),
        os_version=meta.get("VERSION_ID"),
        arch=k3s_arch(arch_raw),
        arch_raw=arch_raw,
        kernel=shell.get("kernel") or None,
        memory_mb=int(memory) if memory is not None else None,
        cpus=usable_cpus(shell, pyinfra_facts["cpus"]),
        board=classify_board(
            arch_raw, board_model, shell.get("dt_compatible", ""), shell.get("tegra_release", ""), virt_vm
        ),
        board_model=board_model,
        cgroup_version=cgroup_version(shell.get("cgroup_fs", "")),
        memory_cgroup_enabled=memory_cgroup_enabled(shell),
        swap_mb=_kb_to_mb(shell.get("swaptotal_kb")),
        disk_path=shell.get("disk_path") or None,
        disk_free_mb=_kb_to_mb(shell.get("disk_free_kb")),
        clock_skew_s=clock_skew(shell.get("clock_start"), shell.get("clock_end"), before, after),
        systemd=shell.get("systemd") == "1" if "systemd" in shell else None,
        container=_virt(shell.get("virt_container")),
        virtualization=virt_vm,
    )


def _fact_command(cls: type[FactBase[Any]]) -> str:
    """A pyinfra fact's shell command, guarded like pyinfra guards it when the fact needs a binary."""
    fact = cls()
    command = fact.command()
    text = command.get_raw_value() if isinstance(command, StringCommand) else str(command)
    required = fact.requires_command()
    if required:
        text = f"if command -v {required} >/dev/null 2>&1; then {text}; fi"
    return text


def build_probe_command() -> str:
    """The one remote command: clock, shell reads, each pyinfra fact in its section, clock again; exits 0."""
    parts = ['echo "clock_start=$(date +%s.%N)"', SHELL_FACTS_SCRIPT.strip()]
    for key, cls in PYINFRA_FACTS:
        parts.append(f"echo '{SECTION_MARK}{key}'")
        parts.append(f"( {_fact_command(cls)} ) 2>/dev/null")
    parts += [f"echo '{SECTION_MARK}'", 'echo "clock_end=$(date +%s.%N)"', "true"]
    return "\n".join(parts)


PROBE_COMMAND = build_probe_command()


def split_sections(output: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The key=value lines outside fact sections, and each fact section's lines."""
    outside: list[str] = []
    sections: dict[str, list[str]] = {}
    current: list[str] = outside
    for line in output.splitlines():
        if line.startswith(SECTION_MARK):
            key = line[len(SECTION_MARK) :].strip()
            current = sections.setdefault(key, []) if key else outside
            continue
        current.append(line)
    return parse_key_values("\n".join(outside)), sections


def _process_fact(cls: type[FactBase[Any]], lines: list[str]) -> Any:
    """pyinfra's own parsing of a fact's output; its default when there is none or it does not parse."""
    fact = cls()
    if not lines:
        return fact.default()
    try:
        return fact.process(lines)
    except Exception:  # a fact parser choking on odd output costs that fact only
        return fact.default()


class ProbeCommandError(PyinfraError):
    """The connection worked but the probe's commands produced nothing usable."""


# ----- pyinfra plumbing -------------------------------------------------------------------------------------------


def _make_state(
    hosts: Sequence[HostLike], resolved: Mapping[str, HostSsh], config: Path, ssh: SshSettings, parallel: int
) -> State:
    """A pyinfra State whose inventory holds one SSH host per inventory host (named like it)."""
    names_data = [(host.name, _connector_data(resolved[host.name], config, ssh)) for host in hosts]
    # pyinfra's constructors are untyped; their arguments are plain data built above.
    config_ = Config(  # type: ignore[no-untyped-call]
        CONNECT_TIMEOUT=ssh.connect_timeout, PARALLEL=max(1, min(parallel, len(hosts)))
    )
    inventory = Inventory((names_data, {}))  # type: ignore[no-untyped-call]
    return State(inventory, config_)


def _connector_data(host: HostSsh, config: Path, ssh: SshSettings) -> dict[str, Any]:
    """pyinfra SSH connector data for one host: its block in the generated ssh_config (``ssh_config.py``) holds
    every setting OpenSSH resolved for Ansible; only the timeouts and the host-key policy are given here too."""
    timeout = ssh.connect_timeout
    return {
        "ssh_hostname": probe_alias(host.name),
        "ssh_config_file": str(config),
        # "no" accepts an unknown key without saving it; paramiko still refuses a changed one.
        "ssh_strict_host_key_checking": host.endpoint.strict,
        # Only the files a source named, like ssh; without any, paramiko tries the agent and ~/.ssh's keys.
        "ssh_look_for_keys": not host.endpoint.identity_files,
        "ssh_paramiko_connect_kwargs": {"banner_timeout": timeout, "auth_timeout": timeout, "channel_timeout": timeout},
    }


def _reset_host_key_cache() -> None:
    """pyinfra memoizes parsed known_hosts files per process; re-read them so an edited file counts."""
    cache = getattr(pyinfra_ssh_client.get_host_keys, "cache", None)
    if isinstance(cache, dict):
        cache.clear()


def _close(pyhost: Any) -> None:
    """Close the SSH transport (pyinfra's disconnect only drops its file-transfer cache)."""
    client = getattr(pyhost.connector, "client", None)
    with contextlib.suppress(Exception):
        pyhost.disconnect()
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()


def _destroy_thread_hub() -> None:
    """Free the gevent hub pyinfra's command helpers created in this worker thread (its loop holds descriptors)."""
    with contextlib.suppress(Exception):
        gevent.get_hub().destroy(destroy_loop=True)


class _Watchdog:
    """Closes the SSH client of hosts that overrun their deadline, from the coordinating thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Any, float]] = {}
        self._fired: set[str] = set()

    def register(self, name: str, pyhost: Any, deadline: float) -> None:
        with self._lock:
            self._running[name] = (pyhost, deadline)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._running.pop(name, None)

    def fired(self, name: str) -> bool:
        with self._lock:
            return name in self._fired

    def enforce(self) -> None:
        now = time.monotonic()
        with self._lock:
            overdue = [(name, host) for name, (host, deadline) in self._running.items() if now > deadline]
            self._fired.update(name for name, _ in overdue)
        for _, pyhost in overdue:
            client = getattr(pyhost.connector, "client", None)
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()


@contextlib.contextmanager
def _quiet_loggers() -> Iterator[None]:
    """pyinfra and paramiko log connection errors and progress; the probe reports through its results instead."""
    loggers = [logging.getLogger(name) for name in _LOGGERS_TO_SILENCE]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.setLevel(level)
            lg.propagate = propagate


# ----- error classification ---------------------------------------------------------------------------------------


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and its causes/contexts: pyinfra wraps paramiko's exception in a ConnectError."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _socket_kind(error: OSError) -> ErrorKind | None:
    if isinstance(error, NoValidConnectionsError):
        kinds = {_socket_kind(inner) for inner in error.errors.values() if isinstance(inner, OSError)}
        if "connection refused" in kinds:
            return "connection refused"
        return "host unreachable"
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, socket.gaierror):
        return "name resolution failed"
    codes: dict[int, ErrorKind] = {
        errno.ECONNREFUSED: "connection refused",
        errno.EHOSTUNREACH: "host unreachable",
        errno.ENETUNREACH: "host unreachable",
        errno.ETIMEDOUT: "timed out",
        errno.ECONNRESET: "connection closed",
        errno.EPIPE: "connection closed",
    }
    return codes.get(error.errno) if error.errno is not None else None


_ERROR_CHECKS: tuple[tuple[Callable[[BaseException], bool], ErrorKind], ...] = (
    (lambda e: isinstance(e, BadHostKeyException), "host key verification failed"),
    (lambda e: isinstance(e, SSHException) and "no host key for" in str(e).lower(), "host key verification failed"),
    (lambda e: isinstance(e, AuthenticationException), "authentication failed"),
    (lambda e: isinstance(e, EOFError), "connection closed"),
)

_MESSAGE_HINTS: tuple[tuple[str, ErrorKind], ...] = (
    ("host key for", "host key verification failed"),
    ("no host key for", "host key verification failed"),
    ("authentication error", "authentication failed"),
    ("private key file", "private key unusable"),
    ("could not resolve hostname", "name resolution failed"),
    ("timed out", "timed out"),
    ("connection refused", "connection refused"),
    ("no route to host", "host unreachable"),
)


def classify_error(error: BaseException) -> tuple[ErrorKind, str]:
    """Map a connection or probe failure to a fixed kind plus a one-line detail.

    Looks at the paramiko/socket exception under pyinfra's ConnectError first (types are precise), then at
    pyinfra's own message (for errors raised without a typed cause, such as an unreadable private key).
    """
    detail = _one_line(error)
    for link in _chain(error):
        for matches, kind in _ERROR_CHECKS:
            if matches(link):
                return kind, _one_line(link) or detail
        if isinstance(link, OSError):
            socket_kind = _socket_kind(link)
            if socket_kind is not None:
                return socket_kind, _one_line(link) or detail
    text = str(error).lower()
    for hint, kind in _MESSAGE_HINTS:
        if hint in text:
            return kind, detail
    if isinstance(error, ConnectError | SSHException):
        return "ssh error", detail
    return "probe failed", detail


def _one_line(error: BaseException) -> str:
    if isinstance(error, BadHostKeyException):  # paramiko's text holds two whole base64 keys; fingerprints suffice
        return (
            f"{error.hostname} offered {error.key.get_name()} key {error.key.fingerprint}, "
            f"known_hosts has {error.expected_key.fingerprint}"
        )
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# ----- parsing helpers (pure, unit-tested) ------------------------------------------------------------------------


def parse_key_values(output: str) -> dict[str, str]:
    """``key=value`` lines into a dict (the first ``=`` splits; later duplicates win)."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value.strip()
    return values


def k3s_arch(uname_machine: str | None) -> str | None:
    """k3s's name for a ``uname -m``, or the raw name when k3s has no binary for it."""
    if not uname_machine:
        return None
    return arch_table.release_arch(uname_machine) or uname_machine


_RPI_MODELS: tuple[tuple[str, str], ...] = (
    ("raspberry pi 5", "rpi5"),
    ("raspberry pi compute module 5", "rpi5"),
    ("raspberry pi 500", "rpi5"),
    ("raspberry pi 4", "rpi4"),
    ("raspberry pi 400", "rpi4"),
    ("raspberry pi compute module 4", "rpi4"),
    ("raspberry pi 3", "rpi3"),
    ("raspberry pi compute module 3", "rpi3"),
    ("raspberry pi zero 2", "rpi3"),  # same BCM2710 SoC as the Pi 3
)
_TEGRA_SOCS = (("tegra234", "jetson-orin"), ("tegra194", "jetson-xavier"), ("tegra210", "jetson-nano"))
_JETSON_MODELS = (("orin", "jetson-orin"), ("xavier", "jetson-xavier"), ("nano", "jetson-nano"))


def classify_board(
    arch_raw: str | None, model: str | None, compatible: str, tegra_release: str, virt_vm: str | None
) -> str:
    """The inventory's board name for what the device tree, the Jetson release file and systemd say.

    Order matters: "Jetson Orin Nano" must be an Orin, so the SoC in ``compatible`` decides first, and the model
    name checks "orin" before "nano". A Jetson known only from /etc/nv_tegra_release is ``jetson`` (family known,
    module not), except L4T R36 which exists for Orin only.
    """
    model_l = (model or "").lower()
    for prefix, board in _RPI_MODELS:
        if model_l.startswith(prefix):
            return board
    is_jetson = "jetson" in model_l or "nvidia,tegra" in compatible.lower() or bool(tegra_release)
    if is_jetson:
        for soc, board in _TEGRA_SOCS:
            if f"nvidia,{soc}" in compatible.lower():
                return board
        for word, board in _JETSON_MODELS:
            if word in model_l:
                return board
        return "jetson-orin" if tegra_release.startswith("# R36") else "jetson"
    if virt_vm:
        return "vm"
    return "other-arm" if (arch_raw or "").startswith(("arm", "aarch")) else "generic"


def usable_cpus(shell: Mapping[str, str], online: int | None) -> int | None:
    """CPUs processes may run on: `nproc` (the scheduler affinity mask, which a cpuset-limited VM or container
    narrows, and which kubeadm's NumCPU check counts), else the online count."""
    allowed = _int(shell.get("nproc"))
    return allowed if allowed else online


def cgroup_version(filesystem_type: str) -> int | None:
    """2 when /sys/fs/cgroup is the unified cgroup2 filesystem, 1 for legacy or hybrid (tmpfs there)."""
    if filesystem_type == "cgroup2fs":
        return 2
    if filesystem_type in ("tmpfs", "cgroupfs"):
        return 1
    return None


def memory_cgroup_enabled(shell: Mapping[str, str]) -> bool | None:
    """Whether the memory controller is usable: listed in cgroup.controllers (v2) or enabled in /proc/cgroups (v1)."""
    if shell.get("cgroup_fs") == "cgroup2fs" and "cgroup2_controllers" in shell:
        return "memory" in shell["cgroup2_controllers"].split()
    enabled = shell.get("cgroup1_memory_enabled")
    if enabled is None:
        return False if shell.get("cgroup_fs") else None
    return enabled == "1"


def clock_skew(remote_start: str | None, remote_end: str | None, before: float, after: float) -> float | None:
    """Host clock minus ours, NTP-style: the host read its clock at the start and end of the command, we read ours
    when sending and receiving; offset = ((start - before) + (end - after)) / 2. With a single remote reading this
    is that reading against the midpoint of the request. The error is at most half the round trip.
    """
    start, end = _epoch(remote_start), _epoch(remote_end)
    if start is None:
        start = end
    if end is None:
        end = start
    if start is None or end is None:
        return None
    return ((start - before) + (end - after)) / 2


def _epoch(text: str | None) -> float | None:
    """``date +%s.%N`` output as seconds; busybox date prints a literal N."""
    if not text:
        return None
    try:
        return float(text.strip())
    except ValueError:
        seconds = text.strip().split(".")[0]
        return float(seconds) if seconds.isdigit() else None


def _virt(value: str | None) -> str | None:
    return None if not value or value == "none" else value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _kb_to_mb(value: str | None) -> int | None:
    number = _int(value)
    return None if number is None else number // 1024


# ----- comparison with the inventory ------------------------------------------------------------------------------

MEMORY_DECLARED_RATIO = 0.9
SERVER_MIN_MEMORY_MB = 512
DISK_ERROR_MB = 2048
DISK_WARNING_MB = 5120
CLOCK_WARNING_S = 2.0
CLOCK_ERROR_S = 30.0
DEBIAN_LIKE = ("debian", "ubuntu", "raspbian")
RHEL_LIKE = ("rhel", "centos", "fedora", "rocky", "almalinux", "ol")
RPI_CMDLINE_FIX = (
    "append ' cgroup_memory=1 cgroup_enable=memory' to the single line of /boot/firmware/cmdline.txt "
    "(/boot/cmdline.txt on older Raspberry Pi OS) and reboot"
)
GENERIC_CGROUP_FIX = (
    "boot the kernel with 'cgroup_enable=memory' (e.g. add it to GRUB_CMDLINE_LINUX in /etc/default/grub, "
    "run update-grub and reboot) and make sure the kernel is built with CONFIG_MEMCG"
)

Check = Callable[[HostLike, HostFacts], list[Finding]]


def compare(
    hosts: Sequence[HostLike], facts: Mapping[str, HostFacts], checks: Sequence[Check] | None = None
) -> list[Finding]:
    """Findings for every host, in inventory order: errors block an install, warnings are worth reading.

    `checks` are the flavor's (default: K3s's CHECKS). An unreachable host yields only its connection finding: every
    other fact is unknown.
    """
    findings: list[Finding] = []
    for host in hosts:
        host_facts = facts.get(host.name)
        if host_facts is None:
            findings.append(Finding(host.name, "probe", "error", "the host was not probed", "probe it again"))
            continue
        if not host_facts.reachable:
            findings.append(_unreachable(host, host_facts))
            continue
        for check in CHECKS if checks is None else checks:
            findings.extend(check(host, host_facts))
    return findings


def _unreachable(host: HostLike, facts: HostFacts) -> Finding:
    where = f"{host.address}:{host.port}"
    fixes: dict[str, str] = {
        "host key verification failed": (
            "its key CHANGED since it was recorded: if the host was reinstalled, check the new fingerprint on its "
            f"console, remove the old entry (ssh-keygen -R {host.address}) and run `provision trust` with this "
            "inventory; otherwise do not connect to it"
            if facts.error_detail and "known_hosts has" in facts.error_detail else
            "its key is not in known_hosts yet: run `provision trust` with this inventory, which shows each host's "
            "fingerprint to compare with the host's own (its console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)"
            " and records it when you agree"
        ),
        "connection refused": f"nothing listens on {where}: start sshd there or correct ansible_port",
        "host unreachable": f"check that the host is powered on and on the network, and that {host.address} is right",
        "timed out": f"check that the host is up and that no firewall drops traffic to {where}",
        "authentication failed": (
            f"check ansible_user ({host.user or 'default'}) and ansible_ssh_private_key_file; the public key "
            "must be in that user's ~/.ssh/authorized_keys"
        ),
        "name resolution failed": f"correct ansible_host ({host.address}) or its DNS entry",
        "private key unusable": "point ansible_ssh_private_key_file at a readable, unencrypted private key",
    }
    detail = f" ({facts.error_detail})" if facts.error_detail else ""
    return Finding(
        host.name,
        "reachable",
        "error",
        f"cannot probe {where}: {facts.error or 'unknown error'}{detail}",
        fixes.get(facts.error or "", "check the SSH connection by hand with the same user and key"),
    )


def _check_privileges(host: HostLike, facts: HostFacts) -> list[Finding]:
    if facts.uid == 0:
        return []
    user = host.user or "the login user"
    if not host.become:
        return [
            Finding(
                host.name,
                "sudo",
                "error",
                f"{user} is not root and ansible_become is off, so nothing can be installed",
                "set ansible_become: true (or log in as root)",
            )
        ]
    if not facts.sudo_ok and facts.sudo_password_tried:
        return [Finding(
            host.name, "sudo", "error", f"sudo refused the become password for {user} (or sudo is missing)",
            "give the password sudo asks for (--ask-become-pass, or PROVISION_BECOME_PASSWORD)",
        )]
    if not facts.sudo_ok:
        return [
            Finding(
                host.name,
                "sudo",
                "error",
                f"{user} cannot run 'sudo -n true' (sudo missing or asks for a password)",
                "give sudo's password with --ask-become-pass (asked once, never echoed) or PROVISION_BECOME_PASSWORD, "
                f"or allow passwordless sudo: echo '{user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{user}",
            )
        ]
    return []


def _check_arch(host: HostLike, facts: HostFacts) -> list[Finding]:
    findings: list[Finding] = []
    if facts.arch is None:
        return findings
    declared = host.hardware.arch
    if declared and arch_table.canonical(declared) != arch_table.canonical(facts.arch):
        findings.append(
            Finding(
                host.name,
                "arch",
                "error",
                f"the inventory says arch {declared}, the host is {facts.arch} (uname -m: {facts.arch_raw})",
                f"set provision_hardware.arch: {facts.arch} or remove it (it is probed)",
            )
        )
    if facts.arch not in arch_table.release_arches():
        reason = arch_table.refused_reason(facts.arch_raw or facts.arch)
        released = ", ".join(arch_table.inventory_arches())
        findings.append(
            Finding(
                host.name,
                "arch-supported",
                "error",
                f"K3s publishes no binary for {facts.arch_raw}: {reason or f'it is released for {released} only'}",
                "install a 64-bit (arm64) or ARMv7 OS image; ARMv6 boards (Pi Zero/1) cannot run K3s",
            )
        )
    return findings


def _boards_match(declared: str, probed: str) -> bool:
    if declared == probed:
        return True
    # "jetson" means a Jetson whose module could not be told; any jetson-* declaration fits it.
    return probed == "jetson" and declared.startswith("jetson-")


def _check_board(host: HostLike, facts: HostFacts) -> list[Finding]:
    declared = host.hardware.board
    if not declared or facts.board is None or _boards_match(declared, facts.board):
        return []
    model = f" (device tree: {facts.board_model})" if facts.board_model else ""
    return [
        Finding(
            host.name,
            "board",
            "warning",
            f"the inventory says board {declared}, the host looks like {facts.board}{model}",
            f"set provision_hardware.board: {facts.board} or remove it (it is probed)",
        )
    ]


def check_memory_declared(host: HostLike, facts: HostFacts) -> list[Finding]:
    """Both flavors: the host has noticeably less memory than the inventory says."""
    declared = host.hardware.memory_mb
    if facts.memory_mb is None or not declared or facts.memory_mb >= declared * MEMORY_DECLARED_RATIO:
        return []
    return [
        Finding(
            host.name,
            "memory",
            "warning",
            f"the host has {facts.memory_mb} MB of memory, the inventory expects {declared} MB",
            "check the hardware (or the VM's memory setting), or correct provision_hardware.memory_mb",
        )
    ]


def _check_memory(host: HostLike, facts: HostFacts) -> list[Finding]:
    if facts.memory_mb is None:
        return []
    findings = check_memory_declared(host, facts)
    if host.role == "server" and facts.memory_mb < SERVER_MIN_MEMORY_MB:
        findings.append(
            Finding(
                host.name,
                "memory",
                "warning",
                f"a K3s server needs at least {SERVER_MIN_MEMORY_MB} MB; this host has {facts.memory_mb} MB",
                "use a host with more memory as server, or make this host an agent",
            )
        )
    return findings


def _check_memory_cgroup(host: HostLike, facts: HostFacts) -> list[Finding]:
    if facts.memory_cgroup_enabled is not False:
        return []
    board = facts.board or host.hardware.board or ""
    return [
        Finding(
            host.name,
            "memory-cgroup",
            "error",
            "the memory cgroup controller is disabled; the kubelet in K3s refuses to start without it",
            RPI_CMDLINE_FIX if board.startswith("rpi") else GENERIC_CGROUP_FIX,
        )
    ]


def _check_swap(host: HostLike, facts: HostFacts) -> list[Finding]:
    if not facts.swap_mb:
        return []
    board = facts.board or host.hardware.board or ""
    fix = "swapoff -a and remove the swap entries from /etc/fstab"
    if board.startswith("rpi"):
        fix += " (Raspberry Pi OS: dphys-swapfile swapoff && systemctl disable dphys-swapfile)"
    return [
        Finding(
            host.name,
            "swap",
            "warning",
            f"swap is on ({facts.swap_mb} MB): pods' memory limits and eviction become unreliable",
            fix,
        )
    ]


def _check_disk(host: HostLike, facts: HostFacts) -> list[Finding]:
    if facts.disk_free_mb is None or facts.disk_free_mb >= DISK_WARNING_MB:
        return []
    severity: Severity = "error" if facts.disk_free_mb < DISK_ERROR_MB else "warning"
    limit = DISK_ERROR_MB if severity == "error" else DISK_WARNING_MB
    return [
        Finding(
            host.name,
            "disk",
            severity,
            f"only {facts.disk_free_mb} MB free on {facts.disk_path or '/'} (K3s stores images and data under "
            f"/var/lib/rancher; less than {limit} MB)",
            "free space there or give /var/lib/rancher its own larger volume",
        )
    ]


def _check_clock(host: HostLike, facts: HostFacts) -> list[Finding]:
    if facts.clock_skew_s is None or abs(facts.clock_skew_s) <= CLOCK_WARNING_S:
        return []
    skew = abs(facts.clock_skew_s)
    direction = "ahead of" if facts.clock_skew_s > 0 else "behind"
    severity: Severity = "error" if skew > CLOCK_ERROR_S else "warning"
    effect = "TLS certificates and etcd will misbehave" if severity == "error" else "logs and certificates drift"
    return [
        Finding(
            host.name,
            "clock",
            severity,
            f"the host clock is {skew:.1f}s {direction} this machine's; {effect}",
            "enable time sync on the host (timedatectl set-ntp true, or chrony); boards without a real-time "
            "clock (Raspberry Pi) need network time before K3s starts",
        )
    ]


def _check_systemd(host: HostLike, facts: HostFacts) -> list[Finding]:
    if facts.systemd is not False:
        return []
    return [
        Finding(
            host.name,
            "systemd",
            "error",
            "the host does not run systemd as init; provision installs K3s as a systemd service",
            "use an OS image that boots with systemd (OpenRC and others are not supported)",
        )
    ]


def _check_os(host: HostLike, facts: HostFacts) -> list[Finding]:
    family = {facts.os_id or "", *facts.os_like}
    if family & {*DEBIAN_LIKE, *RHEL_LIKE}:
        return []
    name = f"{facts.os_id or 'unknown'} {facts.os_version or ''}".strip()
    return [
        Finding(
            host.name,
            "os",
            "warning",
            f"{name} is neither Debian/Ubuntu-like nor RHEL-like; provision's roles are tested on those only",
            "use Debian, Ubuntu, Raspberry Pi OS or a RHEL-like OS, or expect to fix role tasks by hand",
        )
    ]


#: The checks that do not depend on the flavor (the flavors add their own memory, CPU and swap rules).
COMMON_CHECKS: tuple[Check, ...] = (
    _check_privileges,
    _check_arch,
    _check_board,
    _check_memory_cgroup,
    _check_disk,
    _check_clock,
    _check_systemd,
    _check_os,
)

#: K3s's checks (the default).
CHECKS: tuple[Check, ...] = (
    _check_privileges,
    _check_arch,
    _check_board,
    _check_memory,
    _check_memory_cgroup,
    _check_swap,
    _check_disk,
    _check_clock,
    _check_systemd,
    _check_os,
)
