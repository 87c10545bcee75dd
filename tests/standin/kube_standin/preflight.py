"""kubeadm's preflight checks on the paths the product takes (kubeadm_facts.md §2), with kubeadm's names and texts.

Errors and warnings are collected in check order; ``--ignore-preflight-errors`` (case-insensitive names, ``all``)
turns errors into warnings. Warnings go to stderr as ``\t[WARNING Name]: msg``; errors end the phase with
``[preflight] Some fatal errors occurred:`` and exit 1 (the phase wrapper hides kubeadm's preflight exit code 2).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from dataclasses import dataclass, field

from . import cri, host, versions


class PreflightError(Exception):
    def __init__(self, text: str, code: int = 1) -> None:
        super().__init__(text)
        self.code = code


@dataclass
class Result:
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)

    def error(self, name: str, message: str) -> None:
        self.errors.append((name, message))

    def warn(self, name: str, message: str) -> None:
        self.warnings.append((name, message))


def ignore_set(values: list[str]) -> set[str]:
    names = {v.strip().lower() for value in values for v in value.split(",") if v.strip()}
    if "all" in names and len(names) > 1:
        raise PreflightError("ignore-preflight-errors: Invalid value: \"" + ",".join(sorted(names)) +
                             "\": don't specify individual checks if 'all' is used", 3)
    return names


def check_root(result: Result) -> None:
    if os.geteuid() != 0:
        result.error("IsPrivilegedUser", "user is not running as root")


def _port_in_use(port: int) -> bool:
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):  # noqa: S104 - a bind test
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # Go's net.Listen does: TIME_WAIT is no "in use"
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno == 98:  # EADDRINUSE
                return True
        finally:
            sock.close()
    return False


def check_ports(result: Result, ports: list[int]) -> None:
    for port in ports:
        if _port_in_use(port):
            result.error(f"Port-{port}", f"Port {port} is in use")


def check_file_available(result: Result, path: str) -> None:
    if host.path(path).exists():
        result.error("FileAvailable-" + path.replace("/", "-"), f"{path} already exists")


def check_dir_available(result: Result, path: str) -> None:
    p = host.path(path)
    if p.is_dir() and any(p.iterdir()):
        result.error("DirAvailable-" + path.replace("/", "-"), f"{path} is not empty")


def check_file_content(result: Result, path: str) -> None:
    p = host.path(path)
    name = "FileContent-" + path.replace("/", "-")
    try:
        content = p.read_text()
    except OSError:
        result.error(name, f"{path} does not exist")
        return
    if not content.startswith("1"):
        result.error(name, f"{path} contents are not set to 1")


def check_cpu_mem(result: Result) -> None:
    cpus = host.cpu_count()
    if cpus < 2:
        result.error("NumCPU", f"the number of available CPUs {cpus} is less than the required 2")
    mem = host.meminfo_mb()
    if mem < 1700:
        result.error("Mem", f"the system RAM ({mem} MB) is less than the minimum 1700 MB")


def common_checks(result: Result, cri_socket: str) -> None:
    """Container runtime, swap, required binaries, kubelet service, kubelet port."""
    reason = cri.probe(cri_socket)
    if reason:
        result.error("CRI", cri.preflight_message(cri_socket, reason))
    if versions.minor() < 31 and not shutil.which("crictl"):
        result.error("FileExisting-crictl", "crictl not found in system path")
    if len(host.swaps()) > 1:
        result.warn("Swap", versions.SWAP_WARNING[versions.minor()])
    required = (["conntrack"] if versions.minor() < 32 else []) + ["ip", "iptables", "mount", "nsenter"]
    for binary in required:
        if not shutil.which(binary):
            result.error(f"FileExisting-{binary}", f"{binary} not found in system path")
    for binary in ("ebtables", "ethtool", "socat", "tc", "touch"):
        if not shutil.which(binary):
            result.warn(f"FileExisting-{binary}", f"{binary} not found in system path")
    if versions.minor() >= 31 and not shutil.which("crictl"):
        result.warn("FileExisting-crictl", "crictl not found in system path")
    enabled = host.systemctl("is-enabled", "kubelet.service")
    if enabled.stdout.strip() not in ("enabled", "enabled-runtime", "static", "alias"):
        result.warn("Service-Kubelet", "kubelet service is not enabled, please run 'systemctl enable kubelet.service'")
    check_ports(result, [10250])


def network_checks(result: Result) -> None:
    check_file_content(result, "/proc/sys/net/ipv4/ip_forward")
    if versions.minor() < 30:
        check_file_content(result, "/proc/sys/net/bridge/bridge-nf-call-iptables")


def report(result: Result, ignored: set[str]) -> None:
    """Print warnings, raise with kubeadm's text when an error is left."""
    fatal = []
    for name, message in result.errors:
        if "all" in ignored or name.lower() in ignored:
            result.warnings.append((name, message))
        else:
            fatal.append((name, message))
    for name, message in result.warnings:
        sys.stderr.write(f"\t[WARNING {name}]: {message}\n")
    sys.stderr.flush()
    if fatal:
        lines = "".join(f"\t[ERROR {name}]: {message}\n" for name, message in fatal)
        raise PreflightError("[preflight] Some fatal errors occurred:\n" + lines +
                             "[preflight] If you know what you are doing, you can make a check non-fatal with "
                             "`--ignore-preflight-errors=...`")
