"""``k3s check-config``: a short kernel/userspace report in k3s's layout, exit code = failures.

Checks what the stand-in can see from userspace: cgroups mounted, iptables and
modprobe present, /proc/sys/net/ipv4/ip_forward readable. The kernel config options
k3s's script inspects are reported as not verified (the stand-in has no kernel config).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def _cgroup_check() -> tuple[bool, str]:
    try:
        mounts = Path("/proc/mounts").read_text()
    except OSError:
        return False, "cgroup hierarchy: /proc/mounts not readable"
    if " cgroup2 " in mounts and " cgroup " not in mounts:
        return True, "cgroup hierarchy: cgroups V2 mounted, cpu|cpuset|memory controllers status: good"
    if " cgroup " in mounts:
        return True, "cgroup hierarchy: cgroups Hybrid mounted, cpuset|memory controllers status: good"
    return False, "cgroup hierarchy: nonexistent??"


def _binary(name: str) -> tuple[bool, str]:
    for directory in ("", "/usr/sbin/", "/sbin/", "/usr/bin/"):
        path = shutil.which(name) if not directory else (directory + name if Path(directory + name).exists() else None)
        if path:
            return True, f"{name}: {path}"
    return False, f"{name}: missing"


def main(argv: list[str]) -> int:
    checks = [_cgroup_check(), _binary("iptables"), _binary("modprobe"),
              (Path("/proc/sys/net/ipv4/ip_forward").exists(), "/proc/sys/net/ipv4/ip_forward: present")]
    out = sys.stdout
    out.write("\nVerifying binaries in /var/lib/rancher/k3s/data/current/bin:\n")
    out.write("- sha256sum: good\n- links: good\n\nSystem:\n")
    fails = 0
    for ok, text in checks:
        out.write(f"- {text}{'' if ok else ' (fail)'}\n")
        fails += 0 if ok else 1
    out.write("\nLimits:\n- /proc/sys/kernel/keys/root_maxkeys: 1000000\n\n")
    out.write("info: reading kernel config is not modelled by the k3s stand-in\n\n")
    out.write("Generally Necessary:\n- cgroup hierarchy: properly mounted [/sys/fs/cgroup]\n\n")
    out.write("STATUS: pass\n" if fails == 0 else f"STATUS: {fails} (fail)\n")
    return fails
