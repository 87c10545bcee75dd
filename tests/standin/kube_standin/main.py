"""Entry point: architecture check, then the tool by program name (or the stamped tool).

The published assets are ``kubeadm``, ``kubelet``, ``kubectl`` and ``crictl`` (in cri-tools' release archive); the kubelet also runs itself as
``kube-apiserver`` (a symlink it makes) for the apiserver static pod.
"""

from __future__ import annotations

import os
import sys

from . import _buildinfo

TOOLS = ("kubeadm", "kubelet", "kubectl", "crictl", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _check_arch() -> None:
    from k3s_standin.main import refuse_foreign_cpu  # the same zipapp carries the K3s stand-in

    refuse_foreign_cpu(getattr(_buildinfo, "ARCH", ""))


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
