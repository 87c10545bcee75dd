"""Host paths and facts, with one hidden test knob.

``KUBE_STANDIN_ROOT`` (tests only, never set by the product) prefixes every host path the stand-ins read or write
(``/etc/kubernetes``, ``/var/lib/kubelet``, ``/proc/meminfo``, ``/proc/swaps``, ``/proc/sys/...``, the CRI socket),
so local tests run kubeadm against a fake root. Without it paths are the real ones.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT_ENV = "KUBE_STANDIN_ROOT"
SYSTEMCTL_ENV = "KUBE_STANDIN_SYSTEMCTL"
SYSTEMD_RUN_ENV = "KUBE_STANDIN_SYSTEMD_RUN"


def path(text: str) -> Path:
    root = os.environ.get(ROOT_ENV, "")
    return Path(root + text) if root else Path(text)


def unhost(p: Path) -> str:
    """The path as the host sees it (the fake root stripped), for messages and files that name paths."""
    root = os.environ.get(ROOT_ENV, "")
    text = str(p)
    return text[len(root):] if root and text.startswith(root) else text


def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
    command = os.environ.get(SYSTEMCTL_ENV) or "systemctl"
    return subprocess.run([command, *args], capture_output=True, text=True, check=False)


def systemd_run() -> str:
    return os.environ.get(SYSTEMD_RUN_ENV) or "systemd-run"


def write(p: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write atomically with ``mode`` set before the content lands."""
    p.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, p)


def meminfo_mb() -> int:
    """Total RAM in MB as Go's syscall.Sysinfo gives kubeadm (totalram / 1024 / 1024)."""
    try:
        for line in path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def swaps() -> list[str]:
    """Lines of /proc/swaps (header first); only the header when swap is off."""
    try:
        return path("/proc/swaps").read_text().splitlines()
    except OSError:
        return []


def cpu_count() -> int:
    """runtime.NumCPU(): the CPUs in this process's affinity mask (what Go reads; a cgroup quota is not seen)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def hostname() -> str:
    try:
        return path("/etc/hostname").read_text().strip() if os.environ.get(ROOT_ENV) else os.uname().nodename
    except OSError:
        return os.uname().nodename
