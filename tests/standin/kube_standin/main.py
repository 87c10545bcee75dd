"""Entry point: architecture check, then the tool by program name (or the stamped tool).

The published assets are ``kubeadm``, ``kubelet``, ``kubectl`` and ``crictl`` (in cri-tools' release archive); the kubelet also runs itself as
``kube-apiserver`` (a symlink it makes) for the apiserver static pod.
"""

from __future__ import annotations

import os
import platform
import sys

from . import _buildinfo

_MACHINES = {
    "amd64": {"x86_64", "amd64"},
    "arm64": {"aarch64", "arm64"},
    "arm": {"armv7l", "armv6l", "armv7", "armv8l", "arm"},
}
TOOLS = ("kubeadm", "kubelet", "kubectl", "crictl", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _check_arch() -> None:
    """Refuse to run on the wrong CPU the way the kernel refuses a foreign ELF binary (shell: exit 126)."""
    want = getattr(_buildinfo, "ARCH", "")
    if want and platform.machine().lower() not in _MACHINES.get(want, set()):
        sys.stderr.write(f"{sys.argv[0]}: cannot execute binary file: Exec format error\n")
        sys.stderr.flush()
        os._exit(126)


def main() -> None:
    _check_arch()
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    tool = name if name in TOOLS else _buildinfo.TOOL
    args = sys.argv[1:]
    try:
        if tool == "kubeadm":
            from . import kubeadm

            code = kubeadm.run(args)
        elif tool == "kubelet":
            from . import kubelet

            code = kubelet.run(args)
        elif tool == "crictl":
            from . import crictl

            code = crictl.run(args)
        elif tool == "kube-apiserver":
            from . import apiserver

            code = apiserver.run(args)
        elif tool == "kube-controller-manager":
            from . import controllers

            code = controllers.controller_manager(args)
        elif tool == "kube-scheduler":
            from . import controllers

            code = controllers.scheduler(args)
        else:
            from . import kubectl

            code = kubectl.run(args)
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    raise SystemExit(code)
